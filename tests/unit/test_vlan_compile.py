"""compile_host: bridges, fake bridges, trunks, controllers and the Problems (spec §4.2, §4.7)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.hostnet_builders import PoolBuilder
from vlan import compile_host

ROOT = Path(__file__).resolve().parents[2]


def one_nic_pool(**pool_oc: str):
    b = PoolBuilder(**pool_oc)
    h = b.host("host1")
    net = b.network("pool", "xenbr0")
    pif = b.nic(h, "eth0", net, mac="02:00:00:00:01:00")
    return b, h, net, pif


def test_physical_pif_is_a_bridge_with_its_nic_hwaddr_network_uuid_and_defaults():
    b, h, net, pif = one_nic_pool()
    config = compile_host(b.state(), h.ref, datapath_type="netdev")
    assert config.host_uuid == "uuid-host1"
    [br] = config.bridges
    assert br.name == "xenbr0"
    assert [p.name for p in br.ports] == ["xenbr0", "eth0"]
    assert br.ports[0].interfaces[0].type == "internal"
    assert br.port("eth0").interfaces[0].type == ""
    assert br.other_config["hwaddr"] == "02:00:00:00:01:00"
    assert br.other_config["mac-table-size"] == "10000"
    assert br.other_config["mcast-snooping-disable-flood-unregistered"] == "true"
    assert "disable-in-band" not in br.other_config
    assert br.external_ids["xs-network-uuids"] == net.uuid
    assert br.fail_mode == "standalone"  # no controller: nothing else would forward
    assert br.datapath_type == "netdev"
    assert br.protocols == ("OpenFlow13",)
    assert br.controllers == ()
    assert config.problems == ()


@pytest.mark.parametrize("pool_oc, net_oc, pif_oc, expected", [
    ({}, {}, {}, "secure"),
    ({"vswitch-controller-fail-mode": "standalone"}, {}, {}, "standalone"),
    ({"vswitch-controller-fail-mode": "standalone"}, {},
     {"vswitch-controller-fail-mode": "secure"}, "secure"),
    ({"vswitch-controller-fail-mode": "secure"}, {}, {}, "secure"),
    ({"vswitch-controller-fail-mode": "secure"},
     {"vswitch-controller-fail-mode": "standalone"}, {}, "standalone"),
    ({}, {"vswitch-controller-fail-mode": "secure"}, {}, "secure"),
    ({}, {}, {"vswitch-controller-fail-mode": "secure"}, "secure"),
])
def test_fail_mode_from_pif_else_network_else_pool_else_secure(pool_oc, net_oc, pif_oc, expected):
    b = PoolBuilder(**pool_oc)
    h = b.host("host1")
    net = b.network("pool", "xenbr0", **net_oc)
    b.nic(h, "eth0", net, **pif_oc)
    config = compile_host(b.state(), h.ref, controllers=["tcp:192.0.2.1:6653"])
    assert config.bridge("xenbr0").fail_mode == expected


def test_disable_in_band_follows_vswitch_disable_in_band():
    b, h, _, _ = one_nic_pool(**{"vswitch-disable-in-band": "true"})
    assert compile_host(b.state(), h.ref).bridges[0].other_config["disable-in-band"] == "true"


def test_mtu_from_network_or_pif_other_config_on_nic_and_bridge_device():
    b = PoolBuilder()
    h = b.host("host1")
    b.nic(h, "eth0", b.network("a", "xenbr0", mtu=9000))
    b.nic(h, "eth1", b.network("b", "xenbr1", mtu=9000), mtu="1600")
    config = compile_host(b.state(), h.ref)
    assert config.bridge("xenbr0").port("eth0").interfaces[0].mtu_request == 9000
    assert config.bridge("xenbr0").ports[0].interfaces[0].mtu_request == 9000
    assert config.bridge("xenbr1").port("eth1").interfaces[0].mtu_request == 1600


def test_every_bridge_gets_the_controller_targets_and_protocols():
    b = PoolBuilder()
    h = b.host("host1")
    b.nic(h, "eth0", b.network("a", "xenbr0"))
    b.nic(h, "eth1", b.network("b", "xenbr1"))
    targets = ("tcp:198.18.40.1:6653", "tcp:198.18.40.2:6653")
    config = compile_host(b.state(), h.ref, controllers=targets)
    assert [br.controllers for br in config.bridges] == [targets, targets]
    assert all(br.protocols == ("OpenFlow13",) for br in config.bridges)


def test_external_bridges_also_get_the_port_config_targets_and_openflow10():
    """`port_config` (`netctl.sinks.portconfig`): a NIC's or bond's bridge also connects there
    and allows OpenFlow 1.0 (a bridge without an uplink has no NORMAL: `vlan.host._finish`)."""
    b = PoolBuilder()
    h = b.host("host1")
    b.nic(h, "eth0", b.network("a", "xenbr0"))
    eth1, eth2 = b.nic(h, "eth1", None), b.nic(h, "eth2", None)
    b.bond(h, "bond0", b.network("b", "xapi1"), [eth1, eth2])
    targets, extra = ("tcp:198.18.40.1:6653",), ("tcp:198.18.40.1:6654",)
    config = compile_host(b.state(), h.ref, controllers=targets, port_config=extra)
    got = {br.name: (br.controllers, br.protocols) for br in config.bridges}
    assert got == {"xenbr0": (targets + extra, ("OpenFlow10", "OpenFlow13")),
                   "xapi1": (targets + extra, ("OpenFlow10", "OpenFlow13"))}
    alone = compile_host(b.state(), h.ref, port_config=extra)  # no controller: none at all
    assert all(br.controllers == () for br in alone.bridges)


def test_unplugged_pif_and_other_hosts_pifs_make_no_bridge():
    b = PoolBuilder()
    h1, h2 = b.host("host1"), b.host("host2")
    net = b.network("pool", "xenbr0")
    b.nic(h1, "eth0", net, attached=False)
    b.nic(h2, "eth0", net)
    assert compile_host(b.state(), h1.ref).bridges == ()
    assert compile_host(b.state(), h2.ref).bridge_names() == ("xenbr0",)


def test_vlan_is_a_fake_bridge_on_the_parent_with_tag_and_the_tagged_pif_mac():
    b, h, parent, pif = one_nic_pool()
    v10, v20 = b.network("v10", "xapi2"), b.network("v20", "xapi3", mtu=1400)
    b.vlan(pif, 20, v20)
    b.vlan(pif, 10, v10)
    config = compile_host(b.state(), h.ref)
    assert config.bridge_names() == ("xenbr0",)  # fake bridges are ports of their parent
    br = config.bridge("xenbr0")
    fake = br.port("xapi2")
    assert (fake.fake_bridge, fake.tag) == (True, 10)
    assert fake.interfaces[0].type == "internal"
    assert fake.interfaces[0].mac == pif.mac
    # where `ovs-vsctl br-get-external-id xapi2 xs-network-uuids` looks for a fake bridge
    assert fake.external_ids["fake-bridge-xs-network-uuids"] == v10.uuid
    assert br.port("xapi3").interfaces[0].mtu_request == 1400
    # the parent lists its own network first, then its VLAN networks by tag
    assert br.external_ids["xs-network-uuids"] == f"{parent.uuid};{v10.uuid};{v20.uuid}"


def test_vlan_on_a_bond_goes_on_the_bond_bridge():
    b = PoolBuilder()
    h = b.host("host1")
    pool, v10 = b.network("pool", "xapi1"), b.network("v10", "xapi2")
    _, master = b.bond(h, "bond0", pool, [b.nic(h, "eth0", None), b.nic(h, "eth1", None)],
                       "lacp")
    b.vlan(master, 10, v10)
    br = compile_host(b.state(), h.ref).bridge("xapi1")
    assert [p.name for p in br.ports] == ["xapi1", "bond0", "xapi2"]
    assert br.port("xapi2").tag == 10


@pytest.mark.parametrize("tag", [0, 4095, -5, 5000])
def test_vlan_tag_outside_1_4094_is_a_problem_and_the_rest_compiles(tag):
    b, h, _, pif = one_nic_pool()
    bad, good = b.network("bad", "xapi2"), b.network("good", "xapi3")
    vlan, _ = b.vlan(pif, tag, bad)
    b.vlan(pif, 30, good)
    config = compile_host(b.state(), h.ref)
    assert [p.name for p in config.bridge("xenbr0").ports] == ["xenbr0", "eth0", "xapi3"]
    problem = next(p for p in config.problems if p.object_class == "VLAN")
    assert (problem.uuid, problem.field) == (vlan.uuid, "tag")
    assert str(tag) in problem.message and "host1 eth0" in str(problem)


def test_duplicate_vlan_tag_on_one_pif_is_a_problem_for_the_second():
    b, h, _, pif = one_nic_pool()
    first, second = b.network("first", "xapi2"), b.network("second", "xapi3")
    b.vlan(pif, 10, first)
    dup, _ = b.vlan(pif, 10, second)
    config = compile_host(b.state(), h.ref)
    assert [p.name for p in config.bridge("xenbr0").ports] == ["xenbr0", "eth0", "xapi2"]
    problem = next(p for p in config.problems if p.object_class == "VLAN")
    assert (problem.uuid, problem.field) == (dup.uuid, "tag")
    assert "first" in problem.message


def test_same_tag_on_two_different_pifs_is_fine():
    b = PoolBuilder()
    h = b.host("host1")
    e0 = b.nic(h, "eth0", b.network("a", "xenbr0"))
    e1 = b.nic(h, "eth1", b.network("b", "xenbr1"))
    b.vlan(e0, 10, b.network("v10a", "xapi2"))
    b.vlan(e1, 10, b.network("v10b", "xapi3"))
    config = compile_host(b.state(), h.ref)
    assert config.problems == ()
    assert config.bridge("xenbr1").port("xapi3").tag == 10


def test_vlan_whose_tagged_pif_is_unplugged_is_a_problem():
    b = PoolBuilder()
    h = b.host("host1")
    e0 = b.nic(h, "eth0", b.network("a", "xenbr0"), attached=False)
    _, untagged = b.vlan(e0, 10, b.network("v10", "xapi2"))
    config = compile_host(b.state(), h.ref)
    assert config.bridges == ()
    [problem] = config.problems
    assert (problem.object_class, problem.uuid) == ("PIF", untagged.uuid)


@pytest.mark.parametrize("mtu", [67, 9217, 65000])
def test_network_mtu_outside_68_9216_is_a_problem_the_bridge_gets_1500(mtu):
    """Per field (issue 17): the network is built, with xapi's default MTU, and says why."""
    b = PoolBuilder()
    h = b.host("host1")
    bad = b.network("jumbo", "xenbr0", mtu=mtu)
    b.nic(h, "eth0", bad)
    b.nic(h, "eth1", b.network("ok", "xenbr1"))
    config = compile_host(b.state(), h.ref)
    assert config.bridge_names() == ("xenbr0", "xenbr1")
    assert config.bridge("xenbr0").port("eth0").interfaces[0].mtu_request == 1500
    problem = next(p for p in config.problems if p.object_class == "network")
    assert (problem.uuid, problem.name_label, problem.field) == (bad.uuid, "jumbo", "MTU")
    assert "applied with MTU 1500" in problem.message


