"""The official XenAPI client and raw XML-RPC/JSON-RPC requests against the simulator."""

from __future__ import annotations

import xmlrpc.client

import pytest
import XenAPI

from tests.xapi.conftest import PASSWORD, USER, jsonrpc, login, post


@pytest.mark.parametrize("trailing_slash", [True, False], ids=["slash", "RPC2"])
def test_official_client_logs_in_and_reads(demo_server, demo, trailing_slash):
    url = demo_server.url if trailing_slash else demo_server.url.rstrip("/")
    s = login(demo_server, url)
    assert s.API_version == "2.21"
    hosts = s.xenapi.host.get_all_records()
    assert sorted(h["name_label"] for h in hosts.values()) == ["host1", "host2", "host3"]
    net = s.xenapi.network.get_by_uuid(demo.network("vlan10").uuid)
    assert s.xenapi.network.get_bridge(net) == "xapi2"
    assert s.xenapi.network.get_MTU(net) == "1500"  # ints are decimal strings on XML-RPC
    vif = s.xenapi.VIF.get_by_uuid(demo.vm("vm1").vifs[0].uuid)
    rec = s.xenapi.VIF.get_record(vif)
    assert rec["locking_mode"] == "locked" and rec["ipv4_allowed"] == ["10.10.0.11"]
    assert rec["currently_attached"] is True
    s.xenapi.session.logout()


def test_event_from_both_spellings_and_shape(xapi):
    full = xapi.xenapi.event_from(["vif", "VM"], "", 1.0)
    classes = {e["class"] for e in full["events"]}
    assert classes == {"vif", "vm"}
    ev = full["events"][0]
    assert list(ev) == ["id", "timestamp", "class", "operation", "ref", "snapshot"]
    assert ev["operation"] == "add" and ev["timestamp"] == "0.0" and isinstance(ev["id"], str)
    assert isinstance(full["valid_ref_counts"]["vif"], int)
    assert full["valid_ref_counts"]["vif"] == 11 and "sdn_controller" in full["valid_ref_counts"]
    assert len(full["token"]) == 41 and full["token"].endswith(",00000000000000000000")
    again = getattr(xapi.xenapi.event, "from")(["vif"], full["token"], 0.0)
    assert again["events"] == [] and again["token"] == full["token"]


def test_session_invalidation_is_transparent_to_the_client(demo_server, xapi):
    old = xapi.handle
    demo_server.sim.invalidate_session(old)
    assert len(xapi.xenapi.pool.get_all()) == 1  # the client re-logged in by itself
    assert xapi.handle != old


def test_bad_password(demo_server):
    s = XenAPI.Session(demo_server.url)
    with pytest.raises(XenAPI.Failure) as exc:
        s.xenapi.login_with_password(USER, "wrong")
    assert exc.value.details == ["SESSION_AUTHENTICATION_FAILED", USER, "Authentication failure"]


def test_raw_xmlrpc_envelope_is_xapis(demo_server, xapi):
    body = xmlrpc.client.dumps((xapi.handle,), "pool.get_all").encode()
    status, ctype, out = post(demo_server.url, "/", body, "text/xml")
    assert status == 200 and ctype == "text/xml"
    text = out.decode()
    assert text.startswith('<?xml version="1.0"?><methodResponse><params><param><value><struct>'
                           '<member><name>Status</name><value>Success</value></member>'
                           '<member><name>Value</name><value><array><data><value>OpaqueRef:')
    body = xmlrpc.client.dumps((xapi.handle, "OpaqueRef:bogus"), "network.get_MTU").encode()
    _, _, out = post(demo_server.url, "/RPC2", body, "text/xml")
    assert out.decode() == (
        '<?xml version="1.0"?><methodResponse><params><param><value><struct>'
        '<member><name>Status</name><value>Failure</value></member>'
        '<member><name>ErrorDescription</name><value><array><data>'
        '<value>HANDLE_INVALID</value><value>network</value><value>OpaqueRef:bogus</value>'
        '</data></array></value></member></struct></value></param></params></methodResponse>')
    ev = xmlrpc.client.dumps((xapi.handle, ["network"], "", 0.0), "event.from").encode()
    _, _, out = post(demo_server.url, "/", ev, "text/xml")
    assert b"<name>network</name><value><i4>" in out  # valid_ref_counts are int32
    assert b"<name>MTU</name><value>1500</value>" in out  # int64 as bare string


