"""The web view's one message per interval, shared by every open page (`/events`).

A message is built once per interval by one thread while any page listens (none: no work),
and every listener gets the same one, so ten open browsers cost what one does. It carries:
- `status`: the /status summary (hosts, bridges, bonds with member and LACP state, tunnels,
  switches, VIFs while the pool is small enough to list them, problems);
- `networks`: per network named in it, its bridge and the bridge carrying it on each host
  (`/status?network=N`'s match and switches): a network whose bridge is not the one
  carrying it is a VLAN on that bridge. Asked again at most every `NETWORK_TTL` seconds:
  networks change rarely, and this is one filtered query per network;
- `stats`: the /stats document (rates per VIF, PIF, bond member and tunnel) or null while
  there is none (`stats_error` says why), so the page draws without rates.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

LOG = logging.getLogger("netctl.web")
INTERVAL = 1.0  # seconds between messages: a bond member down shows within ~1 s
NETWORK_TTL = 10.0

StatusFn = Callable[[Mapping[str, Sequence[str]]], dict]
StatsFn = Callable[..., Any]


def call_stats(stats: StatsFn | None) -> tuple[dict | None, str | None]:
    """The /stats document, or (None, why not). `stats` is the metrics server's callable
    (`netctl.service.stats_view`); it takes no argument or a parsed query."""
    if stats is None:
        return None, "no statistics in this netctl (/stats not served)"
    try:
        try:
            doc = stats({})  # stats(query), as /stats calls it
        except TypeError:
            doc = stats()
    except Exception as exc:  # noqa: BLE001 - the view draws without rates
        return None, f"statistics failed: {exc!r}"
    if isinstance(doc, bytes | str):
        doc = json.loads(doc)
    if not isinstance(doc, dict):
        return None, "statistics: not a JSON object"
    return doc, None


class NetworkIndex:
    """network name -> {"bridge", "uuid", "carriers": {host: bridge}}, from /status queries,
    remembered for NETWORK_TTL seconds."""

    def __init__(self, status: StatusFn, clock: Callable[[], float] = time.monotonic) -> None:
        self.status, self.clock = status, clock
        self._known: dict[str, tuple[float, dict]] = {}

    def of(self, names: set[str]) -> dict[str, dict]:
        now = self.clock()
        out: dict[str, dict] = {}
        for name in sorted(names):
            cached = self._known.get(name)
            if cached is None or now - cached[0] > NETWORK_TTL:
                cached = (now, self._ask(name))
                self._known[name] = cached
            if cached[1]:
                out[name] = cached[1]
        return out

    def _ask(self, name: str) -> dict:
        try:
            doc = self.status({"network": [name], "limit": ["0"]})
        except Exception:  # noqa: BLE001 - a network gone since: drawn without its bridge
            return {}
        match = next(iter(doc.get("match", {}).get("network", [])), None)
        if match is None:
            return {}
        return {"bridge": match.get("bridge"), "uuid": match.get("uuid"),
                "carriers": {s["host"]: s["bridge"] for s in doc.get("switches", [])}}


def network_names(status: dict) -> set[str]:
    rows = (*status.get("vifs", []), *status.get("bonds", []), *status.get("tunnels", []))
    return {r["network"] for r in rows if r.get("network") not in (None, "?")}


class EventHub:
    """Builds the message every `interval` seconds while someone listens; `wait(after)`
    blocks until a message newer than `after` (its sequence number) is there."""

    def __init__(self, status: StatusFn, stats: Callable[[], StatsFn | None],
                 interval: float = INTERVAL) -> None:
        self.status, self.stats, self.interval = status, stats, interval
        self.networks = NetworkIndex(status)
        self._cond = threading.Condition()
        self._listeners = 0
        self._seq = 0
        self._message = b""
        self._thread: threading.Thread | None = None

    def build(self) -> dict[str, Any]:
        status = self.status({})
        stats, why = call_stats(self.stats())
        return {"at": time.time(), "interval": self.interval, "status": status,
                "networks": self.networks.of(network_names(status)), "stats": stats,
                "stats_error": why}

    def listen(self) -> None:
        with self._cond:
            self._listeners += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="web-events",
                                                daemon=True)
                self._thread.start()

    def leave(self) -> None:
        with self._cond:
            self._listeners -= 1

    def wait(self, after: int, timeout: float) -> tuple[int, bytes]:
        """(sequence, message) of the newest message once it is newer than `after`, or the
        same ones again after `timeout` (the caller sends a keep-alive then)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after, timeout)
            return self._seq, self._message

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._listeners <= 0:
                    self._thread = None
                    self._message = b""  # stale by the time anyone listens again
                    return
            started = time.monotonic()
            try:
                body = json.dumps(self.build(), separators=(",", ":")).encode()
            except Exception:  # noqa: BLE001 - keep the stream; the next round tries again
                LOG.exception("web view message failed")
                body = b""
            if body:
                with self._cond:
                    self._seq += 1
                    self._message = body
                    self._cond.notify_all()
            time.sleep(max(0.05, self.interval - (time.monotonic() - started)))
