"""Whose port a switch port is, by its name, from the pool as xapi describes it.

The switch reports port numbers and names; an operator asks about VMs, NICs, bonds and
tunnels. The names are the ones both sides of netctl agree on (`flows.ports`): `vif<domid>.<n>`
and `tap<domid>.<n>` for a VIF, the PIF's device for a NIC (a bond member when it is a bond's
slave), and the tunnel ports the host's configuration holds (each names its peer). A port
none of these name (the bridge's own, a port another tool added) is `other`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netctl.hostconfig import TunnelLink
from netctl.model import NULL_REF, PoolQueries, tap_port, vif_port


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


def host_labels(view: PoolQueries, host_ref: str, tunnels: Iterable[TunnelLink] = ()
                ) -> dict[str, Label]:
    """Port name -> label for every port netctl can name on one host (all its bridges: the
    names are unique on a host). `tunnels`: the host's tunnel ports as its configuration
    holds them (`HostConfig.tunnels`: the mesh the compiler built, each with its network and
    peer). O(the host's VMs, PIFs and tunnel ports)."""
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
    for link in tunnels:
        network, peer = view.by_uuid(link.network_uuid), view.by_uuid(link.peer_host_uuid)
        out[link.port] = Label("tunnel", network=getattr(network, "name_label", None),
                               peer=getattr(peer, "name_label", None))
    return out
