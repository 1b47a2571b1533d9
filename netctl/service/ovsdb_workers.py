"""Each host's OVSDB, kept equal to the latest HostConfig the engine gave for it.

One worker thread per host holds the latest desired configuration: a host whose OVSDB is down
never delays the others; when it comes back (or its ovsdb-server restarted) the worker
reconnects and applies the latest configuration (`netctl.sinks.ovsdb.HostOvsdb`: the
difference, in one transaction, nothing when in sync).

An apply returns once OVSDB has the change (written); the worker never waits for
ovs-vswitchd, which may take far longer (issue 24). Each host's `CfgProgress` (in its
`HostStatus`, so it outlives a session) learns from the IDL's updates when vswitchd's cur_cfg
reached the transaction's next_cfg (in effect): /status, `netctl status` and /metrics
(`netctl_ovsdb_pending_config`, `netctl_ovsdb_write_seconds`, `netctl_ovsdb_effect_seconds`)
show both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from netctl.hostconfig import HostConfig
from netctl.service.config import Config
from netctl.service.metrics import Metrics
from netctl.service.tunnel_liveness import TunnelLiveness
from netctl.sinks.ovsdb import HostOvsdb, SslFiles
from netctl.sinks.ovsdb_cfg import CfgProgress, CfgState

LOG = logging.getLogger("netctl.run")
# How often an idle worker looks at its session without being woken: a new configuration
# wakes it at once; this only bounds how late a lost or restarted ovsdb-server is noticed
# (and the configuration applied again). Short while the session is down, long while it is
# up: 64 hosts polled every second cost most of an idle `netctl run`'s CPU.
POLL_HEALTHY, POLL_DOWN = 5.0, 1.0
SLOW_EFFECT = 5.0  # seconds: ovs-vswitchd slower than this to apply a change is logged


@dataclass
class HostStatus:
    name: str
    uuid: str
    endpoint: str
    connected: bool = False
    last_error: str = ""
    applies: int = 0
    operations: int = 0
    applied: HostConfig | None = None
    bridges: list[str] = field(default_factory=list)
    master: bool | None = None  # several instances: whether this one writes the host
    # the last write of this instance and whether ovs-vswitchd applied it (written vs in effect)
    cfg: CfgProgress = field(default_factory=CfgProgress)


class HostWorker:
    """Keeps one host's OVSDB equal to the latest HostConfig it was given."""

    def __init__(self, status: HostStatus, config: Config, metrics: Metrics,
                 on_applied: Callable[[], None] = lambda: None, refused: str = "",
                 may_write: Callable[[], bool] | None = None,
                 liveness: TunnelLiveness | None = None) -> None:
        """`refused`: why this host cannot be connected as things stand (no usable endpoint,
        `netctl.service.endpoints`): the worker then only holds the desired configuration
        and shows the reason, until a new worker replaces it. `may_write` (several
        instances): asked before each apply; False: another instance masters the host, so
        the worker keeps its session and the desired configuration and writes nothing.
        `liveness`: where the host's session reports its tunnel ends' BFD states (read on
        every instance, master or not: each keeps a session to every host)."""
        self.may_write = may_write
        self.liveness = liveness
        self.status = status
        self.refused = refused
        self.config = config
        self.metrics = metrics
        self.on_applied = on_applied  # the applied configuration changed (tunnel.status)
        self.desired: HostConfig | None = None
        self.db: HostOvsdb | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"ovsdb-{status.name}", daemon=True)
        status.cfg.listener = self._cfg_changed
        metrics.ovsdb_pending.labels(status.name).set(1 if status.cfg.state().pending else 0)
        if refused:
            status.last_error = refused
            metrics.ovsdb_connected.labels(status.name).set(0)
        else:
            self.thread.start()

    def _cfg_changed(self, event: str, state: CfgState) -> None:
        """The host's last change was written, or came into effect (the IDL's thread: quick,
        never blocks): the metrics, and a log line when vswitchd took long."""
        name = self.status.name
        if event == "written" and state.write_seconds is not None:
            self.metrics.ovsdb_write_seconds.observe(state.write_seconds)
            self.metrics.ovsdb_last_write.labels(name).set(state.write_seconds)
        if event == "in_effect" and state.effect_seconds is not None:
            self.metrics.ovsdb_effect_seconds.observe(state.effect_seconds)
            self.metrics.ovsdb_last_effect.labels(name).set(state.effect_seconds)
            if state.effect_seconds > SLOW_EFFECT:
                LOG.info("host %s: configuration in effect (cur_cfg %s) %.1f s after the apply "
                         "began (written in %.1f s)", name, state.cur_cfg,
                         state.effect_seconds, state.write_seconds or 0.0)
        self.metrics.ovsdb_pending.labels(name).set(1 if state.pending else 0)

    def mastership_changed(self) -> None:
        """This instance gained or lost the host: compare the database now (a new master
        diffs against what is there, not against what it applied before)."""
        self.status.applied = None
        self._wake.set()

    def want(self, config: HostConfig) -> None:
        self.desired = config
        self._wake.set()

    def stop(self, wait: bool = True) -> None:
        """Stop the worker. `wait=False` (the reconcile thread) returns at once: the worker
        ends on its own and closes its session."""
        self._stop.set()
        self._wake.set()
        if not wait or not self.thread.is_alive():
            return
        self.thread.join(5)
        if self.db is not None:
            self.db.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_HEALTHY if self.status.connected else POLL_DOWN)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - a host failure is reported, not fatal
                self.status.connected = False
                self.status.last_error = str(exc)
                self.metrics.ovsdb_connected.labels(self.status.name).set(0)
                LOG.warning("host %s (%s): %s", self.status.name, self.status.endpoint, exc)
                if self.db is not None:
                    self.db.close()
                    self.db = None
                self._bfd_lost()
                self._stop.wait(POLL_DOWN)
        if self.db is not None:  # stopped without waiting: close the session here
            self.db.close()
            self.db = None
        self._bfd_lost()

    def _bfd_lost(self) -> None:
        """No session: this host's tunnel ends' BFD states are not known any more."""
        if self.liveness is not None:
            self.liveness.host_lost(self.status.uuid, source=self)

    def _step(self) -> None:
        if self.db is None:
            ssl = SslFiles(**self.config.ssl) if self.config.ssl else None
            liveness, uuid = self.liveness, self.status.uuid
            self.db = HostOvsdb(
                self.status.endpoint, timeout=self.config.ovsdb_timeout, ssl=ssl,
                on_bfd=None if liveness is None else
                (lambda port, bfd: liveness.update(uuid, port, bfd, source=self)),
                progress=self.status.cfg,
            ).connect()
            self.db.on_waited_port = self.mastership_changed  # a port a mirror waits for
            self.status.applied = None  # a new session: compare with what is there
        if not self.db.is_connected():
            self.status.connected = False
            self.status.last_error = "OVSDB session lost; reconnecting"
            self.metrics.ovsdb_connected.labels(self.status.name).set(0)
            self._bfd_lost()
            return
        self.status.connected = True
        self.status.last_error = ""
        self.metrics.ovsdb_connected.labels(self.status.name).set(1)
        desired = self.desired
        if desired is None:
            return
        if self.may_write is not None:
            self.status.master = self.may_write()
            if not self.status.master:
                return
        result = self.db.reapply_if_reconnected()
        if desired != self.status.applied or result is not None:
            result = self.db.apply(desired)
            self.status.applied = desired
            self.status.applies += 1
            self.status.operations += result.count
            self.metrics.ovsdb_operations.inc(result.count)
            self.status.bridges = list(desired.bridge_names())
            self.on_applied()
            if result.count:
                LOG.info("host %s: %d OVSDB operations (%s%s)", self.status.name, result.count,
                         "; ".join(result.operations[:5]),
                         "; ..." if result.count > 5 else "")
