"""Bonds without LACP built by netctl (issue 4): active-backup and balance-slb against a
switch with independent ports; traffic between VMs on the two hosts survives a member cut.
Lab: topologies/hostnet-ab.yaml."""

from __future__ import annotations

import time

import pytest

from bonding import parse_bond_show, parse_lacp_show
from harness.hostnet_lab import HostnetLab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def hn():
    lab = HostnetLab("hostnet-ab.yaml", "t4b", "198.18.41.0/24")
    try:
        yield lab
    finally:
        lab.down()


def bond_show(hn, host: str) -> dict:
    return {m.name: m for m in parse_bond_show(hn.lab.ovs(host).appctl("bond/show"))["bond0"]}


def test_bonds_have_xapi_modes_and_no_lacp(hn):
    for host, mode in (("host1", "active-backup"), ("host2", "balance-slb")):
        ovs = hn.lab.ovs(host)
        assert ovs.vsctl("get", "Port", "bond0", "bond_mode") == mode
        assert ovs.vsctl("get", "Port", "bond0", "lacp") == "off"
        assert "bond0" not in parse_lacp_show(ovs.appctl("lacp/show"))
    assert [m.name for m in bond_show(hn, "host1").values() if m.active] != []


def test_vms_reach_each_other_over_non_lacp_bonds(hn):
    assert hn.wait_ping("vm1", "10.10.0.12")
    assert hn.ping("vm2", "10.10.0.11")


@pytest.mark.parametrize("host", ["host1", "host2"])
def test_cutting_the_active_member_keeps_traffic_flowing(hn, host):
    assert hn.wait_ping("vm1", "10.10.0.12")
    members = bond_show(hn, host)
    active = next((m.name for m in members.values() if m.active), "eth0")
    ping = hn.lab.popen("vm1", ["ping", "-n", "-c", "60", "-i", "0.05", "-W", "1",
                                "10.10.0.12"])
    time.sleep(1.0)
    hn.lab.exec(host, ["ip", "link", "set", active, "down"])
    out, _ = ping.communicate(timeout=30)
    received = int(out.split(" received")[0].rsplit(" ", 1)[-1])
    assert received >= 45, out
    assert not bond_show(hn, host)[active].enabled
    assert hn.ping("vm1", "10.10.0.12")
