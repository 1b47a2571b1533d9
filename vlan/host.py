"""`compile_host`: one host's desired OVS configuration from the pool's intent (spec §4.2, §4.7).

What each attached PIF of the host becomes, as xapi + xcp-networkd build it:

| PIF | OVS |
|---|---|
| physical NIC | bridge `network.bridge` + port/interface `PIF.device` |
| bond master | bridge + bond port `PIF.device` over the member NICs (`bonding.bond_port`) |
| VLAN (untagged) PIF | fake bridge `network.bridge` on the tagged PIF's bridge: internal |
|  | port with `fake_bridge=true`, `tag`, the tagged PIF's MAC and |
|  | `fake-bridge-xs-network-uuids` (where ovs-vsctl keeps a fake bridge's external ids) |
| tunnel access PIF | bridge with no uplink + one GRE/VXLAN port per peer host (full mesh) |
| SR-IOV logical | nothing (VF passthrough) |

A tunnel port's `remote_ip` is the peer's transport PIF address in that PIF's primary family
(`primary_address_type`: IPv4 `PIF.IP`, or IPv6 from `PIF.IPv6`, then with `local_ip` too); two
hosts whose transports differ in family get no tunnel between them, and a Problem naming both.

plus an internal bridge for a network that has running VIFs on the host but no PIF there, and
`trunks` on VIF ports from `VIF.trunks`. Every real bridge gets `other_config:hwaddr` (the PIF's
MAC), `fail_mode` from `vswitch-controller-fail-mode` (PIF ⊕ network ⊕ pool other_config;
default `secure` when there is a controller, where xapi's is `standalone`: `fail_mode_of`),
`other_config:disable-in-band` from `vswitch-disable-in-band` when set, networkd's
`mac-table-size` and multicast-snooping settings, `external_ids:xs-network-uuids` (its network,
then its VLAN networks by tag, `;`-joined, as interface-reconfigure did), the OpenFlow
controller targets and protocols given to `compile_host`, and MTU (`mtu_request`, PIF
other_config:mtu else network.MTU) on its NICs and its own device, and its flow export
(NetFlow, IPFIX, sFlow rows from the pool's and its network's other_config: `vlan.export`).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from bonding.mapping import bond_port
from netctl.hostconfig import (
    BridgeConfig,
    HostAddress,
    HostConfig,
    InterfaceConfig,
    PortConfig,
    TunnelLink,
    VifPortConfig,
)
from netctl.model import (
    NULL_REF,
    PIF,
    VIF,
    XAPI_CLASS,
    FrozenMap,
    Network,
    PifType,
    Pool,
    PoolQueries,
    PoolState,
    Problem,
    describe,
    vif_port,
)
from netctl.model.keys import DISABLE_IN_BAND, FAIL_MODE, first_read
from vlan.checks import check_host_networking
from vlan.export import bridge_export, vlan_network_problems
from vlan.mirror import all_sources, plan_mirrors
from vlan.tunnels import allocate_tunnel_keys, endpoint, tunnel_port_name_for

MAC_TABLE_SIZE = "10000"


@dataclass
class _Bridge:
    """A bridge under construction."""

    network: Network
    pif: PIF | None
    mtu: int
    ports: list[PortConfig] = field(default_factory=list)
    vlan_networks: list[tuple[int, str]] = field(default_factory=list)  # (tag, network uuid)


def compile_host(state: PoolState, host_ref: str, *, controllers: Sequence[str] = (),
                 datapath_type: str = "system",
                 protocols: Sequence[str] = ("OpenFlow13",),
                 port_config: Sequence[str] = ()) -> HostConfig:
    """The OVS configuration host `host_ref` should have, and the Problems that concern it.

    `controllers`: OpenFlow targets for every bridge (`tcp:IP:PORT`, `ssl:IP:PORT`; empty = no
    controller, `fail_mode` decides). `port_config`: the OpenFlow 1.0 targets an external
    bridge also connects to, for NO_FLOOD (`netctl.sinks.portconfig`; the bridge then allows
    OpenFlow10 too). `datapath_type`: `system` on a real host, `netdev` where
    there is no OVS kernel module (the lab). Pure: same input, same output.

    From scratch: validates the whole pool first. The engine keeps the validated pool, the
    tunnel keys and each host's VIFs itself and calls `build_host` for one host."""
    kept, problems = check_host_networking(state)
    host = kept.hosts.get(host_ref)
    if host is None:
        problems.append(Problem("host", host_ref, "", "", "ref",
                                "no such host in the pool (or the host is invalid)"))
        return HostConfig(host_ref=host_ref, host_uuid="", problems=tuple(problems))
    vifs = kept.host_vifs(host_ref)
    config = build_host(kept, state, host_ref, allocate_tunnel_keys(kept),
                        vif_ports=vif_port_configs(kept, vifs),
                        vif_networks={v.network for v in vifs}, controllers=controllers,
                        datapath_type=datapath_type, protocols=protocols,
                        port_config=port_config)
    problems += config.problems
    problems += fail_mode_problems(kept, host_ref, config.bridges)
    mirrors = plan_mirrors(kept, all_sources(kept))  # port mirroring (vlan.mirror)
    problems += mirrors.problems
    return replace(config, **mirrors.for_host(host_ref),
                   problems=tuple(p for p in problems if concerns_host(state, p, host_ref)))


