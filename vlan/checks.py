"""Host-networking checks beyond `netctl.model.validate`: the intent xapi itself would refuse
(or OVS could not build) for bridges, bonds, VLANs and tunnels.

Each check names the xapi object and field; the offending object is removed from the snapshot
before `validate` runs, so that everything depending on it is left out too (and says why),
while the rest of the pool still compiles.
"""

from __future__ import annotations

from collections.abc import Iterable

from netctl.model import (
    XAPI_CLASS,
    PoolState,
    Problem,
    XapiObject,
    describe,
    validate,
)

MTU_MIN, MTU_MAX = 68, 9216  # what xapi/networkd accept for network.MTU and PIF other_config:mtu
TAG_MIN, TAG_MAX = 1, 4094  # VLAN 0 is priority tagging, 4095 reserved: not a VLAN network


def _problem(state: PoolState, obj: XapiObject, fld: str, message: str) -> Problem:
    return Problem(XAPI_CLASS[type(obj)], obj.ref, obj.uuid, describe(state, obj), fld, message)


def check_host_networking(state: PoolState) -> tuple[PoolState, list[Problem]]:
    """`validate(state)` preceded by the host-networking checks. Returns the snapshot holding
    only buildable objects, and every Problem found (these checks' first)."""
    problems: list[Problem] = []
    drop: dict[str, set[str]] = {"networks": set(), "pifs": set(), "bonds": set(),
                                 "vlans": set(), "tunnels": set()}

    for net in sorted(state.networks.values(), key=lambda n: n.uuid):
        if not MTU_MIN <= net.mtu <= MTU_MAX:
            problems.append(_problem(state, net, "MTU", f"{net.mtu} is outside "
                                     f"{MTU_MIN}-{MTU_MAX}, the MTUs a host NIC can carry"))
            drop["networks"].add(net.ref)
    for pif in sorted(state.pifs.values(), key=lambda p: p.uuid):
        raw = pif.other_config.get("mtu")
        if raw is not None and not (raw.isdigit() and MTU_MIN <= int(raw) <= MTU_MAX):
            problems.append(_problem(state, pif, "other_config:mtu",
                                     f"'{raw}' is not an MTU in {MTU_MIN}-{MTU_MAX}"))
            drop["pifs"].add(pif.ref)

    for bond in sorted(state.bonds.values(), key=lambda b: b.uuid):
        master = state.pifs.get(bond.master)
        hosts = {state.pifs[s].host for s in bond.slaves if s in state.pifs}
        if master is not None:
            hosts.add(master.host)
        if len(hosts) > 1:
            names = sorted(state.hosts[h].name_label if h in state.hosts else h for h in hosts)
            problems.append(_problem(state, bond, "slaves", "the bond's members are on "
                                     f"different hosts ({', '.join(names)}); a bond joins NICs "
                                     "of one host"))
            drop["bonds"].add(bond.ref)

    seen_tags: dict[tuple[str, int], XapiObject] = {}
    for vlan in sorted(state.vlans.values(), key=lambda v: v.uuid):
        if not TAG_MIN <= vlan.tag <= TAG_MAX:
            problems.append(_problem(state, vlan, "tag", f"VLAN tag {vlan.tag} is outside "
                                     f"{TAG_MIN}-{TAG_MAX}"))
            drop["vlans"].add(vlan.ref)
            continue
        tagged = state.pifs.get(vlan.tagged_pif)
        if tagged is not None and tagged.type.value not in ("physical", "bond_master", "other"):
            problems.append(_problem(state, vlan, "tagged_PIF", f"{describe(state, tagged)} is "
                                     f"a {tagged.type.value.replace('_', ' ')} PIF; a VLAN "
                                     "needs a NIC or bond below it"))
            drop["vlans"].add(vlan.ref)
            continue
        key = (vlan.tagged_pif, vlan.tag)
        if key in seen_tags:
            other = seen_tags[key]
            untagged = state.pifs.get(getattr(other, "untagged_pif", ""))
            net = state.networks.get(untagged.network) if untagged else None
            by = f" by network '{net.name_label or net.uuid}'" if net else ""
            problems.append(_problem(state, vlan, "tag", f"VLAN {vlan.tag} already exists on "
                                     f"{describe(state, tagged) if tagged else '?'}{by}"))
            drop["vlans"].add(vlan.ref)
            continue
        seen_tags[key] = vlan

    for tun in sorted(state.tunnels.values(), key=lambda t: t.uuid):
        transport = state.pifs.get(tun.transport_pif)
        if transport is not None and not transport_ipv4(transport.ip,
                                                        transport.ip_configuration_mode):
            problems.append(_problem(state, tun, "transport_PIF", "the transport PIF "
                                     f"{describe(state, transport)} has no IP address, so the "
                                     "tunnel has no endpoint"))
            drop["tunnels"].add(tun.ref)

    trimmed = state.replace(**{name: _without(getattr(state, name).values(), refs)
                               for name, refs in drop.items()})
    kept, more = validate(trimmed)
    return kept, problems + more


def transport_ipv4(ip: str, mode: str) -> bool:
    """A PIF can be a tunnel endpoint when it has an IPv4 address (Static or DHCP-learnt)."""
    return mode != "None" and bool(ip)


def _without(objs: Iterable[XapiObject], refs: set[str]) -> dict[str, XapiObject]:
    return {o.ref: o for o in objs if o.ref not in refs}
