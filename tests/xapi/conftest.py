"""Fixtures: a simulator seeded from the shipped topologies, served on an ephemeral port."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import XenAPI

from netctl.topology import Topology, parse_file
from netctl.xapisim.server import RunningServer, serve
from netctl.xapisim.sim import Simulator

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "root", "s3cret"


def topology(name: str) -> Topology:
    return parse_file(ROOT / "topologies" / f"{name}-pool.yaml")


@pytest.fixture
def mini() -> Topology:
    return topology("mini")


@pytest.fixture
def demo() -> Topology:
    return topology("demo")


def start(topo: Topology, **kwargs: Any) -> RunningServer:
    kwargs.setdefault("event_delay", 0.0)
    sim = Simulator.from_topology(topo, users={USER: PASSWORD}, **kwargs)
    return serve(sim, "127.0.0.1", 0)


@pytest.fixture
def demo_server(demo: Topology) -> Iterator[RunningServer]:
    srv = start(demo)
    yield srv
    srv.stop()


@pytest.fixture
def mini_server(mini: Topology) -> Iterator[RunningServer]:
    srv = start(mini)
    yield srv
    srv.stop()


def login(srv: RunningServer, url: str | None = None) -> XenAPI.Session:
    session = XenAPI.Session(url or srv.url)
    session.xenapi.login_with_password(USER, PASSWORD, "1.0", "netctl-tests")
    return session


@pytest.fixture
def xapi(demo_server: RunningServer) -> Iterator[XenAPI.Session]:
    session = login(demo_server)
    yield session
    try:
        session.xenapi.session.logout()
    except Exception:  # noqa: BLE001 - server may be stopped by the test
        pass


def post(url: str, path: str, body: bytes, content_type: str) -> tuple[int, str, bytes]:
    """A raw HTTP POST: (status, content type, body)."""
    req = urllib.request.Request(url.rstrip("/") + path, data=body,
                                 headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def jsonrpc(url: str, method: str, params: Any, v2: bool = False, id_: Any = 1) -> dict[str, Any]:
    doc: dict[str, Any] = {"method": method, "params": params, "id": id_}
    if v2:
        doc["jsonrpc"] = "2.0"
    status, ctype, body = post(url, "/jsonrpc", json.dumps(doc).encode(), "application/json")
    assert status == 200 and ctype == "application/json"
    return json.loads(body)