def test_pif_mtu_override_outside_range_is_a_problem_on_the_pif_the_network_mtu_applies():
    b = PoolBuilder()
    h = b.host("host1")
    pif = b.nic(h, "eth0", b.network("a", "xenbr0"), mtu="10000")
    config = compile_host(b.state(), h.ref)
    assert config.bridge("xenbr0").port("eth0").interfaces[0].mtu_request == 1500
    assert (config.problems[0].uuid, config.problems[0].field) == (pif.uuid, "other_config:mtu")


def test_two_networks_claiming_one_bridge_name_is_a_problem_one_bridge_is_built():
    b = PoolBuilder()
    h = b.host("host1")
    first, second = b.network("first", "xenbr0"), b.network("second", "xenbr0")
    b.nic(h, "eth0", first)
    b.nic(h, "eth1", second)
    config = compile_host(b.state(), h.ref)
    assert config.bridge_names() == ("xenbr0",)
    [port] = [p.name for p in config.bridge("xenbr0").ports if p.name.startswith("eth")]
    problem = next(p for p in config.problems if p.object_class == "network")
    assert problem.field == "bridge"
    loser = second if port == "eth0" else first
    assert problem.uuid == loser.uuid


def test_vif_trunks_become_port_trunks_and_internal_bridge_for_vif_only_network():
    b, h, net, _ = one_nic_pool()
    internal = b.network("internal", "xapi9")
    vm = b.vm("vm1", h, 7)
    b.vif(vm, 0, net, trunks=(30, 10))
    b.vif(vm, 1, internal)
    config = compile_host(b.state(), h.ref)
    assert {v.name: v.trunks for v in config.vif_ports} == {"vif7.0": (10, 30), "vif7.1": ()}
    br = config.bridge("xapi9")
    assert [p.name for p in br.ports] == ["xapi9"]  # no uplink: host-internal network
    assert "hwaddr" not in br.other_config and br.fail_mode == "standalone"


