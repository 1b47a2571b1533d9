"""Host networking built by netctl over OVSDB, with real packets (issue 4): LACP bonds against
the lab switch, VLAN isolation through the trunk, GRE/VXLAN private networks over a bond and
over a VLAN PIF. Lab: topologies/hostnet-lacp.yaml (2 hosts)."""

from __future__ import annotations

import time

import pytest

from bonding import parse_bond_show, parse_lacp_show
from harness.hostnet_lab import HostnetLab

pytestmark = pytest.mark.lab


def vlan_pif_tunnels(session) -> None:
    """What an admin does in xapi: give each host's VLAN 10 PIF an address and run the private
    network `privv` over it (tunnel.create per host)."""
    x = session.xenapi
    privv = x.network.get_by_name_label("privv")[0]
    vlan10 = x.network.get_by_name_label("vlan10")[0]
    pifs = sorted(x.network.get_PIFs(vlan10),
                  key=lambda p: x.host.get_name_label(x.PIF.get_host(p)))
    for i, pif in enumerate(pifs, start=1):
        x.PIF.reconfigure_ip(pif, "Static", f"172.30.10.{i}", "255.255.255.0", "", "")
        x.tunnel.create(pif, privv, "vxlan")


@pytest.fixture(scope="module")
def hn():
    lab = HostnetLab("hostnet-lacp.yaml", "t4a", "198.18.40.0/24", vlan_pif_tunnels)
    try:
        assert lab.lab.wait_lacp(15)
        yield lab
    finally:
        lab.down()


def test_host_and_switch_bonds_negotiate_lacp_on_both_sides(hn):
    tor = parse_lacp_show(hn.lab.tor.appctl("lacp/show"))
    assert tor["po1"].negotiated and tor["po2"].negotiated
    for host in ("host1", "host2"):
        bond = parse_lacp_show(hn.lab.ovs(host).appctl("lacp/show"))["bond0"]
        assert bond.negotiated, bond
        assert bond.attached() == ("eth0", "eth1")


def test_applying_the_same_pool_again_sends_nothing(hn):
    for host, db in hn.dbs.items():
        assert db.apply(hn.configs[host]).operations == ()


def test_vms_on_two_hosts_reach_each_other_over_the_bonds(hn):
    assert hn.wait_ping("vm1", "10.10.0.14")
    assert hn.ping("vm4", "10.10.0.11")


def test_vlan10_vms_reach_each_other_through_the_trunk_vlan20_vms_do_not(hn):
    assert hn.wait_ping("vm2", "10.20.0.15")  # VLAN 10, host1 -> host2
    assert hn.wait_ping("vm3", "10.20.0.16")  # VLAN 20, host1 -> host2
    # the same subnet on VLAN 20: never reachable from VLAN 10, same host or not
    assert not hn.ping("vm2", "10.20.0.16", count=2)
    assert not hn.ping("vm2", "10.20.0.13", count=2)
    assert not hn.ping("vm5", "10.20.0.13", count=2)


def tunnel_interfaces(hn, host: str, bridge: str) -> list[dict]:
    ovs = hn.lab.ovs(host)
    out = []
    for port in ovs.vsctl("list-ports", bridge).split():
        kind = ovs.vsctl("get", "Interface", port, "type")
        if kind in ("gre", "vxlan"):
            out.append({"type": kind,
                        "remote_ip": ovs.vsctl("get", "Interface", port,
                                               "options:remote_ip").strip('"'),
                        "key": ovs.vsctl("get", "Interface", port, "options:key").strip('"')})
    return out


@pytest.mark.parametrize("bridge, kind, transport", [
    ("xapi4", "vxlan", "172.30.0."),   # over the bond
    ("xapi5", "gre", "172.30.0."),     # over the bond
    ("xapi6", "vxlan", "172.30.10."),  # over the VLAN 10 PIF
])
def test_two_hosts_get_matching_tunnel_ports_with_the_same_key(hn, bridge, kind, transport):
    [one] = tunnel_interfaces(hn, "host1", bridge)
    [two] = tunnel_interfaces(hn, "host2", bridge)
    assert one["type"] == two["type"] == kind
    assert one["key"] == two["key"]
    assert (one["remote_ip"], two["remote_ip"]) == (f"{transport}2", f"{transport}1")


def test_keys_differ_between_private_networks(hn):
    keys = {tunnel_interfaces(hn, "host1", b)[0]["key"] for b in ("xapi4", "xapi5", "xapi6")}
    assert len(keys) == 3


@pytest.mark.parametrize("src, dst", [
    ("vm1", "10.40.0.14"),  # VXLAN over the LACP bond
    ("vm2", "10.41.0.15"),  # GRE over the LACP bond
    ("vm3", "10.42.0.16"),  # VXLAN over the VLAN 10 PIF
])
def test_private_network_vms_reach_each_other_across_hosts(hn, src, dst):
    assert hn.wait_ping(src, dst)


def test_one_member_link_cut_traffic_continues(hn):
    """Last in the module: the member stays down for a while (bond_updelay 31 s)."""
    assert hn.wait_ping("vm1", "10.10.0.14")
    ping = hn.lab.popen("vm1", ["ping", "-n", "-c", "60", "-i", "0.05", "-W", "1",
                                "10.10.0.14"])
    time.sleep(1.0)
    hn.lab.exec("host1", ["ip", "link", "set", "eth0", "down"])  # carrier lost, both ends
    out, _ = ping.communicate(timeout=30)
    received = int(out.split(" received")[0].rsplit(" ", 1)[-1])
    assert received >= 50, out
    members = {m.name: m for m in parse_bond_show(hn.lab.ovs("host1").appctl("bond/show"))
               ["bond0"]}
    assert not members["eth0"].enabled and members["eth1"].enabled
    assert hn.ping("vm1", "10.10.0.14")
    assert hn.ping("vm1", "10.40.0.14")  # the tunnel over the bond too