def test_malformed_bodies_get_http_500_html(demo_server):
    status, ctype, _ = post(demo_server.url, "/", b"<methodCall><oops", "text/xml")
    assert status == 500 and ctype == "text/html"
    status, ctype, _ = post(demo_server.url, "/jsonrpc", b"{nope", "application/json")
    assert status == 500 and ctype == "text/html"
    status, _, _ = post(demo_server.url, "/jsonrpc", b'{"method": "pool.get_all", "params": []}',
                        "application/json")
    assert status == 500  # a notification (no id) is rejected


def test_jsonrpc_v1_and_v2(demo_server):
    url = demo_server.url
    r1 = jsonrpc(url, "session.login_with_password", [USER, PASSWORD, "1.0", "t"], id_="a")
    assert r1["error"] is None and r1["id"] == "a" and r1["result"].startswith("OpaqueRef:")
    session = r1["result"]
    r2 = jsonrpc(url, "network.get_all_records", [session], v2=True, id_=7)
    assert set(r2) == {"jsonrpc", "result", "id"} and r2["id"] == 7
    assert all(isinstance(n["MTU"], int) for n in r2["result"].values())  # JSON numbers
    bad = jsonrpc(url, "VIF.get_record", [session, "OpaqueRef:NULL"])
    assert bad == {"result": None, "error": ["HANDLE_INVALID", "VIF", "OpaqueRef:NULL"], "id": 1}
    bad2 = jsonrpc(url, "VIF.get_record", [session, "OpaqueRef:NULL"], v2=True)
    assert bad2 == {"jsonrpc": "2.0", "error": {"code": 1, "message": "HANDLE_INVALID",
                                                "data": ["VIF", "OpaqueRef:NULL"]}, "id": 1}
    ev = jsonrpc(url, "event.from", [session, ["tunnel"], "", 0], v2=True)["result"]
    assert {e["class"] for e in ev["events"]} == {"tunnel"}
    assert ev["valid_ref_counts"]["tunnel"] == 6
    none = jsonrpc(url, "pool.get_all", None, v2=True)
    assert none["error"]["message"] == "MESSAGE_PARAMETER_COUNT_MISMATCH"
    # a session from JSON-RPC works over XML-RPC
    proxy = xmlrpc.client.ServerProxy(url)
    assert proxy.pool.get_all(session)["Status"] == "Success"


def test_alternative_wire_names_and_list_methods(demo_server, xapi):
    proxy = xmlrpc.client.ServerProxy(demo_server.url)
    r = proxy.VIF_get_all(xapi.handle)
    assert r["Status"] == "Success" and len(r["Value"]) == 11
    methods = proxy.system.listMethods()  # answered bare, without Status/Value, as xapi does
    assert "VIF.set_locking_mode" in methods and "event.from" in methods


def test_int_parameters_accept_strings_and_enums_any_case(xapi, demo):
    pif = xapi.xenapi.PIF.get_by_uuid(demo.host("host1").nic("eth2").uuid)
    net = xapi.xenapi.network.create({"name_label": "v99", "other_config": {}})
    vlan = xapi.xenapi.VLAN.create(pif, "99", net)
    assert xapi.xenapi.VLAN.get_tag(vlan) == "99"
    vif = xapi.xenapi.VIF.get_by_uuid(demo.vm("vm3").vifs[0].uuid)
    xapi.xenapi.VIF.set_locking_mode(vif, "DISABLED")
    assert xapi.xenapi.VIF.get_locking_mode(vif) == "disabled"
