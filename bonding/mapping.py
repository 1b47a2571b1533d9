"""xapi Bond → OVS bond port, exactly as xapi (nm.ml `create_bond`) and xcp-networkd
(network_utils.ml `Ovs.make_bond_properties`) do it, in two steps so each can be checked
against its source:

1. `networkd_bond_properties`: the property list xapi hands networkd — `mode`, `miimon=100`,
   `downdelay=200`, `updelay=31000`, `use_carrier=1`, `hashing-algorithm`, plus
   `rebalance-interval=1800000` (non-lacp) or `lacp-time`, `lacp-aggregation-key`,
   `lacp-fallback-ab` (lacp, when the Bond has them); the bond-master PIF's
   `other_config:bond-<k>` keys override or add (only for bonds of two or more members).
2. `bond_columns`: what networkd turns that list into: `lacp`/`bond_mode` from mode and hashing
   algorithm, the "legacy" integer properties (`bond_updelay`, `bond_downdelay`,
   `other_config:bond-miimon-interval`, `bond-detect-mode`, `bond-rebalance-interval`; a
   negative or non-integer value is dropped, as networkd drops it), `lacp-time` and
   `lacp-fallback-ab` verbatim, `lacp-aggregation-key`/`lacp-actor-key` on every member
   interface, and any other key as `other_config:bond-<k>`.

The only deviation from networkd: an override of a known property whose value cannot be used
(`netctl.model.keys.BOND_OVERRIDES`: networkd would drop it with a debug line, leaving the
property unset) is passed over as if it were absent, so xapi's value applies, and the model's
key check reports it as a Problem on the master PIF, so an operator sees why it had no effect.
"""

from __future__ import annotations

from dataclasses import dataclass

from netctl.hostconfig import InterfaceConfig, PortConfig
from netctl.model import PIF, Bond, FrozenMap
from netctl.model.keys import BOND_OVERRIDE

# networkd's known_props: everything else becomes other_config:bond-<k>.
KNOWN_PROPS = ("mode", "hashing-algorithm", "updelay", "downdelay", "miimon", "use_carrier",
               "rebalance-interval", "lacp-time", "lacp-aggregation-key", "lacp-fallback-ab")
# "legacy" integer properties: (xapi property, OVS column or other_config key)
LEGACY_INT = (("updelay", "bond_updelay"), ("downdelay", "bond_downdelay"),
              ("miimon", "other_config:bond-miimon-interval"),
              ("use_carrier", "other_config:bond-detect-mode"),
              ("rebalance-interval", "other_config:bond-rebalance-interval"))
VERBATIM = (("lacp-time", "lacp-time"), ("lacp-fallback-ab", "lacp-fallback-ab"))
PER_INTERFACE = (("lacp-aggregation-key", "lacp-aggregation-key"),
                 ("lacp-actor-key", "lacp-actor-key"))


def networkd_bond_properties(bond: Bond, n_members: int, master_other_config: FrozenMap
                             ) -> list[tuple[str, str]]:
    """The (key, value) list xapi passes networkd for a bond (nm.ml create_bond), in order."""
    props: list[tuple[str, str]] = []
    if n_members > 1:
        mode = bond.mode
        props = [("mode", mode), ("miimon", "100"), ("downdelay", "200"), ("updelay", "31000"),
                 ("use_carrier", "1"),
                 ("hashing-algorithm", bond.properties.get("hashing_algorithm", ""))]
        if mode != "lacp":
            props.append(("rebalance-interval", "1800000"))
        else:
            for key in ("lacp-time", "lacp-aggregation-key", "lacp-fallback-ab"):
                if key in bond.properties:
                    props.append((key, bond.properties[key]))
    # an override whose value netctl cannot use is passed over, as if it were absent: what xapi
    # passes applies (the key check says so: `netctl.model.keys.BOND_OVERRIDES`)
    overrides = [(k[len("bond-"):], v) for k, v in master_other_config.items()
                 if k.startswith("bond-")
                 and (k not in BOND_OVERRIDE or BOND_OVERRIDE[k].value(v) is not None)]
    overridden = {k for k, _ in overrides}
    return [(k, v) for k, v in props if k not in overridden] + overrides


@dataclass(frozen=True)
class BondColumns:
    """The OVS columns of a bond port and of each of its member interfaces."""

    lacp: str
    bond_mode: str
    bond_updelay: int
    bond_downdelay: int
    other_config: FrozenMap
    interface_other_config: FrozenMap
    dropped: tuple[tuple[str, str], ...] = ()  # (property, value) networkd would ignore


def bond_columns(properties: list[tuple[str, str]]) -> BondColumns:
    """networkd's Ovs.make_bond_properties, as OVSDB columns instead of ovs-vsctl words."""
    props = dict(properties)
    mode = props.get("mode", "balance-slb")
    if mode == "lacp":
        lacp = "active"
        bond_mode = "balance-slb" if props.get("hashing-algorithm", "") == "src_mac" \
            else "balance-tcp"  # tcpudp_ports, and networkd's default for anything else
    else:
        lacp, bond_mode = "off", mode
    columns: dict[str, int] = {"bond_updelay": 0, "bond_downdelay": 0}
    other: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []
    for prop, target in LEGACY_INT:
        if prop not in props:
            continue
        raw = props[prop]
        value = int(raw) if raw.strip().lstrip("-").isdigit() else -1
        if value < 0:
            dropped.append((prop, raw))
            continue
        text = ("carrier" if value > 0 else "miimon") if prop == "use_carrier" else str(value)
        if target.startswith("other_config:"):
            other[target[len("other_config:"):]] = text
        else:
            columns[target] = value
    for prop, key in VERBATIM:
        if prop in props:
            other[key] = props[prop]
    iface_other = {key: props[prop] for prop, key in PER_INTERFACE if prop in props}
    for key, value in properties:
        if key not in KNOWN_PROPS and key != "lacp-actor-key":
            other[f"bond-{key}"] = value
    return BondColumns(lacp=lacp, bond_mode=bond_mode, bond_updelay=columns["bond_updelay"],
                       bond_downdelay=columns["bond_downdelay"], other_config=FrozenMap(other),
                       interface_other_config=FrozenMap(iface_other), dropped=tuple(dropped))


def bond_port(master: PIF, bond: Bond, members: tuple[PIF, ...], mtu: int) -> PortConfig:
    """The OVS port of a bond master PIF: named after the master (`bond0`), one interface per
    member NIC, the bond's MAC on the port, and networkd's mode/LACP columns."""
    props = networkd_bond_properties(bond, len(members), master.other_config)
    cols = bond_columns(props)
    interfaces = tuple(
        InterfaceConfig(name=m.device, mtu_request=mtu, other_config=cols.interface_other_config)
        for m in members)
    port = PortConfig(
        name=master.device, interfaces=interfaces, bond_mode=cols.bond_mode, lacp=cols.lacp,
        bond_updelay=cols.bond_updelay, bond_downdelay=cols.bond_downdelay,
        mac=master.mac or None, other_config=cols.other_config)
    return port