def test_vifs_of_vms_on_other_hosts_or_halted_are_ignored():
    b, h, net, _ = one_nic_pool()
    other = b.host("host2")
    b.vif(b.vm("vm1", other, 3), 0, net)
    halted = b.vm("vm2", h, 4)
    b.set(halted, power_state="Halted")
    b.vif(halted, 0, net)
    assert compile_host(b.state(), h.ref).vif_ports == ()


def test_problems_are_filtered_to_the_host():
    b = PoolBuilder()
    h1, h2 = b.host("host1"), b.host("host2")
    b.nic(h1, "eth0", b.network("a", "xenbr0"))
    bad = b.nic(h2, "eth0", b.network("b", "xenbr1"), mtu="5")
    assert compile_host(b.state(), h1.ref).problems == ()
    assert compile_host(b.state(), h2.ref).problems[0].uuid == bad.uuid


def test_unknown_host_is_a_problem_not_an_exception():
    b, _, _, _ = one_nic_pool()
    config = compile_host(b.state(), "OpaqueRef:nope")
    assert config.bridges == () and config.problems[0].object_class == "host"


def test_compile_is_deterministic():
    b, h, _, pif = one_nic_pool()
    b.vlan(pif, 10, b.network("v10", "xapi2"))
    assert compile_host(b.state(), h.ref) == compile_host(b.state(), h.ref)


