"""The web view's gate (netctl/web/access.py, http.py) on the real metrics server, with logins
checked by a real xapi simulator through the official XenAPI client, over real TLS: an
unauthenticated request is refused, a wrong password is refused, a right one is admitted (and
its xapi session logged out again), a session ends at logout."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from netctl.service import pki
from netctl.service.config import ConfigError, load
from netctl.service.metrics import Metrics, serve
from netctl.topology import parse_file
from netctl.web.access import Sessions, is_loopback
from netctl.web.wiring import WebView
from netctl.xapisim.server import RunningServer
from netctl.xapisim.server import serve as serve_xapi
from netctl.xapisim.sim import Simulator

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "operator", "s3cret"


def status(query) -> dict:  # noqa: ANN001 - the metrics server's status(query)
    return {"view": "summary", "hosts": [{"name": "host1", "bridges": ["xapi1"]}],
            "query": {k: list(v) for k, v in query.items()}}


@pytest.fixture(scope="module")
def xapi() -> Iterator[RunningServer]:
    sim = Simulator.from_topology(parse_file(ROOT / "topologies" / "mini-pool.yaml"),
                                  users={USER: PASSWORD}, event_delay=0.0)
    srv = serve_xapi(sim, "127.0.0.1", 0)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki.init(directory, ("127.0.0.1",))
    return directory


@pytest.fixture(scope="module")
def server(xapi: RunningServer, certs: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """The metrics server as `netctl run` serves it off loopback: TLS and logins against
    xapi (made on 127.0.0.1 here with the same WebView a non-loopback address gets)."""
    view = WebView.for_listen("192.0.2.1", {"certificate": str(certs / pki.CTL_CERT),
                                            "private_key": str(certs / pki.CTL_KEY)},
                              lambda: xapi.url)
    assert view.login is not None
    srv = serve("127.0.0.1", 0, Metrics(), status, health=lambda: (200, {"ok": True}),
                web=view)
    client = ssl.create_default_context(cafile=str(certs / pki.CA_CERT))
    yield srv.server_address[1], client
    srv.shutdown()


def request(server, method: str, path: str, body: str | None = None,  # noqa: ANN001
            headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    port, context = server
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    hdrs = dict(headers or {})
    if body is not None:
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=hdrs)
    return conn.getresponse()


def login(server, user: str, password: str) -> http.client.HTTPResponse:  # noqa: ANN001
    from urllib.parse import urlencode

    return request(server, "POST", "/login", urlencode({"user": user, "password": password}))


@pytest.mark.parametrize("path", ["/status", "/status?vm=vm1", "/stats", "/events",
                                  "/metrics"])
def test_without_login_data_is_refused_with_401(server, path):
    resp = request(server, "GET", path)
    assert resp.status == 401
    assert "login required" in json.loads(resp.read())["error"]


@pytest.mark.parametrize("path", ["/", "/static/app.js"])
def test_without_login_the_page_sends_the_browser_to_the_login_form(server, path):
    resp = request(server, "GET", path)
    assert (resp.status, resp.getheader("Location")) == (303, "/login")
    form = request(server, "GET", "/login")
    assert form.status == 200 and b'name="password"' in form.read()


def test_healthz_stays_open(server):
    assert request(server, "GET", "/healthz").status == 200


def test_a_wrong_password_is_refused(server, xapi):
    before = len(xapi.sim.sessions)
    resp = login(server, USER, "wrong")
    page = resp.read().decode()
    assert resp.status == 401
    assert resp.getheader("Set-Cookie") is None
    assert f"login refused for user '{USER}'" in page
    assert login(server, "nobody", PASSWORD).status == 401
    assert login(server, "", "").status == 401
    assert len(xapi.sim.sessions) == before


def test_the_right_password_is_admitted_with_a_strict_session_cookie(server, xapi):
    before = len(xapi.sim.sessions)
    resp = login(server, USER, PASSWORD)
    assert (resp.status, resp.getheader("Location")) == (303, "/")
    cookie = resp.getheader("Set-Cookie")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Max-Age=", "Path=/"):
        assert attribute in cookie
    token = cookie.split(";")[0]
    assert len(xapi.sim.sessions) == before  # xapi's session was logged out again
    headers = {"Cookie": token}
    got = request(server, "GET", "/status?vm=vm1", headers=headers)
    assert got.status == 200 and json.loads(got.read())["query"] == {"vm": ["vm1"]}
    page = request(server, "GET", "/", headers=headers)
    assert page.status == 200 and b"cytoscape.min.js" in page.read()
    assert request(server, "GET", "/static/cytoscape.min.js", headers=headers).status == 200
    events = request(server, "GET", "/events", headers=headers)
    assert events.getheader("Content-Type") == "text/event-stream"
    while not (line := events.readline()).startswith(b"data: "):
        pass
    assert json.loads(line[6:])["status"]["hosts"][0]["name"] == "host1"
    events.close()

    out = request(server, "GET", "/logout", headers=headers)
    assert (out.status, out.getheader("Location")) == (303, "/login")
    assert "Max-Age=0" in out.getheader("Set-Cookie")
    assert request(server, "GET", "/status", headers=headers).status == 401  # dead token


def test_a_forged_session_cookie_is_refused(server):
    resp = request(server, "GET", "/status", headers={"Cookie": "netctl_session=forged"})
    assert resp.status == 401


def test_basic_credentials_of_a_pool_user_are_admitted_for_scripts(server):
    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()}

    assert request(server, "GET", "/metrics", headers=basic(USER, PASSWORD)).status == 200
    assert request(server, "GET", "/status", headers=basic(USER, "wrong")).status == 401


def test_plain_http_to_the_tls_port_gets_no_answer(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /status HTTP/1.0\r\n\r\n")
        assert b"HTTP/1.0 200" not in sock.recv(4096)


def test_sessions_expire():
    now = [0.0]
    sessions = Sessions(ttl=60, clock=lambda: now[0])
    token = sessions.create("root")
    assert sessions.user(token) == "root"
    now[0] = 61
    assert sessions.user(token) is None


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("", False), ("::", False),
    ("198.18.0.1", False), ("netctl.example", False)])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_listening_off_loopback_without_tls_is_refused_naming_the_key(tmp_path):
    cfg = tmp_path / "netctl.yaml"
    cfg.write_text("metrics: {listen: 0.0.0.0:9464}\n")
    with pytest.raises(ConfigError, match=r"metrics: tls is required when metrics.listen "
                                          r"\(0.0.0.0:9464\) is not a loopback address"):
        load(cfg)


def test_tls_files_must_exist_and_be_complete(tmp_path, certs):
    cfg = tmp_path / "netctl.yaml"
    cfg.write_text("metrics: {listen: 0.0.0.0:9464, tls: {certificate: /nope.pem, "
                   "private_key: /nope.key}}\n")
    with pytest.raises(ConfigError, match="metrics: tls: certificate '/nope.pem' is not a file"):
        load(cfg)
    cfg.write_text(f"metrics: {{listen: 0.0.0.0:9464, tls: {{certificate: "
                   f"{certs / pki.CTL_CERT}}}}}\n")
    with pytest.raises(ConfigError, match="metrics: tls needs certificate and private_key"):
        load(cfg)
    cfg.write_text(f"metrics: {{listen: 0.0.0.0:9464, tls: {{certificate: "
                   f"{certs / pki.CTL_CERT}, private_key: {certs / pki.CTL_KEY}}}}}\n")
    assert load(cfg).metrics_tls == {"certificate": str(certs / pki.CTL_CERT),
                                     "private_key": str(certs / pki.CTL_KEY)}
    assert load(None).metrics_tls is None  # loopback: no TLS needed


def test_on_loopback_everything_is_open(xapi):
    view = WebView.for_listen("127.0.0.1", None, lambda: xapi.url)
    assert view.login is None
    srv = serve("127.0.0.1", 0, Metrics(), status, web=view)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
        conn.request("GET", "/status")
        assert conn.getresponse().status == 200
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and b"/static/app.js" in resp.read()
    finally:
        srv.shutdown()
