"""netctl.sinks.ovsdb against a real ovsdb-server + ovs-vswitchd: apply → the database holds the
config; idempotence (nothing sent the second time, no row rewritten); minimal change; ownership
(VIF ports and foreign keys survive); moves (NICs into a bond); TCP and SSL; reconnection."""

from __future__ import annotations

import time

import pytest
from ovsdbapp.backend.ovs_idl import connection, idlutils

from harness.hostnet_builders import PoolBuilder
from harness.sandbox import OvsSandbox
from netctl.hostconfig import HostConfig
from netctl.sinks.ovsdb import HostOvsdb, SslFiles
from vlan import compile_host

pytestmark = pytest.mark.lab
CONTROLLER = "tcp:127.0.0.1:6999"  # nothing listens: the bridge just keeps trying


def bond_pool(lacp_time: str = "fast", with_vlan20: bool = True, trunks=(10,)):
    """host1: bond0 (eth0+eth1, lacp) on xapi1, VLAN 10 (xapi2) and 20 (xapi3) on it, eth2 on
    xenbr2, a private network xapi4 with a GRE tunnel to host2, a VM with a trunk VIF."""
    b = PoolBuilder()
    h1, h2 = b.host("host1"), b.host("host2")
    pool, storage = b.network("pool", "xapi1", mtu=1600), b.network("storage", "xenbr2")
    priv = b.network("priv", "xapi4")
    _, m1 = b.bond(h1, "bond0", pool, [b.nic(h1, "eth0", None), b.nic(h1, "eth1", None)],
                   "lacp", ip="172.30.0.1/24", **{"lacp-time": lacp_time,
                                                 "lacp-fallback-ab": "true"})
    _, m2 = b.bond(h2, "bond0", pool, [b.nic(h2, "eth0", None), b.nic(h2, "eth1", None)],
                   "lacp", ip="172.30.0.2/24")
    b.nic(h1, "eth2", storage)
    b.vlan(m1, 10, b.network("v10", "xapi2"))
    if with_vlan20:
        b.vlan(m1, 20, b.network("v20", "xapi3"))
    b.tunnel(m1, priv)
    b.tunnel(m2, priv)
    b.vif(b.vm("vm1", h1, 5), 0, pool, trunks=trunks)
    return b, h1


def config_of(builder: PoolBuilder, host, **kw) -> HostConfig:
    return compile_host(builder.state(), host.ref, datapath_type="netdev",
                        controllers=(CONTROLLER,), **kw)


def assert_db_matches(box: OvsSandbox, config: HostConfig) -> None:
    bridges, ports, ifaces = box.table("Bridge"), box.table("Port"), box.table("Interface")
    port_names = {u: n for n, r in ports.items() for u in [r["_uuid"]]}
    iface_names = {r["_uuid"]: n for n, r in ifaces.items()}
    ctl = {r["_uuid"]: r["target"] for r in box._any("Controller").values()}
    assert set(bridges) >= set(config.bridge_names())
    for want in config.bridges:
        row = bridges[want.name]
        assert row["fail_mode"] == want.fail_mode
        assert row["datapath_type"] == want.datapath_type
        assert _set(row["protocols"]) == set(want.protocols)
        assert {ctl[u] for u in _set(row["controller"])} == set(want.controllers)
        for k, v in want.other_config.items():
            assert row["other_config"][k] == v
        for k, v in want.external_ids.items():
            assert row["external_ids"][k] == v
        assert {port_names[u] for u in _set(row["ports"])} >= {p.name for p in want.ports}
        for pw in want.ports:
            prow = ports[pw.name]
            assert {iface_names[u] for u in _set(prow["interfaces"])} == \
                {i.name for i in pw.interfaces}
            assert _opt(prow["tag"]) == pw.tag
            assert prow["fake_bridge"] == pw.fake_bridge
            assert _opt(prow["bond_mode"]) == pw.bond_mode
            assert _opt(prow["lacp"]) == pw.lacp
            assert prow["bond_updelay"] == pw.bond_updelay
            assert prow["bond_downdelay"] == pw.bond_downdelay
            assert _opt(prow["mac"]) == pw.mac
            for k, v in pw.other_config.items():
                assert prow["other_config"][k] == v
            for iw in pw.interfaces:
                irow = ifaces[iw.name]
                assert irow["type"] == iw.type
                assert _opt(irow["mtu_request"]) == iw.mtu_request
                assert _opt(irow["mac"]) == iw.mac
                assert irow["options"] == dict(iw.options)
                for k, v in iw.other_config.items():
                    assert irow["other_config"][k] == v
    for vif in config.vif_ports:
        if vif.name in ports:
            assert sorted(_set(ports[vif.name]["trunks"])) == list(vif.trunks)


