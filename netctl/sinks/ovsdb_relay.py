"""Hosts that connect to netctl (`SDN_controller` protocol `ssl`): one TLS port, one relay per host.

With protocol `ssl` xapi's plugin gives each host the manager `ssl:ADDRESS:PORT`: the host's
ovsdb-server connects out to netctl and serves its database over that connection. All hosts
arrive on the same port, so netctl tells them apart by what they are: it asks each new
connection for `Open_vSwitch.external_ids:system-id` (xapi sets it to the host's uuid) and
refuses, by name, a host the pool does not have, or one whose certificate the CA did not sign.

Everything after that is the ordinary OVSDB client (`HostOvsdb`, ovsdbapp's IDL): each known
host gets a unix socket (`unix:DIR/<host uuid>.sock`), and whatever connects there is piped
to that host's connection. When either side ends, both do: the IDL reconnects and waits on the
socket for the host's next connection (OVS retries its manager with a backoff of 1 to 8 s).

The controller presents its certificate with the CA after it, so a host that learns its CA by
bootstrapping (`--bootstrap set-ssl`, what the plugin does for `ssl`) can take it from there.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from netctl.sinks.ovsdb import SslFiles

LOG = logging.getLogger("netctl.ovsdb.relay")
IDENTIFY = {"method": "transact", "id": "netctl-identify",
            "params": ["Open_vSwitch", {"op": "select", "table": "Open_vSwitch", "where": [],
                                        "columns": ["external_ids"]}]}


class RelayError(RuntimeError):
    """The port cannot be opened, or the certificates cannot be loaded."""


class HostRelays:
    """The TLS port the hosts connect to, and a unix socket per known host."""

    def __init__(self, listen: tuple[str, int], files: SslFiles, directory: Path,
                 known: Callable[[str], str | None], timeout: float = 10.0) -> None:
        """`known(system_id)`: the host's name when it is one of the pool's, else None."""
        self.listen, self.files, self.directory = listen, files, directory
        self.known, self.timeout = known, timeout
        self.errors: dict[str, str] = {}  # peer address -> why it was refused (last)
        self._hosts: dict[str, ssl.SSLSocket] = {}  # system-id -> its connection, waiting
        self._ready: dict[str, threading.Condition] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._context = self._tls_context()
        self._server = self._open()
        threading.Thread(target=self._accept, name="ovsdb-relay", daemon=True).start()

    def endpoint(self, system_id: str) -> str:
        """The endpoint `HostOvsdb` uses for that host (its unix socket, made on first ask)."""
        path = self.directory / f"{system_id}.sock"
        with self._lock:
            if system_id not in self._ready:
                self._ready[system_id] = threading.Condition(self._lock)
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                path.unlink(missing_ok=True)
                listener.bind(str(path))
                os.chmod(path, 0o600)
                listener.listen(4)
                self._sockets.append(listener)
                threading.Thread(target=self._serve_local, args=(system_id, listener),
                                 name=f"ovsdb-relay-{system_id[:8]}", daemon=True).start()
        return f"unix:{path}"

    def close(self) -> None:
        self._stop.set()
        for sock in [self._server, *self._sockets]:
            sock.close()
        with self._lock:
            for conn in self._hosts.values():
                conn.close()
            self._hosts.clear()
            for ready in self._ready.values():
                ready.notify_all()

    # ------------------------------------------------------------------ the hosts' side
    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = ssl.CERT_REQUIRED  # a host proves itself with the CA's certificate
        try:
            chain = Path(self.files.certificate).read_text() + Path(self.files.ca_cert).read_text()
            with tempfile.NamedTemporaryFile("w", suffix=".pem") as tmp:
                tmp.write(chain)
                tmp.flush()
                context.load_cert_chain(tmp.name, self.files.private_key)
            context.load_verify_locations(self.files.ca_cert)
        except (OSError, ssl.SSLError) as exc:
            raise RelayError(f"ovsdb.ssl: cannot load the CA, certificate or key: {exc}") from None
        return context

    def _open(self) -> socket.socket:
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((host, port))
        except OSError as exc:
            server.close()
            raise RelayError(f"cannot listen on {host}:{port} for the hosts' OVSDB: "
                             f"{exc}") from None
        server.listen(64)
        return server

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, peer = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._admit, args=(raw, peer[0]), daemon=True).start()

    def _admit(self, raw: socket.socket, peer: str) -> None:
        """TLS, then who it is; a host of the pool waits for its relay, anything else goes."""
        raw.settimeout(self.timeout)
        try:
            conn = self._context.wrap_socket(raw, server_side=True)
            system_id = self._identify(conn)
        except ssl.SSLCertVerificationError as exc:
            self._refuse(raw, peer, f"its certificate is not signed by the CA in "
                         f"{self.files.ca_cert} ({exc.verify_message})")
            return
        except (OSError, ValueError, KeyError) as exc:
            self._refuse(raw, peer, f"no OVSDB identity: {exc}")
            return
        name = self.known(system_id)
        if name is None:
            self._refuse(conn, peer, f"system-id {system_id or '(none)'} is no host of the pool")
            return
        conn.settimeout(None)
        with self._lock:
            old = self._hosts.pop(system_id, None)
            if old is not None:
                old.close()
            self._hosts[system_id] = conn
            self.errors.pop(peer, None)
            ready = self._ready.get(system_id)
            if ready is not None:
                ready.notify_all()
        LOG.info("host %s (%s) connected from %s", name, system_id, peer)

    def _refuse(self, sock: socket.socket, peer: str, why: str) -> None:
        LOG.error("refused an OVSDB connection from %s: %s", peer, why)
        self.errors[peer] = why
        sock.close()

    @staticmethod
    def _identify(conn: ssl.SSLSocket) -> str:
        conn.sendall(json.dumps(IDENTIFY).encode())
        decoder, text = json.JSONDecoder(), ""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                raise ValueError("the connection ended")
            text += chunk.decode()
            try:
                answer, _ = decoder.raw_decode(text.lstrip())
            except ValueError:
                continue
            if answer.get("id") == IDENTIFY["id"]:
                rows = answer["result"][0]["rows"]
                ids = dict(rows[0]["external_ids"][1]) if rows else {}
                return ids.get("system-id", "")
            if answer.get("method") == "echo":  # the host's keepalive: answer it
                conn.sendall(json.dumps({"result": answer["params"], "error": None,
                                         "id": answer["id"]}).encode())
            text = ""

    # ------------------------------------------------------------------ netctl's side
    def _serve_local(self, system_id: str, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                local, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                ready = self._ready[system_id]
                while system_id not in self._hosts and not self._stop.is_set():
                    ready.wait(1.0)
                remote = self._hosts.pop(system_id, None)
            if remote is None:
                local.close()
                return
            _pipe(local, remote)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side ends; then close both."""
    try:
        while True:
            pending = [s for s in (a, b) if isinstance(s, ssl.SSLSocket) and s.pending()]
            readable = pending or select.select([a, b], [], [])[0]
            for src in readable:
                data = src.recv(65536)
                if not data:
                    return
                (b if src is a else a).sendall(data)
    except OSError:
        return
    finally:
        a.close()
        b.close()
