"""The web view's routes on the metrics server: the metrics handler offers every request here
first (`WebRoutes.get`/`post`); what this does not answer (/metrics, /status, /stats,
/healthz) the handler serves as before, once the gate let it through.

- `/` the page, `/static/NAME` its assets (a fixed list read from the package: nothing else
  on disk is reachable), `/events` the live stream (text/event-stream, `events.EventHub`);
- `/login` (GET: the form; POST: user and password checked against xapi, a session cookie
  set), `/logout`;
- the gate (`access.Access`): on a server that needs a login, a request without a valid
  session (or Basic credentials) is refused before any route but /login and /healthz — the
  page with a redirect to /login, everything else with 401.
"""

from __future__ import annotations

import html
import json
import logging
import ssl
from http.server import BaseHTTPRequestHandler
from importlib import resources
from urllib.parse import SplitResult, parse_qs

from netctl.web.access import Access, LoginUnavailable, session_token
from netctl.web.events import EventHub

LOG = logging.getLogger("netctl.web")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8",
         ".LICENSE": "text/plain; charset=utf-8", ".png": "image/png",
         ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGES = ("/", "/index.html")
OPEN_ROUTES = ("/login", "/logout", "/healthz", "/healthz/")
KEEPALIVE = 15.0  # seconds: a comment line keeps proxies from closing a quiet stream
MAX_FORM = 8192


def _static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, type) of every asset shipped in netctl/web/static."""
    out = {}
    for entry in resources.files("netctl.web").joinpath("static").iterdir():
        name = entry.name
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if entry.is_file() and suffix in TYPES:
            out[name] = (entry.read_bytes(), TYPES[suffix])
    return out


class WebRoutes:
    def __init__(self, access: Access, hub: EventHub) -> None:
        self.access, self.hub = access, hub
        self.static = _static_files()

    # ------------------------------------------------------------------ GET
    def get(self, h: BaseHTTPRequestHandler, url: SplitResult) -> bool:
        """Answer a GET if it is the web view's or refused by the gate; False: the caller
        serves it (an allowed /metrics, /status, /stats, /healthz or a 404)."""
        path = url.path
        if path == "/login":
            if self.access.open:
                return self._redirect(h, "/")
            return self._login_page(h, 200, "")
        if path == "/logout":
            self.access.sessions.drop(session_token(h.headers.get("Cookie")))
            return self._redirect(h, "/" if self.access.open else "/login",
                                  cookie=None if self.access.open else
                                  self.access.sessions.expired_cookie())
        if path not in OPEN_ROUTES and self.access.user(h.headers) is None:
            if path in PAGES or path.startswith("/static/"):
                return self._redirect(h, "/login")
            return self._send(h, 401, json.dumps({"error": f"{path}: login required (log in "
                                                  "at /login, or send HTTP Basic credentials "
                                                  "of a pool user)"}).encode(),
                              "application/json",
                              {"WWW-Authenticate": 'Basic realm="netctl", charset="UTF-8"'})
        if path in PAGES:
            body, ctype = self.static["index.html"]
            return self._send(h, 200, body, ctype)
        if path.startswith("/static/"):
            found = self.static.get(path[len("/static/"):])
            if found is None:
                return self._send(h, 404, b"no such asset", "text/plain")
            return self._send(h, 200, *found)
        if path == "/events":
            self._events(h)
            return True
        return False

    # ------------------------------------------------------------------ POST
    def post(self, h: BaseHTTPRequestHandler, url: SplitResult) -> bool:
        if url.path != "/login":
            return False
        if self.access.open:
            return self._redirect(h, "/")
        length = int(h.headers.get("Content-Length") or 0)
        if length > MAX_FORM:
            return self._login_page(h, 413, "the form is too large")
        form = parse_qs(h.rfile.read(length).decode("utf-8", "replace"))
        user = (form.get("user") or [""])[0]
        password = (form.get("password") or [""])[0]
        try:
            ok = self.access.check(user, password)
        except LoginUnavailable as exc:
            LOG.warning("web login of %r: %s", user, exc)
            return self._login_page(h, 503, f"cannot check the login now: {exc}")
        if not ok:
            LOG.info("web login refused for %r", user)
            return self._login_page(h, 401, f"login refused for user '{user}': the pool's "
                                    "xapi did not accept this user name and password")
        LOG.info("web login: %r", user)
        token = self.access.sessions.create(user)
        return self._redirect(h, "/", cookie=self.access.sessions.cookie(token))

    # ------------------------------------------------------------------ the stream
    def _events(self, h: BaseHTTPRequestHandler) -> None:
        """One JSON message per interval until the page goes away or its session ends."""
        h.close_connection = True
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        for key, value in SECURITY_HEADERS.items():
            h.send_header(key, value)
        h.end_headers()
        self.hub.listen()
        seq = 0
        try:
            h.wfile.write(b"retry: 2000\n\n")
            while True:
                if self.access.user(h.headers) is None:
                    h.wfile.write(b"event: logout\ndata: {}\n\n")
                    h.wfile.flush()
                    return
                new, message = self.hub.wait(seq, KEEPALIVE)
                if new > seq and message:
                    h.wfile.write(b"data: " + message + b"\n\n")
                else:
                    h.wfile.write(b": keep-alive\n\n")
                seq = new
                h.wfile.flush()
        except (OSError, ssl.SSLError):
            return  # the page closed: nothing to say to anyone
        finally:
            self.hub.leave()

    # ------------------------------------------------------------------ answers
    def _login_page(self, h: BaseHTTPRequestHandler, code: int, error: str) -> bool:
        body, _ = self.static["login.html"]
        text = body.decode().replace(
            "<!--error-->", f'<p class="error" id="error">{html.escape(error, quote=False)}</p>'
            if error else "")
        return self._send(h, code, text.encode(), "text/html; charset=utf-8")

    @staticmethod
    def _redirect(h: BaseHTTPRequestHandler, where: str, cookie: str | None = None) -> bool:
        h.send_response(303)
        h.send_header("Location", where)
        if cookie:
            h.send_header("Set-Cookie", cookie)
        h.send_header("Content-Length", "0")
        h.end_headers()
        return True

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> bool:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for key, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(body)
        return True
