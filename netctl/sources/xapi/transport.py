"""How netctl's XenAPI sessions reach xapi: HTTP(S) with a socket timeout and TLS checked.

The official `XenAPI.Session` sets no socket timeout, so a half-open connection to the pool
master (a master that froze, a firewall that dropped the state, a cable pulled mid-call) hangs
the caller forever. Every netctl session gets one of these transports instead: a call that
sees no byte for `timeout` seconds fails with `TimeoutError` (an `OSError`), which the sync
treats like any lost connection (log in again, full resync). `event.from` blocks on the server
for up to its own timeout, so its caller raises the socket timeout above that first
(`set_timeout`).

TLS is verified by default (the system's CAs, or `ca_file` for a pool master's self-signed
certificate, as `/etc/stunnel/xapi-pool-ca-bundle.pem` on a host); `insecure=True` is the
explicit, logged way out.

`struct_hook` (optional) is applied to every struct as the reply is parsed, as `json.loads`'s
`object_hook` is in `netctl.sources.xapi.jsonrpc`: the sync cuts each `event.from` snapshot to the
fields it reads there, so a full dump over XML-RPC (~4x its size as Python objects) never
exists whole in memory. A large reply is parsed with the cyclic GC paused (`gc_paused`).
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import logging
import ssl
import xmlrpc.client
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)


StructHook = Callable[[dict[str, Any]], Any]
# a reply at least this big is decoded with the cyclic GC paused
LARGE_REPLY = 1 << 20


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a large reply is decoded or converted: that work allocates
    up to ~1M containers that all survive it, and the collector would rescan them again and
    again (measured: 2-3x the time of the work itself for a 64-host x 1000-VIF pool). None of
    them forms a reference cycle, and refcounting still frees whatever is dropped. Only ever
    around work on data already received, never around a wait on the network. Leaves the GC
    alone if someone else paused it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _HookedUnmarshaller(xmlrpc.client.Unmarshaller):
    """xmlrpc.client's unmarshaller, passing each struct through a hook once it is built."""

    dispatch = dict(xmlrpc.client.Unmarshaller.dispatch)

    def __init__(self, struct_hook: StructHook) -> None:
        super().__init__()
        self._struct_hook = struct_hook

    def end_struct(self, data: str) -> None:
        xmlrpc.client.Unmarshaller.end_struct(self, data)
        self._stack[-1] = self._struct_hook(self._stack[-1])

    dispatch["struct"] = end_struct


class _Timeouts:
    """The socket timeout of this transport's one connection, changeable between calls."""

    timeout: float
    struct_hook: StructHook | None = None
    _connection: tuple[Any, http.client.HTTPConnection | None]

    def parse_response(self, response: http.client.HTTPResponse) -> Any:
        # called once the reply's headers are in: what is left is reading and parsing it
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) < LARGE_REPLY:
            return super().parse_response(response)  # type: ignore[misc]
        with gc_paused():
            return super().parse_response(response)  # type: ignore[misc]

    def getparser(self) -> tuple[Any, Any]:
        if self.struct_hook is None:
            return super().getparser()  # type: ignore[misc]
        target = _HookedUnmarshaller(self.struct_hook)
        return xmlrpc.client.ExpatParser(target), target

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds
        conn = self._connection[1] if self._connection else None
        sock = getattr(conn, "sock", None) if conn is not None else None
        if conn is not None:
            conn.timeout = seconds
        if sock is not None:
            sock.settimeout(seconds)

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)  # type: ignore[misc]
        conn.timeout = self.timeout
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)
        return conn


class TimeoutTransport(_Timeouts, xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout


class SafeTimeoutTransport(_Timeouts, xmlrpc.client.SafeTransport):
    def __init__(self, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.timeout = timeout


def tls_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """Verify the pool master's certificate (against `ca_file` when given), or not at all
    when `insecure` is asked for explicitly."""
    if insecure:
        log.warning("xapi: TLS certificate NOT verified (insecure asked for)")
        return ssl._create_unverified_context()  # noqa: S323 - the operator's explicit choice
    return ssl.create_default_context(cafile=ca_file)


def make_transport(url: str, timeout: float, ca_file: str | None = None,
                   insecure: bool = False, struct_hook: StructHook | None = None
                   ) -> TimeoutTransport | SafeTimeoutTransport:
    transport: TimeoutTransport | SafeTimeoutTransport
    if url.lower().startswith("https:"):
        transport = SafeTimeoutTransport(timeout, tls_context(ca_file, insecure))
    else:
        transport = TimeoutTransport(timeout)
    transport.struct_hook = struct_hook
    return transport
