"""`netctl openflow`: the OpenFlow side alone — xapi intent in, flow tables out; the bridges
are someone else's to build (no OVSDB). `serve()` assembles the xapi sync, the engine on its
reconcile loop and the OpenFlow sink, and runs them in os-ken (`netctl.service.osken`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from netctl.service.loop import Reconciler
from netctl.service.osken import TlsFiles, run_controller
from netctl.sinks.openflow import AUDIT_INTERVAL, FlowController

LOG = logging.getLogger("netctl.openflow")


def status(core: FlowController, reconciler: Reconciler | None = None) -> dict:
    """What the standalone controller writes to its status file (and tests read)."""
    out = {
        "time": time.time(),
        "problems": [str(p) for p in (reconciler.problems if reconciler else core.problems())],
        "stats": dict(vars(core.stats)),
        "switches": [{"dpid": f"{sw['dpid']:016x}", "host": sw["host"], "bridge": sw["bridge"],
                      "flows": sw["flows"], "ports": sw["ports"]} for sw in core.summary],
    }
    if reconciler is not None:
        engine = reconciler.engine
        out["engine"] = {"nodes": {n: dict(vars(st)) for n, st in engine.graph.stats().items()},
                         "rounds": dict(vars(reconciler.stats)),
                         "bridges_rebuilt": engine.flows.tables.rebuilds,
                         "vif_updates": engine.flows.tables.vif_updates}
    return out


def serve(listen_host: str, port: int, xapi_url: str, user: str, password: str,
          hub: str = "native", status_file: str | None = None,
          tls: TlsFiles | None = None, audit_interval: float = AUDIT_INTERVAL,
          xapi_ca: str | None = None, xapi_insecure: bool = False) -> None:
    """The standalone OpenFlow controller: xapi intent in, flow tables out (the bridges are
    someone else's to build: no OVSDB)."""
    from netctl.engine.core import NetctlEngine
    from netctl.sources.xapi.sync import XapiSync

    core = FlowController(audit_interval=audit_interval)
    reconciler = Reconciler(NetctlEngine(), core)
    sync = XapiSync(xapi_url, user, password, ca_file=xapi_ca, ignore_ssl=xapi_insecure,
                    on_changes=reconciler.submit_xapi)

    def feed() -> None:
        reconciler.start()
        sync.start()

    def write_status() -> None:
        from os_ken.lib import hub as oshub

        path = Path(status_file or "")
        while status_file:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(status(core, reconciler)))
            tmp.replace(path)
            oshub.sleep(0.2)

    run_controller(core, listen_host, port, hub, [feed, write_status], tls)
