"""SIGHUP: `netctl run` reads its configuration file again and applies what can change live.

An operator edits /etc/netctl/netctl.yaml and runs `systemctl reload netctl` (SIGHUP). The file
is read with the same command-line overrides as at start (`netctl.service.config.load`); a file
that does not load is an error in the log and the configuration in effect stays as it was.
Otherwise each key that changed is either applied at once or named in a warning:

- live: `openflow.audit_interval` (switches due sooner are audited sooner), `openflow.flow_monitor`
  (switched on: the connected switches are subscribed; off: no new subscription, those made
  stay until the switch reconnects), the OVSDB side — `ovsdb.endpoint`, `ovsdb.hosts`,
  `ovsdb.ssl`, `ovsdb.timeout`: the hosts whose session would differ reconnect (a new session
  compares and sends nothing while the host is in sync) —, `xapi.event_timeout` and
  `xapi.rpc_timeout` (from the next call), `log.level` and `log.file`;
- not live (the process must restart; the old value stays in effect and is kept in the
  configuration the process reports, so a reload that reverts the file says nothing):
  `openflow.listen`, `.target`, `.hub`, `.ssl`, `ovsdb.datapath_type` (both change what every
  bridge is built with), `metrics.listen`, `xapi.ca_file`, `xapi.insecure`, and any key this
  module does not know.

Nothing here touches the dataplane: no flow-mod and no OVSDB transaction is sent because of a
reload; the changes to the OpenFlow sink and the OVSDB workers happen on the reconcile thread
(`ReconcileLoop.call_soon`), the only one that touches them.

The signal handler only notes the request (`request`); `watch`, a task beside os-ken, carries it
out, so the reload never runs inside a signal handler nor blocks the hub. `watch` also tells
systemd (Type=notify) when the controller is ready and what its health is.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from netctl.service import logs
from netctl.service.config import Config, ConfigError, load

LOG = logging.getLogger("netctl.reload")

# Config field -> the key an operator writes in the file.
LIVE = {
    "audit_interval": "openflow.audit_interval",
    "flow_monitor": "openflow.flow_monitor",
    "ovsdb_endpoint": "ovsdb.endpoint",
    "ovsdb_hosts": "ovsdb.hosts",
    "ssl": "ovsdb.ssl",
    "ovsdb_timeout": "ovsdb.timeout",
    "xapi_event_timeout": "xapi.event_timeout",
    "xapi_rpc_timeout": "xapi.rpc_timeout",
    "log_level": "log.level",
    "log_file": "log.file",
    "stats_interval": "stats.interval",
}
RESTART = {
    "xapi_members": "xapi.members",
    "openflow_listen": "openflow.listen",
    "openflow_target": "openflow.target",
    "hub": "openflow.hub",
    "openflow_ssl": "openflow.ssl",
    "port_config": "openflow.port_config",
    "datapath_type": "ovsdb.datapath_type",
    "metrics_listen": "metrics.listen",
    "metrics_tls": "metrics.tls",
    "xapi_ca_file": "xapi.ca_file",
    "xapi_insecure": "xapi.insecure",
    "coordination_url": "coordination.url",
    "instance_id": "coordination.instance_id",
    "coordination_ttl": "coordination.ttl",
    "controllers": "coordination.controllers",
}
# Changing one of these makes every host's OVSDB session differ (not only some hosts' endpoint).
SESSION = ("ssl", "ovsdb_timeout")
POLL = 0.2  # seconds between looks at a pending request (`watch`)


def key_of(name: str) -> str:
    """A Config field as the operator knows it (a field added later: its own name)."""
    return LIVE.get(name) or RESTART.get(name) or name


@dataclass
class Outcome:
    """What one reload did: the keys applied, those that need a restart, or the error."""

    applied: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    error: str = ""


def compare(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """The fields that differ, split into (live, needs a restart); a field this module does
    not know is taken as needing a restart (never applied half-way)."""
    live, restart = [], []
    for f in fields(Config):
        if getattr(old, f.name) != getattr(new, f.name):
            (live if f.name in LIVE else restart).append(f.name)
    return live, restart


class Reloader:
    """Re-reads `path` on request and applies it to a running `netctl.service.run.Run`."""

    def __init__(self, run: Any, path: str | None, overrides: dict[str, Any] | None = None,
                 notify: Callable[[str], bool] | None = None) -> None:
        self.run = run
        self.path = path
        self.overrides = dict(overrides or {})
        self.notify = notify or sd_notify
        # STATUS= is worth computing only for someone listening (systemd, or a test)
        self.notifying = notify is not None or bool(os.environ.get("NOTIFY_SOCKET"))
        self.pending = False
        self.reloads = 0

    # ------------------------------------------------------------------ the signal
    def request(self, _signum: int = 0, _frame: object = None) -> None:
        """The SIGHUP handler (main thread): only note it; `watch` does the work."""
        self.pending = True

    def watch(self, listening: Callable[[], bool] | None = None) -> None:
        """Forever, beside os-ken: tell systemd READY=1 once `listening()` (default: the
        OpenFlow port is listening), then carry out every requested reload, and keep systemd's
        STATUS= line on the health."""
        if listening is None:
            from netctl.service.osken import wait_listening

            host, _, port = self.run.config.openflow_listen.rpartition(":")
            listening = lambda: wait_listening(host, int(port), 0)  # noqa: E731
        ready = False
        last_status = ""
        while True:
            if not ready and listening():
                ready = True
                self.notify("READY=1")
            if self.pending:
                self.pending = False
                self.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
                LOG.info("SIGHUP: reading %s again", self.path or "the configuration")
                try:
                    self.reload()
                except Exception:  # noqa: BLE001 - the next SIGHUP must still be heard
                    LOG.exception("reload failed")
                self.notify("READY=1")
            if ready and self.notifying:
                status = self._status_line()
                if status != last_status:
                    last_status = status
                    self.notify(f"STATUS={status}")
            time.sleep(POLL)

    def _status_line(self) -> str:
        from netctl.service.health import health

        try:
            _code, body = health(self.run)
        except Exception as exc:  # noqa: BLE001 - only a status line
            return f"health unknown: {exc}"
        return "healthy" if body["ok"] else "down: " + "; ".join(body["down"])[:200]

    # ------------------------------------------------------------------ the reload
    def reload(self) -> Outcome:
        """Read the file again and apply it (the module docstring says what applies)."""
        self.reloads += 1
        old: Config = self.run.config
        try:
            new = load(self.path, **self.overrides)
            new.target  # noqa: B018 - an incomplete OpenFlow configuration fails here too
            if new.log_file != old.log_file or new.log_level != old.log_level:
                logs.configure(new.log_level, new.log_file)
        except (ConfigError, logs.LogError) as exc:
            LOG.error("reload: %s: the configuration in effect is unchanged", exc)
            return Outcome(error=str(exc))
        live, restart = compare(old, new)
        if restart:
            LOG.warning("reload: %s changed but cannot change while netctl runs: restart it "
                        "(systemctl restart netctl) to apply; the old value stays in effect",
                        ", ".join(key_of(n) for n in restart))
            new = replace(new, **{n: getattr(old, n) for n in restart})
        self.run.config = new
        if live:
            self._apply(old, new, live)
            LOG.info("reload: applied %s", ", ".join(key_of(n) for n in live))
        elif not restart:
            LOG.info("reload: %s unchanged", self.path or "the configuration")
        return Outcome(applied=[key_of(n) for n in live], restart=[key_of(n) for n in restart])

    def _apply(self, old: Config, new: Config, live: list[str]) -> None:
        run = self.run
        run.sync.timeout = new.xapi_event_timeout  # read at each event.from
        run.sync.rpc_timeout = new.xapi_rpc_timeout  # ... and each call's socket timeout
        sink_changed = {"audit_interval", "flow_monitor"} & set(live)
        ovsdb_changed = {"ovsdb_endpoint", "ovsdb_hosts", *SESSION} & set(live)
        if sink_changed:
            run.loop.call_soon(lambda: run.sink.configure(new.audit_interval,
                                                          new.flow_monitor))
        if "stats_interval" in live:
            run.poller.interval = new.stats_interval  # read at its next wait
        if ovsdb_changed:
            every = any(n in SESSION for n in live)
            run.loop.call_soon(lambda: run.reconnect_hosts(every))


def sd_notify(message: str) -> bool:
    """Tell systemd (Type=notify) `message`; False when not run by systemd (no NOTIFY_SOCKET)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
        return True
    except OSError as exc:
        LOG.debug("sd_notify %s: %s", message, exc)
        return False