def vif_port_configs(view: PoolQueries, vifs: Iterable[VIF]) -> tuple[VifPortConfig, ...]:
    """What netctl sets on the host's VIF ports (their trunks), in a stable order."""
    return tuple(vif_port_config(view, vif)
                 for vif in sorted(vifs, key=lambda v: (v.vm, v.device)))


def vif_port_config(view: PoolQueries, vif: VIF) -> VifPortConfig:
    """What netctl sets on one VIF's port: its trunks. One builder for the compiler and the
    engine. (A VIF's rate limit is an OpenFlow meter: `flows.qos`.)"""
    vm = view.vms[vif.vm]
    return VifPortConfig(vif_port(vm.domid, vif.device), vif.uuid,
                         tuple(sorted(set(vif.trunks))))


def build_host(kept: PoolQueries, raw: PoolQueries, host_ref: str, keys: Mapping[str, int], *,
               vif_ports: tuple[VifPortConfig, ...], vif_networks: Iterable[str],
               controllers: Sequence[str] = (), datapath_type: str = "system",
               protocols: Sequence[str] = ("OpenFlow13",),
               port_config: Sequence[str] = ()) -> HostConfig:
    """One host's configuration from the validated pool `kept` (and the unvalidated `raw`,
    which says where a rejected PIF would have built a bridge), the pool's tunnel keys, the
    host's VIF port settings and the networks its running VIFs are on. Its `problems` are what
    building found (a bridge built twice, a VLAN without its parent, a tunnel without an
    endpoint); validation's Problems are the caller's. Reads only this host's objects (and
    the tunnels of its private networks)."""
    problems: list[Problem] = []
    host = kept.hosts[host_ref]
    bridges: dict[str, _Bridge] = {}
    tunnels: list[TunnelLink] = []
    pifs = [p for p in kept.host_pifs(host_ref) if p.currently_attached and not p.is_bond_slave]

    def new_bridge(pif: PIF | None, net: Network) -> _Bridge | None:
        if net.bridge in bridges:
            if pif is not None:
                problems.append(Problem("PIF", pif.ref, pif.uuid, describe(kept, pif), "network",
                                        f"bridge {net.bridge} is already built on this host"))
            return None
        mtu = kept.pif_mtu(pif) if pif is not None else net.mtu
        bridges[net.bridge] = br = _Bridge(net, pif, mtu)
        return br

    # Real bridges first (NICs and bonds), so that VLANs find their parent bridge.
    for pif in sorted(pifs, key=lambda p: p.device):
        net = kept.networks[pif.network]
        if pif.type is PifType.PHYSICAL:
            br = new_bridge(pif, net)
            if br is not None:
                br.ports.append(PortConfig(pif.device, (
                    InterfaceConfig(pif.device, mtu_request=br.mtu),)))
        elif pif.type is PifType.BOND_MASTER:
            bond = kept.bond_of(pif)
            if bond is None:
                continue
            members = tuple(sorted(kept.bond_slaves(bond), key=lambda m: m.device))
            br = new_bridge(pif, net)
            if br is not None:
                br.ports.append(bond_port(pif, bond, members, br.mtu))
    for pif in sorted(pifs, key=lambda p: (p.vlan, p.device)):
        if pif.type is not PifType.VLAN_UNTAGGED:
            continue
        net = kept.networks[pif.network]
        vlan = kept.vlan_of(pif)
        tagged = kept.vlan_parent_pif(pif)
        parent_net = kept.networks.get(tagged.network) if tagged else None
        parent = bridges.get(parent_net.bridge) if parent_net else None
        if vlan is None or tagged is None or parent is None or parent.pif != tagged:
            problems.append(Problem("PIF", pif.ref, pif.uuid, describe(kept, pif),
                                    "VLAN_master_of", "the PIF carrying this VLAN's tagged frames "
                                    "is not plugged on this host, so the VLAN has no bridge"))
            continue
        if net.bridge in bridges:
            problems.append(Problem("PIF", pif.ref, pif.uuid, describe(kept, pif), "network",
                                    f"bridge {net.bridge} is already built on this host"))
            continue
        parent.ports.append(PortConfig(
            net.bridge, (InterfaceConfig(net.bridge, type="internal",
                                         mtu_request=kept.pif_mtu(pif), mac=tagged.mac or None),),
            tag=vlan.tag, fake_bridge=True,
            external_ids=FrozenMap({"fake-bridge-xs-network-uuids": net.uuid})))
        parent.vlan_networks.append((vlan.tag, net.uuid))
        problems += vlan_network_problems(net, parent.network)  # its export keys: not read
    for pif in sorted(pifs, key=lambda p: p.device):
        if pif.type is not PifType.TUNNEL_ACCESS:
            continue
        net = kept.networks[pif.network]
        br = new_bridge(pif, net)
        if br is None:
            continue
        tun = kept.tunnel_of(pif)
        ends = endpoint(kept, tun) if tun is not None else None
        if tun is None or ends is None:
            problems.append(Problem("tunnel", tun.ref if tun else NULL_REF,
                                    tun.uuid if tun else "", describe(kept, pif), "transport_PIF",
                                    "the transport PIF is not plugged or has no address: the "
                                    "network stays local to this host"))
            continue
        own_transport = ends[1]
        for peer in sorted(kept.network_tunnels(net.ref), key=lambda t: t.uuid):
            peer_ends = endpoint(kept, peer)
            if peer.ref == tun.ref or peer_ends is None:
                continue
            peer_access, peer_transport = peer_ends
            if peer_access.host == host_ref:
                continue
            if peer.protocol != tun.protocol:
                problems.append(Problem("tunnel", peer.ref, peer.uuid, describe(kept, peer),
                                        "protocol", f"'{peer.protocol}' differs from "
                                        f"'{tun.protocol}' on {host.name_label}: no link "
                                        "between these two hosts"))
                continue
            peer_host = kept.hosts.get(peer_access.host)
            peer_uuid = peer_host.uuid if peer_host else peer_access.host
            if peer_transport.primary_ipv6 != own_transport.primary_ipv6:
                problems.append(Problem("tunnel", peer.ref, peer.uuid, describe(kept, peer),
                                        "transport_PIF", mixed_family_message(
                                            kept, net, own_transport, peer_transport)))
                continue
            port, link = _tunnel_port(tun.protocol, net.uuid, tun.uuid, peer_uuid,
                                      peer_transport.primary_address, keys[net.ref],
                                      local_ip(own_transport))
            br.ports.append(port)
            tunnels.append(link)

    # Networks with running VIFs here but no PIF on this host: xapi makes an internal bridge.
    for net_ref in sorted(vif_networks, key=lambda r: kept.networks[r].bridge
                          if r in kept.networks else ""):
        net = kept.networks.get(net_ref)
        if net is None or net.bridge in bridges or _has_any_pif(raw, net.ref, host_ref):
            continue
        new_bridge(None, net)

    built = tuple(_finish(kept, br, controllers, datapath_type, protocols, port_config)
                  for br in sorted(bridges.values(), key=lambda b: b.network.bridge))
    return HostConfig(
        host_ref=host_ref, host_uuid=host.uuid, bridges=built, vif_ports=vif_ports,
        addresses=_addresses(kept, pifs, bridges),
        tunnels=tuple(tunnels),
        tunnel_keys=tuple(sorted((kept.networks[r].uuid, k) for r, k in keys.items()
                                 if r in kept.networks)),
        problems=tuple(problems))


