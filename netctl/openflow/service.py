"""The OpenFlow controller as a process: os-ken in the main thread, intent fed beside it.

`run_controller()` runs os-ken's app manager in the main thread and the given feeders on hub
threads (real threads with the native hub, green ones with eventlet — the hub's own primitive,
so both hubs work). `serve()` is the standalone controller (`netctl openflow`): xapi intent ->
flows only. `netctl run` uses `run_controller()` with its full reconcile loop.

Stopping (SIGTERM/SIGINT) never touches the dataplane: the flows stay installed and the
bridges' fail_mode decides what happens while no controller is connected (`secure`: keep
forwarding with the installed flows).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from netctl.openflow.core import AUDIT_INTERVAL, FlowController
from netctl.openflow.launcher import TlsFiles, prepare
from netctl.reconcile import Reconciler

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


def run_controller(core: FlowController, listen_host: str, port: int, hub: str,
                   feeders: list[Callable[[], None]], tls: TlsFiles | None = None) -> None:
    """Run os-ken (blocking, main thread) with `feeders` on hub threads."""
    manager = prepare(listen_host, port, hub, tls)
    from os_ken.lib import hub as oshub

    from netctl.openflow import app

    app.CONTROLLER = core

    def stop(signum: int, _frame: object) -> None:
        LOG.info("signal %d: stopping (flows stay installed)", signum)
        os._exit(0)  # the dataplane keeps its flows; nothing to undo

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for feeder in feeders:
        oshub.spawn(feeder)
    LOG.info("OpenFlow controller on %s:%d (%s hub)", listen_host, port, hub)
    manager.run_apps(["netctl.openflow.app"])


def serve(listen_host: str, port: int, xapi_url: str, user: str, password: str,
          hub: str = "native", status_file: str | None = None,
          tls: TlsFiles | None = None, audit_interval: float = AUDIT_INTERVAL,
          xapi_ca: str | None = None, xapi_insecure: bool = False) -> None:
    """The standalone OpenFlow controller: xapi intent in, flow tables out (the bridges are
    someone else's to build: no OVSDB)."""
    from netctl.engine.core import NetctlEngine
    from netctl.xapi.sync import XapiSync

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