def _set(v):
    return set(v) if isinstance(v, list) else {v}


def _opt(v):
    return None if v == [] else v


@pytest.fixture()
def box(sandbox):
    """An empty switch for each test (every bridge, with its ports, removed)."""
    sandbox.vsctl("clear", "Open_vSwitch", ".", "bridges")
    return sandbox


def test_apply_then_the_database_holds_the_config_and_vswitchd_runs_it(box):
    b, h = bond_pool()
    config = config_of(b, h)
    with HostOvsdb(box.unix) as db:
        result = db.apply(config)
        # apply returns once written; vswitchd's cur_cfg then reaches the transaction's
        assert db.wait_in_effect(20), db.progress.state()
    assert result.count > 0
    assert_db_matches(box, config)
    # ovs-vswitchd has built it
    assert "bond0" in box.appctl("bond/list")
    assert box.vsctl("br-to-parent", "xapi2") == "xapi1"  # a real fake bridge to ovs-vsctl
    assert box.vsctl("br-to-vlan", "xapi2") == "10"
    assert box.vsctl("br-get-external-id", "xapi2", "xs-network-uuids") == "uuid-v10"


def test_second_apply_sends_nothing_and_rewrites_no_row(box):
    b, h = bond_pool()
    config = config_of(b, h)
    with HostOvsdb(box.unix) as db:
        db.apply(config)
        before = box.settled_versions()
        again = db.apply(config)
        assert again.operations == ()
        assert db.plan(config).operations == ()
    assert box.versions() == before


def test_one_changed_property_sends_one_minimal_change(box):
    b, h = bond_pool("fast")
    with HostOvsdb(box.unix) as db:
        db.apply(config_of(b, h))
        # once ovs-vswitchd wrote its own status columns after the first apply (under load
        # they came after a plain read here, and passed for netctl's writes in CI)
        before = box.settled_versions()
        b2, h2 = bond_pool("slow")
        result = db.apply(config_of(b2, h2))
    assert result.operations == ("set Port bond0 other_config:lacp-time=slow",)
    after = box.versions()
    changed = {k for k in after if after[k] != before.get(k)}
    # the row written, and the Open_vSwitch row whose next_cfg every transaction bumps
    assert changed == {"Port/bond0", "Open_vSwitch/0"}
    assert box.vsctl("get", "Port", "bond0", "other_config:lacp-time") == "slow"


def test_removing_a_vlan_network_deletes_only_its_fake_bridge(box):
    b, h = bond_pool()
    with HostOvsdb(box.unix) as db:
        db.apply(config_of(b, h))
        b2, h2 = bond_pool(with_vlan20=False)
        result = db.apply(config_of(b2, h2))
    assert sorted(result.operations) == sorted([
        "remove Bridge xapi1 external_ids:xs-network-uuids",  # replaced below
        "set Bridge xapi1 external_ids:xs-network-uuids=uuid-pool;uuid-v10",
        "remove Bridge xapi1 ports -= xapi3", "delete Interface xapi3", "delete Port xapi3",
    ][1:])
    assert "xapi3" not in box.table("Port")
    assert box.vsctl("br-exists", "xapi2") == ""


