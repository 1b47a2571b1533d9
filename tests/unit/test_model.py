"""The pure model: lookups a compiler relies on and validation of bad intent."""

from __future__ import annotations

import pytest

from netctl.model import (
    NULL_REF,
    PIF,
    VIF,
    VLAN,
    VM,
    Bond,
    FrozenMap,
    Host,
    Network,
    PifType,
    Pool,
    PoolState,
    Tunnel,
    validate,
)


def small_pool() -> PoolState:
    """Two hosts; a physical network, a VLAN network on host1, a tunnel network, two VMs."""
    objs = [
        Pool("p", "u-pool", master="h1", other_config=FrozenMap({"vswitch-controller-fail-mode":
                                                                 "secure"})),
        Host("h1", "u-h1", name_label="host1", address="198.18.0.11"),
        Host("h2", "u-h2", name_label="host2", address="198.18.0.12"),
        Network("n0", "u-n0", name_label="pool", bridge="xenbr0", mtu=9000),
        Network("n1", "u-n1", name_label="vlan10", bridge="xapi1",
                default_locking_mode="disabled"),
        Network("n2", "u-n2", name_label="priv", bridge="xapi2"),
        PIF("p1", "u-p1", device="eth0", host="h1", network="n0", mac="02:00:00:00:00:01",
            physical=True, ip_configuration_mode="Static", ip="172.31.0.1",
            netmask="255.255.255.0", vlan_slave_of=("v1",), tunnel_transport_pif_of=("t1",),
            other_config=FrozenMap({"vswitch-controller-fail-mode": "standalone"})),
        PIF("p2", "u-p2", device="eth0", host="h2", network="n0", mac="02:00:00:00:00:02",
            physical=True),
        PIF("p3", "u-p3", device="eth0", host="h1", network="n1", mac="fe:ff:ff:ff:ff:ff",
            vlan=10, vlan_master_of="v1", ipv6=("",)),
        PIF("p4", "u-p4", device="tunnel0", host="h1", network="n2", mac="02:00:00:00:00:04",
            tunnel_access_pif_of=("t1",)),
        VLAN("v1", "u-v1", tagged_pif="p1", untagged_pif="p3", tag=10),
        Tunnel("t1", "u-t1", access_pif="p4", transport_pif="p1", protocol="vxlan"),
        VM("vm1", "u-vm1", name_label="vm1", power_state="Running", resident_on="h1", domid=3),
        VM("vm2", "u-vm2", name_label="vm2", power_state="Halted"),
        VIF("i1", "u-i1", device="0", network="n0", vm="vm1", mac="02:aa:00:00:00:01",
            currently_attached=True, locking_mode="locked", ipv4_allowed=("10.0.0.1",)),
        VIF("i2", "u-i2", device="1", network="n1", vm="vm1", mac="02:aa:00:00:00:02",
            currently_attached=True),
        VIF("i3", "u-i3", device="0", network="n0", vm="vm2", mac="02:aa:00:00:00:03"),
    ]
    return PoolState.build(objs)


def test_lookups_a_compiler_needs():
    s = small_pool()
    assert [p.ref for p in s.host_pifs("h1")] == ["p1", "p3", "p4"]
    assert s.pif_of("n0", "h2").ref == "p2"
    assert s.pif_of("n1", "h2") is None
    assert {v.ref for v in s.network_vifs("n0")} == {"i1", "i3"}
    assert [v.ref for v in s.host_vifs("h1")] == ["i1", "i2"]
    assert s.vif_host(s.vifs["i3"]) is None
    assert s.effective_locking_mode(s.vifs["i1"]) == "locked"
    assert s.effective_locking_mode(s.vifs["i2"]) == "disabled"  # network default
    assert s.vif_mtu(s.vifs["i1"]) == 9000
    assert s.by_uuid("u-t1").ref == "t1"
    assert s.network_by_bridge("xapi2").ref == "n2"
    assert s.vlan_parent_pif(s.pifs["p3"]).ref == "p1"
    assert s.tunnel_of(s.pifs["p4"]).ref == "t1"
    assert s.bridge_other_config(s.pifs["p1"])["vswitch-controller-fail-mode"] == "standalone"
    assert s.bridge_other_config(s.pifs["p2"])["vswitch-controller-fail-mode"] == "secure"
    assert s.pifs["p3"].ipv6_addresses == ()


