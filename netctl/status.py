"""What `netctl status` shows, gathered from a running `netctl run` (served as JSON on /status)."""

from __future__ import annotations

from typing import Any

from flows.locking import locking_of
from flows.ports import vif_port_name
from netctl.model import PoolState
from netctl.openflow.messages import key_in_port


def snapshot(run: Any) -> dict:
    """The whole status of a `netctl.controller.Run`, as plain data."""
    state: PoolState | None = run.state
    out: dict[str, Any] = {
        "xapi": {"url": run.sync.url, "connected": run.sync._session is not None,
                 "full_syncs": run.sync.full_syncs, "reconnects": run.sync.reconnects},
        "hosts": [], "bonds": [], "tunnels": [], "vifs": [], "switches": [],
        "problems": [str(p) for p in [*run.problems, *run.core.problems()]],
        "flows": dict(vars(run.core.stats)),
    }
    for worker in list(run.workers.values()):
        st = worker.status
        out["hosts"].append({"name": st.name, "uuid": st.uuid, "endpoint": st.endpoint,
                             "connected": st.connected, "error": st.last_error,
                             "bridges": st.bridges, "applies": st.applies,
                             "operations": st.operations})
    if state is None:
        return out
    names = {h.ref: h.name_label for h in state.hosts.values()}
    members = _member_state(run)
    for bond in state.bonds.values():
        master = state.pifs.get(bond.master)
        if master is None:
            continue
        host = names.get(master.host, "?")
        out["bonds"].append({
            "host": host, "bond": master.device, "mode": bond.mode,
            "members": {s.device: members.get((host, s.device), "unknown")
                        for s in state.bond_slaves(bond)}})
    for tun in state.tunnels.values():
        access = state.pifs.get(tun.access_pif)
        net = state.networks.get(access.network) if access else None
        out["tunnels"].append({"host": names.get(access.host, "?") if access else "?",
                               "network": net.name_label if net else "?",
                               "protocol": tun.protocol, "status": dict(tun.status)})
    flows_by_port = _flows_per_port(run)
    for vif in state.vifs.values():
        vm = state.vms.get(vif.vm)
        if vm is None or not vm.is_guest:
            continue
        host = names.get(vm.resident_on, "")
        port = vif_port_name(state, vif) if state.is_vif_active(vif) else None
        net = state.networks.get(vif.network)
        out["vifs"].append({"vm": vm.name_label, "device": vif.device, "host": host,
                            "network": net.name_label if net else "?", "port": port,
                            "mac": vif.mac, "locking": locking_of(state, vif).mode,
                            "flows": flows_by_port.get((host, port), 0) if port else 0})
    with run.core.lock:
        for dpid, sw in sorted(run.core.switches.items()):
            out["switches"].append({"dpid": f"{dpid:016x}", "host": names.get(sw.host_ref, "?"),
                                    "bridge": sw.bridge, "ports": len(sw.ports),
                                    "flows": None if sw.installed is None else
                                    len(sw.installed)})
    return out


def _flows_per_port(run: Any) -> dict[tuple[str, str], int]:
    """(host name, port name) -> netctl flows matching that port (in_port)."""
    state = run.state
    names = {h.ref: h.name_label for h in state.hosts.values()}
    counts: dict[tuple[str, str], int] = {}
    with run.core.lock:
        for sw in run.core.switches.values():
            if sw.installed is None:
                continue
            by_no = {no: name for name, no in sw.ports.items()}
            for flow_key in sw.installed:
                port = key_in_port(flow_key)
                if port in by_no:
                    key = (names.get(sw.host_ref, "?"), by_no[port])
                    counts[key] = counts.get(key, 0) + 1
    return counts


def _member_state(run: Any) -> dict[tuple[str, str], str]:
    """(host, NIC) -> LACP/link state of a bond member, read from that host's OVSDB."""
    out: dict[tuple[str, str], str] = {}
    for worker in list(run.workers.values()):
        db = worker.db
        if db is None or db.api is None:
            continue
        try:
            rows = db.api.tables["Interface"].rows.values()
            for row in rows:
                link = (row.link_state or ["?"])[0]
                lacp = row.lacp_current
                lacp_text = "" if not lacp else (" lacp current" if lacp[0] else " lacp expired")
                out[(worker.status.name, row.name)] = f"link {link}{lacp_text}"
        except Exception:  # noqa: BLE001 - status is best effort
            continue
    return out

