"""Which checks and live changes `netctl demo FILE` can make on a topology (pure).

Why: the demo used to hard-code the demo pool's scenario (VM `vm4`, VLAN 20, `vm1` locked to
`10.10.0.11`, `host1/eth0` a bond member). On any other pool that pinged addresses nobody has,
reported FAILs that were artefacts of the scenario and crashed where `vm1` had no IPv6. Here
every check is derived from what the topology has (a locked VIF with its own allowed
addresses, a VIF on a VLAN network, a VM that can migrate, a host with a bond), each with a
peer that can prove its effect with a ping, and what the topology lacks is a `Skip` that says
why. Checks are chosen so they do not disturb each other: the VM that migrates is not the
locked one, and the bond cut is chosen with the VMs where they are after the migration.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netctl.lab.expect import allowed, blocked
from netctl.topology import Topology, Vif, Vm


@dataclass(frozen=True)
class VifRef:
    """One VIF of one VM, and the addresses (no prefix) configured on it."""

    vm: str
    device: int
    network: str
    ipv4: str | None
    ipv6: str | None

    @property
    def label(self) -> str:
        return f"{self.vm}/{self.device}"

    @property
    def ifname(self) -> str:
        return f"eth{self.device}"


@dataclass(frozen=True)
class Spoof:
    """`sender` (locked to its own addresses) sends crafted frames; `receiver` captures.
    IPv6 frames only when both ends have IPv6 and the sender's is allowed."""

    sender: VifRef
    receiver: VifRef
    ipv6: bool


@dataclass(frozen=True)
class Replug:
    """VIF.unplug then VIF.plug of `vif`; `peer` pings `address` to see it go and come."""

    vif: VifRef
    peer: VifRef
    address: str
    vlan: int | None  # the VIF's network's VLAN tag (None: not a VLAN network)


@dataclass(frozen=True)
class Migrate:
    """VM.pool_migrate `vm` from `source` to `target`; each (peer, address) must reach it."""

    vm: str
    source: str
    target: str
    checks: tuple[tuple[VifRef, str], ...]


@dataclass(frozen=True)
class BondCut:
    """`host`'s bond member `member` loses carrier while `pinger` pings `address` (a VIF on
    another host, over the bond's network)."""

    host: str
    bond: str
    member: str
    pinger: VifRef
    address: str


@dataclass(frozen=True)
class Relock:
    """The locked `vif` sends from `spare` (an address it is not allowed, in its subnet) to
    `address` (`peer`'s): it gets through once unlocked, is dropped once locked again. The
    VIF ends locked, as the topology has it."""

    vif: VifRef
    peer: VifRef
    address: str
    spare: str


@dataclass(frozen=True)
class Skip:
    """A check the topology does not allow, and why (printed by the demo)."""

    check: str
    why: str


@dataclass(frozen=True)
class Scenario:
    spoof: Spoof | Skip
    replug: Replug | Skip
    migrate: Migrate | Skip
    bond: BondCut | Skip
    relock: Relock | Skip

    @property
    def skipped(self) -> list[Skip]:
        return [c for c in (self.spoof, self.replug, self.migrate, self.bond, self.relock)
                if isinstance(c, Skip)]


def _ip(cidrs: tuple[str, ...]) -> str | None:
    return str(ipaddress.ip_interface(cidrs[0]).ip) if cidrs else None


def ref(vm: Vm, vif: Vif) -> VifRef:
    return VifRef(vm.name, vif.device, vif.network, _ip(vif.ipv4), _ip(vif.ipv6))


def _vifs(topology: Topology) -> list[tuple[Vm, Vif]]:
    return [(vm, vif) for vm in topology.vms for vif in vm.vifs]


def _same_subnet(a: Vif, b: Vif, version: int) -> bool:
    ours = [ipaddress.ip_interface(c) for c in (a.ipv4 if version == 4 else a.ipv6)]
    theirs = [ipaddress.ip_interface(c) for c in (b.ipv4 if version == 4 else b.ipv6)]
    return bool(ours and theirs and theirs[0].ip in ours[0].network)


