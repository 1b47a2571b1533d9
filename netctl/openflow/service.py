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

LOG = logging.getLogger("netctl.openflow")
TICK_SECONDS = 0.25  # how often back-off retries and audits are looked at


def changed_refs(changes) -> set[str] | None:  # noqa: ANN001 - netctl.xapi.sync.ChangeSet
    if changes.full:
        return None
    refs: set[str] = set()
    for part in (changes.added, changes.modified, changes.removed):
        for cls_refs in part.values():
            refs |= set(cls_refs)
    return refs


def incumbents(state) -> frozenset[str]:  # noqa: ANN001 - a PoolState or None
    """VIFs that held their MAC in the last applied state (they keep it over a newcomer with
    the same MAC: `netctl.model.duplicate_macs`)."""
    if state is None:
        return frozenset()
    return frozenset(r for r, v in state.vifs.items()
                     if r not in state.quarantined and state.is_vif_active(v))


def status(core: FlowController) -> dict:
    problems = [str(p) for p in core.problems()]
    with core.lock:
        return {
            "time": time.time(),
            "problems": problems,
            "stats": dict(vars(core.stats)),
            "switches": [
                {"dpid": f"{dpid:016x}", "host": sw.host_ref, "bridge": sw.bridge,
                 "flows": None if sw.installed is None else len(sw.installed),
                 "ports": len(sw.ports)}
                for dpid, sw in sorted(core.switches.items())
            ],
        }


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

    def timers() -> None:
        while True:
            try:
                core.tick()
            except Exception:  # noqa: BLE001 - the timers must outlive one bad round
                core.stats.errors += 1
                LOG.exception("controller timers failed")
            oshub.sleep(TICK_SECONDS)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for feeder in (*feeders, timers):
        oshub.spawn(feeder)
    LOG.info("OpenFlow controller on %s:%d (%s hub)", listen_host, port, hub)
    manager.run_apps(["netctl.openflow.app"])


def serve(listen_host: str, port: int, xapi_url: str, user: str, password: str,
          hub: str = "native", status_file: str | None = None,
          tls: TlsFiles | None = None, audit_interval: float = AUDIT_INTERVAL,
          xapi_ca: str | None = None, xapi_insecure: bool = False) -> None:
    """The standalone OpenFlow controller: xapi intent in, flow tables out."""
    from netctl.model import validate
    from netctl.xapi.sync import XapiSync

    core = FlowController(audit_interval=audit_interval)
    sync = XapiSync(xapi_url, user, password, ca_file=xapi_ca, ignore_ssl=xapi_insecure)

    def feed() -> None:
        sync.start()
        for state, changes in sync.updates():
            try:
                kept, problems = validate(state, incumbents=incumbents(core.state))
                for problem in problems:
                    LOG.warning("problem: %s", problem)
                core.set_state(kept, changed_refs(changes))
            except Exception:  # noqa: BLE001 - one bad batch must not stop the controller
                core.stats.errors += 1
                LOG.exception("applying a xapi update failed")

    def write_status() -> None:
        from os_ken.lib import hub as oshub

        path = Path(status_file or "")
        while status_file:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(status(core)))
            tmp.replace(path)
            oshub.sleep(0.2)

    run_controller(core, listen_host, port, hub, [feed, write_status], tls)
