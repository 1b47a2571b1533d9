"""What the metrics server needs to serve the web view: `WebView`, built by `netctl run` from
its configuration (`metrics.listen`, `metrics.tls`) and the xapi it follows, and attached to
the server by `netctl.service.metrics.serve(web=...)`.

TLS is set up here too: the listening socket accepts plain TCP, and each connection's
handshake runs on that connection's own thread (`handshake`), so one slow or hostile client
never holds up `accept` for the others.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netctl.web.access import Access, XapiLogin, is_loopback
from netctl.web.events import EventHub
from netctl.web.http import WebRoutes

HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class WebView:
    """`login` None: no login (loopback). `certificate`/`private_key`: serve TLS."""

    login: XapiLogin | None = None
    certificate: str | None = None
    private_key: str | None = None

    @classmethod
    def for_listen(cls, listen_host: str, tls: dict[str, str] | None,
                   xapi_url: Callable[[], str], ca_file: str | None = None,
                   insecure: bool = False) -> WebView:
        """On loopback: open (TLS only if configured). Elsewhere: a login against xapi at
        `xapi_url()`; `tls` is then required (the configuration refuses to load without
        it: `netctl.service.config`)."""
        login = None if is_loopback(listen_host) else XapiLogin(xapi_url, ca_file, insecure)
        return cls(login, (tls or {}).get("certificate"), (tls or {}).get("private_key"))

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.certificate:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate, self.private_key)
        return context

    def routes(self, server: Any) -> WebRoutes:
        """The routes for a metrics server: its `status` callable, and its `stats` one when
        it has it (read at each message: it may come later)."""
        hub = EventHub(server.status, lambda: getattr(server, "stats", None))
        return WebRoutes(Access(self.login), hub)


def wrap(context: ssl.SSLContext | None, sock: Any) -> Any:
    """An accepted socket, TLS-wrapped without a handshake yet (see `handshake`)."""
    if context is None:
        return sock
    return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def handshake(sock: Any) -> bool:
    """The TLS handshake of an accepted connection, on its own thread; False: give up on it
    (a client that does not speak TLS, or too slowly)."""
    if not isinstance(sock, ssl.SSLSocket):
        return True
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        sock.do_handshake()
        sock.settimeout(None)
        return True
    except (ssl.SSLError, OSError):
        return False
