"""A XenAPI session over xapi's JSON-RPC (`POST /jsonrpc`), for the sync's own calls.

Why not the official `XenAPI` client: it speaks only XML-RPC, and xapi's XML-RPC is 2.8x the
bytes of its JSON-RPC for the same records (ints as strings, every value in `<value>` tags)
and is decoded by `xmlrpc.client` in Python callbacks, one per tag. A full dump of a
64-host x 1000-VIF pool is ~150 MiB of JSON that the C `json` decoder reads in about a second,
against ~420 MiB of XML and tens of seconds.

What it keeps from the official client, so `XapiSync` drives either one the same way
(spec §1.7, §1.8):
- `session.xenapi.<class>.<call>(...)` prepends the session ref; `login*` calls are sent as
  `session.<name>` without one, store the ref and remember the credentials; `logout` /
  `session.logout` forget them;
- a `SESSION_INVALID` failure logs in again with the remembered credentials and retries, up to
  3 times (then `xmlrpc.client.Fault(500, ...)`; without a login `Fault(401, ...)`);
- any other failure raises `XenAPI.Failure(details)`, `details` being xapi's error list
  (v2's `{"code", "message", "data"}` is turned back into `[message, *data]`);
- `session.transport.set_timeout(seconds)` changes the socket timeout between calls, as
  `netctl.sources.xapi.transport` does for XML-RPC: every call times out, `TimeoutError` (an
  OSError) being a lost connection to the caller;
- TLS verified against the system CAs or `ca_file`, or not at all with `ignore_ssl`
  (`transport.tls_context`); one HTTP/1.1 keep-alive connection, reopened once when the
  server closed it while idle (as `xmlrpc.client.Transport` does).

A server that does not serve JSON-RPC (an HTTP status other than 200, a body that is not
`application/json` or not a JSON-RPC reply: an old xapi routes `/jsonrpc` to its XML-RPC
handler and answers 500) raises `JsonRpcUnavailable`, a `xmlrpc.client.ProtocolError`, so
the sync can fall back to XML-RPC on its first call and otherwise treats it as a lost
connection.

`object_hook` is handed to `json.loads` for every reply: the sync uses it to cut each
`event.from` snapshot down to the fields it reads while the reply is decoded, so a full dump
never exists in memory with every field of every record. A large reply is decoded with the
cyclic GC paused (`transport.gc_paused`).
"""

from __future__ import annotations

import errno
import http.client
import itertools
import json
import urllib.parse
import xmlrpc.client
from collections.abc import Callable
from typing import Any

import XenAPI

from netctl.sources.xapi.transport import LARGE_REPLY, gc_paused, tls_context

JSONRPC_PATH = "/jsonrpc"
# errors on a reused keep-alive connection that mean "the server closed it while idle":
# the request never reached it, so sending it again on a new connection is what
# xmlrpc.client.Transport does too
_STALE = (errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE)


class JsonRpcUnavailable(xmlrpc.client.ProtocolError):
    """The server did not answer as a JSON-RPC endpoint (no /jsonrpc, or not JSON)."""


