"""Parsing what OVS reports about bonds (ovs-appctl lacp/show, bond/show)."""

from __future__ import annotations

from bonding import parse_bond_show, parse_lacp_show

LACP_SHOW = """\
---- bond0 ----
  status: active negotiated
  sys_id: 02:8a:7b:72:74:d2
  sys_priority: 65534
  aggregation key: 1
  lacp_time: fast

member: eth0: current attached
  port_id: 2
  port_priority: 65535
  may_enable: true

member: eth1: defaulted detached
  port_id: 1
  may_enable: false
"""

BOND_SHOW = """\
---- bond0 ----
bond_mode: balance-tcp
updelay: 31000 ms
downdelay: 200 ms
lacp_status: negotiated

member eth0: enabled
  active member
  may_enable: true

member eth1: disabled
  may_enable: false
"""


def test_lacp_show_negotiated_and_attached_members():
    status = parse_lacp_show(LACP_SHOW)["bond0"]
    assert status.negotiated
    assert status.attached() == ("eth0",)
    assert status.members["eth1"] == "defaulted detached"


def test_lacp_show_not_negotiated():
    assert not parse_lacp_show("---- po1 ----\n  status: active\n")["po1"].negotiated


def test_bond_show_enabled_and_active_members():
    members = {m.name: m for m in parse_bond_show(BOND_SHOW)["bond0"]}
    assert members["eth0"].enabled and members["eth0"].active
    assert not members["eth1"].enabled and not members["eth1"].active
