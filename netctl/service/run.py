"""`netctl run`: the reconcile loop that ties xapi (intent) to every host's OVSDB and OpenFlow.

    xapi -> XapiSync -> change sets ─┐                      ┌─> HostWorker -> each OVSDB
    switches -> os-ken -> events ────┴─> Reconciler (engine) ┼─> FlowController -> each bridge
                                                             └─> tunnel.status back to xapi

Each host has its own worker thread holding the latest desired HostConfig: a host whose OVSDB
is down never delays the others; when it comes back (or its ovsdb-server restarted) the worker
reconnects and applies the latest config. Bad intent is listed as Problems and skipped; the
rest is applied. Stopping never touches the dataplane.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from netctl.engine.core import NetctlEngine
from netctl.engine.hosts import HostSettings
from netctl.engine.pool import LivePool
from netctl.hostconfig import HostConfig
from netctl.model import Problem
from netctl.service.config import Config
from netctl.service.loop import Reconciler
from netctl.service.metrics import Metrics
from netctl.sinks.openflow import FlowController
from netctl.sinks.ovsdb import HostOvsdb, SslFiles
from netctl.sources.xapi.sync import XapiSync

LOG = logging.getLogger("netctl.run")


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


class HostWorker:
    """Keeps one host's OVSDB equal to the latest HostConfig it was given."""

    def __init__(self, status: HostStatus, config: Config, metrics: Metrics) -> None:
        self.status = status
        self.config = config
        self.metrics = metrics
        self.desired: HostConfig | None = None
        self.db: HostOvsdb | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"ovsdb-{status.name}", daemon=True)
        self.thread.start()

    def want(self, config: HostConfig) -> None:
        self.desired = config
        self._wake.set()

    def stop(self, wait: bool = True) -> None:
        """Stop the worker. `wait=False` (the reconcile thread) returns at once: the worker
        ends on its own and closes its session."""
        self._stop.set()
        self._wake.set()
        if not wait:
            return
        self.thread.join(5)
        if self.db is not None:
            self.db.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
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
                self._stop.wait(1.0)
        if self.db is not None:  # stopped without waiting: close the session here
            self.db.close()
            self.db = None

    def _step(self) -> None:
        if self.db is None:
            ssl = SslFiles(**self.config.ssl) if self.config.ssl else None
            self.db = HostOvsdb(
                self.status.endpoint, timeout=self.config.ovsdb_timeout, ssl=ssl
            ).connect()
            self.status.applied = None  # a new session: compare with what is there
        if not self.db.is_connected():
            self.status.connected = False
            self.status.last_error = "OVSDB session lost; reconnecting"
            self.metrics.ovsdb_connected.labels(self.status.name).set(0)
            return
        self.status.connected = True
        self.status.last_error = ""
        self.metrics.ovsdb_connected.labels(self.status.name).set(1)
        desired = self.desired
        if desired is None:
            return
        result = self.db.reapply_if_reconnected()
        if desired != self.status.applied or result is not None:
            result = self.db.apply(desired)
            self.status.applied = desired
            self.status.applies += 1
            self.status.operations += result.count
            self.metrics.ovsdb_operations.inc(result.count)
            self.status.bridges = list(desired.bridge_names())
            if result.count:
                LOG.info("host %s: %d OVSDB operations", self.status.name, result.count)