class JsonRpcTransport:
    """One keep-alive HTTP(S) connection to the pool master's `/jsonrpc`, with a socket
    timeout that can change between calls."""

    def __init__(self, url: str, timeout: float, ca_file: str | None = None,
                 ignore_ssl: bool = False) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.url = f"{parts.scheme}://{parts.netloc}{JSONRPC_PATH}"
        self.timeout = timeout
        self._context = tls_context(ca_file, ignore_ssl) if self.https else None
        self._conn: http.client.HTTPConnection | None = None

    def set_timeout(self, seconds: float) -> None:
        """The socket timeout of the next calls (and of the open connection)."""
        self.timeout = seconds
        conn = self._conn
        if conn is not None:
            conn.timeout = seconds
            if conn.sock is not None:
                conn.sock.settimeout(seconds)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._conn = conn
        return conn

    def post(self, body: bytes) -> bytes:
        """POST one request; the reply's body. JsonRpcUnavailable unless it is a 200 with
        `application/json` (xapi's exact content type, spec §1.1)."""
        for attempt in (0, 1):
            reused = self._conn is not None
            conn = self._conn or self._connect()
            try:
                conn.request("POST", JSONRPC_PATH, body,
                             {"Content-Type": "application/json",
                              "Accept": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                self.close()
                if reused and attempt == 0 and exc.errno in _STALE:
                    continue
                if isinstance(exc, http.client.RemoteDisconnected) and reused and attempt == 0:
                    continue
                raise
            except BaseException:
                self.close()
                raise
            if resp.will_close:
                self.close()
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if resp.status != 200 or ctype != "application/json":
                raise JsonRpcUnavailable(self.url, resp.status,
                                         f"{resp.reason} ({ctype or 'no content type'})",
                                         dict(resp.getheaders()))
            return data
        raise AssertionError("unreachable")  # pragma: no cover


class _Dispatcher:
    """`x.VIF.get_record(ref)` -> send("VIF.get_record", (ref,)), as XenAPI's dispatcher."""

    def __init__(self, send: Callable[[str, tuple[Any, ...]], Any], name: str | None) -> None:
        self._send = send
        self._name = name

    def __getattr__(self, name: str) -> _Dispatcher:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Dispatcher(self._send, name if self._name is None else f"{self._name}.{name}")

    def __call__(self, *args: Any) -> Any:
        if self._name is None:
            raise TypeError("call a method, not the dispatcher")
        return self._send(self._name, args)


class _SessionInvalid(Exception):
    """xapi answered SESSION_INVALID: log in again and retry (XenAPI's _RECONNECT_AND_RETRY)."""


class JsonRpcSession:
    """The part of `XenAPI.Session` netctl uses, over JSON-RPC. See the module docstring."""

    def __init__(self, url: str, *, timeout: float = 30.0, ca_file: str | None = None,
                 ignore_ssl: bool = False,
                 object_hook: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.transport = JsonRpcTransport(url, timeout, ca_file, ignore_ssl)
        self.object_hook = object_hook
        self._session: str | None = None
        self.last_login_method: str | None = None
        self.last_login_params: tuple[Any, ...] | None = None
        self._ids = itertools.count(1)

    @property
    def xenapi(self) -> _Dispatcher:
        return _Dispatcher(self.xenapi_request, None)

    @property
    def handle(self) -> str | None:
        """The session ref (XenAPI's `Session.handle`)."""
        return self._session

    def close(self) -> None:
        """Close the connection (the session stays valid on the server)."""
        self.transport.close()

    def xenapi_request(self, methodname: str, params: tuple[Any, ...]) -> Any:
        if methodname.startswith("login"):
            self._login(methodname, params)
            return None
        if methodname in ("logout", "session.logout"):
            self._logout()
            return None
        for _ in range(3):
            try:
                return self.call(methodname, [self._session, *params])
            except _SessionInvalid:
                if self.last_login_method is None:
                    raise xmlrpc.client.Fault(401, "You must log in") from None
                self._login(self.last_login_method, self.last_login_params or ())
        raise xmlrpc.client.Fault(500, "Tried 3 times to get a valid session, but failed")

    def _login(self, method: str, params: tuple[Any, ...]) -> None:
        try:
            ref = self.call(f"session.{method}", list(params))
        except _SessionInvalid:
            raise xmlrpc.client.Fault(500, "Received SESSION_INVALID when logging in") from None
        self._session = ref
        self.last_login_method = method
        self.last_login_params = params

    def _logout(self) -> None:
        try:
            if self._session is not None:
                self.call("session.logout", [self._session])
        except _SessionInvalid:
            pass  # already gone: what logging out wanted
        finally:
            self._session = None
            self.last_login_method = None
            self.last_login_params = None

    def call(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC 2.0 call; its result, or XenAPI.Failure / _SessionInvalid."""
        ident = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": ident},
                          separators=(",", ":")).encode()
        data = self.transport.post(body)
        try:
            # decode to str first and drop the bytes: a full dump is ~150 MiB of each
            text = data.decode("utf-8")
            del data
            if len(text) < LARGE_REPLY:
                doc = json.loads(text, object_hook=self.object_hook)
            else:
                with gc_paused():
                    doc = json.loads(text, object_hook=self.object_hook)
        except (UnicodeDecodeError, ValueError) as exc:
            raise JsonRpcUnavailable(self.transport.url, 200, f"not JSON: {exc}", {}) from None
        if not isinstance(doc, dict) or doc.get("id") != ident:
            raise JsonRpcUnavailable(self.transport.url, 200, "not a JSON-RPC reply", {})
        error = doc.get("error")
        if error is None:
            if "result" not in doc:
                raise JsonRpcUnavailable(self.transport.url, 200, "reply without result", {})
            return doc["result"]
        details = _error_details(error)
        if details and details[0] == "SESSION_INVALID":
            raise _SessionInvalid(details)
        raise XenAPI.Failure(details)


def _error_details(error: Any) -> list[str]:
    """xapi's error list from a v2 error object (`message` + `data`) or a v1 error list."""
    if isinstance(error, dict):
        data = error.get("data")
        rest = data if isinstance(data, list) else ([] if data is None else [data])
        return [str(error.get("message", "")), *(str(x) for x in rest)]
    if isinstance(error, list):
        return [str(x) for x in error]
    return [str(error)]