def family_name(pif: PIF) -> str:
    """The address family a transport PIF's tunnels use (its `primary_address_type`)."""
    return "IPv6" if pif.primary_ipv6 else "IPv4"


def mixed_family_message(state: PoolQueries, net: Network, own: PIF, peer: PIF) -> str:
    """Why two hosts of a private network have no tunnel between them: their transport PIFs
    are of different primary address families (a GRE or VXLAN tunnel has one family at both
    ends). Names both PIFs, and so both hosts."""
    return (f"the transport PIF {describe(state, peer)} is {family_name(peer)} "
            f"({peer.primary_address}) and the transport PIF {describe(state, own)} is "
            f"{family_name(own)} ({own.primary_address}) (primary_address_type): a tunnel "
            "needs one address family at both ends, so these two hosts are not linked on "
            f"network {net.name_label or net.uuid}; give both PIFs the same "
            "primary_address_type")


def local_ip(transport: PIF) -> str:
    """`options:local_ip` of the tunnels leaving from `transport`: its IPv6 address, for IPv6
    endpoints only. A host often holds several IPv6 addresses on one device (static, SLAAC,
    temporary); the one a tunnel leaves from must be the one its peer has as `remote_ip`, or
    the peer does not recognise the packets as its tunnel's. IPv4 tunnels leave it to the
    route (one address per PIF, as before)."""
    return transport.primary_address if transport.primary_ipv6 else ""