@pytest.mark.parametrize("package", ["vlan", "bonding"])
def test_pure_packages_import_no_io_library(package):
    forbidden = {"os_ken", "ovsdbapp", "pyroute2", "subprocess", "socket", "ovs"}
    files = [*(ROOT / package).glob("*.py"), ROOT / "netctl" / "hostconfig.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path} imports {name}"


def test_standalone_on_a_bridge_with_locked_vifs_is_a_problem_that_names_them():
    b = PoolBuilder()
    h = b.host("host1")
    net = b.network("pool", "xenbr0", **{"vswitch-controller-fail-mode": "standalone"})
    b.nic(h, "eth0", net)
    vm = b.vm("vm1", h, 7)
    b.set(b.vif(vm, 0, net), locking_mode="locked", ipv4_allowed=("10.0.0.1",))
    config = compile_host(b.state(), h.ref, controllers=["tcp:192.0.2.1:6653"])
    assert config.bridge("xenbr0").fail_mode == "standalone"  # honoured
    [problem] = config.problems
    assert (problem.object_class, problem.field) == (
        "network", "other_config:vswitch-controller-fail-mode")
    assert "vm1 VIF 0 (locked)" in problem.message and "NORMAL" in problem.message


def test_standalone_without_locked_vifs_and_bad_values():
    b = PoolBuilder(**{"vswitch-controller-fail-mode": "open"})
    h = b.host("host1")
    net = b.network("pool", "xenbr0", **{"vswitch-controller-fail-mode": "standalone"})
    b.nic(h, "eth0", net)
    b.vif(b.vm("vm1", h, 7), 0, net)  # unlocked: nothing to lose
    config = compile_host(b.state(), h.ref, controllers=["tcp:192.0.2.1:6653"])
    [problem] = config.problems
    assert problem.object_class == "pool" and "'open' is not one of" in problem.message
