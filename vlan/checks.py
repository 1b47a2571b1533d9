"""Host-networking checks beyond `netctl.model.validate`: the intent xapi itself would refuse
(or OVS could not build) for bonds, VLANs and tunnels (MTUs are the model's: a bad one is
applied as xapi's default, `netctl.model.validation`).

Each check names the xapi object and field; the offending object is removed from the snapshot
before `validate` runs, so that everything depending on it is left out too (and says why),
while the rest of the pool still compiles.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from netctl.model import (
    VLAN,
    XAPI_CLASS,
    Bond,
    PoolQueries,
    PoolState,
    Problem,
    Tunnel,
    XapiObject,
    describe,
    validate,
)

TAG_MIN, TAG_MAX = 1, 4094  # VLAN 0 is priority tagging, 4095 reserved: not a VLAN network


def _problem(state: PoolQueries, obj: XapiObject, fld: str, message: str) -> Problem:
    return Problem(XAPI_CLASS[type(obj)], obj.ref, obj.uuid, describe(state, obj), fld, message)


def bond_host_problem(state: PoolQueries, bond: Bond) -> list[tuple[str, str]]:
    """A bond's members on different hosts (read from the unvalidated pool)."""
    master = state.pifs.get(bond.master)
    hosts = {state.pifs[s].host for s in bond.slaves if s in state.pifs}
    if master is not None:
        hosts.add(master.host)
    if len(hosts) > 1:
        names = sorted(state.hosts[h].name_label if h in state.hosts else h for h in hosts)
        return [("slaves", f"the bond's members are on different hosts ({', '.join(names)}); "
                           "a bond joins NICs of one host")]
    return []


def _vlan_own_problem(state: PoolQueries, vlan: VLAN) -> list[tuple[str, str]]:
    if not TAG_MIN <= vlan.tag <= TAG_MAX:
        return [("tag", f"VLAN tag {vlan.tag} is outside {TAG_MIN}-{TAG_MAX}")]
    tagged = state.pifs.get(vlan.tagged_pif)
    if tagged is not None and tagged.type.value not in ("physical", "bond_master", "other"):
        return [("tagged_PIF", f"{describe(state, tagged)} is a "
                               f"{tagged.type.value.replace('_', ' ')} PIF; a VLAN needs a NIC "
                               "or bond below it")]
    return []


def vlan_problem(state: PoolQueries, vlan: VLAN, same_tag: Iterable[str]
                 ) -> list[tuple[str, str]]:
    """Tag range, what carries it, and uniqueness: of the VLANs with the same tag on the same
    PIF (`same_tag`, refs, this one included) the first by uuid that passes the other rules
    keeps the tag."""
    own = _vlan_own_problem(state, vlan)
    if own:
        return own
    rivals = sorted((state.vlans[r] for r in same_tag if r in state.vlans
                     and r != vlan.ref), key=lambda v: v.uuid)
    first = next((v for v in rivals if v.uuid < vlan.uuid and not _vlan_own_problem(state, v)),
                 None)
    if first is None:
        return []
    tagged = state.pifs.get(vlan.tagged_pif)
    untagged = state.pifs.get(first.untagged_pif)
    net = state.networks.get(untagged.network) if untagged else None
    by = f" by network '{net.name_label or net.uuid}'" if net else ""
    return [("tag", f"VLAN {vlan.tag} already exists on "
                    f"{describe(state, tagged) if tagged else '?'}{by}")]


def tunnel_transport_problem(state: PoolQueries, tun: Tunnel) -> list[tuple[str, str]]:
    """A transport PIF without an address in its primary family (`primary_address_type`):
    the tunnel has no endpoint."""
    transport = state.pifs.get(tun.transport_pif)
    if transport is not None and not transport.primary_address:
        family = (" in its primary family IPv6 (primary_address_type)"
                  if transport.primary_ipv6 else "")
        return [("transport_PIF", f"the transport PIF {describe(state, transport)} has no IP "
                                  f"address{family}, so the tunnel has no endpoint")]
    return []


def check_host_networking(state: PoolState, incumbents: Collection[str] = ()
                          ) -> tuple[PoolState, list[Problem]]:
    """`validate(state)` preceded by the host-networking checks. Returns the snapshot holding
    only buildable objects, and every Problem found (these checks' first)."""
    problems: list[Problem] = []
    drop: dict[str, set[str]] = {"bonds": set(), "vlans": set(), "tunnels": set()}

    def check(obj: XapiObject, bucket: str, errs: list[tuple[str, str]]) -> None:
        for fld, message in errs:
            problems.append(_problem(state, obj, fld, message))
        if errs:
            drop[bucket].add(obj.ref)

    for bond in sorted(state.bonds.values(), key=lambda b: b.uuid):
        check(bond, "bonds", bond_host_problem(state, bond))
    groups: dict[tuple[str, int], list[str]] = {}
    for vlan in state.vlans.values():
        groups.setdefault((vlan.tagged_pif, vlan.tag), []).append(vlan.ref)
    for vlan in sorted(state.vlans.values(), key=lambda v: v.uuid):
        check(vlan, "vlans", vlan_problem(state, vlan, groups[(vlan.tagged_pif, vlan.tag)]))
    for tun in sorted(state.tunnels.values(), key=lambda t: t.uuid):
        check(tun, "tunnels", tunnel_transport_problem(state, tun))

    trimmed = state.replace(**{name: _without(getattr(state, name).values(), refs)
                               for name, refs in drop.items()})
    kept, more = validate(trimmed, incumbents)
    return kept, problems + more


def _without(objs: Iterable[XapiObject], refs: set[str]) -> dict[str, XapiObject]:
    return {o.ref: o for o in objs if o.ref not in refs}
