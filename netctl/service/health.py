"""What `/healthz` answers: is `netctl run` in control of the whole pool right now?

200 `{"ok": true, ...}` only while all of these hold, else 503 with what is not:

- the xapi sync is connected (its `event.from` loop is up) and xapi's intent was applied once
  (a process still starting is not healthy);
- every host netctl configures has its OVSDB session up (`HostWorker.status.connected`);
- every bridge netctl builds (the engine's switch identities: each host's bridges by datapath
  id) has an OpenFlow session with this controller.

The answer names what is down — `down`, one line per item for a person or a probe's log, and
the same as data: `xapi`, `hosts_down` (host, endpoint, error), `switches_down` (host, bridge,
dpid) — and counts what is up. A load balancer or systemd watchdog needs only the code.

Cost: sized by hosts and bridges (hundreds at 64 hosts), never by VMs or VIFs; read from the
HTTP thread through C-level copies of the dicts the other threads change (as /status does,
`netctl.service.status`), so it never waits on a lock and never walks a dict that changes.
"""

from __future__ import annotations

from typing import Any


def health(run: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP code, JSON body) for /healthz of a running `netctl.service.run.Run`."""
    down: list[str] = []
    sync = run.sync
    xapi_up = bool(sync.connected)
    if not xapi_up:
        down.append(f"xapi {sync.url}: not connected")
    elif not run.loop.ready.is_set():
        down.append(f"xapi {sync.url}: intent not applied yet (starting)")
    hosts = dict(run.view.hosts)  # ref -> Host (copies: C-level, atomic under the GIL)
    workers = dict(run.workers)  # ref -> HostWorker
    identities = dict(run.engine.desired.identities)  # dpid -> (host ref, bridge)
    sessions = dict(run.sink.switches)  # dpid -> Switch

    def name(ref: str) -> str:
        host = hosts.get(ref)
        return host.name_label if host is not None and host.name_label else ref

    hosts_down = []
    wanted = set(workers) | {ref for ref, _bridge in identities.values()}
    for ref in sorted(wanted, key=name):
        worker = workers.get(ref)
        if worker is None:
            row = {"host": name(ref), "endpoint": None, "error": "no OVSDB session"}
        elif worker.status.connected:
            continue
        else:
            st = worker.status
            row = {"host": st.name, "endpoint": st.endpoint,
                   "error": st.last_error or "not connected yet"}
        hosts_down.append(row)
        down.append(f"ovsdb {row['host']} ({row['endpoint'] or 'no endpoint'}): {row['error']}")
    switches_down = []
    for dpid, (ref, bridge) in sorted(identities.items(), key=lambda kv: (name(kv[1][0]),
                                                                          kv[1][1])):
        if dpid not in sessions:
            switches_down.append({"host": name(ref), "bridge": bridge, "dpid": f"{dpid:016x}"})
            down.append(f"openflow {name(ref)} {bridge}: no session")
    body = {
        "ok": not down,
        "xapi": {"url": sync.url, "connected": xapi_up},
        "hosts": len(wanted), "hosts_down": hosts_down,
        "switches": len(identities), "switches_down": switches_down,
        "down": down,
    }
    return (200 if not down else 503), body