@functools.lru_cache(maxsize=1 << 16)
def _tunnel_port(protocol: str, network_uuid: str, tunnel_uuid: str, peer_uuid: str,
                 remote_ip: str, key: int, local: str = "") -> tuple[PortConfig, TunnelLink]:
    """One tunnel port of a mesh (shared: a 64-host mesh has 4032 of them, and a host rebuilt
    reuses those of its ports that did not change). `local`: options:local_ip, if any."""
    name = tunnel_port_name_for(protocol, network_uuid, peer_uuid)
    options = {"remote_ip": remote_ip, "key": str(key)}
    if local:
        options["local_ip"] = local
    port = PortConfig(
        name, (InterfaceConfig(name, type=protocol, options=FrozenMap(options)),),
        external_ids=FrozenMap({"xs-network-uuid": network_uuid, "netctl-tunnel": tunnel_uuid,
                                "netctl-peer-host": peer_uuid}))
    return port, TunnelLink(tunnel_uuid, network_uuid, name, protocol, key, remote_ip,
                            peer_uuid)


def _has_any_pif(state: PoolQueries, network: str, host: str) -> bool:
    """The unvalidated pool has a PIF of `network` on `host` (rejected or unplugged): then the
    bridge is that PIF's to build, not an internal bridge's."""
    return any(p.host == host for p in state.network_pifs(network))


def _finish(state: PoolState, br: _Bridge, controllers: Sequence[str], datapath_type: str,
            protocols: Sequence[str], port_config: Sequence[str] = ()) -> BridgeConfig:
    net, pif = br.network, br.pif
    fail_mode = fail_mode_of(state, net, pif, controlled=bool(controllers))[0]
    if controllers and port_config and pif is not None \
            and pif.type in (PifType.PHYSICAL, PifType.BOND_MASTER):
        # an external bridge: NORMAL floods there, and only OpenFlow 1.0 can keep a port
        # out of it (`netctl.sinks.portconfig`)
        controllers = (*controllers, *port_config)
        protocols = ("OpenFlow10", *(p for p in protocols if p != "OpenFlow10"))
    other = {"mac-table-size": MAC_TABLE_SIZE, "enable-ipv6-mcast-snooping": "false",
             "mcast-snooping-disable-flood-unregistered": "true"}
    if pif is not None and pif.mac:
        other["hwaddr"] = pif.mac.lower()
    # PIF, network, pool: the first that sets it well decides (nm.ml's merge, bad values
    # passed over: `netctl.model.keys`)
    in_band = first_read(DISABLE_IN_BAND, (pif, net, state.pool))
    if in_band is not None:
        other["disable-in-band"] = in_band
    uuids = (net.uuid, *(u for _, u in sorted(br.vlan_networks)))
    own = PortConfig(net.bridge, (InterfaceConfig(net.bridge, type="internal",
                                                  mtu_request=br.mtu),))
    return BridgeConfig(
        name=net.bridge, ports=(own, *br.ports), fail_mode=fail_mode,
        datapath_type=datapath_type, protocols=tuple(protocols),
        controllers=tuple(controllers),
        mcast_snooping_enable=bool(state.pool and state.pool.igmp_snooping_enabled),
        other_config=FrozenMap(other),
        external_ids=FrozenMap({"xs-network-uuids": ";".join(uuids)}),
        network_uuids=uuids, export=bridge_export(state.pool, net))


FAIL_MODE_KEY = FAIL_MODE.name


