"""Networking methods: xapi's exact errors for bad calls (and nothing changes), side effects
and the events they produce."""

from __future__ import annotations

import pytest
import XenAPI

from netctl.xapisim.errors import XapiError


def snapshot(sim):
    """Everything a client could observe: all records and the generation counter."""
    store = sim.store
    with store.lock:
        return store.generation, {c: {r: store.record(c, r) for r in store.refs(c)}
                                  for c in store.tables}


def ref(xapi, cls, uuid):
    return getattr(xapi.xenapi, cls).get_by_uuid(uuid)


def bad_calls(xapi, demo):
    x = xapi.xenapi
    h1 = demo.host("host1")
    eth2 = ref(xapi, "PIF", h1.nic("eth2").uuid)
    eth0 = ref(xapi, "PIF", h1.nic("eth0").uuid)
    bond_pif = ref(xapi, "PIF", h1.bonds[0].pif_uuid)
    storage = ref(xapi, "network", demo.network("storage").uuid)
    fresh = x.network.create({"name_label": "fresh", "other_config": {}})
    fresh2 = x.network.create({"name_label": "fresh2", "other_config": {}})
    x.PIF.reconfigure_ip(eth2, "None", "", "", "", "")  # eth2 loses its IP
    x.network.create({"name_label": "mine", "other_config": {}, "bridge": "mybr0"})
    vif = ref(xapi, "VIF", demo.vm("vm1").vifs[0].uuid)
    vm1 = ref(xapi, "VM", demo.vm("vm1").uuid)
    return [
        (lambda: x.VLAN.create(eth2, "4095", fresh), ["VLAN_TAG_INVALID", "4095"]),
        (lambda: x.VLAN.create(eth2, -1, fresh), ["VLAN_TAG_INVALID", "-1"]),
        (lambda: x.Bond.create(fresh, [eth2], "", "lacp", {}),
         ["PIF_BOND_NEEDS_MORE_MEMBERS"]),
        (lambda: x.Bond.create(fresh, [eth2, eth0], "", "lacp", {}),
         ["PIF_ALREADY_BONDED", eth0]),
        (lambda: x.Bond.create(fresh, [eth2, eth2], "", "active-backup", {"lacp-time": "fast"}),
         ["PIF_BOND_NEEDS_MORE_MEMBERS"]),
        (lambda: x.tunnel.create(eth2, fresh, "vxlan"), ["TRANSPORT_PIF_NOT_CONFIGURED", eth2]),
        (lambda: x.tunnel.create(eth0, fresh, "gre"), ["CANNOT_ADD_TUNNEL_TO_BOND_SLAVE", eth0]),
        (lambda: x.VLAN.create(eth0, "5", fresh), ["CANNOT_ADD_VLAN_TO_BOND_SLAVE", eth0]),
        (lambda: x.VLAN.create(bond_pif, "10", fresh2), ["PIF_VLAN_EXISTS", "bond0"]),
        (lambda: x.VLAN.create(eth2, "5", storage),
         ["NETWORK_ALREADY_CONNECTED", ref(xapi, "host", h1.uuid), eth2]),
        (lambda: x.network.get_MTU("OpaqueRef:nope"), ["HANDLE_INVALID", "network",
                                                       "OpaqueRef:nope"]),
        (lambda: x.VIF.get_record("OpaqueRef:NULL"), ["HANDLE_INVALID", "VIF", "OpaqueRef:NULL"]),
        (lambda: x.network.get_by_uuid("nope"), ["UUID_INVALID", "network", "nope"]),
        (lambda: x.VIF.no_such_thing(vif), ["MESSAGE_METHOD_UNKNOWN", "VIF.no_such_thing"]),
        (lambda: x.VIF.plug(vif, "extra"),
         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VIF.plug", "1", "2"]),
        (lambda: x.VLAN.create(eth2, "5"),
         ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VLAN.create", "3", "2"]),
        (lambda: x.VIF.plug(vif), ["DEVICE_ALREADY_ATTACHED", vif]),
        (lambda: x.VIF.destroy(vif),
         ["OPERATION_NOT_ALLOWED", "VIF currently attached to a running VM"]),
        (lambda: x.VM.start(vm1, False, False), ["VM_BAD_POWER_STATE", vm1, "halted", "running"]),
        (lambda: x.VIF.set_ipv4_allowed(vif, ["10.0.0.1", "300.1.1.1"]),
         ["INVALID_IP_ADDRESS_SPECIFIED", "ipv4_allowed"]),
        (lambda: x.network.add_to_other_config(storage, "k", "v") or
         x.network.add_to_other_config(storage, "k", "v"),
         ["MAP_DUPLICATE_KEY", "network", "other_config", storage, "k"]),
        (lambda: x.network.set_default_locking_mode(storage, "locked"),
         ["INTERNAL_ERROR", 'Rpc.Runtime_error("enum", "locked")']),
        (lambda: x.network.create({"name_label": "x", "other_config": {}, "bridge": "xenbr9"}),
         ["INVALID_VALUE", "bridge", "xenbr9"]),
        (lambda: x.network.create({"name_label": "x", "other_config": {}, "bridge": "mybr0"}),
         ["BRIDGE_NAME_EXISTS", "mybr0"]),
        (lambda: x.network.create({"name_label": "x"}),
         ["INTERNAL_ERROR", 'Server_helpers.Dispatcher_FieldNotFound("other_config")']),
        (lambda: x.network.destroy(storage),
         ["NETWORK_CONTAINS_PIF", *x.network.get_PIFs(storage)]),
        (lambda: x.event_from(["vif"], "garbage", 0.0),
         ["EVENT_FROM_TOKEN_PARSE_FAILURE", "garbage"]),
        (lambda: x.event.inject("vif", vif), ["HANDLE_INVALID", "vif", vif]),
        (lambda: x.SDN_controller.introduce("pssl", "10.0.0.1", 0),
         ["INVALID_VALUE", "address", "10.0.0.1"]),
        (lambda: x.SDN_controller.introduce("ssl", "not-an-ip", 0),
         ["INVALID_IP_ADDRESS_SPECIFIED", "address"]),
        (lambda: x.Bond.set_property(ref(xapi, "Bond", h1.bonds[0].uuid), "lacp-time", "medium"),
         ["INVALID_VALUE", "properties", "lacp-time = medium"]),
    ]


def test_bad_calls_get_xapis_exact_error_and_change_nothing(demo_server, xapi, demo):
    for call, expected in bad_calls(xapi, demo):
        before = snapshot(demo_server.sim)
        with pytest.raises(XenAPI.Failure) as exc:
            call()
        assert exc.value.details == expected
        if expected[0] != "MAP_DUPLICATE_KEY":  # that case does one good add first
            assert snapshot(demo_server.sim) == before, expected


def test_unknown_method_checks_the_session_first(demo_server):
    with pytest.raises(XapiError) as exc:
        demo_server.sim.call("VIF.frobnicate", ["OpaqueRef:stale"])
    assert exc.value.description == ["SESSION_INVALID", "OpaqueRef:stale"]


def events_after(xapi, token):
    res = xapi.xenapi.event_from(["*"], token, 0.0)
    return {(e["class"], e["operation"], e["ref"]) for e in res["events"]}, res["token"]


def test_vlan_create_shapes_and_fan_out(xapi, demo):
    x = xapi.xenapi
    token = x.event_from(["*"], "", 0.0)["token"]
    eth2 = ref(xapi, "PIF", demo.host("host2").nic("eth2").uuid)
    net = x.network.create({"name_label": "v77", "other_config": {}, "MTU": "9000"})
    assert x.network.get_bridge(net).startswith("xapi")
    vlan = x.VLAN.create(eth2, 77, net)
    untagged = x.VLAN.get_untagged_PIF(vlan)
    pif = x.PIF.get_record(untagged)
    assert (pif["device"], pif["VLAN"], pif["MAC"], pif["physical"], pif["IPv6"]) == \
        ("eth2", "77", "fe:ff:ff:ff:ff:ff", False, [""])
    assert pif["VLAN_master_of"] == vlan and pif["currently_attached"] is True
    assert x.PIF.get_VLAN_slave_of(eth2) == [vlan]
    events, token = events_after(xapi, token)
    assert ("vlan", "add", vlan) in events and ("pif", "add", untagged) in events
    assert ("pif", "mod", eth2) in events and ("network", "add", net) in events
    x.VLAN.destroy(vlan)
    events, _ = events_after(xapi, token)
    assert ("vlan", "del", vlan) in events and ("pif", "mod", eth2) in events
    assert x.PIF.get_VLAN_slave_of(eth2) == []


def test_bond_create_and_destroy(xapi, demo):
    x = xapi.xenapi
    h = demo.host("host3")
    eth2 = ref(xapi, "PIF", h.nic("eth2").uuid)
    bond0 = ref(xapi, "Bond", h.bonds[0].uuid)
    slaves = x.Bond.get_slaves(bond0)
    x.Bond.destroy(bond0)
    for s in slaves:
        assert x.PIF.get_bond_slave_of(s) == "OpaqueRef:NULL"
    net = x.network.create({"name_label": "b", "other_config": {}})
    bond = x.Bond.create(net, slaves, "", "lacp", {"hashing_algorithm": "src_mac"})
    rec = x.Bond.get_record(bond)
    assert rec["properties"] == {"hashing_algorithm": "src_mac", "lacp-time": "slow",
                                 "lacp-fallback-ab": "true"}
    master = x.PIF.get_record(rec["master"])
    assert master["device"] == "bond0" and master["bond_master_of"] == [bond]
    assert master["MAC"] == x.PIF.get_MAC(rec["primary_slave"])
    assert master["IP"] == "172.30.0.3"  # moved from the primary slave
    assert all(x.PIF.get_currently_attached(s) is False for s in slaves)
    x.Bond.set_mode(bond, "active-backup")
    assert x.Bond.get_properties(bond) == {}
    assert eth2 not in slaves


def test_vm_lifecycle_moves_vifs(xapi, demo):
    x = xapi.xenapi
    vm = ref(xapi, "VM", demo.vm("vm4").uuid)
    vif = x.VM.get_VIFs(vm)[0]
    h1 = ref(xapi, "host", demo.host("host1").uuid)
    x.VM.pool_migrate(vm, h1, {})
    assert x.VM.get_resident_on(vm) == h1 and vm in x.host.get_resident_VMs(h1)
    x.VM.shutdown(vm)
    assert (x.VM.get_power_state(vm), x.VM.get_resident_on(vm), x.VM.get_domid(vm)) == \
        ("Halted", "OpaqueRef:NULL", "-1")
    assert x.VIF.get_currently_attached(vif) is False
    with pytest.raises(XenAPI.Failure) as exc:
        x.VIF.plug(vif)
    assert exc.value.details == ["VM_BAD_POWER_STATE", vm, "running", "halted"]
    x.VM.start_on(vm, h1, False, False)
    assert x.VIF.get_currently_attached(vif) is True and x.VM.get_power_state(vm) == "Running"


def test_sdn_controller_refuses_locked_vifs(xapi, demo):
    x = xapi.xenapi
    ctl = x.SDN_controller.introduce("ssl", "192.0.2.10", 0)
    assert x.SDN_controller.get_port(ctl) == "6632"
    vif = ref(xapi, "VIF", demo.vm("vm3").vifs[0].uuid)
    with pytest.raises(XenAPI.Failure) as exc:
        x.VIF.set_locking_mode(vif, "locked")
    assert exc.value.details == ["OPERATION_NOT_ALLOWED", "A vswitch controller is active"]
    with pytest.raises(XenAPI.Failure) as exc:
        x.SDN_controller.introduce("pssl", "", 0)
    assert exc.value.details[0] == "OPERATION_NOT_ALLOWED"
    x.SDN_controller.forget(ctl)
    x.VIF.set_locking_mode(vif, "locked")
    assert x.VIF.get_locking_mode(vif) == "locked"


def test_get_all_records_where(xapi):
    mgmt = xapi.xenapi.PIF.get_all_records_where('field "management"="true"')
    assert len(mgmt) == 3 and all(r["device"] == "bond0" for r in mgmt.values())
    n = xapi.xenapi.network.get_all_records_where(
        'field "name__label"="vlan10" or (field "bridge"="xapi5" and not false)')
    assert sorted(r["bridge"] for r in n.values()) == ["xapi2", "xapi5"]
