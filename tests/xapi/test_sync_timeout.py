"""The sync never hangs on a silent xapi, and checks the pool master's TLS certificate.

A TCP proxy between the sync and the simulator stops forwarding without closing anything (what
a frozen pool master or a firewall that lost its state looks like): the sync must notice within
event.from's wait plus its rpc_timeout, log in again and resync once xapi answers.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import XenAPI

from netctl.sources.xapi.sync import XapiSync
from netctl.xapisim.server import serve
from netctl.xapisim.sim import Simulator
from tests.xapi.conftest import PASSWORD, USER, start


class StallingProxy:
    """Forwards TCP to `upstream` until `stall()`; then holds every byte (new connections
    too) without closing, until `resume()`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed:
                self.flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()  # a stall holds what was read, as a dead path would
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc"])
def test_a_silent_xapi_is_noticed_and_the_sync_resumes_with_a_resync(mini, protocol):
    srv = start(mini)
    proxy = StallingProxy(("127.0.0.1", int(srv.url.rsplit(":", 1)[1].strip("/"))))
    sync = XapiSync(proxy.url, USER, PASSWORD, timeout=1.0, rpc_timeout=1.5,
                    backoff_initial=0.05, backoff_max=0.5, protocol=protocol)
    try:
        sync.start()
        sync.wait_for(lambda st: len(st.vifs) > 0, timeout=10)
        direct = XenAPI.Session(srv.url)
        direct.xenapi.login_with_password(USER, PASSWORD, "1.0", "test")
        vif = direct.xenapi.VIF.get_all()[0]
        syncs = sync.full_syncs
        proxy.stall()
        stalled = time.monotonic()
        deadline = stalled + 10
        while sync.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        noticed = time.monotonic() - stalled
        assert sync.reconnects >= 1, "the sync hung on a silent connection"
        assert noticed <= 1.0 + 1.5 + 1.0, f"noticed after {noticed:.1f} s"
        direct.xenapi.VIF.set_locking_mode(vif, "disabled")  # while xapi is out of reach
        time.sleep(1.0)
        proxy.resume()
        state = sync.wait_for(lambda st: st.vifs[vif].locking_mode == "disabled", timeout=15)
        assert state.vifs[vif].locking_mode == "disabled"
        assert sync.full_syncs > syncs  # logged in again and read everything
    finally:
        sync.stop(timeout=5)
        proxy.close()
        srv.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a pool master has one of its own."""
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=pool-master", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc"])
def test_https_pool_master_verified_against_its_ca_or_refused(mini, certificate, protocol):
    key, cert = certificate
    sim = Simulator.from_topology(mini, users={USER: PASSWORD}, event_delay=0.0)
    srv = serve(sim, "127.0.0.1", 0, certfile=str(cert), keyfile=str(key))
    url = srv.url
    try:
        assert url.startswith("https://")
        verified = XapiSync(url, USER, PASSWORD, timeout=0.5, ca_file=str(cert),
                            protocol=protocol)
        verified.connect()
        assert verified.state.vifs and verified.wire == protocol
        verified.stop()
        with pytest.raises(ssl.SSLCertVerificationError):  # system CAs: unknown CA
            XapiSync(url, USER, PASSWORD, timeout=0.5, protocol=protocol).connect()
        insecure = XapiSync(url, USER, PASSWORD, timeout=0.5, ignore_ssl=True,
                            protocol=protocol)
        insecure.connect()
        assert insecure.state.vifs and insecure.wire == protocol
        insecure.stop()
    finally:
        srv.stop()
