"""`netctl run`: the reconcile loop that ties xapi (intent) to every host's OVSDB and OpenFlow.

    xapi -> XapiSync -> PoolState -> validate -+-> compile_host -> HostWorker -> each OVSDB
                                                +-> FlowController -> os-ken -> each bridge
                                                +-> tunnel.status back to xapi

Each host has its own worker thread holding the latest desired HostConfig: a host whose OVSDB
is down never delays the others; when it comes back (or its ovsdb-server restarted) the worker
reconnects and applies the latest config. Bad intent is listed as Problems and skipped; the
rest is applied. Stopping never touches the dataplane.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace

from flows.ports import datapath_id_text
from netctl.config import Config
from netctl.hostconfig import HostConfig
from netctl.metrics import Metrics
from netctl.model import PoolState, Problem, validate
from netctl.openflow.core import FlowController
from netctl.openflow.service import incumbents
from netctl.ovsdb import HostOvsdb, SslFiles
from netctl.xapi.sync import XapiSync
from vlan.host import compile_host

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

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
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


def with_datapath_ids(cfg: HostConfig) -> HostConfig:
    """Give every bridge the datapath id the OpenFlow side derives from (host, bridge), so a
    connecting switch is known without asking OVSDB (`flows.ports.datapath_id`)."""
    bridges = tuple(
        replace(
            b,
            other_config=b.other_config.merged(
                {"datapath-id": datapath_id_text(cfg.host_uuid, b.name)}
            ),
        )
        for b in cfg.bridges
    )
    return replace(cfg, bridges=bridges)


class Run:
    """The whole controller process state (everything `netctl status` shows)."""

    def __init__(self, config: Config, xapi_url: str, user: str, password: str) -> None:
        self.config = config
        self.metrics = Metrics()
        self.core = FlowController(on_converged=self._converged,
                                   audit_interval=config.audit_interval)
        self.sync = XapiSync(xapi_url, user, password, timeout=config.xapi_event_timeout,
                             rpc_timeout=config.xapi_rpc_timeout, ca_file=config.xapi_ca_file,
                             ignore_ssl=config.xapi_insecure)
        self.workers: dict[str, HostWorker] = {}
        self.problems: list[Problem] = []
        self.state: PoolState | None = None
        self.tunnel_keys: dict[str, int] = {}
        self.started = time.time()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ intent in
    def handle(self, state: PoolState, changed: set[str] | None) -> None:
        received = time.monotonic()
        kept, problems = validate(state, incumbents=incumbents(self.state))
        configs = {}
        for host_ref in kept.hosts:
            cfg = compile_host(
                kept,
                host_ref,
                controllers=[self.config.target],
                datapath_type=self.config.datapath_type,
            )
            configs[host_ref] = cfg = with_datapath_ids(cfg)
            problems += [p for p in cfg.problems if p not in problems]
        with self._lock:
            self.state, self.problems = kept, problems
            self.metrics.problems.set(len(problems))
            self._hosts(kept, configs)
        self.core.set_state(kept, changed, since=received)
        self._tunnel_status(kept, configs)

    def _hosts(self, state: PoolState, configs: dict[str, HostConfig]) -> None:
        for ref, host in state.hosts.items():
            endpoint = self.config.endpoint(host.name_label, host.uuid, host.address)
            worker = self.workers.get(ref)
            if worker is not None and worker.status.endpoint != endpoint:
                worker.stop()
                worker = None
            if worker is None:
                worker = HostWorker(
                    HostStatus(host.name_label, host.uuid, endpoint), self.config, self.metrics
                )
                self.workers[ref] = worker
            worker.want(configs[ref])
        for ref in set(self.workers) - set(state.hosts):
            LOG.info("host %s left the pool", self.workers[ref].status.name)
            self.workers.pop(ref).stop()

    def _tunnel_status(self, state: PoolState, configs: dict[str, HostConfig]) -> None:
        """tunnel.status (owned by the controller): key, and active once its ports exist."""
        built: dict[str, tuple[int, bool]] = {}
        for ref, cfg in configs.items():
            worker = self.workers.get(ref)
            applied = worker is not None and worker.status.applied == cfg
            for link in cfg.tunnels:
                key, ok = built.get(link.tunnel_uuid, (link.key, True))
                built[link.tunnel_uuid] = (key, ok and applied)
        bad = {p.uuid: p.message for p in self.problems if p.object_class == "tunnel"}
        for tun in state.tunnels.values():
            key, active = built.get(tun.uuid, (None, False))
            error = bad.get(tun.uuid)
            try:
                self.sync.write_tunnel_status(
                    tun.uuid, active=active and error is None, key=key, error=error
                )
            except Exception as exc:  # noqa: BLE001 - xapi may be away; next round retries
                LOG.info("tunnel.status not written: %s", exc)

    def _converged(self, sw, seconds: float) -> None:  # noqa: ANN001 - a core Switch
        self.metrics.convergence.observe(seconds)

    # ------------------------------------------------------------------ loop
    def feed(self) -> None:
        """Consume xapi updates forever (run on a hub thread)."""
        from netctl.openflow.launcher import wait_listening
        from netctl.openflow.service import changed_refs

        # Bridges are told to connect here as soon as they exist: be listening first, or OVS
        # backs off (up to 8 s) before it tries again.
        host, _, port = self.config.openflow_listen.rpartition(":")
        wait_listening(host, int(port), timeout=30)
        self.sync.start()
        ticker = threading.Thread(target=self._tick, name="netctl-tick", daemon=True)
        ticker.start()
        for state, changes in self.sync.updates():
            self.metrics.xapi_events.inc(len(changes))
            try:
                self.handle(state, changed_refs(changes))
            except Exception:  # noqa: BLE001 - one bad batch must not stop the controller
                self.core.stats.errors += 1
                LOG.exception("applying a xapi update failed")

    def _tick(self) -> None:
        """Once a second: the tunnel status follows the hosts' apply results; gauges."""
        while True:
            time.sleep(1.0)
            state = self.state
            self.metrics.xapi_connected.set(1 if self.sync._session is not None else 0)
            with self.core.lock:
                self.metrics.openflow_switches.set(len(self.core.switches))
            if state is not None:
                configs = {r: w.desired for r, w in self.workers.items() if w.desired}
                try:
                    self._tunnel_status(state, configs)
                except Exception:  # noqa: BLE001
                    LOG.exception("tunnel status round failed")
            self._sync_counters()

    def _sync_counters(self) -> None:
        stats = self.core.stats
        mirrored = (("flow_mods", self.metrics.flow_mods), ("repairs", self.metrics.flow_repairs),
                    ("audits", self.metrics.flow_audits), ("refused", self.metrics.flows_refused),
                    ("retries", self.metrics.switch_retries),
                    ("port_mods", self.metrics.port_mods),
                    ("foreign_blocked", self.metrics.foreign_blocked))
        for name, counter in mirrored:
            value = getattr(stats, name)
            seen = getattr(self, f"_seen_{name}", 0)
            if value > seen:
                counter.inc(value - seen)
                setattr(self, f"_seen_{name}", value)
        for kind in ("full", "incremental"):
            value = getattr(stats, f"{kind}_recomputes")
            seen = getattr(self, f"_seen_{kind}", 0)
            if value > seen:
                self.metrics.recomputes.labels(kind).inc(value - seen)
                setattr(self, f"_seen_{kind}", value)

    # ------------------------------------------------------------------ status out
    def status(self) -> dict:
        from netctl.status import snapshot

        return snapshot(self)