def _locked_to_own(vif: Vif, version: int) -> bool:
    """Locked, and the first configured address of that family is one it may send from."""
    if vif.locking_mode != "locked":
        return False
    mine = _ip(vif.ipv4 if version == 4 else vif.ipv6)
    return mine is not None and allowed(vif, mine)


def _passes(topology: Topology, vif: Vif, version: int) -> bool:
    """Can this VIF send and receive with its first address of that family? (Not if its
    locking drops that address: `locked` to others, or `disabled`, also by network default.)"""
    mine = _ip(vif.ipv4 if version == 4 else vif.ipv6)
    return mine is not None and mine not in blocked(topology, vif)


def _peers(topology: Topology, vm: Vm, vif: Vif, version: int) -> list[tuple[Vm, Vif]]:
    """VIFs of other VMs on the same network and subnet that can talk with `vif`, those on
    another host first (the path between hosts is what the demo shows)."""
    out = [(m, v) for m, v in _vifs(topology)
           if m.name != vm.name and v.network == vif.network
           and _same_subnet(v, vif, version) and _passes(topology, v, version)]
    return sorted(out, key=lambda mv: mv[0].host == vm.host)


def derive(topology: Topology) -> Scenario:
    """The demo's scenario for this topology. The live changes run in order (replug,
    migration, bond cut, relock); the bond cut is chosen with the VMs where they are after
    the migration, and the VM that migrates is not the locked one the other checks star."""
    spoof, relock = _spoof(topology), _relock(topology)
    star = {c.sender.vm for c in (spoof,) if isinstance(c, Spoof)}
    star |= {c.vif.vm for c in (relock,) if isinstance(c, Relock)}
    migrate = _migrate(topology, avoid=star)
    placement = {vm.name: vm.host for vm in topology.vms}
    if isinstance(migrate, Migrate):
        placement[migrate.vm] = migrate.target
    return Scenario(spoof, _replug(topology), migrate, _bond(topology, placement), relock)


def _spoof(topology: Topology) -> Spoof | Skip:
    for vm, vif in _vifs(topology):
        if not _locked_to_own(vif, 4):
            continue
        for peer_vm, peer in _peers(topology, vm, vif, 4):
            ipv6 = _locked_to_own(vif, 6) and bool(peer.ipv6) and _passes(topology, peer, 6)
            return Spoof(ref(vm, vif), ref(peer_vm, peer), ipv6)
    return Skip("spoofed frames from a locked VIF",
                "no VIF locked to its own IPv4 address with another VM on its network")


def _relock(topology: Topology) -> Relock | Skip:
    for version in (4, 6):
        for vm, vif in _vifs(topology):
            if not _locked_to_own(vif, version):
                continue
            for peer_vm, peer in _peers(topology, vm, vif, version):
                spare = _spare(topology, vif, version)
                if spare is None:
                    continue
                mine = ref(peer_vm, peer)
                return Relock(ref(vm, vif), mine, mine.ipv4 if version == 4 else mine.ipv6
                              or "", spare)
    return Skip("locking mode unlocked and locked again",
                "no VIF locked to its own addresses with another VM on its network")


def _spare(topology: Topology, vif: Vif, version: int) -> str | None:
    """An address of the VIF's subnet that no one has and the VIF is not allowed."""
    net = ipaddress.ip_interface((vif.ipv4 if version == 4 else vif.ipv6)[0]).network
    used = {str(ipaddress.ip_interface(c).ip) for _, v in _vifs(topology)
            for c in (*v.ipv4, *v.ipv6)}
    used |= {str(ipaddress.ip_interface(c).ip) for o in topology.switch.outside
             for c in (*o.ipv4, *o.ipv6)}
    for offset in (111, 99, 77, 200, 3):
        if offset < net.num_addresses - 1:
            candidate = str(net.network_address + offset)
            if candidate not in used and not allowed(vif, candidate):
                return candidate
    return None