def test_vif_ports_and_foreign_keys_survive_and_trunks_follow_the_vif(box):
    b, h = bond_pool(trunks=(10, 20))
    config = config_of(b, h)
    with HostOvsdb(box.unix) as db:
        db.apply(config)
        # the hypervisor plugs the VIF; someone else sets a key netctl does not manage
        box.vsctl("add-port", "xapi1", "vif5.0", "--", "set", "interface", "vif5.0",
                  "type=internal", "external_ids:xs-vif-uuid=uuid-vm1-vif0")
        box.vsctl("set", "Bridge", "xapi1", "other_config:stp-priority=7",
                  "other_config:mac-table-size=99")
        result = db.apply(config)
        assert "set Port vif5.0 trunks=[10, 20]" in result.operations
        assert "set Bridge xapi1 other_config:mac-table-size=10000" in result.operations
        assert box.vsctl("get", "Bridge", "xapi1", "other_config:stp-priority") == '"7"'
        # the network leaves the host: its bridge is netctl's, but a VIF is still on it
        empty = HostConfig(host_ref=h.ref, host_uuid="uuid-host1")
        result = db.apply(empty)
        assert result.kept == ("bridge xapi1 (holds vif5.0)",)
        assert "vif5.0" in box.table("Port")
        assert "xenbr2" not in box.table("Bridge")  # no foreign port: deleted
        box.vsctl("del-port", "vif5.0")
        result = db.apply(empty)
    assert set(box.table("Bridge")) == set()
    assert result.kept == ()


def test_bridges_and_ports_netctl_did_not_create_are_adopted_never_deleted(box):
    box.vsctl("add-br", "xenbr2", "--", "set", "bridge", "xenbr2", "datapath_type=netdev",
              "--", "add-port", "xenbr2", "eth2", "--", "add-port", "xenbr2", "eth3")
    b, h = bond_pool()
    config = config_of(b, h)
    with HostOvsdb(box.unix) as db:
        db.apply(config)
        assert_db_matches(box, config)
        db.apply(HostConfig(host_ref=h.ref, host_uuid="uuid-host1"))
    assert set(box.table("Bridge")) == {"xenbr2"}  # networkd's (not ours): kept
    assert {"eth2", "eth3"} <= set(box.table("Port"))


def test_nics_move_from_their_own_bridges_into_a_bond_in_one_transaction(box):
    b = PoolBuilder()
    h = b.host("host1")
    b.nic(h, "eth0", b.network("n0", "xenbr0"))
    b.nic(h, "eth1", b.network("n1", "xenbr1"))
    with HostOvsdb(box.unix) as db:
        db.apply(config_of(b, h))
        b2 = PoolBuilder()
        h2 = b2.host("host1")
        b2.bond(h2, "bond0", b2.network("pool", "xapi1"),
                [b2.nic(h2, "eth0", None), b2.nic(h2, "eth1", None)], "active-backup")
        config = config_of(b2, h2)
        db.apply(config)
        assert db.apply(config).operations == ()
    assert set(box.table("Bridge")) == {"xapi1"}
    assert_db_matches(box, config)


def test_tcp_and_ssl_endpoints(box):
    b, h = bond_pool()
    config = config_of(b, h)
    with HostOvsdb(box.tcp) as db:
        assert db.apply(config).count > 0
    files = SslFiles(f"{box.dir}/client.key", f"{box.dir}/client.crt", f"{box.dir}/ca.crt")
    with HostOvsdb(box.ssl, ssl=files) as db:
        assert db.apply(config).operations == ()
        assert db.apply(HostConfig(host_ref=h.ref, host_uuid="x")).count > 0
    assert box.table("Bridge") == {}


