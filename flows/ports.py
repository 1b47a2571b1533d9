"""Names and numbers both sides of netctl agree on (pure): how the OVSDB side names the ports
and datapaths it creates, so the OpenFlow side can find them by what the switch reports.

- A bridge's datapath id is derived from (host uuid, bridge name): the controller knows which
  host and bridge a connecting switch is without asking OVSDB, and it is stable across
  restarts (set as `Bridge other_config:datapath-id`).
- A VIF's port is `vif<domid>.<device>` (xapi's hotplug naming), or `tap<domid>.<device>` for
  the emulated NIC of an HVM guest: the same VIF.
- A tunnel port to a peer host is named by `vlan.tunnels.tunnel_port_name` (protocol, network,
  peer host), which the OVSDB side uses to create it.
"""

from __future__ import annotations

import hashlib

from netctl.model import NULL_REF, VIF, PifType, PoolQueries, PoolState, tap_twin, vif_port
from vlan.tunnels import tunnel_port_name


def datapath_id(host_uuid: str, bridge: str) -> int:
    digest = hashlib.sha256(f"{host_uuid}/{bridge}".encode()).hexdigest()
    return int(digest[:15], 16) | (1 << 60)  # never 0, fits OpenFlow's 64 bits


def datapath_id_text(host_uuid: str, bridge: str) -> str:
    """As OVS wants it in other_config:datapath-id: exactly 16 hex digits."""
    return f"{datapath_id(host_uuid, bridge):016x}"


def vif_port_name(state: PoolQueries, vif: VIF) -> str | None:
    if vif.vm not in state.vms:
        return None
    domid = state.vif_domid(vif)  # the VM's, or the one a migrating VIF's old port still has
    return vif_port(domid, vif.device) if domid >= 0 else None


def tap_port_name(state: PoolQueries, vif: VIF) -> str | None:
    """`tap<domid>.<device>`: the emulated NIC of an HVM guest without PV drivers, which xapi
    plugs beside (and instead of) `vif<domid>.<device>` until the drivers connect."""
    name = vif_port_name(state, vif)
    return tap_twin(name) if name is not None else None


def uplink_devices(state: PoolState, host_ref: str, bridge: str) -> tuple[str, ...]:
    """Port names of the bridge's uplink: the NIC, or every member of the bond."""
    net = state.network_by_bridge(bridge)
    pif = state.pif_of(net.ref, host_ref) if net else None
    if pif is None:
        return ()
    if pif.type is PifType.PHYSICAL:
        return (pif.device,)
    if pif.type is PifType.BOND_MASTER:
        bond = state.bond_of(pif)
        return tuple(sorted(s.device for s in state.bond_slaves(bond))) if bond else ()
    return ()


def tunnel_peers(state: PoolState, host_ref: str, bridge: str) -> dict[str, str]:
    """Tunnel port name -> peer host uuid, for the hosts that also carry this private network."""
    net = state.network_by_bridge(bridge)
    if net is None:
        return {}
    out = {}
    for pif in state.network_pifs(net.ref):
        tunnel = state.tunnel_of(pif)
        if pif.host == host_ref or pif.host == NULL_REF or tunnel is None:
            continue
        peer = state.hosts.get(pif.host)
        if peer is not None:
            out[tunnel_port_name(tunnel.protocol, net, peer.uuid)] = peer.uuid
    return out
