"""/healthz (`netctl.service.health`, served by `netctl.service.metrics`) on a real `Run` holding
the demo pool (3 hosts, 12 bridges), before anything is reachable: xapi not connected, every
host's OVSDB refused, no switch connected. A probe gets 503 and the JSON names each of them, as
a person reads it (`down`) and as data (`hosts_down`, `switches_down`).

Why: a load balancer, systemd or an operator's monitoring asks one question — is netctl in
control of the whole pool? — and, when not, needs to know what to look at. The 200 side, and a
host or bridge going down and coming back, are shown on a real lab
(tests/lab/test_service_ops.py).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from netctl.service.config import load
from netctl.service.health import health
from netctl.service.metrics import serve
from netctl.service.run import Run
from tests.unit.test_flows import pool_state


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("health") / "netctl.yaml"
    path.write_text("openflow: {listen: 127.0.0.1:1, target: tcp:127.0.0.1:1}\n"
                    "ovsdb: {endpoint: 'tcp:127.0.0.1:1', timeout: 0.5}\n")
    r = Run(load(path), "http://127.0.0.1:1/", "root", "netctl")
    state = pool_state("demo-pool.yaml")
    r.loop.submit_xapi(SimpleNamespace(objects={o.ref: (None, o) for o in state.objects()}))
    r.loop.round()
    deadline = time.monotonic() + 10
    while not all(w.status.last_error for w in r.workers.values()):
        assert time.monotonic() < deadline, "the OVSDB workers never tried"
        time.sleep(0.05)
    yield r
    for worker in list(r.workers.values()):
        worker.stop(wait=False)


def test_everything_down_is_named(run):
    code, body = health(run)
    assert code == 503 and body["ok"] is False
    assert body["xapi"] == {"url": "http://127.0.0.1:1/", "connected": False}
    assert body["down"][0] == "xapi http://127.0.0.1:1/: not connected"
    assert [h["host"] for h in body["hosts_down"]] == ["host1", "host2", "host3"]
    assert all(h["endpoint"] == "tcp:127.0.0.1:1" and h["error"] for h in body["hosts_down"])
    assert body["hosts"] == 3 and body["switches"] == 12
    down = {(s["host"], s["bridge"]) for s in body["switches_down"]}
    assert len(down) == 12 and ("host1", "xapi1") in down
    assert "openflow host1 xapi1: no session" in body["down"]
    assert any(line.startswith("ovsdb host2 (tcp:127.0.0.1:1): ") for line in body["down"])


def test_served_as_503_with_json_over_http(run):
    server = serve("127.0.0.1", 0, run.metrics, run.status, lambda: health(run))
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 503
        assert err.value.headers["Content-Type"] == "application/json"
        assert json.load(err.value)["ok"] is False
        # /status and /metrics are as they were
        with urllib.request.urlopen(url.replace("healthz", "status"), timeout=5) as resp:
            assert json.load(resp)["counts"]["hosts"] == 3
    finally:
        server.shutdown()


def test_no_healthz_without_a_health_function(run):
    server = serve("127.0.0.1", 0, run.metrics, run.status)
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/healthz",
                                   timeout=5)
        assert err.value.code == 404
    finally:
        server.shutdown()
