"""The simulator's HTTP front: XML-RPC and JSON-RPC over POST, routed as xapi routes them.

xapi's HTTP server picks the handler whose registered path is the longest prefix of the
request path (http_svr.ml, a radix tree): `/jsonrpc` is JSON-RPC, `/`, `/RPC2` and the legacy
`/json` are XML-RPC, so any other path (`/xmlrpc`, `/api`...) falls to `/` and is XML-RPC too.

Threaded (an `event.from` long-poll must not block other calls), HTTP/1.1 keep-alive (the
official client reuses one connection), optional TLS. `serve(sim, host, port)` runs it on a
daemon thread and returns a `RunningServer` with `.url`, `.stop()` and `.restart()`; stop
closes the listening socket *and* every open client connection, which is what a client sees
when xapi goes away. `jsonrpc=False` serves as a xapi from before JSON-RPC: `/jsonrpc` is not
registered, so it falls to `/` (XML-RPC) and a JSON body there is a malformed request (HTTP
500, HTML) — what a client probing for JSON-RPC meets on such a pool master.

A server can also be one pool member's endpoint (`member=<host ref>`, made by
`netctl.xapisim.members.serve_members`): it passes its host to every call, so the simulator
answers as that host (the master, or a slave with HOST_IS_SLAVE), and with `netns=<name>` its
listening socket is made inside that network namespace (the lab's host namespaces).
Each server has its own stop signal for the `event.from` calls it serves, so stopping one
member's endpoint ends its calls only.
"""

from __future__ import annotations

import ctypes
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from netctl.xapisim import codec
from netctl.xapisim.errors import XapiError
from netctl.xapisim.sim import Simulator

# xapi's POST handlers (datamodel.ml http_actions): path -> "xml" | "json".
ROUTES = {"/": "xml", "/RPC2": "xml", "/json": "xml", "/jsonrpc": "json"}


XML_ONLY = {p: kind for p, kind in ROUTES.items() if kind == "xml"}


def route(path: str, routes: dict[str, str] = ROUTES) -> str:
    """The handler of a request path: its longest registered prefix (every path starts with
    `/`, so there is always one)."""
    best = max((p for p in routes if path.startswith(p)), key=len, default="/")
    return routes[best]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle: headers and body in separate segments would meet
    # the client's delayed ACK and cost ~40 ms per call on a keep-alive connection.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: tests and the lab log what matters themselves

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # the client (or stop()) cut the connection mid-reply
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, False)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)

    def _malformed(self, why: str) -> None:
        body = (f"<html><body><h1>HTTP 500 internal server error</h1>{why}</body></html>"
                .encode())
        self._send(500, body, "text/html")

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server naming
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "content-type")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._send(404, b"<html><body>Not found</body></html>", "text/html")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        sim = self.server.sim
        try:
            if route(path, self.server.routes) == "xml":
                method, params = codec.parse_xml_request(body)
                try:
                    value = sim.call(method, params, on_host=self.server.member,
                                     closed=self.server.closed)
                    # system.listMethods is answered bare, without Status/Value (api_server.ml)
                    out = (codec.xml_bare(value) if method == "system.listMethods"
                           else codec.xml_success(value))
                except XapiError as err:
                    out = codec.xml_failure(err.description)
                self._send(200, out, "text/xml")
            else:
                req = codec.parse_json_request(body)
                try:
                    out = codec.json_success(req, sim.call(
                        req.method, req.params, on_host=self.server.member,
                        closed=self.server.closed))
                except XapiError as err:
                    out = codec.json_failure(req, err.description)
                self._send(200, out, "application/json")
        except codec.MalformedRequest as exc:
            self._malformed(str(exc))
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], sim: Simulator,
                 tls: ssl.SSLContext | None, routes: dict[str, str],
                 member: str | None = None) -> None:
        self.sim = sim
        self.tls = tls
        self.routes = routes
        self.member = member
        self.closed = threading.Event()  # set by stop(): ends this server's event.from calls
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's `socket.getfqdn`: a reverse lookup of a member's address
        (or any lookup inside a lab namespace, which has no resolver) can stall for seconds."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, addr

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the block with this thread in network namespace `name` (`/run/netns/<name>`, as
    `ip netns` names them; None: stay). A socket made inside stays in that namespace after
    the thread goes back, which is how one process serves inside several namespaces.
    setns(2) moves only the calling thread; Python 3.11 has no os.setns, hence ctypes."""
    if name is None:
        yield
        return
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{name}") as there:
        _setns(there.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


class RunningServer:
    """A simulator served on a thread. `url` ends with `/` (XML-RPC on the root path).
    `member`: the host ref this endpoint is the xapi of (None: the plain endpoint, always the
    master's); `netns`: the network namespace its socket is made in."""

    def __init__(self, sim: Simulator, host: str, port: int, certfile: str | None = None,
                 keyfile: str | None = None, jsonrpc: bool = True, *,
                 member: str | None = None, netns: str | None = None) -> None:
        self.sim = sim
        self.host = host
        self.member = member
        self.netns = netns
        self.routes = ROUTES if jsonrpc else XML_ONLY
        self.tls: ssl.SSLContext | None = None
        if certfile:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(certfile, keyfile)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        with in_netns(self.netns):
            self._server = _Server((self.host, self.port), self.sim, self.tls, self.routes,
                                   self.member)
        self.port = self._server.server_address[1]  # the real port when 0 was asked for
        if self.member is not None:
            self.sim.member_running(self.member, True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"xapi-sim:{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut every client connection (blocked event.from calls too)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.server_close()
        server.drop_connections()  # before waking event.from: clients see the cut, not a reply
        if self.member is not None:
            self.sim.member_running(self.member, False)
        server.closed.set()
        self.sim.wake()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart(self, drop_sessions: bool = False) -> None:
        """Stop then serve again on the same port (the database survives, like xapi's)."""
        self.stop()
        if drop_sessions:
            self.sim.invalidate_all_sessions()
        self.start()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 0, *,
          certfile: str | None = None, keyfile: str | None = None,
          jsonrpc: bool = True) -> RunningServer:
    """Serve `sim` on host:port (port 0 = an ephemeral port) in a background thread;
    `jsonrpc=False`: no `/jsonrpc` endpoint (an older xapi)."""
    return RunningServer(sim, host, port, certfile, keyfile, jsonrpc)
