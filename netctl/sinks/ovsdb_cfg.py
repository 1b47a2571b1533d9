"""Written vs in effect: a host's last OVSDB change, from its transaction to ovs-vswitchd.

Why this exists (issue 24): OVSDB's reply only says a change is *written*. ovs-vswitchd then
reconfigures, and with the userspace datapath that can take far longer than the write (4094
VLAN fake bridges on one host: 11.8 s written, ~93 s more until vswitchd has built them). OVS
tells the two apart with `Open_vSwitch.next_cfg` — every netctl transaction increments it, as
ovs-vsctl does — and `cur_cfg`, which vswitchd sets to the `next_cfg` it has applied. ovsdbapp
would block the writer until `cur_cfg` catches up (20 s at most, then it only logs); netctl
instead records the transaction's `next_cfg` and when it was written, and learns when
`cur_cfg` reaches it from the IDL's own row updates, so a host's worker is never held by
vswitchd and the operator sees both figures (`netctl status`, `/status`, `/metrics`).

`CfgProgress` is that record for one host. It is fed from the IDL's thread (`written` after the
server's reply, `cur_cfg` on every change of the column) and read from any other (status,
tests, benchmarks): every method takes the lock. It does no I/O; the clocks are injectable so
the unit tests run on a fake clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

Clock = Callable[[], float]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CfgState:
    """One host's last written OVSDB change and whether vswitchd has applied it.

    `started` and the seconds are on the monotonic clock (`write_seconds`: from the start of
    the apply to the server's reply; `effect_seconds`: from the start of the apply until
    `cur_cfg` reached the transaction's `next_cfg`, so it includes the write); `written_at`
    and `in_effect_at` are wall-clock times (seconds since the epoch) for people."""

    next_cfg: int | None = None  # the transaction's; None: nothing written by this session
    cur_cfg: int | None = None  # as ovs-vswitchd last reported it
    started: float | None = None
    written_at: float | None = None
    write_seconds: float | None = None
    in_effect_at: float | None = None
    effect_seconds: float | None = None
    writes: int = 0  # transactions recorded (each unchanged intent sends none)

    @property
    def written(self) -> bool:
        return self.next_cfg is not None

    @property
    def in_effect(self) -> bool:
        """vswitchd has applied the last written change (cur_cfg >= its next_cfg)."""
        return (self.next_cfg is not None and self.cur_cfg is not None
                and self.cur_cfg >= self.next_cfg)

    @property
    def pending(self) -> bool:
        """Written and not yet in effect: what the operator waits for."""
        return self.written and not self.in_effect

    def as_dict(self, now: float) -> dict[str, Any]:
        """The JSON of /status' host rows. `now` (monotonic): how long a pending change has
        waited so far (`waiting_seconds`, None when nothing is pending)."""
        waiting = None
        if self.pending and self.started is not None:
            waiting = round(max(0.0, now - self.started), 3)
        return {"written": self.written, "written_at": self.written_at,
                "write_seconds": _round(self.write_seconds), "next_cfg": self.next_cfg,
                "cur_cfg": self.cur_cfg, "in_effect": self.in_effect,
                "in_effect_at": self.in_effect_at if self.in_effect else None,
                "effect_seconds": _round(self.effect_seconds) if self.in_effect else None,
                "pending": self.pending, "waiting_seconds": waiting, "writes": self.writes}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# Told on every transition, outside the lock: ("written" | "in_effect", the new state).
Listener = Callable[[str, CfgState], None]


class CfgProgress:
    """The record of one host's last write and vswitchd's progress (see the module doc)."""

    def __init__(self, monotonic: Clock = time.monotonic, wall: Clock = time.time) -> None:
        self._monotonic, self._wall = monotonic, wall
        self._state = CfgState()
        self._cond = threading.Condition()
        self.listener: Listener | None = None

    def now(self) -> float:
        """The clock `started` is on (callers take the start of an apply from it)."""
        return self._monotonic()

    def state(self) -> CfgState:
        with self._cond:
            return self._state

    def written(self, next_cfg: int | None, started: float) -> None:
        """The server accepted a transaction that set `next_cfg` (None: the transaction did
        not bump it — nothing to wait for, so it is recorded as in effect), begun at
        `started` (monotonic)."""
        now, wall = self._monotonic(), self._wall()
        with self._cond:
            s = self._state
            s = replace(s, next_cfg=next_cfg if next_cfg is not None else (s.cur_cfg or 0),
                        started=started, written_at=wall, write_seconds=now - started,
                        in_effect_at=None, effect_seconds=None, writes=s.writes + 1)
            if next_cfg is None and s.cur_cfg is None:
                s = replace(s, cur_cfg=s.next_cfg)
            events = ["written"]
            if s.in_effect:  # vswitchd's answer came in with (or before) the reply
                s = replace(s, in_effect_at=wall, effect_seconds=now - started)
                events.append("in_effect")
            self._state = s
            self._cond.notify_all()
        self._tell(events, s)

    def cur_cfg(self, value: int) -> None:
        """vswitchd's `cur_cfg` as the IDL last saw it (loaded or changed)."""
        now, wall = self._monotonic(), self._wall()
        with self._cond:
            s = self._state
            was = s.in_effect
            s = replace(s, cur_cfg=value)
            events = []
            if s.in_effect and not was and s.started is not None:
                s = replace(s, in_effect_at=wall, effect_seconds=now - s.started)
                events.append("in_effect")
            self._state = s
            self._cond.notify_all()
        self._tell(events, s)

    def wait_in_effect(self, timeout: float) -> bool:
        """Block until nothing written is pending (True), or `timeout` seconds (False): for
        tests, benchmarks and the lab harness, which need vswitchd's result — never called
        by netctl run's workers."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._state.pending, timeout)

    def _tell(self, events: list[str], state: CfgState) -> None:
        listener = self.listener
        if listener is None:
            return
        for event in events:
            try:
                listener(event, state)
            except Exception:  # noqa: BLE001 - called on the IDL's thread: never break it
                log.exception("configuration progress listener failed (%s)", event)


__all__ = ["CfgProgress", "CfgState", "Listener"]
