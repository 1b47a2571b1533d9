"""Whose port a switch port is, by its name, from the pool as xapi describes it.

The switch reports port numbers and names; an operator asks about VMs, NICs, bonds and
tunnels. The names are the ones both sides of netctl agree on (`flows.ports`): `vif<domid>.<n>`
and `tap<domid>.<n>` for a VIF, the PIF's device for a NIC (a bond member when it is a bond's
slave), `vlan.tunnels.tunnel_port_name` for the tunnel port to a peer host. A port none of these
name (the bridge's own, a port another tool added) is `other`.
"""

from __future__ import annotations

from dataclasses import dataclass

from netctl.model import NULL_REF, PoolQueries, tap_port, vif_port
from vlan.tunnels import tunnel_port_name_for


@dataclass(frozen=True)
class Label:
    kind: str  # vif | pif | bond-member | tunnel | other
    vm: str | None = None  # VM name_label (VIFs)
    device: str | None = None  # VIF device number
    network: str | None = None  # network name_label
    vif: str | None = None  # VIF uuid
    peer: str | None = None  # the peer host's name_label (tunnels)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "vm": self.vm, "device": self.device,
                "network": self.network, "vif": self.vif, "peer": self.peer}


OTHER = Label("other")


def host_labels(view: PoolQueries, host_ref: str) -> dict[str, Label]:
    """Port name -> label for every port netctl can name on one host (all its bridges: the
    names are unique on a host). O(the host's VMs, PIFs and tunnels)."""
    out: dict[str, Label] = {}
    nets = view.networks
    for pif in view.host_pifs(host_ref):
        if not pif.physical or not pif.device:
            continue
        network = nets.get(pif.network)
        if pif.bond_slave_of != NULL_REF:
            bond = view.bonds.get(pif.bond_slave_of)
            master = view.pifs.get(bond.master) if bond is not None else None
            network = nets.get(master.network) if master is not None else network
            out[pif.device] = Label("bond-member",
                                    network=network.name_label if network else None)
        else:
            out[pif.device] = Label("pif", network=network.name_label if network else None)
    for vm in view.resident_vms(host_ref):
        if vm.domid < 0:
            continue
        for vif in view.vm_vifs(vm.ref):
            network = nets.get(vif.network)
            label = Label("vif", vm=vm.name_label, device=vif.device,
                          network=network.name_label if network else None, vif=vif.uuid)
            out[vif_port(vm.domid, vif.device)] = label
            out[tap_port(vm.domid, vif.device)] = label
    out.update(_tunnel_labels(view, host_ref))
    return out


def _tunnel_labels(view: PoolQueries, host_ref: str) -> dict[str, Label]:
    """The full mesh: on this host, a port per (private network, peer host holding it)."""
    holders: dict[str, list[tuple[str, str]]] = {}  # network ref -> (host ref, protocol)
    for tun in view.tunnels.values():
        access = view.pifs.get(tun.access_pif)
        if access is not None:
            holders.setdefault(access.network, []).append((access.host, tun.protocol))
    out: dict[str, Label] = {}
    for net_ref, hosts in holders.items():
        mine = [proto for host, proto in hosts if host == host_ref]
        network = view.networks.get(net_ref)
        if not mine or network is None:
            continue
        for peer_ref, _proto in hosts:
            peer = view.hosts.get(peer_ref)
            if peer_ref == host_ref or peer is None:
                continue
            name = tunnel_port_name_for(mine[0], network.uuid, peer.uuid)
            out[name] = Label("tunnel", network=network.name_label, peer=peer.name_label)
    return out
