"""`netctl run`: the whole controller process, assembled from its rooms.

    xapi ──► XapiSync ── change sets ──┐                       ┌─► HostWorker ─► each OVSDB
    switches ─► os-ken ─► SwitchFeed ──┴─► ReconcileLoop ──────┼─► FlowSink ──► each bridge
                                           (the engine)        └─► tunnel.status back to xapi

The sources (`netctl.sources`) only enqueue; the reconcile loop (`netctl.service.loop`) is the
engine's only driver; the sinks (`netctl.sinks`) send what they are handed. This module wires
them, owns the per-host OVSDB workers (`netctl.service.ovsdb_workers`), writes tunnel.status
back (`netctl.service.tunnel_status`) and keeps the metrics. Bad intent is listed as Problems
and skipped; the rest is applied. Stopping never touches the dataplane. With
`coordination.url` several instances share the hosts, one master each (`netctl.service.ha`):
only a host's master writes to it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from netctl.engine.core import NetctlEngine
from netctl.engine.hosts import HostSettings
from netctl.engine.pool import LivePool
from netctl.hostconfig import HostConfig
from netctl.model import Host, Problem, SDNController
from netctl.service import stats_view
from netctl.service.config import Config
from netctl.service.endpoints import EndpointError, ovsdb_endpoint
from netctl.service.export_view import ExportCollector
from netctl.service.loop import ReconcileLoop
from netctl.service.metrics import Metrics
from netctl.service.mirror_view import MirrorCollector
from netctl.service.osken import wait_listening
from netctl.service.ovsdb_workers import HostStatus, HostWorker
from netctl.service.stats_view import StatsCollector
from netctl.service.tunnel_liveness import TunnelLiveness
from netctl.service.tunnel_status import PeerGauges, TunnelStatus
from netctl.sinks.openflow import FlowSink
from netctl.sinks.ovsdb import SslFiles
from netctl.sinks.ovsdb_relay import HostRelays, RelayError
from netctl.sinks.portconfig import PortConfigServer, tls_context
from netctl.sources.stats_poller import StatsPoller
from netctl.sources.xapi.sync import XapiSync
from netctl.stats.table import StatsTable
from netctl.web.wiring import WebView

LOG = logging.getLogger("netctl.run")


class Run:
    """The whole controller process (everything `netctl status` shows): the engine on its
    reconcile loop, fed by the xapi sync and the switches; per-host OVSDB workers; the
    tunnel.status writer; metrics."""

    def __init__(self, config: Config, xapi_url: str, user: str, password: str) -> None:
        self.config = config
        self.metrics = Metrics()
        self.engine = NetctlEngine(HostSettings(controllers=config.controller_targets,
                                                datapath_type=config.datapath_type,
                                                port_config=config.port_config_targets))
        self.ha = None
        if config.coordination_url:
            from netctl.service.ha import HostMasters

            self.ha = HostMasters(config, self.metrics, on_changed=self._mastership_changed)
        self.sink = FlowSink(self.engine.desired, on_converged=self._converged,
                             audit_interval=config.audit_interval,
                             flow_monitor=config.flow_monitor, roles=self.ha,
                             on_master=self._acked if self.ha else None)
        self.loop = ReconcileLoop(self.engine, self.sink, on_hosts=self._hosts_changed,
                                  on_round=self._after_round)
        self.sync = XapiSync(xapi_url, user, password, timeout=config.xapi_event_timeout,
                             rpc_timeout=config.xapi_rpc_timeout, ca_file=config.xapi_ca_file,
                             ignore_ssl=config.xapi_insecure,
                             on_changes=self._xapi_changes,
                             members=list(config.xapi_members))
        self.workers: dict[str, HostWorker] = {}
        # traffic statistics: a source of their own, read beside the loop, never by it
        self.poller = StatsPoller(StatsTable(), config.stats_interval, self._may_poll)
        self.loop.switches.stats = self.poller
        self.metrics.registry.register(StatsCollector(self))
        self.metrics.registry.register(ExportCollector(self))  # flow export targets
        self.metrics.registry.register(MirrorCollector(self))  # port mirrors
        self.tunnels = TunnelStatus()
        # BFD states of the tunnel ends, as the hosts' OVSDB sessions report them: a change
        # makes tunnel.status due (and the peer gauges stale)
        self.liveness = TunnelLiveness()
        self.liveness.subscribe(self.tunnels.touch)
        self._peer_gauges = PeerGauges(self.metrics.tunnel_peer_up)
        self.started = time.time()
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._controller: SDNController | None = None  # the pool's, as last acted on
        self._relays: HostRelays | None = None  # hosts connecting in (protocol ssl)
        self._shared = -1  # hosts handed to the coordinator (several instances)

    @property
    def problems(self) -> list[Problem]:
        return self.loop.problems + self.sink.problems()

    @property
    def view(self) -> LivePool:
        return self.engine.view

    # ------------------------------------------------------------------ intent in
    def _xapi_changes(self, changes) -> None:  # noqa: ANN001 - a ChangeSet
        self.metrics.xapi_events.inc(len(changes))
        self.loop.submit_xapi(changes)

    # ------------------------------------------------------------------ results out (engine)
    def _hosts_changed(self, configs: dict[str, HostConfig | None]) -> None:
        """New host configurations (reconcile thread): to each host's OVSDB worker, and to
        the tunnel status (which hosts should hold which tunnel's ports)."""
        view = self.engine.view
        if self.ha is not None and (len(view.hosts) != self._shared or any(
                ref not in view.hosts or cfg is None for ref, cfg in configs.items())):
            self._shared = len(view.hosts)
            self.ha.hosts((ref, h.uuid) for ref, h in view.hosts.items())
        with self._lock:
            for ref, cfg in configs.items():
                host = view.hosts.get(ref)
                worker = self.workers.get(ref)
                if cfg is None or host is None:
                    if worker is not None:
                        LOG.info("host %s left the pool", worker.status.name)
                        self.workers.pop(ref).stop(wait=False)
                    self.tunnels.host_changed(ref, None)
                    continue
                self._worker(ref, host, worker).want(cfg)
                self.tunnels.host_changed(ref, cfg)

    def _worker(self, ref: str, host: Host, worker: HostWorker | None) -> HostWorker:
        """The host's OVSDB worker, for the endpoint the configuration and the pool's SDN
        controller give it now: a new one when that changed (the old one stops)."""
        controller = self.engine.view.sdn_controller
        try:
            endpoint = ovsdb_endpoint(self.config, host, controller, self._listen(controller))
            refused = ""
        except (EndpointError, RelayError) as exc:
            endpoint, refused = "", str(exc)
        if worker is not None and (worker.status.endpoint, worker.refused) != (endpoint,
                                                                               refused):
            worker.stop(wait=False)
            worker = None
        if worker is None:
            if refused:
                LOG.error("host %s: %s", host.name_label, refused)
            worker = HostWorker(HostStatus(host.name_label, host.uuid, endpoint), self.config,
                                self.metrics, on_applied=self.tunnels.touch, refused=refused,
                                may_write=self._may_write(host.uuid), liveness=self.liveness)
            self.workers[ref] = worker
        return worker

    def _may_write(self, uuid: str) -> Callable[[], bool] | None:
        if self.ha is None:
            return None
        ha = self.ha
        return lambda: ha.may_write(uuid)

    def _mastership_changed(self, uuid: str) -> None:
        """A mastership gained or lost (the coordinator's thread): the switches' roles on the
        reconcile thread; the host's OVSDB worker compares its database now."""
        self.loop.call_soon(self.sink.roles_changed)
        with self._lock:
            for worker in self.workers.values():
                if worker.status.uuid == uuid:
                    worker.mastership_changed()
        self.tunnels.touch()

    def _may_poll(self, dpid: int) -> bool:
        """The statistics poller reads a switch of the pool's this instance masters (all of
        them when it runs alone)."""
        ident = self.engine.desired.identity(dpid)
        if ident is None:
            return False
        return self.ha is None or self.ha.role(ident[0])[0]

    def _acked(self, dpid: int, generation: int) -> None:
        ident = self.engine.desired.identity(dpid)
        if self.ha is not None and ident is not None:
            self.ha.acked(ident[0], dpid, generation)

    def _listen(self, controller: SDNController | None) -> HostRelays | None:
        """The port hosts connect to when the pool's controller is protocol `ssl` (opened on
        the registered port, closed when the controller goes)."""
        port = controller.port if controller and controller.protocol == "ssl" else None
        if self._relays is not None and (port is None or self._relays.listen[1] != port):
            self._relays.close()
            self._relays = None
        if port is None or self.config.ssl is None or self._relays is not None:
            return self._relays
        wildcard = "::" if ":" in controller.address else "0.0.0.0"
        hosts = self.engine.view.hosts

        def known(system_id: str) -> str | None:
            return next((h.name_label for h in list(hosts.values()) if h.uuid == system_id),
                        None)

        self._relays = HostRelays((wildcard, port), SslFiles(**self.config.ssl),
                                  Path(tempfile.mkdtemp(prefix="netctl-ovsdb-")), known)
        LOG.info("listening on port %d for the hosts' OVSDB (SDN controller protocol ssl)",
                 port)
        return self._relays

    def _controller_changed(self) -> None:
        """The pool's SDN controller came, went or changed (reconcile thread): every host's
        endpoint may have changed with it (`netctl.service.endpoints`)."""
        controller = self.engine.view.sdn_controller
        if controller == self._controller:
            return
        self._controller = controller
        LOG.info("the pool's SDN controller: %s", "none" if controller is None else
                 f"protocol {controller.protocol} {controller.address}:{controller.port}")
        view = self.engine.view
        with self._lock:
            for ref, worker in list(self.workers.items()):
                host = view.hosts.get(ref)
                if host is not None and worker.desired is not None:
                    self._worker(ref, host, worker).want(worker.desired)

    def reconnect_hosts(self, every: bool) -> None:
        """A reloaded configuration (reconcile thread): every host's OVSDB worker through the
        path a round's new host configuration takes, which computes each endpoint from the
        configuration now in effect and replaces the workers whose endpoint differs; `every`
        (TLS files or timeout changed) replaces them all. A new session sends nothing while
        the host's OVSDB already holds its configuration."""
        with self._lock:
            workers = dict(self.workers)
            if every:
                for ref in workers:
                    self.workers.pop(ref).stop(wait=False)
        configs = {ref: w.desired for ref, w in workers.items() if w.desired is not None}
        if configs:
            self._hosts_changed(configs)
        with self._lock:
            for ref, w in self.workers.items():
                before = workers.get(ref)
                if before is not None and w is not before:  # keep the counts /status shows
                    w.status.applies += before.status.applies
                    w.status.operations += before.status.operations
                    LOG.info("host %s: OVSDB reconnects to %s", w.status.name,
                             w.status.endpoint)

    def _after_round(self, loop: ReconcileLoop) -> None:
        self.metrics.problems.set(len(loop.problems))
        self._controller_changed()

    def _converged(self, _dpid: int, seconds: float) -> None:
        self.metrics.convergence.observe(seconds)

    # ------------------------------------------------------------------ the process
    def run_forever(self) -> None:
        """Start the reconcile loop and the sync, then, once a second and forever, bring the
        tunnel status and the gauges up to date (runs on a hub thread beside os-ken)."""
        # Bridges are told to connect here as soon as they exist: be listening first, or OVS
        # backs off (up to 8 s) before it tries again.
        host, _, port = self.config.openflow_listen.rpartition(":")
        wait_listening(host, int(port), timeout=30)
        if self.ha is not None:
            self.ha.start()
        self.loop.start()
        self.sync.start()
        self.poller.start()
        while True:
            time.sleep(1.0)
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the next second tries again
                LOG.exception("status round failed")

    def _tick(self) -> None:
        """Once a second: tunnel.status follows the hosts' apply results; gauges, counters."""
        self.metrics.xapi_connected.set(1 if self.sync.connected else 0)
        self.metrics.openflow_switches.set(len(self.sink.switches))
        if self.sink.portconfig is not None:
            self.metrics.port_config_sessions.set(len(self.sink.portconfig.connected()))
        with self._lock:
            # a host another instance masters is applied by that instance, not this one: its
            # configuration counts as applied here, and BFD (both ends of every pair
            # forwarding) is what proves its tunnels (several instances)
            applied = {ref: w.status.applied if self.ha is None or w.status.master
                       else w.desired for ref, w in self.workers.items()}
        self._peer_gauges.refresh(self.engine.view, self.tunnels, self.liveness)
        if self.ha is not None:
            self.ha.gauges()
            if not self.ha.writes_tunnel_status():
                self._mirror_counters()
                return  # another instance writes tunnel.status (touched when this one may)
        for uuid, status in self.tunnels.due(self.engine.view.tunnels, applied,
                                             self.loop.problems, self.liveness):
            try:
                self.sync.write_tunnel_status(uuid, **status)
            except Exception as exc:  # noqa: BLE001 - xapi may be away; next round retries
                self.tunnels.touch()
                LOG.info("tunnel.status not written: %s", exc)
        self._mirror_counters()

    def _mirror_counters(self) -> None:
        """The sink's and the engine's own counters, mirrored into Prometheus counters."""
        stats = self.sink.stats
        m = self.metrics
        for name, counter in (("flow_mods", m.flow_mods), ("repairs", m.flow_repairs),
                              ("changes_repaired", m.flow_changes_repaired),
                              ("audits", m.flow_audits), ("refused", m.flows_refused),
                              ("retries", m.switch_retries), ("port_mods", m.port_mods),
                              ("announced", m.announced),
                              ("foreign_blocked", m.foreign_blocked),
                              ("role_requests", m.role_requests), ("fenced", m.fenced),
                              ("meter_mods", m.meter_mods)):
            self._advance(name, getattr(stats, name), counter)
        for node, st in self.engine.graph.stats().items():
            for kind, value in (("recompute", st.recomputes), ("handled", st.handled)):
                grew = self._advance(f"engine/{node}/{kind}", value, m.engine.labels(node, kind))
                if grew:
                    m.recomputes.labels("full" if kind == "recompute" else "incremental").inc(
                        grew)

    def _advance(self, name: str, value: int, counter) -> int:  # noqa: ANN001 - a Counter
        grew = value - self._seen.get(name, 0)
        if grew > 0:
            counter.inc(grew)
            self._seen[name] = value
        return max(grew, 0)

    def start_port_config(self) -> None:
        """Listen for the external bridges' OpenFlow 1.0 sessions (NO_FLOOD,
        `netctl.sinks.portconfig`) on openflow.listen's port + 1, before any bridge is told
        to connect there. Raises OSError when that port cannot be had."""
        if not self.config.port_config:
            return
        host, port = self.config.port_config_listen
        tls = self.config.openflow_tls
        context = None
        if tls is not None:
            context = tls_context(tls.private_key, tls.certificate, tls.ca_cert)
        self.sink.portconfig = PortConfigServer(host, port, self.loop.switches.no_flood,
                                                context).start()

    def stop(self) -> None:
        """A clean stop (SIGTERM): hand this instance's hosts over at once (the lease is
        revoked); the dataplane is never touched."""
        if self.sink.portconfig is not None:
            self.sink.portconfig.stop()
        if self.ha is not None:
            self.ha.close()

    # ------------------------------------------------------------------ status out
    def stats(self, query: dict | None = None) -> dict:
        """/stats (`netctl.service.stats_view`)."""
        return stats_view.document(self, query or {})

    def web_view(self) -> WebView:
        """What the metrics server needs for the web view (`netctl.web.wiring.WebView`): off
        loopback, logins are checked against the xapi this process follows now."""
        host = (self.config.metrics_listen or "").rpartition(":")[0]
        return WebView.for_listen(host, self.config.metrics_tls, lambda: self.sync.url,
                                  self.config.xapi_ca_file, self.config.xapi_insecure)

    def status(self, query: dict[str, str] | None = None) -> dict:
        from netctl.service.status import snapshot

        return snapshot(self, query or {})