def test_reconnects_and_reapplies_after_ovsdb_server_restart(box):
    b, h = bond_pool()
    config = config_of(b, h)
    with HostOvsdb(box.unix) as db:
        db.watch(0.1)
        db.apply(config)
        box.restart_ovsdb(wipe=False)  # database survives: reapplied, nothing to send
        deadline = time.monotonic() + 15
        while db.reapplies < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert db.reapplies == 1
        box.restart_ovsdb(wipe=True)  # database lost: everything rebuilt
        deadline = time.monotonic() + 15
        while "xapi1" not in box.table("Bridge") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert db.reapplies >= 2
        time.sleep(0.3)
    assert_db_matches(box, config)


def test_a_controller_another_tool_configured_is_never_evicted(box):
    """Several instances (issue 20): netctl's controller set changes; a controller someone
    else put on the bridge stays, and only netctl's own are removed."""
    b, h = bond_pool()
    ours, peer, theirs = CONTROLLER, "tcp:127.0.0.1:6998", "tcp:127.0.0.1:6997"
    with HostOvsdb(box.unix) as db:
        db.apply(config_of(b, h))
        box.vsctl("--id=@c", "create", "Controller", f"target=\"{theirs}\"", "--", "add",
                  "Bridge", "xapi1", "controller", "@c")
        both = compile_host(b.state(), h.ref, datapath_type="netdev",
                            controllers=(ours, peer))
        db.apply(both)
        assert set(box.vsctl("get-controller", "xapi1").split()) == {ours, peer, theirs}
        assert set(box.vsctl("get-controller", "xenbr2").split()) == {ours, peer}
        before = box.settled_versions()
        assert db.apply(both).operations == ()  # the foreign one is no reason to write
        assert box.versions() == before
        db.apply(config_of(b, h))  # the peer instance leaves netctl's list
        assert set(box.vsctl("get-controller", "xapi1").split()) == {ours, theirs}
        assert set(box.vsctl("get-controller", "xenbr2").split()) == {ours}


def test_what_vswitchd_keeps_rewriting_does_not_reach_netctl(box):
    """Counters (every 5 s), link and connection state, port numbers: ovs-vswitchd rewrites
    them on interfaces and netctl reads none of them, so its OVSDB session is not sent them
    (16 hosts with 4094 VLAN ports each drowned netctl's sessions in them). What netctl reads
    back is still there: a bond member's link and LACP state, BFD state, cur_cfg. Over the
    same 6 s (> vswitchd's 5 s statistics interval) an IDL of every column hears the bond
    members' counters change (their LACP PDUs); netctl's session hears at most the state it
    reads."""
    b, h = bond_pool("fast")
    config = config_of(b, h)
    with HostOvsdb(box.unix) as db:
        db.apply(config)
        assert db.wait_in_effect(20)
        idl = db._idl
        columns = set(idl.tables["Interface"].columns)
        assert {"link_state", "lacp_current", "bfd_status", "name", "type"} <= columns
        assert not {"statistics", "ofport", "status", "mtu"} & columns
        everything = idlutils.get_schema_helper(box.unix, "Open_vSwitch")
        everything.register_all()
        full = connection.OvsdbIdl(box.unix, everything)
        conn = connection.Connection(idl=full, timeout=10)
        conn.start()
        try:
            time.sleep(1.0)
            heard, control = changed_columns(idl), changed_columns(full)
            time.sleep(6.0)
        finally:
            conn.stop(timeout=5)
    assert "statistics" in control
    assert heard <= {"link_state", "lacp_current", "bfd_status"}, heard
    assert_db_matches(box, config)


def changed_columns(idl) -> set[str]:
    """The Interface columns an IDL hears updated from now on (a set that grows)."""
    heard: set[str] = set()
    notify = idl.notify
    columns = list(idl.tables["Interface"].columns)

    def counting(event, row, updates=None):
        if event == "update" and row._table.name == "Interface" and updates is not None:
            heard.update(c for c in columns if c in updates._data)
        return notify(event, row, updates)

    idl.notify = counting
    return heard
