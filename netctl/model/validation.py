"""Bad intent, found and said: `validate(state)` returns the pool as netctl applies it and a
`Problem` for each bad field, naming the object and the field, so bad intent costs only what is
bad.

Per field, not per object. A finding is *blocking* only for a field without which the object
cannot be placed at all (a VIF's network, VM, device or MAC; a network's bridge; a PIF's host;
...): that object is left out, with everything that depends on it, and says why. Any other bad
field is dropped: the object is applied as if the field were absent (`applied`): a network's
MTU as xapi's default 1500, a VIF without its rate limit, a bond without the property, an
`other_config` key ignored (`netctl.model.keys` reads every key netctl reads, and passes over a
bad value). Security fields fail safe: a VIF's locking netctl cannot read is enforced at its
strictest reading, never as `unlocked` — a bad `locking_mode` or `netctl-locking-mode` as
`locked`, allowed addresses that do not parse left out (locked to the ones that do), a network's
bad `default_locking_mode` as `disabled` (`flows.locking` says what each becomes).

Its own module because these rules are read twice: from scratch by `validate` (the definition),
and one object at a time by the engine's incremental validator (`netctl.engine.validation`),
which calls the same `check_*` functions, `applied` and `duplicate_macs` and is proven equal to
`validate`. Every check returns `Finding`s (field, message, blocking); the words are part of the
contract (operators read them, tests compare them). Pure: standard library and the model only.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple, TypeVar

from netctl.model.keys import (
    BOND_PROPERTIES,
    NETWORK_KEYS,
    PIF_KEYS,
    POOL_KEYS,
    QOS_KBPS,
    RULES,
    VIF_KEYS,
    key_findings,
)
from netctl.model.rules import parse as parse_rules
from netctl.model.state import PoolQueries, PoolState
from netctl.model.types import (
    BOND_MODES,
    NETWORK_DEFAULT_LOCKING_MODES,
    NULL_REF,
    PIF,
    SDN_PROTOCOLS,
    TUNNEL_PROTOCOLS,
    VIF,
    VIF_LOCKING_MODES,
    VLAN,
    VM,
    VM_POWER_STATES,
    XAPI_CLASS,
    Bond,
    FrozenMap,
    Host,
    Network,
    Pool,
    SDNController,
    Tunnel,
    XapiObject,
)

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
BRIDGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")

MTU_MIN, MTU_MAX = 68, 9216  # what xapi/networkd accept for network.MTU (a host NIC's MTUs)
DEFAULT_MTU = 1500  # xapi's network.MTU default
BAD_NETWORK_DEFAULT = "disabled"  # a default_locking_mode netctl cannot read (strictest)
BAD_LOCKING_MODE = "locked"  # a VIF locking_mode netctl cannot read (never unlocked)


class Finding(NamedTuple):
    """One bad field of one object: its xapi name, what is wrong and what netctl does instead,
    and whether it blocks the object (it cannot be placed without the field)."""

    field: str
    message: str
    blocking: bool = True


Findings = list[Finding]
Obj = TypeVar("Obj", bound=XapiObject)


def blocks(findings: Iterable[tuple]) -> bool:
    """Whether any finding leaves its object out (a plain (field, message) pair does)."""
    return any(len(f) < 3 or f[2] for f in findings)


def _soft(pairs: Iterable[tuple[str, str]]) -> Findings:
    return [Finding(f, m, False) for f, m in pairs]


@dataclass(frozen=True)
class Problem:
    """Bad intent in one xapi object, said so an operator can find and fix it."""

    object_class: str  # xapi class name: "VIF", "PIF", "network", ...
    ref: str
    uuid: str
    name_label: str  # a name a person recognises ("vm1 VIF 0", "host1 eth0", network name)
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.object_class} {self.name_label or self.uuid} ({self.uuid}): {self.field}: " \
               f"{self.message}"


def describe(state: PoolQueries, obj: XapiObject) -> str:
    """A human name for an object: what an operator would call it."""
    if isinstance(obj, Pool | Host | Network | VM):
        return obj.name_label or obj.uuid
    if isinstance(obj, PIF):
        host = state.hosts.get(obj.host)
        return f"{host.name_label if host else '?'} {obj.device}"
    if isinstance(obj, VIF):
        vm = state.vms.get(obj.vm)
        return f"{vm.name_label if vm else '?'} VIF {obj.device}"
    if isinstance(obj, Bond):
        master = state.pifs.get(obj.master)
        return f"bond {describe(state, master)}" if master else "bond"
    if isinstance(obj, VLAN):
        tagged = state.pifs.get(obj.tagged_pif)
        return f"VLAN {obj.tag} on {describe(state, tagged) if tagged else '?'}"
    if isinstance(obj, Tunnel):
        access = state.pifs.get(obj.access_pif)
        return f"tunnel {describe(state, access) if access else '?'}"
    if isinstance(obj, SDNController):
        return f"SDN controller {obj.protocol}:{obj.address}:{obj.port}"
    return ""


@functools.lru_cache(maxsize=8192)  # checked, then applied: each address is read twice
def _is_ipv4(text: str, allow_prefix: bool) -> bool:
    try:
        if allow_prefix and "/" in text:
            return ipaddress.ip_network(text, strict=False).version == 4
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


@functools.lru_cache(maxsize=8192)
def _is_ipv6(text: str, allow_prefix: bool) -> bool:
    try:
        if allow_prefix and "/" in text:
            return ipaddress.ip_network(text, strict=False).version == 6
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# One object against the objects already found valid (`state`)


def check_network(state: PoolQueries, n: Network, seen_bridges: dict[str, Network]
                  ) -> Findings:
    """A network; `seen_bridges` holds the valid networks checked before it (by bridge)."""
    errs: Findings = []
    if not n.bridge:
        errs.append(("bridge", "the network has no bridge name, so no OVS bridge can be built"))
    elif not BRIDGE_RE.match(n.bridge):
        errs.append(("bridge", f"'{n.bridge}' is not a usable bridge name (1-15 letters, digits, "
                               "'_', '-', '.')"))
    elif n.bridge in seen_bridges:
        other = seen_bridges[n.bridge]
        errs.append(("bridge", f"bridge '{n.bridge}' is already used by network "
                               f"'{other.name_label or other.uuid}'"))
    if not MTU_MIN <= n.mtu <= MTU_MAX:
        errs.append(Finding("MTU", f"{n.mtu} is outside {MTU_MIN}-{MTU_MAX}, the MTUs a host NIC "
                                   f"can carry; the network is applied with MTU {DEFAULT_MTU}",
                            False))
    if n.default_locking_mode not in NETWORK_DEFAULT_LOCKING_MODES:
        errs.append(Finding("default_locking_mode",
                            f"'{n.default_locking_mode}' is not one of unlocked, disabled; "
                            f"its network_default VIFs are enforced as {BAD_NETWORK_DEFAULT} "
                            "(no traffic) until it is corrected", False))
    return errs + _soft(key_findings(n, NETWORK_KEYS)) + rule_findings(n)


def check_pool(state: PoolQueries, pool: Pool) -> Findings:
    """The pool object: only the other_config keys netctl reads (it is never left out)."""
    return _soft(key_findings(pool, POOL_KEYS))


def check_pif(state: PoolQueries, p: PIF) -> Findings:
    """A PIF, first pass: its host, its network (against the valid networks), its own fields."""
    errs: Findings = []
    if p.host not in state.hosts:
        errs.append(("host", "the PIF's host is unknown or invalid"))
    if p.network not in state.networks and not (p.is_bond_slave and p.network == NULL_REF):
        # a bond member's own network plays no part while it is bonded
        errs.append(("network", "the PIF's network is unknown or invalid"))
    if not p.device:
        errs.append(("device", "the PIF has no device name"))
    if p.mac and not MAC_RE.match(p.mac):
        errs.append(("MAC", f"'{p.mac}' is not a MAC address"))
    if not (p.vlan == -1 or 0 <= p.vlan <= 4094):
        errs.append(("VLAN", f"VLAN tag {p.vlan} is outside 0-4094"))
    if p.ip_configuration_mode == "Static":
        if not _is_ipv4(p.ip, allow_prefix=False):
            errs.append(("IP", f"'{p.ip}' is not an IPv4 address, yet the PIF is Static"))
        elif p.netmask and not _is_ipv4(p.netmask, allow_prefix=False):
            errs.append(("netmask", f"'{p.netmask}' is not an IPv4 netmask"))
    for addr in p.ipv6_addresses:
        if not _is_ipv6(addr, allow_prefix=True):
            errs.append(("IPv6", f"'{addr}' is not an IPv6 address/prefix"))
    return errs + _soft(key_findings(p, PIF_KEYS))


def check_bond(state: PoolQueries, b: Bond) -> Findings:
    """A bond against the first-pass PIFs: its master, at least two members, mode, properties."""
    errs: Findings = []
    if b.master not in state.pifs:
        errs.append(("master", "the bond's master PIF is unknown or invalid"))
    slaves = [s for s in b.slaves if s in state.pifs]
    if len(slaves) < 2:
        errs.append(("slaves", f"a bond needs at least two valid member PIFs, "
                               f"it has {len(slaves)}"))
    if b.mode not in BOND_MODES:
        errs.append(("mode", f"'{b.mode}' is not one of {', '.join(BOND_MODES)}"))
    return errs + _bond_properties(b)


def _bond_properties(b: Bond) -> Findings:
    """Bond.properties: each bad one is left out (the bond is built without it)."""
    if b.mode != "lacp":
        return [Finding(f"properties:{key}", f"'{value}' is not valid for mode {b.mode}; "
                                             "ignored", False)
                for key, value in b.properties.items()]
    known = {k.name for k in BOND_PROPERTIES}
    out = _soft(key_findings(b, BOND_PROPERTIES))
    out += [Finding(f"properties:{key}", f"'{value}' is not a property of mode lacp (one of "
                                         f"{', '.join(sorted(known))}); ignored", False)
            for key, value in b.properties.items() if key not in known]
    return out


def check_vlan(state: PoolQueries, v: VLAN) -> Findings:
    """A VLAN against the first-pass PIFs: its tag, its tagged and untagged PIFs."""
    errs: Findings = []
    if not 0 <= v.tag <= 4094:
        errs.append(("tag", f"VLAN tag {v.tag} is outside 0-4094"))
    if v.tagged_pif not in state.pifs:
        errs.append(("tagged_PIF", "the PIF carrying the tagged frames is unknown or invalid"))
    if v.untagged_pif not in state.pifs:
        errs.append(("untagged_PIF", "the VLAN's own PIF is unknown or invalid"))
    return errs


def check_tunnel(state: PoolQueries, t: Tunnel) -> Findings:
    """A tunnel against the first-pass PIFs: protocol, access PIF, a transport PIF with an IP
    configuration in its primary family (`PIF.primary_address_type`: IPv4 or IPv6)."""
    errs: Findings = []
    if t.protocol not in TUNNEL_PROTOCOLS:
        errs.append(("protocol", f"'{t.protocol}' is not one of gre, vxlan"))
    if t.access_pif not in state.pifs:
        errs.append(("access_PIF", "the tunnel's access PIF is unknown or invalid"))
    transport = state.pifs.get(t.transport_pif)
    if transport is None:
        errs.append(("transport_PIF", "the tunnel's transport PIF is unknown or invalid"))
    elif not transport.primary_configured:
        errs.append(("transport_PIF", f"the transport PIF {describe(state, transport)} has no IP "
                                      f"address{_family_note(transport)}, so the tunnel has no "
                                      "endpoint"))
    return errs


def _family_note(pif: PIF) -> str:
    """Which family was looked at, when it is not the usual one."""
    return " in its primary family IPv6 (primary_address_type)" if pif.primary_ipv6 else ""


def check_pif_represents(state: PoolQueries, p: PIF) -> Findings:
    """A PIF, second pass: the bond, VLAN or tunnel it represents must be valid (checked
    against the valid bonds, VLANs and tunnels), else it cannot be built either."""
    if p.bond_master_of and not any(b in state.bonds for b in p.bond_master_of):
        return [("bond_master_of", "the bond this PIF represents is invalid")]
    if p.vlan_master_of != NULL_REF and p.vlan_master_of not in state.vlans:
        return [("VLAN_master_of", "the VLAN this PIF represents is invalid")]
    if p.tunnel_access_pif_of and not any(t in state.tunnels for t in p.tunnel_access_pif_of):
        return [("tunnel_access_PIF_of", "the tunnel this PIF gives access to is invalid")]
    return []


def check_vm(state: PoolQueries, vm: VM) -> Findings:
    """A VM: its power state; a Running VM needs a valid host and a domain id."""
    errs: Findings = []
    if vm.power_state not in VM_POWER_STATES:
        errs.append(("power_state", f"'{vm.power_state}' is not a VM power state"))
    if vm.power_state == "Running":
        if vm.resident_on not in state.hosts:
            errs.append(("resident_on", "the VM is Running but its host is unknown or invalid"))
        if vm.domid < 0:
            errs.append(("domid", f"the VM is Running but has no domain id ({vm.domid})"))
    return errs


def check_vif(state: PoolQueries, v: VIF) -> Findings:
    """A VIF against the valid networks, PIFs and VMs, in this order: what it hangs on (network,
    VM), what it is (device, MAC) — blocking: without them the VIF cannot be placed —, then
    what is applied as if absent or at its strictest: its locking, its trunks, its backend
    (other_config keys, QoS)."""
    return (_vif_references(state, v) + _vif_identity(v) + _vif_locking(v)
            + _vif_trunks(state, v) + _soft(key_findings(v, VIF_KEYS)) + _vif_qos(v)
            + rule_findings(v))


def _vif_references(state: PoolQueries, v: VIF) -> Findings:
    errs: Findings = []
    if v.network not in state.networks:
        errs.append(("network", "the VIF's network is unknown or invalid"))
    if v.vm not in state.vms:
        errs.append(("VM", "the VIF's VM is unknown or invalid"))
    return errs


def _vif_identity(v: VIF) -> Findings:
    errs: Findings = []
    if not v.device.isdigit():
        errs.append(("device", f"'{v.device}' is not a device number"))
    if not MAC_RE.match(v.mac):
        errs.append(("MAC", f"'{v.mac}' is not a MAC address"))
    elif int(v.mac[:2], 16) & 1:
        errs.append(("MAC", f"{v.mac} is a multicast MAC"))
    return errs


def _vif_locking(v: VIF) -> Findings:
    errs: Findings = []
    if v.locking_mode not in VIF_LOCKING_MODES:
        errs.append(Finding("locking_mode", f"'{v.locking_mode}' is not one of "
                                            f"{', '.join(VIF_LOCKING_MODES)}; the VIF is "
                                            f"enforced as {BAD_LOCKING_MODE} until it is "
                                            "corrected", False))
    errs += [Finding("ipv4_allowed", f"'{addr}' is not an IPv4 address; left out (the VIF may "
                                     "use only the addresses that are)", False)
             for addr in v.ipv4_allowed if not _is_ipv4(addr, allow_prefix=True)]
    errs += [Finding("ipv6_allowed", f"'{addr}' is not an IPv6 address; left out (the VIF may "
                                     "use only the addresses that are)", False)
             for addr in v.ipv6_allowed if not _is_ipv6(addr, allow_prefix=True)]
    return errs


def _trunks_allowed(state: PoolQueries, v: VIF) -> bool:
    """Whether the VIF's network lets it trunk VLANs (not a VLAN network's)."""
    return not (v.network in state.networks
                and any(p.vlan != -1 for p in state.network_pifs(v.network)))


def _vif_trunks(state: PoolQueries, v: VIF) -> Findings:
    errs: Findings = [Finding("trunks", f"VLAN {tag} is outside 0-4094; left out (the VIF "
                                        "trunks the others)", False)
                      for tag in v.trunks if not 0 <= tag <= 4094]
    if v.trunks and not _trunks_allowed(state, v):
        errs.append(Finding("trunks", "a VIF on a VLAN network cannot trunk VLANs; ignored (it "
                                      "takes untagged frames only)", False))
    return errs


def rule_findings(obj: VIF | Network) -> Findings:
    """`other_config:netctl-rules` of a VIF or network: one Problem per bad rule, saying what
    it is enforced as (`netctl.model.rules`: the rest of the list always applies)."""
    raw = RULES.raw(obj)
    if raw is None:
        return []
    return [Finding(RULES.field, bad.message(), False) for bad in parse_rules(raw).bad]


def _vif_qos(v: VIF) -> Findings:
    if v.qos_algorithm_type == "ratelimit":
        if QOS_KBPS.read(v) is None:  # absent too: a rate limit needs its rate
            raw = QOS_KBPS.raw(v) or ""
            return [Finding(QOS_KBPS.field, f"'{raw}' is not {QOS_KBPS.allowed}; "
                                            f"{QOS_KBPS.if_bad}", False)]
    elif v.qos_algorithm_type:
        return [Finding("qos_algorithm_type", f"'{v.qos_algorithm_type}' is not a QoS algorithm "
                                              "(only ratelimit exists); the VIF is applied "
                                              "without a rate limit", False)]
    return []


# ---------------------------------------------------------------------------------------------
# An object as netctl applies it


def applied(state: PoolQueries, obj: Obj) -> Obj:
    """The object as netctl applies it once its blocking findings are none: every bad field
    as if it were absent, a security field at its strictest reading (the module docstring);
    an object without bad fields is returned as it is. `other_config` keys are not touched:
    `netctl.model.keys` reads them and passes over a bad value."""
    if isinstance(obj, VIF):
        return _applied_vif(state, obj)  # type: ignore[return-value]
    if isinstance(obj, Network):
        changes: dict = {}
        if not MTU_MIN <= obj.mtu <= MTU_MAX:
            changes["mtu"] = DEFAULT_MTU
        if obj.default_locking_mode not in NETWORK_DEFAULT_LOCKING_MODES:
            changes["default_locking_mode"] = BAD_NETWORK_DEFAULT
        return replace(obj, **changes) if changes else obj
    if isinstance(obj, Bond) and obj.properties:
        bad = {f.field.removeprefix("properties:") for f in _bond_properties(obj)}
        if bad:
            return replace(obj, properties=FrozenMap(
                {k: v for k, v in obj.properties.items() if k not in bad}))
    return obj


def _applied_vif(state: PoolQueries, v: VIF) -> VIF:
    changes: dict = {}
    if v.locking_mode not in VIF_LOCKING_MODES:
        changes["locking_mode"] = BAD_LOCKING_MODE
    v4 = tuple(a for a in v.ipv4_allowed if _is_ipv4(a, allow_prefix=True))
    if v4 != v.ipv4_allowed:
        changes["ipv4_allowed"] = v4
    v6 = tuple(a for a in v.ipv6_allowed if _is_ipv6(a, allow_prefix=True))
    if v6 != v.ipv6_allowed:
        changes["ipv6_allowed"] = v6
    if v.trunks:  # (most VIFs trunk nothing: the network's PIFs are not walked for them)
        trunks = tuple(t for t in v.trunks if 0 <= t <= 4094) if _trunks_allowed(state, v) \
            else ()
        if trunks != v.trunks:
            changes["trunks"] = trunks
    if _vif_qos(v):
        changes["qos_algorithm_type"], changes["qos_algorithm_params"] = "", FrozenMap()
    return replace(v, **changes) if changes else v


def check_sdn(state: PoolQueries, c: SDNController) -> Findings:
    """An SDN controller: protocol, address (for ssl), port."""
    errs: Findings = []
    if c.protocol not in SDN_PROTOCOLS:
        errs.append(("protocol", f"'{c.protocol}' is not one of ssl, pssl"))
    if c.protocol == "ssl" and not _is_ipv4(c.address, allow_prefix=False):
        errs.append(("address", f"'{c.address}' is not an IPv4 address"))
    if not 0 <= c.port <= 65535:
        errs.append(("port", f"{c.port} is not a TCP port"))
    return errs


def duplicate_macs(state: PoolQueries, vifs: Iterable[VIF], incumbents: Collection[str] = ()
                   ) -> tuple[set[str], list[Problem]]:
    """Active VIFs of one network that share a MAC: xapi allows it, a switch cannot forward to
    two owners of one address. The first keeps working — the incumbent (a VIF that held the
    MAC before, `incumbents`), else the lowest uuid (after a restart netctl has no history) —
    and the others are quarantined (held disabled) with a Problem naming both VIFs."""
    groups: dict[tuple[str, str], list[VIF]] = {}
    for vif in vifs:
        if state.is_vif_active(vif):
            groups.setdefault((vif.network, vif.mac.lower()), []).append(vif)
    losers: set[str] = set()
    problems: list[Problem] = []
    for (net_ref, mac), group in groups.items():
        if len(group) < 2:
            continue
        group.sort(key=lambda v: (v.ref not in incumbents, v.uuid))
        first = group[0]
        net = state.networks.get(net_ref)
        where = f"network '{net.name_label or net.uuid}'" if net else "its network"
        for vif in group[1:]:
            losers.add(vif.ref)
            problems.append(Problem(
                "VIF", vif.ref, vif.uuid, describe(state, vif), "MAC",
                f"{mac} is already used on {where} by {describe(state, first)} ({first.uuid}); "
                "one address cannot have two ports, so this VIF is held disabled (no traffic) "
                "until one of the two changes its MAC or network"))
    return losers, problems


# ---------------------------------------------------------------------------------------------
# The whole pool


class _Report:
    """The Problems of one `validate` run, each object named as the unvalidated pool names it."""

    def __init__(self, state: PoolState) -> None:
        self.state = state
        self.problems: list[Problem] = []

    def report(self, obj: XapiObject, errs: Iterable[tuple]) -> bool:
        """Record `obj`'s findings; True when none blocks it (the object is placed)."""
        errs = list(errs)
        for f in errs:
            self.problems.append(Problem(XAPI_CLASS[type(obj)], obj.ref, obj.uuid,
                                         describe(self.state, obj), f[0], f[1]))
        return not blocks(errs)

    def keep(self, objs: Iterable[Obj], check: Callable[[Obj], Findings],
             against: PoolQueries) -> dict[str, Obj]:
        """The objects no finding of `check` blocks (by ref, in their order), as applied
        (`applied`, against the valid objects `against`); every finding reported."""
        return {o.ref: applied(against, o) for o in objs if self.report(o, check(o))}


