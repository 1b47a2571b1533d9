"""Bonds: xapi `Bond` objects as OVS bond ports, with xcp-networkd's exact mapping, and the
status OVS reports about them (LACP negotiation, active member). Pure: no I/O."""

from bonding.mapping import BondColumns, bond_columns, bond_port, networkd_bond_properties
from bonding.status import BondMemberStatus, LacpStatus, parse_bond_show, parse_lacp_show

__all__ = [
    "BondColumns", "BondMemberStatus", "LacpStatus", "bond_columns", "bond_port",
    "networkd_bond_properties", "parse_bond_show", "parse_lacp_show",
]
