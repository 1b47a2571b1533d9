"""Bond → OVS bond port: every row of networkd's mapping (spec §4.2) and the bond Problems."""

from __future__ import annotations

import pytest

from bonding import bond_columns, networkd_bond_properties
from harness.hostnet_builders import PoolBuilder
from netctl.model import Bond, FrozenMap
from vlan import compile_host


def bond_pool(mode: str, master_other_config: dict | None = None, **props: str):
    b = PoolBuilder()
    h = b.host("host1")
    net = b.network("pool", "xapi1")
    e0, e1 = b.nic(h, "eth0", None), b.nic(h, "eth1", None)
    bond, master = b.bond(h, "bond0", net, [e0, e1], mode,
                          master_other_config=master_other_config, **props)
    return b, h, bond, master


def bond_of(mode: str, master_other_config: dict | None = None, **props: str):
    b, h, _, _ = bond_pool(mode, master_other_config, **props)
    config = compile_host(b.state(), h.ref)
    assert not config.problems, config.problems
    return config.bridge("xapi1").port("bond0")


@pytest.mark.parametrize("mode, props, lacp, bond_mode", [
    ("balance-slb", {}, "off", "balance-slb"),
    ("active-backup", {}, "off", "active-backup"),
    ("lacp", {"hashing_algorithm": "tcpudp_ports"}, "active", "balance-tcp"),
    ("lacp", {"hashing_algorithm": "src_mac"}, "active", "balance-slb"),
    ("lacp", {}, "active", "balance-tcp"),  # networkd's default when no algorithm is given
])
def test_mode_and_hashing_algorithm_map_to_lacp_and_bond_mode(mode, props, lacp, bond_mode):
    port = bond_of(mode, **props)
    assert (port.lacp, port.bond_mode) == (lacp, bond_mode)


@pytest.mark.parametrize("mode", ["balance-slb", "active-backup", "lacp"])
def test_every_mode_gets_networkd_delays_miimon_and_carrier_detection(mode):
    port = bond_of(mode)
    assert port.bond_updelay == 31000
    assert port.bond_downdelay == 200
    assert port.other_config["bond-miimon-interval"] == "100"
    assert port.other_config["bond-detect-mode"] == "carrier"


@pytest.mark.parametrize("mode", ["balance-slb", "active-backup"])
def test_non_lacp_modes_rebalance_every_30_minutes_and_carry_no_lacp_keys(mode):
    port = bond_of(mode)
    assert port.other_config["bond-rebalance-interval"] == "1800000"
    assert not any(k.startswith("lacp-") for k in port.other_config)


def test_lacp_carries_time_fallback_and_aggregation_key_on_every_member():
    port = bond_of("lacp", **{"lacp-time": "fast", "lacp-fallback-ab": "false",
                              "lacp-aggregation-key": "42"})
    assert port.other_config["lacp-time"] == "fast"
    assert port.other_config["lacp-fallback-ab"] == "false"
    assert "bond-rebalance-interval" not in port.other_config
    assert "lacp-aggregation-key" not in port.other_config
    assert [i.other_config["lacp-aggregation-key"] for i in port.interfaces] == ["42", "42"]


def test_bond_port_is_named_after_the_master_with_members_and_the_bond_mac():
    b, h, _, master = bond_pool("lacp")
    port = compile_host(b.state(), h.ref).bridge("xapi1").port("bond0")
    assert [i.name for i in port.interfaces] == ["eth0", "eth1"]
    assert port.mac == master.mac
    assert all(i.mtu_request == 1500 and i.type == "" for i in port.interfaces)


def test_master_pif_bond_keys_override_and_add():
    port = bond_of("balance-slb", {"bond-updelay": "0", "bond-use_carrier": "0",
                                   "bond-lacp-actor-key": "7", "bond-foo": "bar"})
    assert port.bond_updelay == 0
    assert port.other_config["bond-detect-mode"] == "miimon"
    assert port.other_config["bond-foo"] == "bar"  # unknown property: bond-<k>
    assert [i.other_config["lacp-actor-key"] for i in port.interfaces] == ["7", "7"]


def test_an_override_netctl_cannot_use_is_passed_over_and_reported_on_the_master_pif():
    """As if the key were absent (issue 17): xapi's downdelay (200) applies, not networkd's
    drop of the property (0), and the master PIF says why."""
    b, h, _, master = bond_pool("balance-slb", {"bond-downdelay": "soon"})
    config = compile_host(b.state(), h.ref)
    assert config.bridge("xapi1").port("bond0").bond_downdelay == 200
    [problem] = config.problems
    assert (problem.object_class, problem.uuid, problem.field) == \
        ("PIF", master.uuid, "other_config:bond-downdelay")
    assert "host1 bond0" in str(problem)


def test_networkd_property_list_in_xapi_order():
    bond = Bond("OpaqueRef:b", "u", mode="lacp", properties=FrozenMap(
        {"hashing_algorithm": "src_mac", "lacp-time": "slow", "lacp-fallback-ab": "true"}))
    assert networkd_bond_properties(bond, 2, FrozenMap()) == [
        ("mode", "lacp"), ("miimon", "100"), ("downdelay", "200"), ("updelay", "31000"),
        ("use_carrier", "1"), ("hashing-algorithm", "src_mac"), ("lacp-time", "slow"),
        ("lacp-fallback-ab", "true")]
    assert networkd_bond_properties(bond, 1, FrozenMap()) == []  # one member: no bond args


def test_unknown_hashing_algorithm_falls_back_to_balance_tcp_like_networkd():
    cols = bond_columns([("mode", "lacp"), ("hashing-algorithm", "l3")])
    assert (cols.lacp, cols.bond_mode) == ("active", "balance-tcp")


def test_bond_of_one_member_is_a_problem_and_skipped_the_rest_compiles():
    b = PoolBuilder()
    h = b.host("host1")
    pool, storage = b.network("pool", "xapi1"), b.network("storage", "xenbr2")
    e0 = b.nic(h, "eth0", None)
    b.nic(h, "eth2", storage)
    bond, _ = b.bond(h, "bond0", pool, [e0])
    config = compile_host(b.state(), h.ref)
    assert config.bridge_names() == ("xenbr2",)
    assert any(p.object_class == "Bond" and p.uuid == bond.uuid and p.field == "slaves"
               for p in config.problems)


def test_bond_members_on_two_hosts_is_a_problem_naming_both_hosts():
    b = PoolBuilder()
    h1, h2 = b.host("host1"), b.host("host2")
    net = b.network("pool", "xapi1")
    e0, e1 = b.nic(h1, "eth0", None), b.nic(h2, "eth1", None)
    bond, _ = b.bond(h1, "bond0", net, [e0, e1], "lacp")
    config = compile_host(b.state(), h1.ref)
    assert config.bridges == ()
    [problem] = [p for p in config.problems if p.object_class == "Bond"]
    assert problem.uuid == bond.uuid and problem.field == "slaves"
    assert "host1" in problem.message and "host2" in problem.message


def test_bond_members_get_no_bridge_of_their_own():
    b, h, _, _ = bond_pool("lacp")
    config = compile_host(b.state(), h.ref)
    assert config.bridge_names() == ("xapi1",)
    assert "eth0" not in [p.name for p in config.bridge("xapi1").ports]
