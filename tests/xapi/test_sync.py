"""The sync client against the simulator: full sync, increments, lost deletes, restarts.

Each runs over both wires (`protocol`: JSON-RPC, what netctl uses, and XML-RPC through the
official client, its fallback): the sync must behave the same on either.
"""

from __future__ import annotations

import pytest

from netctl.model import PoolState, validate
from netctl.sources.xapi.convert import FIELDS, state_from_records
from netctl.sources.xapi.sync import SYNC_CLASSES, XapiSync
from tests.xapi.conftest import PASSWORD, USER, login, start


def truth(sim) -> PoolState:
    """What the simulator holds, as a PoolState (the sync client must converge to this)."""
    store = sim.store
    with store.lock:
        records = {c: {r: store.record(c, r) for r in store.refs(c)} for c in SYNC_CLASSES}
    return state_from_records(records)


def make_sync(srv, **kw) -> XapiSync:
    kw.setdefault("timeout", 1.0)
    return XapiSync(srv.url, USER, PASSWORD, backoff_initial=0.01, backoff_max=0.2, **kw)


@pytest.fixture(params=["jsonrpc", "xmlrpc"])
def protocol(request) -> str:
    return request.param


@pytest.mark.parametrize("name", ["mini", "demo"])
def test_full_sync_is_the_simulators_truth_and_valid(name, protocol, request):
    srv = start(request.getfixturevalue(name))
    try:
        sync = make_sync(srv, protocol=protocol)
        sync.connect()
        assert sync.wire == protocol
        assert sync.state == truth(srv.sim)
        # the snapshots were cut to what the model reads while decoded, on either wire
        assert sync._records["VM"] and sync._records["VIF"]
        for cls, records in sync._records.items():
            assert all(set(r) <= set(FIELDS[cls]) for r in records.values()), cls
        kept, problems = validate(sync.state)
        assert problems == [] and kept == sync.state
        topo = request.getfixturevalue(name)
        vif = sync.state.by_uuid(topo.vms[0].vifs[0].uuid)
        assert sync.state.is_vif_active(vif)
        assert sync.state.vms[vif.vm].domid == topo.vms[0].domid
    finally:
        srv.stop()


def test_increment_carries_only_what_changed(demo_server, demo, protocol):
    sync = make_sync(demo_server, protocol=protocol)
    sync.connect()
    x = login(demo_server).xenapi
    vif = x.VIF.get_by_uuid(demo.vm("vm2").vifs[0].uuid)
    x.VIF.unplug(vif)
    changes = sync.step()
    assert not changes.full and changes.changed("VIF") == {vif}
    assert changes.classes == {"VIF"} and len(changes) == 1
    assert sync.state.vifs[vif].currently_attached is False
    net = x.network.create({"name_label": "n", "other_config": {}})
    x.VIF.move(vif, net)
    changes = sync.step()
    assert changes.added == {"network": {net}} and changes.modified["VIF"] == {vif}
    assert sync.state == truth(demo_server.sim)


def test_lost_deletes_force_a_full_resync(mini, protocol):
    srv = start(mini, tombstone_cap=6, tombstone_keep=3)
    try:
        sync = make_sync(srv, protocol=protocol)
        sync.connect()
        x = login(srv).xenapi
        net = x.network.create({"name_label": "many", "other_config": {}})
        vm = x.VM.get_by_uuid(mini.vm("vm1").uuid)
        vifs = [x.VIF.create({"device": str(10 + i), "network": net, "VM": vm,
                              "MAC": f"02:00:00:00:01:{i:02x}", "MTU": "1500",
                              "other_config": {}, "qos_algorithm_type": "",
                              "qos_algorithm_params": {}}) for i in range(10)]
        sync.step()
        assert set(vifs) <= set(sync.state.vifs)
        for v in vifs:
            x.VIF.destroy(v)
        changes = sync.step()
        assert changes.full and changes.removed["VIF"] == set(vifs)
        assert sync.full_syncs == 2 and sync.state == truth(srv.sim)
    finally:
        srv.stop()


def test_background_sync_survives_stale_sessions_and_restarts(demo_server, demo, protocol):
    sync = make_sync(demo_server, protocol=protocol).start()
    try:
        sim = demo_server.sim
        sync.wait_for(lambda s: s == truth(sim) and len(s.vifs) == 11, 10)
        x = login(demo_server).xenapi
        vif = x.VIF.get_by_uuid(demo.vm("vm5").vifs[0].uuid)
        sim.invalidate_all_sessions()
        x.VIF.set_locking_mode(vif, "disabled")
        sync.wait_for(lambda s: s.vifs[vif].locking_mode == "disabled", 10)
        demo_server.restart(drop_sessions=True)
        x = login(demo_server).xenapi
        x.VIF.set_ipv4_allowed(vif, ["10.20.10.15"])
        sync.wait_for(lambda s: s.vifs[vif].ipv4_allowed == ("10.20.10.15",), 10)
        tunnel = next(iter(sync.state.tunnels.values()))
        assert sync.write_tunnel_status(tunnel.uuid, active=False, key=42, error="no peer")
        state = sync.wait_for(lambda s: s.tunnels[tunnel.ref].status.get("key") == "42", 10)
        assert dict(state.tunnels[tunnel.ref].status) == {"active": "false", "key": "42",
                                                          "error": "no peer"}
        assert not sync.write_tunnel_status(tunnel.ref, active=False, key=42, error="no peer")
        updates = []
        sync.on_changes = updates.append
        x.VIF.unplug(vif)
        sync.wait_for(lambda s: not s.vifs[vif].currently_attached, 10)
        assert any(ch.changed("VIF") == {vif} for ch in updates)
    finally:
        sync.stop()


def test_tunnel_status_by_uuid_is_a_lookup_kept_with_the_tunnels(demo_server, protocol):
    """write_tunnel_status(uuid) finds the ref in the sync's own index (no xapi call, no scan),
    which follows tunnels going and coming."""
    sync = make_sync(demo_server, protocol=protocol)
    sync.connect()
    index = lambda: {t.uuid: t.ref for t in sync.state.tunnels.values()}  # noqa: E731
    assert sync._tunnel_refs == index() and sync._tunnel_refs
    tunnel = next(iter(sync.state.tunnels.values()))
    calls = []
    real = sync._call_writer
    sync._call_writer = lambda fn: calls.append(fn) or real(fn)
    assert sync.write_tunnel_status(tunnel.uuid, active=True, key=9)
    assert len(calls) == 1  # set_status only: the uuid was resolved locally
    sync.step()
    assert not sync.write_tunnel_status(tunnel.uuid, active=True, key=9) and len(calls) == 1
    x = login(demo_server).xenapi
    transport = x.tunnel.get_transport_PIF(tunnel.ref)
    network = x.PIF.get_network(x.tunnel.get_access_PIF(tunnel.ref))
    x.tunnel.destroy(tunnel.ref)
    sync.step()
    assert tunnel.uuid not in sync._tunnel_refs and sync._tunnel_refs == index()
    new = x.tunnel.create(transport, network, "vxlan")
    sync.step()
    assert sync._tunnel_refs == index() and new in sync._tunnel_refs.values()
    assert sync.write_tunnel_status(x.tunnel.get_uuid(new), active=True, key=3)
    assert len(calls) == 2
