"""`netctl openflow`: the OpenFlow side alone — xapi intent in, flow tables out; the bridges
are someone else's to build (no OVSDB). `serve()` assembles the xapi sync, the engine on its
reconcile loop and the OpenFlow sink, and runs them in os-ken (`netctl.service.osken`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from netctl.engine.core import NetctlEngine
from netctl.service.loop import ReconcileLoop
from netctl.service.osken import TlsFiles, run_controller
from netctl.sinks.openflow import AUDIT_INTERVAL, FlowSink
from netctl.sources.xapi.sync import XapiSync


def status(loop: ReconcileLoop) -> dict:
    """What the standalone controller writes to its status file (and tests read)."""
    sink = loop.sink
    return {
        "time": time.time(),
        "problems": [str(p) for p in loop.problems + sink.problems()],
        "stats": dict(vars(sink.stats)),
        "switches": [{"dpid": f"{sw['dpid']:016x}", "host": sw["host"], "bridge": sw["bridge"],
                      "flows": sw["flows"], "ports": sw["ports"]} for sw in sink.summary()],
        "engine": {**loop.engine.counters(), "rounds": dict(vars(loop.stats))},
    }


def serve(listen_host: str, port: int, xapi_url: str, user: str, password: str,
          hub: str = "native", status_file: str | None = None,
          tls: TlsFiles | None = None, audit_interval: float = AUDIT_INTERVAL,
          flow_monitor: bool = True,
          xapi_ca: str | None = None, xapi_insecure: bool = False) -> None:
    """The standalone OpenFlow controller: xapi intent in, flow tables out (the bridges are
    someone else's to build: no OVSDB)."""
    engine = NetctlEngine()
    loop = ReconcileLoop(engine, FlowSink(engine.desired, audit_interval=audit_interval,
                                          flow_monitor=flow_monitor))
    sync = XapiSync(xapi_url, user, password, ca_file=xapi_ca, ignore_ssl=xapi_insecure,
                    on_changes=loop.submit_xapi)

    def start() -> None:
        loop.start()
        sync.start()

    def write_status() -> None:
        from os_ken.lib import hub as oshub

        path = Path(status_file or "")
        while status_file:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(status(loop)))
            tmp.replace(path)
            oshub.sleep(0.2)

    run_controller(loop.switches, listen_host, port, hub, [start, write_status], tls)