def test_pif_type_follows_xapi_order():
    s = small_pool()
    assert s.pifs["p1"].type is PifType.PHYSICAL
    assert s.pifs["p3"].type is PifType.VLAN_UNTAGGED
    assert s.pifs["p4"].type is PifType.TUNNEL_ACCESS
    both = PIF("x", "u-x", bond_master_of=("b",), tunnel_access_pif_of=("t",), physical=True)
    assert both.type is PifType.TUNNEL_ACCESS
    assert PIF("y", "u-y", bond_master_of=("b",)).type is PifType.BOND_MASTER


def test_snapshots_are_immutable_and_hashable():
    s = small_pool()
    with pytest.raises(AttributeError):
        s.vifs["i1"].mac = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.vifs["i9"] = s.vifs["i1"]  # type: ignore[index]
    assert hash(s.networks["n0"]) == hash(small_pool().networks["n0"])
    assert s == small_pool()


def test_valid_pool_has_no_problems():
    s = small_pool()
    kept, problems = validate(s)
    assert problems == []
    assert kept == s


def test_bad_vif_is_left_out_and_explained():
    s = small_pool()
    bad = VIF("i9", "u-i9", device="2", network="n0", vm="vm1", mac="nonsense",
              locking_mode="locked", ipv4_allowed=("10.0.0.300",))
    kept, problems = validate(s.replace(vifs={**s.vifs, "i9": bad}))
    assert "i9" not in kept.vifs and "i1" in kept.vifs
    assert {(p.object_class, p.uuid, p.field) for p in problems} == {
        ("VIF", "u-i9", "MAC"), ("VIF", "u-i9", "ipv4_allowed")}
    assert all(p.name_label == "vm1 VIF 2" for p in problems)
    assert "10.0.0.300" in str(problems[1]) or "10.0.0.300" in str(problems[0])


def test_invalid_network_takes_its_dependents_along():
    s = small_pool()
    net = s.networks["n0"]
    dup = Network("n9", "u-n9", name_label="clash", bridge="xenbr0")
    kept, problems = validate(s.replace(networks={**s.networks, "n9": dup}))
    assert [(p.uuid, p.field) for p in problems] == [("u-n9", "bridge")]
    assert "n0" in kept.networks and net == kept.networks["n0"]
    bad = s.replace(networks={**s.networks, "n0": Network("n0", "u-n0", bridge="", mtu=1500)})
    kept, problems = validate(bad)
    assert "n0" not in kept.networks
    assert {"p1", "p2", "i1", "i3"}.isdisjoint(set(kept.pifs) | set(kept.vifs))
    # The tunnel whose transport PIF (p1) was dropped goes too; the other network survives.
    assert "t1" not in kept.tunnels and "n2" in kept.networks
    assert any(p.object_class == "tunnel" and p.field == "transport_PIF" for p in problems)


def test_tunnel_without_transport_ip_and_bad_bond():
    s = small_pool()
    p2 = s.pifs["p2"]
    t = Tunnel("t2", "u-t2", access_pif="p4", transport_pif="p2")
    b = Bond("b1", "u-b1", master="p2", slaves=("p1",), mode="active-backup",
             properties=FrozenMap({"lacp-time": "fast"}))
    kept, problems = validate(s.replace(tunnels={**s.tunnels, "t2": t}, bonds={"b1": b}))
    msgs = {(p.object_class, p.field): p.message for p in problems}
    assert "has no IP address" in msgs[("tunnel", "transport_PIF")]
    assert "at least two" in msgs[("Bond", "slaves")]
    assert "'fast' is not valid for mode active-backup" in msgs[("Bond", "properties:lacp-time")]
    assert "t2" not in kept.tunnels and "b1" not in kept.bonds and p2.ref in kept.pifs


def test_running_vm_needs_a_host():
    s = small_pool()
    vm = VM("vm3", "u-vm3", name_label="ghost", power_state="Running", resident_on=NULL_REF,
            domid=7)
    kept, problems = validate(s.replace(vms={**s.vms, "vm3": vm}))
    assert [(p.name_label, p.field) for p in problems] == [("ghost", "resident_on")]
    assert "vm3" not in kept.vms
