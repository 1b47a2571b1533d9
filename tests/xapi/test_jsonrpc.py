"""The JSON-RPC session: the official client's behaviour over /jsonrpc, and the fallback.

`JsonRpcSession` must be a drop-in for the `XenAPI.Session` calls the sync makes: same
failures (`XenAPI.Failure` with xapi's list), same silent re-login on SESSION_INVALID, socket
timeouts on every call, one keep-alive connection. `XapiSync(protocol="auto")` must fall back
to XML-RPC on a server without /jsonrpc: an older xapi (the path falls to its XML-RPC handler,
HTTP 500) or anything answering 404.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import XenAPI

from netctl.sources.xapi.jsonrpc import JsonRpcSession, JsonRpcUnavailable, _error_details
from netctl.sources.xapi.sync import XapiSync
from netctl.xapisim.server import serve
from netctl.xapisim.sim import Simulator
from tests.xapi.conftest import PASSWORD, USER, login
from tests.xapi.test_sync import truth


def json_login(url: str, **kw) -> JsonRpcSession:
    session = JsonRpcSession(url, **kw)
    session.xenapi.login_with_password(USER, PASSWORD, "1.0", "netctl-tests")
    return session


def test_calls_and_failures_are_the_official_clients(demo_server, demo):
    js = json_login(demo_server.url)
    xml = login(demo_server)
    try:
        uuid = demo.vm("vm1").vifs[0].uuid
        vif = js.xenapi.VIF.get_by_uuid(uuid)
        assert vif == xml.xenapi.VIF.get_by_uuid(uuid)
        assert js.xenapi.VIF.get_MAC(vif) == xml.xenapi.VIF.get_MAC(vif)
        # ints are numbers over JSON-RPC, decimal strings over XML-RPC: convert reads both
        assert int(js.xenapi.VIF.get_MTU(vif)) == int(xml.xenapi.VIF.get_MTU(vif))
        for session in (js, xml):
            with pytest.raises(XenAPI.Failure) as err:
                session.xenapi.VIF.get_record("OpaqueRef:NULL")
            assert err.value.details == ["HANDLE_INVALID", "VIF", "OpaqueRef:NULL"]
        result = js.xenapi.event_from(["vif"], "", 0.0)  # the alternative wire name
        assert {ev["class"] for ev in result["events"]} == {"vif"}
        assert isinstance(result["valid_ref_counts"]["vif"], int)
    finally:
        js.xenapi.session.logout()
        xml.xenapi.session.logout()
    assert js.handle is None


def test_error_shapes_of_both_jsonrpc_versions():
    assert _error_details({"code": 1, "message": "HANDLE_INVALID", "data": ["VIF", "r"]}) == \
        ["HANDLE_INVALID", "VIF", "r"]
    assert _error_details({"code": 1, "message": "SESSION_INVALID"}) == ["SESSION_INVALID"]
    assert _error_details(["SESSION_INVALID", "OpaqueRef:x"]) == ["SESSION_INVALID",
                                                                  "OpaqueRef:x"]


def test_session_invalid_logs_in_again_and_retries(demo_server):
    js = json_login(demo_server.url)
    first = js.handle
    demo_server.sim.invalidate_all_sessions()
    assert js.xenapi.pool.get_all()  # re-logged in silently
    assert js.handle != first
    stranger = JsonRpcSession(demo_server.url)
    with pytest.raises(xmlrpc.client.Fault) as err:  # never logged in: nothing to retry with
        stranger.xenapi.pool.get_all()
    assert err.value.faultCode == 401


def test_one_keepalive_connection_and_a_reconnect_after_the_server_closed_it(demo_server):
    js = json_login(demo_server.url)
    for _ in range(5):
        js.xenapi.pool.get_all()
    conns = demo_server._server._conns  # the simulator tracks its open client connections
    assert len(conns) == 1
    demo_server.restart()  # closes every connection; sessions survive, as xapi's database
    assert js.xenapi.pool.get_all()  # the stale connection is replaced, the call retried


def test_every_call_times_out_on_a_silent_server():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        session = JsonRpcSession(url, timeout=0.5)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            session.xenapi.login_with_password(USER, PASSWORD)
        assert time.monotonic() - start < 3
        session.transport.set_timeout(0.2)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            session.xenapi.login_with_password(USER, PASSWORD)
        assert time.monotonic() - start < 2
    finally:
        listener.close()


class XmlRpcOnlyProxy:
    """A tiny stdlib front that forwards everything to the simulator except `/jsonrpc`, which
    it answers 404: a pool master (or a proxy before it) without JSON-RPC."""

    def __init__(self, upstream_port: int) -> None:
        upstream = upstream_port

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/jsonrpc"):
                    reply, status, ctype = b"Not found", 404, "text/plain"
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=10)
                    conn.request("POST", self.path, body,
                                 {"Content-Type": self.headers.get("Content-Type", "")})
                    resp = conn.getresponse()
                    reply, status = resp.read(), resp.status
                    ctype = resp.getheader("Content-Type", "text/xml")
                    conn.close()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("server", ["older-xapi", "404-proxy"])
def test_auto_falls_back_to_xmlrpc_without_jsonrpc(demo, server):
    sim = Simulator.from_topology(demo, users={USER: PASSWORD}, event_delay=0.0)
    srv = serve(sim, "127.0.0.1", 0, jsonrpc=server != "older-xapi")
    proxy = XmlRpcOnlyProxy(srv.port) if server == "404-proxy" else None
    url = proxy.url if proxy else srv.url
    try:
        with pytest.raises(JsonRpcUnavailable):  # what the sync meets on its first call
            json_login(url)
        with pytest.raises(xmlrpc.client.ProtocolError):  # forced: no fallback
            XapiSync(url, USER, PASSWORD, timeout=0.5, protocol="jsonrpc").connect()
        sync = XapiSync(url, USER, PASSWORD, timeout=0.5, backoff_initial=0.01)
        sync.start()
        sync.wait_for(lambda s: s == truth(sim), 10)
        assert sync.wire == "xmlrpc"
        vif = next(iter(sync.state.vifs))
        login(srv).xenapi.VIF.set_locking_mode(vif, "disabled")
        sync.wait_for(lambda s: s.vifs[vif].locking_mode == "disabled", 10)
        tunnel = next(iter(sync.state.tunnels.values()))
        assert sync.write_tunnel_status(tunnel.uuid, active=True, key=7)  # the writer too
        sync.wait_for(lambda s: s.tunnels[tunnel.ref].status.get("key") == "7", 10)
        assert sync.reconnects == 0
        sync.stop()
    finally:
        if proxy:
            proxy.close()
        srv.stop()


def test_auto_uses_jsonrpc_where_served_and_protocol_is_checked(mini_server):
    sync = XapiSync(mini_server.url, USER, PASSWORD, timeout=0.5)
    sync.connect()
    assert sync.wire == "jsonrpc" and sync.state == truth(mini_server.sim)
    sync.stop()
    with pytest.raises(ValueError):
        XapiSync(mini_server.url, USER, PASSWORD, protocol="soap")