def _replug(topology: Topology) -> Replug | Skip:
    """A VIF on a VLAN network if there is one (what the demo pool shows), else any VIF;
    not a locked one, and preferably the only VIF of its VM (the VM is then simply gone)."""
    vlan_first = sorted(_vifs(topology),
                        key=lambda mv: (topology.network(mv[1].network).kind != "vlan",
                                        mv[1].locking_mode == "locked", len(mv[0].vifs)))
    for vm, vif in vlan_first:
        for version in (4, 6):
            if not _passes(topology, vif, version):
                continue
            for peer_vm, peer in _peers(topology, vm, vif, version):
                mine = ref(vm, vif)
                return Replug(mine, ref(peer_vm, peer),
                              (mine.ipv4 if version == 4 else mine.ipv6) or "",
                              topology.network(vif.network).vlan_tag)
    return Skip("VIF unplug and plug", "no VIF with another VM on its network and subnet")


def _migrate(topology: Topology, avoid: set[str]) -> Migrate | Skip:
    """A VM other than `avoid` (the locked one), sharing most networks with it (the
    migration is then seen on the traffic the demo's other checks use), to a host that has
    all its networks, preferably one where none of the VMs that check it run."""
    if len(topology.hosts) < 2:
        return Skip("VM live migration", "a single host: nowhere to migrate to")
    star_nets = {v.network for vm in topology.vms if vm.name in avoid for v in vm.vifs}
    for vm in sorted(topology.vms, key=lambda m: -len({v.network for v in m.vifs} & star_nets)):
        if vm.name in avoid or not vm.vifs:
            continue
        nets = {v.network for v in vm.vifs}
        targets = [h.name for h in topology.hosts if h.name != vm.host
                   and all(h in topology.hosts_with(n) for n in nets)]
        checks = []
        for vif in vm.vifs:
            for version in (4, 6):
                passes = _passes(topology, vif, version)
                peers = _peers(topology, vm, vif, version) if passes else []
                if peers:
                    mine = ref(vm, vif)
                    checks.append((ref(*peers[0]), (mine.ipv4 if version == 4 else mine.ipv6)
                                   or ""))
                    break
        if targets and checks:
            # a host none of the checking peers is on: the traffic still crosses hosts after
            peer_hosts = {topology.vm(p.vm).host for p, _ in checks}
            targets.sort(key=lambda h: h in peer_hosts)
            return Migrate(vm.name, vm.host, targets[0], tuple(checks))
    return Skip("VM live migration",
                "no VM with a peer on its networks and another host that has all of them")


def _bond(topology: Topology, placement: dict[str, str]) -> BondCut | Skip:
    """A host with a bond of two cabled members or more, a VM there (after the migration:
    `placement`) on the bond's network or a VLAN on it, and a peer on another host."""
    cabled = {(c.host, c.nic) for c in topology.switch.cables}
    for host in topology.hosts:
        for bond in host.bonds:
            member = next((m for m in bond.members if (host.name, m) in cabled), None)
            if member is None or sum((host.name, m) in cabled for m in bond.members) < 2:
                continue
            nets = {bond.network} | {n.name for n in topology.networks
                                     if n.kind == "vlan" and n.vlan_parent == bond.network}
            for vm, vif in _vifs(topology):
                if placement[vm.name] != host.name or vif.network not in nets:
                    continue
                for version in (4, 6):
                    if not _passes(topology, vif, version):
                        continue
                    far = [(m, v) for m, v in _peers(topology, vm, vif, version)
                           if placement[m.name] != host.name]
                    if far:
                        dst = ref(*far[0])
                        return BondCut(host.name, bond.device, member, ref(vm, vif),
                                       (dst.ipv4 if version == 4 else dst.ipv6) or "")
    if not any(h.bonds for h in topology.hosts):
        return Skip("bond member failure", "no host has a bond")
    return Skip("bond member failure", "no host with a bond of two cabled members, a VM on its "
                "network and a peer on another host")
