"""What `netctl run` exposes: Prometheus metrics on /metrics and its status as JSON on /status.

One small HTTP server (stdlib) serves both, so `netctl status` and Prometheus read the same
process. The metrics are module-level in their own registry (not the global one), so tests
and several controllers in one process do not collide.

/status takes a query string (`netctl.service.status`: the summary, `?host=`/`?vm=`/
`?network=` with `limit=`, `?full=1`); a query it cannot answer gets its HTTP code (400, 404)
with a JSON body saying why, so `netctl status` and scripts can tell "no such VM" from "no
netctl here".
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from netctl.service.status import QueryError
from netctl.web.http import WebRoutes
from netctl.web.wiring import WebView, handshake, wrap

LOG = logging.getLogger("netctl.metrics")
StatusFn = Callable[[Mapping[str, Sequence[str]]], dict]
HealthFn = Callable[[], tuple[int, dict]]  # /healthz: (HTTP code, JSON body)
StatsFn = Callable[[Mapping[str, Sequence[str]]], dict]  # /stats (netctl.service.stats_view)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ovsdb_connected = Gauge("netctl_ovsdb_connected", "OVSDB session up, per host",
                                     ["host"], registry=r)
        self.openflow_switches = Gauge("netctl_openflow_switches",
                                       "Bridges connected over OpenFlow", registry=r)
        self.port_config_sessions = Gauge(
            "netctl_port_config_sessions",
            "External bridges connected over OpenFlow 1.0 (NO_FLOOD for VIFs with rules)",
            registry=r)
        self.xapi_connected = Gauge("netctl_xapi_connected", "xapi reachable", registry=r)
        self.convergence = Histogram(
            "netctl_convergence_seconds", "From a xapi change to the switch's barrier reply",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.flow_mods = Counter("netctl_flow_mods_total", "Flow-mods sent", registry=r)
        self.ovsdb_operations = Counter("netctl_ovsdb_operations_total",
                                        "OVSDB operations sent", registry=r)
        # Written vs in effect (issue 24; netctl.sinks.ovsdb_cfg): a host's last transaction
        # is written when OVSDB replied, in effect once ovs-vswitchd's cur_cfg reached its
        # next_cfg (seconds from the start of the apply, for both)
        self.ovsdb_pending = Gauge("netctl_ovsdb_pending_config", "1 while the host's last "
                                   "OVSDB change is written but ovs-vswitchd has not applied "
                                   "it (cur_cfg < the transaction's next_cfg)", ["host"],
                                   registry=r)
        cfg_buckets = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
        self.ovsdb_write_seconds = Histogram(
            "netctl_ovsdb_write_seconds", "From the start of a host's OVSDB apply to the "
            "server's reply (written)", buckets=cfg_buckets, registry=r)
        self.ovsdb_effect_seconds = Histogram(
            "netctl_ovsdb_effect_seconds", "From the start of a host's OVSDB apply until "
            "ovs-vswitchd applied it (cur_cfg reached the transaction's next_cfg)",
            buckets=cfg_buckets, registry=r)
        self.ovsdb_last_write = Gauge("netctl_ovsdb_last_write_seconds", "Seconds the host's "
                                      "last OVSDB change took to be written", ["host"],
                                      registry=r)
        self.ovsdb_last_effect = Gauge("netctl_ovsdb_last_effect_seconds", "Seconds the "
                                       "host's last OVSDB change took until ovs-vswitchd "
                                       "applied it (from the start of the apply)", ["host"],
                                       registry=r)
        self.recomputes = Counter("netctl_recomputes_total", "Engine rounds by how a node "
                                  "took a change: full (a recompute) or incremental (a change "
                                  "handler)", ["kind"], registry=r)
        self.engine = Counter("netctl_engine_node_total", "Per engine node: changes taken by a "
                              "handler (handled) or by a recompute (recompute)",
                              ["node", "kind"], registry=r)
        self.problems = Gauge("netctl_problems", "Current problems in xapi intent", registry=r)
        self.xapi_events = Counter("netctl_xapi_events_total", "xapi objects changed",
                                   registry=r)
        # OpenFlow side: counters mirrored from the flow controller's own (`_sync_counters`).
        self.flow_repairs = Counter("netctl_flow_repairs_total", "netctl flows found drifted "
                                    "(deleted or changed by hand) and repaired: by an audit, or "
                                    "at once when a switch's flow monitor reported the change",
                                    registry=r)
        self.flow_changes_repaired = Counter(
            "netctl_flow_changes_repaired_total", "netctl flows another OpenFlow client "
            "changed (actions modified, deleted, added with netctl's cookie), reported by the "
            "switch's flow monitor and restored at once (also in netctl_flow_repairs_total)",
            registry=r)
        self.flow_audits = Counter("netctl_flow_audits_total", "Dump-and-diff audits of a "
                                   "switch's table", registry=r)
        self.flows_refused = Counter("netctl_flows_refused_total", "Flow-mods a switch refused",
                                     registry=r)
        self.switch_retries = Counter("netctl_switch_retries_total", "Backed-off re-reads of a "
                                      "switch after it refused a bundle", registry=r)
        self.port_mods = Counter("netctl_port_mods_total", "VIF port configs set for disabled "
                                 "(NO_FWD/NO_RECV) or cleared", registry=r)
        self.meter_mods = Counter("netctl_meter_mods_total", "OpenFlow meters added, changed "
                                  "or deleted: VIF rate limits (flows.qos)", registry=r)
        self.announced = Counter("netctl_vif_announcements_total", "RARPs sent upstream for "
                                 "VIF ports that appeared on external bridges", registry=r)
        self.foreign_blocked = Counter("netctl_flows_blocked_by_foreign_total", "Desired flows "
                                       "not sent because another owner's flow holds the match",
                                       registry=r)
        # Several instances (netctl run --coordination; netctl.service.ha)
        self.ha_instances = Gauge("netctl_ha_instances", "Live netctl instances in etcd (as "
                                  "this instance last read it)", registry=r)
        self.ha_writer = Gauge("netctl_ha_writer", "1 while this instance holds a live lease "
                               "and may write as master", registry=r)
        self.ha_mastered = Gauge("netctl_ha_mastered_hosts", "Hosts this instance masters",
                                 registry=r)
        self.takeovers = Counter("netctl_ha_takeovers_total", "Host masterships this instance "
                                 "gained (at start, from a dead instance, by a rebalance)",
                                 registry=r)
        self.role_requests = Counter("netctl_openflow_role_requests_total", "OpenFlow role "
                                     "requests sent (MASTER or SLAVE)", registry=r)
        self.fenced = Counter("netctl_openflow_fenced_total", "Writes or MASTER requests a "
                              "switch refused because another instance is its master",
                              registry=r)
        # Tunnel liveness (issue 21; netctl.service.tunnel_liveness)
        self.tunnel_peer_up = Gauge("netctl_tunnel_peer_up", "1 while BFD says forwarding at "
                                    "both ends of the tunnel between host and peer on a "
                                    "private network, 0 otherwise",
                                    ["network", "host", "peer"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        if self.server.web is not None and self.server.web.get(self, url):
            return  # the web view's route, or refused by its gate (netctl.web.http)
        code = 200
        if url.path.startswith("/metrics"):
            body, ctype = self.server.metrics.render(), CONTENT_TYPE_LATEST
        elif url.path in ("/status", "/status/"):
            body, code = self._status(parse_qs(url.query, keep_blank_values=True))
            ctype = "application/json"
        elif url.path in ("/stats", "/stats/") and self.server.stats is not None:
            body, code = self._stats(parse_qs(url.query, keep_blank_values=True))
            ctype = "application/json"
        elif url.path in ("/healthz", "/healthz/") and self.server.health is not None:
            code, answer = self.server.health()  # netctl.service.health
            body, ctype = json.dumps(answer).encode(), "application/json"
        else:
            self.send_error(404, "try /metrics, /status or /healthz")
            return
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if self.server.web is None or not self.server.web.post(self, urlsplit(self.path)):
            self.send_error(404, "nothing to post here")

    def _status(self, query: Mapping[str, Sequence[str]]) -> tuple[bytes, int]:
        """/status's JSON and HTTP code: a query error says what was wrong (400, 404); a
        failure of status itself is a 500 with its text, never a dropped connection."""
        try:
            return json.dumps(self.server.status(query)).encode(), 200
        except QueryError as exc:
            return json.dumps(exc.body).encode(), exc.status
        except Exception as exc:  # noqa: BLE001 - answer, and keep serving
            LOG.exception("/status failed")
            return json.dumps({"error": f"status failed: {exc!r}"}).encode(), 500


    def _stats(self, query: Mapping[str, Sequence[str]]) -> tuple[bytes, int]:
        """/stats' JSON: a query it cannot answer is a 400 saying why."""
        try:
            return json.dumps(self.server.stats(query)).encode(), 200
        except ValueError as exc:
            return json.dumps({"error": str(exc)}).encode(), 400
        except Exception as exc:  # noqa: BLE001 - answer, and keep serving
            LOG.exception("/stats failed")
            return json.dumps({"error": f"stats failed: {exc!r}"}).encode(), 500


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    web: WebRoutes | None = None  # the web view and its gate (`serve(web=...)`)
    tls: ssl.SSLContext | None = None  # TLS on this port (metrics.tls)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        return wrap(self.tls, sock), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if handshake(request):  # TLS on the connection's own thread, not in accept
            super().finish_request(request, client_address)

    def __init__(self, addr: tuple[str, int], metrics: Metrics, status: StatusFn,
                 health: HealthFn | None = None, stats: StatsFn | None = None) -> None:
        super().__init__(addr, _Handler)
        self.metrics, self.status, self.health = metrics, status, health
        self.stats = stats


def serve(host: str, port: int, metrics: Metrics, status: StatusFn,
          health: HealthFn | None = None, stats: StatsFn | None = None,
          web: WebView | None = None) -> _Server:
    """Serve /metrics and /status (`status(query)`: the parsed query string), /healthz
    when `health` is given and /stats when `stats` is, on a thread; with `web`, the web
    view at / and its gate in front of everything (TLS and a login off loopback)."""
    server = _Server((host, port), metrics, status, health, stats)
    if web is not None:
        server.tls, server.web = web.tls_context(), web.routes(server)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
