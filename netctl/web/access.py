"""Who may see the web view, /status, /stats and /metrics.

On loopback (the default `metrics.listen`) everyone on the machine may, as before the web view
existed. Anywhere else the pool's operators may, and only they: a user name and password are
checked by logging in to the pool's xapi (`session.login_with_password`, as Xen Orchestra
does) with the official client, and the xapi session is logged out again at once — netctl
keeps no xapi session per person, only its own server-side session, named by a random token
in a cookie (HttpOnly: no script reads it; Secure: TLS only; SameSite=Strict: no other site's
page sends it; expiring). Scripts and Prometheus may send HTTP Basic credentials instead; a
successful check is remembered (by a salted hash) for the session lifetime, so a scrape every
15 s is not an xapi login every 15 s.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit, urlunsplit

import XenAPI

from netctl.sources.xapi.transport import make_transport

COOKIE = "netctl_session"
SESSION_TTL = 8 * 3600.0  # seconds a login lasts (a working day), then log in again


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only (127.0.0.0/8, ::1,
    localhost). A wildcard (0.0.0.0, ::, empty) is every address, not loopback."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


class LoginUnavailable(Exception):
    """xapi could not be asked (unreachable, TLS refused): not a wrong password."""


@dataclass(frozen=True)
class XapiLogin:
    """Checks a user name and password against the pool's xapi. `url` gives the xapi URL
    `netctl run` follows now (the master it found), `ca_file`/`insecure` as for its sync."""

    url: Callable[[], str]
    ca_file: str | None = None
    insecure: bool = False
    timeout: float = 10.0

    def check(self, user: str, password: str) -> bool:
        """True when xapi accepts the login (its session is logged out again at once); False
        when it refuses it; LoginUnavailable when xapi cannot be asked."""
        url = self.url()
        for _ in range(2):  # a slave names its master once: follow it, as the sync does
            session = XenAPI.Session(url, transport=make_transport(
                url, self.timeout, ca_file=self.ca_file, insecure=self.insecure))
            try:
                session.xenapi.login_with_password(user, password, "1.0", "netctl-web")
            except XenAPI.Failure as exc:
                details = list(exc.details or [])
                if details[:1] == ["HOST_IS_SLAVE"] and len(details) > 1:
                    url = _with_host(url, str(details[1]))
                    continue
                if details[:1] in (["SESSION_AUTHENTICATION_FAILED"],
                                   ["RBAC_PERMISSION_DENIED"]):
                    return False
                raise LoginUnavailable(f"xapi at {url} refused the login: {details}") from None
            except OSError as exc:
                raise LoginUnavailable(f"xapi at {url} cannot be reached: {exc}") from None
            try:
                session.xenapi.session.logout()
            except (XenAPI.Failure, OSError):
                pass  # the login was proven; xapi times an abandoned session out itself
            return True
        raise LoginUnavailable(f"xapi at {url}: no master found")


def _with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, parts.query, ""))


@dataclass
class _Session:
    user: str
    expires: float


class Sessions:
    """Server-side sessions: token -> user until it expires. The token is the only thing the
    browser holds; logging out forgets it here, so a copied cookie is dead too."""

    def __init__(self, ttl: float = SESSION_TTL, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.ttl, self.clock = ttl, clock
        self._lock = threading.Lock()
        self._by_token: dict[str, _Session] = {}

    def create(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._by_token = {t: s for t, s in self._by_token.items() if s.expires > now}
            self._by_token[token] = _Session(user, now + self.ttl)
        return token

    def user(self, token: str | None) -> str | None:
        if not token:
            return None
        with self._lock:
            found = self._by_token.get(token)
            if found is None:
                return None
            if found.expires <= self.clock():
                del self._by_token[token]
                return None
            return found.user

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def cookie(self, token: str) -> str:
        """The Set-Cookie value for a new session."""
        return (f"{COOKIE}={token}; Path=/; Max-Age={int(self.ttl)}; HttpOnly; Secure; "
                "SameSite=Strict")

    @staticmethod
    def expired_cookie() -> str:
        return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"


class Access:
    """The gate in front of every route but /login and /healthz. `login` None: open (the
    server listens on loopback)."""

    def __init__(self, login: XapiLogin | None, sessions: Sessions | None = None) -> None:
        self.login = login
        self.sessions = sessions or Sessions()
        self._salt = secrets.token_bytes(16)
        self._basic: dict[bytes, float] = {}  # salted hash of user:password -> valid until
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self.login is None

    def user(self, headers: Mapping[str, str]) -> str | None:
        """Who sent this request ("" on an open server), None when nobody we know: no
        session cookie of ours, an expired one, or no valid Basic credentials."""
        if self.login is None:
            return ""
        user = self.sessions.user(session_token(headers.get("Cookie")))
        if user is not None:
            return user
        return self._basic_user(headers.get("Authorization"))

    def _basic_user(self, header: str | None) -> str | None:
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        key = hashlib.sha256(self._salt + f"{user}:{password}".encode()).digest()
        now = self.sessions.clock()
        with self._lock:
            if self._basic.get(key, 0.0) > now:
                return user
        if not self.check(user, password):
            return None
        with self._lock:
            self._basic[key] = now + self.sessions.ttl
        return user

    def check(self, user: str, password: str) -> bool:
        """The login itself (LoginUnavailable when xapi cannot say)."""
        assert self.login is not None
        if not user or not password:
            return False
        return self.login.check(user, password)


def session_token(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None
