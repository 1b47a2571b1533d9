"""What `netctl status` shows, gathered from a running `netctl run` (served as JSON on /status)."""

from __future__ import annotations

from typing import Any

from flows.locking import locking_of
from flows.ports import vif_port_name
from netctl.model import NULL_REF, PoolQueries


def snapshot(run: Any, query: dict[str, str] | None = None) -> dict:
    """The whole status of a `netctl.service.run.Run`, as plain data. Read from the HTTP
    thread while the reconcile thread works: only copies of its collections are walked (a
    C-level copy of a dict is atomic under the GIL) and published snapshots are read."""
    state = _Copy(run.view)
    engine = run.engine
    out: dict[str, Any] = {
        "xapi": {"url": run.sync.url, "connected": run.sync.connected,
                 "full_syncs": run.sync.full_syncs, "reconnects": run.sync.reconnects},
        "hosts": [], "bonds": [], "tunnels": [], "vifs": [], "switches": [],
        "problems": [str(p) for p in run.problems],
        "flows": dict(vars(run.sink.stats)),
        "engine": {**engine.counters(), "rounds": dict(vars(run.loop.stats))},
    }
    for worker in list(run.workers.values()):
        st = worker.status
        out["hosts"].append({"name": st.name, "uuid": st.uuid, "endpoint": st.endpoint,
                             "connected": st.connected, "error": st.last_error,
                             "bridges": st.bridges, "applies": st.applies,
                             "operations": st.operations})
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
    local_flows = engine.desired.local_flows
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
                            "flows": local_flows(vif.ref) if port else 0})
    for sw in run.sink.summary():
        out["switches"].append({"dpid": f"{sw['dpid']:016x}",
                                "host": names.get(sw["host"], "?"), "bridge": sw["bridge"],
                                "ports": sw["ports"], "flows": sw["flows"]})
    return out


class _Copy:
    """A pool's collections copied once (for a consistent read from another thread), with
    the queries status needs."""

    def __init__(self, view: Any) -> None:
        self.pool = view.pool
        for name in ("hosts", "networks", "pifs", "bonds", "vlans", "tunnels", "vifs", "vms"):
            setattr(self, name, dict(getattr(view, name)))
        self.quarantined = set(view.quarantined)

    def bond_slaves(self, bond: Any) -> tuple:
        return tuple(self.pifs[s] for s in bond.slaves if s in self.pifs)

    def is_vif_active(self, vif: Any) -> bool:
        vm = self.vms.get(vif.vm)
        return (vif.currently_attached and vm is not None and vm.power_state == "Running"
                and vm.resident_on != NULL_REF)

    def vif_domid(self, vif: Any) -> int:
        return PoolQueries.vif_domid(self, vif)  # type: ignore[arg-type]

    def enforced_locking_mode(self, vif: Any) -> str:
        return PoolQueries.enforced_locking_mode(self, vif)  # type: ignore[arg-type]

    def effective_locking_mode(self, vif: Any) -> str:
        return PoolQueries.effective_locking_mode(self, vif)  # type: ignore[arg-type]


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

