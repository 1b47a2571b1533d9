"""What should reach what in a lab pool, derived from the topology alone (pure).

Used by `make demo` and by the tests to compare expected with observed connectivity. A probe
is a pair of addresses in the same IP subnet (so the sender has a route and only the network
decides); it is expected to succeed exactly when both ends are on the same layer-2 segment:
the same xapi network for two VIFs, or the network whose uplink VLAN is the outside machine's
access VLAN.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netctl.topology import Topology, Vif


@dataclass(frozen=True)
class Endpoint:
    node: str  # VM or outside machine
    ifname: str
    segment: str  # what decides reachability: "net:NAME" or "vlan:N"
    label: str  # how a person names it, e.g. "vm1/eth0 (pool)"
    addresses: tuple[str, ...]  # CIDRs
    # addresses (no prefix) VIF locking drops: a `locked` VIF's addresses it is not allowed,
    # every address of a `disabled` one; frames neither from nor to them get through
    blocked: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Probe:
    src: Endpoint
    dst: Endpoint
    address: str  # destination address (no prefix)
    expected: bool

    @property
    def family(self) -> str:
        return "IPv6" if ":" in self.address else "IPv4"


def network_vlan(topology: Topology, network: str) -> int | None:
    """The switch VLAN an external or VLAN network's frames travel in (None: not on the wire
    as a plain VLAN, e.g. a private network, or NICs cabled inconsistently)."""
    net = topology.network(network)
    if net.kind == "private":
        return None
    base = topology.network(net.vlan_parent) if net.kind == "vlan" else net
    vlans = set()
    for host in topology.hosts_with(base.name):
        devices = [n.device for n in host.nics if n.network == base.name]
        devices += [m for b in host.bonds if b.network == base.name for m in b.members]
        for cable in topology.switch.cables:
            if cable.host == host.name and cable.nic in devices:
                if net.kind == "vlan":
                    vlans.add(net.vlan_tag if net.vlan_tag in cable.trunk else None)
                else:
                    vlans.add(cable.native if cable.trunk else cable.vlan)
    return vlans.pop() if len(vlans) == 1 else None


def blocked(topology: Topology, vif: Vif) -> frozenset[str]:
    """The VIF's addresses its locking mode drops (xapi's setup-vif-rules): a topology may
    lock a VIF to addresses other than those its guest has, and then those do not talk."""
    mode = vif.locking_mode
    if mode == "network_default":
        mode = topology.network(vif.network).default_locking_mode
    mine = {str(ipaddress.ip_interface(c).ip) for c in (*vif.ipv4, *vif.ipv6)}
    if mode == "disabled":
        return frozenset(mine)
    if mode != "locked":
        return frozenset()
    return frozenset(a for a in mine if not allowed(vif, a))


def allowed(vif: Vif, address: str) -> bool:
    """Is a locked VIF allowed to send from `address`? (An allowed entry may be a prefix.)"""
    ip = ipaddress.ip_address(address)
    nets = (ipaddress.ip_network(a, strict=False)
            for a in (vif.ipv4_allowed if ip.version == 4 else vif.ipv6_allowed))
    return any(ip in n for n in nets)


def endpoints(topology: Topology, plugged: dict[str, list[int]] | None = None) -> list[Endpoint]:
    out = []
    for vm in topology.vms:
        for vif in vm.vifs:
            if plugged is not None and vif.device not in plugged.get(vm.name, []):
                continue
            out.append(
                Endpoint(
                    vm.name,
                    f"eth{vif.device}",
                    f"net:{vif.network}",
                    f"{vm.name}/eth{vif.device} ({vif.network})",
                    vif.ipv4 + vif.ipv6,
                    blocked(topology, vif),
                )
            )
    vlan_segment = {network_vlan(topology, n.name): n.name for n in topology.networks}
    for o in topology.switch.outside:
        net = vlan_segment.get(o.vlan)
        segment = f"net:{net}" if net else f"vlan:{o.vlan}"
        out.append(
            Endpoint(o.name, "eth0", segment, f"{o.name} (outside, VLAN {o.vlan})", o.ipv4 + o.ipv6)
        )
    return out


def probes(topology: Topology, plugged: dict[str, list[int]] | None = None) -> list[Probe]:
    """Every ordered pair of endpoints with addresses in a common subnet, per address."""
    eps = endpoints(topology, plugged)
    out = []
    for src in eps:
        for dst in eps:
            if src.node == dst.node:
                continue
            for s in src.addresses:
                for d in dst.addresses:
                    si, di = ipaddress.ip_interface(s), ipaddress.ip_interface(d)
                    if si.version == di.version and di.ip in si.network:
                        passes = str(si.ip) not in src.blocked and str(di.ip) not in dst.blocked
                        out.append(Probe(src, dst, str(di.ip),
                                         src.segment == dst.segment and passes))
    return out