def fail_mode_of(state: PoolState, net: Network, pif: PIF | None, controlled: bool = True
                 ) -> tuple[str, Pool | Network | PIF | None]:
    """A bridge's `fail_mode` and the xapi object that chose it (None: netctl's default).

    xapi merges `vswitch-controller-fail-mode` from pool ⊕ network ⊕ PIF other_config (PIF
    wins) and defaults to `standalone`. netctl defaults to `secure` instead: a bridge that
    carries port security must not fall back to NORMAL switching when the controller is away
    (DESIGN: safe by default). An operator's explicit choice is honoured. A bridge given no
    controller at all (`controlled=False`: netctl programming OVSDB only) stays `standalone`,
    since nothing else would ever forward on it."""
    for obj in (pif, net, state.pool):
        value = FAIL_MODE.read(obj) if obj is not None else None  # a bad value: passed over
        if value is not None:
            return value, obj
    return ("secure" if controlled else "standalone"), None


def fail_mode_problems(state: PoolQueries, host_ref: str, bridges: Sequence[BridgeConfig]
                       ) -> list[Problem]:
    """What an operator must hear about fail modes on this host beyond a bad value (the
    model's key check says that, `netctl.model.keys.FAIL_MODE`): `standalone` on a bridge that
    carries locked or disabled VIFs (when netctl is away for three inactivity probes, OVS
    switches that bridge with NORMAL and the locking stops applying). Depends on the host's
    VIFs (their locking) as well as its bridges."""
    pifs = [p for p in state.host_pifs(host_ref) if p.currently_attached
            and not p.is_bond_slave]
    out: list[Problem] = []
    host = state.hosts[host_ref]
    pif_by_bridge = {state.networks[p.network].bridge: p for p in pifs if p.network in
                     state.networks}
    for br in bridges:
        if br.fail_mode != "standalone":
            continue
        net = state.network_by_bridge(br.name)
        if net is None:
            continue
        _mode, source = fail_mode_of(state, net, pif_by_bridge.get(br.name),
                                     controlled=bool(br.controllers))
        carried = {u for u in br.network_uuids}
        locked = sorted(f"{describe(state, v)} ({state.enforced_locking_mode(v)})"
                        for v in state.host_vifs(host_ref)
                        if state.networks.get(v.network) is not None
                        and state.networks[v.network].uuid in carried
                        and state.enforced_locking_mode(v) in ("locked", "disabled"))
        if not locked or source is None:
            continue
        out.append(Problem(
            XAPI_CLASS[type(source)], source.ref, source.uuid, describe(state, source),
            f"other_config:{FAIL_MODE_KEY}",
            f"standalone on bridge {br.name} of {host.name_label or host.uuid}: if netctl is "
            "away for three OpenFlow inactivity probes, OVS falls back to NORMAL switching "
            f"there and the locking of {', '.join(locked)} stops applying; remove the key "
            "(netctl's default is secure) unless that is what you want"))
    return out


def _addresses(state: PoolState, pifs: list[PIF], bridges: dict[str, _Bridge]
               ) -> tuple[HostAddress, ...]:
    """dom0's addresses on its bridge devices (the PIFs' IP configuration)."""
    built = {p.name for br in bridges.values() for p in br.ports} | set(bridges)
    out: list[HostAddress] = []
    for pif in sorted(pifs, key=lambda p: p.uuid):
        net = state.networks[pif.network]
        if net.bridge not in built:
            continue
        if pif.has_ipv4 and pif.ip:
            try:
                prefix = ipaddress.IPv4Network(f"0.0.0.0/{pif.netmask or '32'}").prefixlen
            except ValueError:
                prefix = 32
            out.append(HostAddress(net.bridge, f"{pif.ip}/{prefix}", pif.uuid))
        for addr in pif.ipv6_addresses:
            out.append(HostAddress(net.bridge, addr if "/" in addr else f"{addr}/128", pif.uuid))
    return tuple(out)


def concerns_host(state: PoolState, problem: Problem, host_ref: str) -> bool:
    """Whether a Problem is about an object on this host (or pool-wide, such as a network)."""
    obj = state.get(problem.ref)
    cls = problem.object_class
    if obj is None or cls in ("pool", "SDN_controller"):
        return True
    if cls == "host":
        return problem.ref == host_ref
    if cls == "PIF":
        return obj.host == host_ref
    if cls == "Bond":
        refs = [obj.master, *obj.slaves]
        return any(getattr(state.pifs.get(r), "host", None) == host_ref for r in refs)
    if cls == "VLAN":
        refs = [obj.untagged_pif, obj.tagged_pif]
        return any(getattr(state.pifs.get(r), "host", None) == host_ref for r in refs)
    if cls == "tunnel":
        return True  # a tunnel's problem affects every host of its mesh
    if cls == "network":
        return True  # a network missing pool-wide is worth knowing on every host
    if cls == "VIF":
        return state.vif_host(obj) == host_ref
    if cls == "VM":
        return obj.resident_on == host_ref
    return True