def _valid_networks(state: PoolState, found: _Report) -> dict[str, Network]:
    """Networks by (uuid, ref): a bridge name belongs to the first valid network naming it."""
    seen: dict[str, Network] = {}
    networks: dict[str, Network] = {}
    for n in sorted(state.networks.values(), key=lambda n: (n.uuid, n.ref)):
        if found.report(n, check_network(state, n, seen)):
            networks[n.ref] = applied(state, n)
            seen[n.bridge] = n
    return networks


def validate(state: PoolState, incumbents: Collection[str] = ()
             ) -> tuple[PoolState, list[Problem]]:
    """Check intent; return the snapshot without invalid objects, and the Problems found.

    Objects are checked in dependency order (hosts and networks, then PIFs, then bonds, VLANs
    and tunnels, then VMs, then VIFs), each against the already-valid objects, so an object
    whose network or host is invalid is left out too and says why. Active VIFs that share a MAC
    on a network are kept but quarantined (`duplicate_macs`; `incumbents` are the VIF refs that
    held their MAC before). Pure: same input, same output.
    """
    found = _Report(state)

    def keep(objs: Iterable[Obj], check: Callable[..., Findings]) -> dict[str, Obj]:
        return found.keep(objs, partial(check, kept), kept)

    # The pool and hosts are never left out; each tier is checked against the one before.
    if state.pool is not None:
        found.report(state.pool, check_pool(state, state.pool))
    kept = PoolState(pool=state.pool, hosts=state.hosts)
    kept = kept.replace(networks=_valid_networks(state, found))
    kept = kept.replace(pifs=keep(state.pifs.values(), check_pif))
    kept = kept.replace(
        bonds=keep(state.bonds.values(), check_bond),
        vlans=keep(state.vlans.values(), check_vlan),
        tunnels=keep(state.tunnels.values(), check_tunnel),
    )
    kept = kept.replace(pifs=keep(kept.pifs.values(), check_pif_represents))
    kept = kept.replace(
        vms=keep(state.vms.values(), check_vm),
        sdn_controllers=keep(state.sdn_controllers.values(), check_sdn),
    )
    kept = kept.replace(vifs=keep(state.vifs.values(), check_vif))
    losers, dup_problems = duplicate_macs(kept, kept.vifs.values(), incumbents)
    if losers:
        found.problems += dup_problems
        kept = kept.replace(quarantined=frozenset(losers))
    return kept, found.problems