class Run:
    """The whole controller process (everything `netctl status` shows): the engine on its
    reconcile thread, fed by the xapi sync and the switches; per-host OVSDB workers; the
    tunnel.status writer; metrics."""

    def __init__(self, config: Config, xapi_url: str, user: str, password: str) -> None:
        self.config = config
        self.metrics = Metrics()
        self.core = FlowController(on_converged=self._converged,
                                   audit_interval=config.audit_interval)
        self.engine = NetctlEngine(HostSettings(controllers=(config.target,),
                                                datapath_type=config.datapath_type))
        self.reconciler = Reconciler(self.engine, self.core, on_hosts=self._hosts_changed,
                                     on_round=self._after_round)
        self.sync = XapiSync(xapi_url, user, password, timeout=config.xapi_event_timeout,
                             rpc_timeout=config.xapi_rpc_timeout, ca_file=config.xapi_ca_file,
                             ignore_ssl=config.xapi_insecure,
                             on_changes=self._xapi_changes)
        self.workers: dict[str, HostWorker] = {}
        self.tunnels: dict[str, TunnelWant] = {}  # tunnel uuid -> what its status should say
        self.started = time.time()
        self._lock = threading.Lock()
        self._seen_engine: dict[tuple[str, str], int] = {}

    @property
    def problems(self) -> list[Problem]:
        return self.reconciler.problems

    @property
    def view(self) -> LivePool:
        return self.engine.view

    # ------------------------------------------------------------------ intent in
    def _xapi_changes(self, changes) -> None:  # noqa: ANN001 - a ChangeSet
        self.metrics.xapi_events.inc(len(changes))
        self.reconciler.submit_xapi(changes)

    # ------------------------------------------------------------------ results out (engine)
    def _hosts_changed(self, configs: dict[str, HostConfig | None]) -> None:
        """New host configurations (reconcile thread): to each host's OVSDB worker; and what
        the tunnels' status should say, from the configurations that list them."""
        view = self.engine.view
        with self._lock:
            for ref, cfg in configs.items():
                host = view.hosts.get(ref)
                worker = self.workers.get(ref)
                if cfg is None or host is None:
                    if worker is not None:
                        LOG.info("host %s left the pool", worker.status.name)
                        self.workers.pop(ref).stop(wait=False)
                    continue
                endpoint = self.config.endpoint(host.name_label, host.uuid, host.address)
                if worker is not None and worker.status.endpoint != endpoint:
                    worker.stop(wait=False)
                    worker = None
                if worker is None:
                    worker = HostWorker(HostStatus(host.name_label, host.uuid, endpoint),
                                        self.config, self.metrics)
                    self.workers[ref] = worker
                worker.want(cfg)
            self.tunnels = self._tunnel_wants()

    def _tunnel_wants(self) -> dict[str, TunnelWant]:
        hosts = self.engine.hosts.configs
        wants: dict[str, TunnelWant] = {}
        for ref in list(hosts.hosts):
            cfg = hosts.config(ref)
            if cfg is None:
                continue
            for link in cfg.tunnels:
                want = wants.setdefault(link.tunnel_uuid, TunnelWant(link.key))
                want.hosts.add(ref)
        for tun in self.engine.view.tunnels.values():
            wants.setdefault(tun.uuid, TunnelWant(None))
        return wants

    def _after_round(self, reconciler: Reconciler) -> None:
        self.metrics.problems.set(len(reconciler.problems))

    def _converged(self, sw, seconds: float) -> None:  # noqa: ANN001 - a core Switch
        self.metrics.convergence.observe(seconds)

    # ------------------------------------------------------------------ loop
    def feed(self) -> None:
        """Start the sync and the reconcile thread, then keep the tunnel status and the
        gauges up to date (runs on a hub thread)."""
        from netctl.service.osken import wait_listening

        # Bridges are told to connect here as soon as they exist: be listening first, or OVS
        # backs off (up to 8 s) before it tries again.
        host, _, port = self.config.openflow_listen.rpartition(":")
        wait_listening(host, int(port), timeout=30)
        self.reconciler.start()
        self.sync.start()
        while True:
            time.sleep(1.0)
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the next second tries again
                LOG.exception("status round failed")

    def _tick(self) -> None:
        """Once a second: tunnel.status follows the hosts' apply results; gauges, counters."""
        self.metrics.xapi_connected.set(1 if self.sync._session is not None else 0)
        self.metrics.openflow_switches.set(len(self.core.summary))
        self._tunnel_status()
        self._sync_counters()

    def _tunnel_status(self) -> None:
        """tunnel.status (owned by the controller): key, and active once every host that
        should hold its ports has applied them; the error when the tunnel is a Problem."""
        with self._lock:
            wants = dict(self.tunnels)
            built = {ref: {link.tunnel_uuid for link in w.status.applied.tunnels}
                     if w.status.applied is not None else set()
                     for ref, w in self.workers.items()}
        bad = {p.uuid: p.message for p in self.problems if p.object_class == "tunnel"}
        for uuid, want in wants.items():
            # active once every host that should hold its ports has applied them (another
            # change of those hosts' configuration in flight does not make it inactive)
            active = bool(want.hosts) and all(uuid in built.get(h, ()) for h in want.hosts)
            error = bad.get(uuid)
            try:
                self.sync.write_tunnel_status(uuid, active=active and error is None,
                                              key=want.key, error=error)
            except Exception as exc:  # noqa: BLE001 - xapi may be away; next round retries
                LOG.info("tunnel.status not written: %s", exc)

    def _sync_counters(self) -> None:
        stats = self.core.stats
        mirrored = (("flow_mods", self.metrics.flow_mods), ("repairs", self.metrics.flow_repairs),
                    ("audits", self.metrics.flow_audits), ("refused", self.metrics.flows_refused),
                    ("retries", self.metrics.switch_retries),
                    ("port_mods", self.metrics.port_mods),
                    ("announced", self.metrics.announced),
                    ("foreign_blocked", self.metrics.foreign_blocked))
        for name, counter in mirrored:
            value = getattr(stats, name)
            seen = getattr(self, f"_seen_{name}", 0)
            if value > seen:
                counter.inc(value - seen)
                setattr(self, f"_seen_{name}", value)
        for node, st in self.engine.graph.stats().items():
            for kind, value in (("recompute", st.recomputes), ("handled", st.handled)):
                seen = self._seen_engine.get((node, kind), 0)
                if value > seen:
                    self.metrics.engine.labels(node, kind).inc(value - seen)
                    self.metrics.recomputes.labels(
                        "full" if kind == "recompute" else "incremental").inc(value - seen)
                    self._seen_engine[(node, kind)] = value

    # ------------------------------------------------------------------ status out
    def status(self) -> dict:
        from netctl.service.status import snapshot

        return snapshot(self)


@dataclass
class TunnelWant:
    key: int | None
    hosts: set[str] = field(default_factory=set)
