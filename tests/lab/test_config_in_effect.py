"""Written vs in effect (issue 24) under `netctl run`, as an operator sees it: every host's
last OVSDB change is written and in effect, with both times, in /status, `netctl status` and
/metrics; a change made while a host's ovs-vswitchd is stopped (SIGSTOP of the lab's own
vswitchd, by the PID in its pidfile) is shown written but pending — the pool is not converged —
and in effect, with its time, once vswitchd runs again. The worker did not wait for it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.running import running_pool, until
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
PREFIX = "tcf"
PORTS = (28791, 26991, 29801)


@pytest.fixture(scope="module")
def pool():
    with running_pool("mini-pool.yaml", PREFIX, "198.18.87.0/24", PORTS, lacp=False) as demo:
        yield demo


def metrics() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def host_row(pool, name: str) -> dict:
    return next(h for h in pool.status()["hosts"] if h["name"] == name)


def cli_status() -> str:
    return subprocess.run([sys.executable, "-m", "netctl.cli", "status", "--url",
                           f"http://127.0.0.1:{PORTS[2]}"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "COLUMNS": "250"}).stdout


def test_every_host_written_and_in_effect_with_both_times(pool):
    text = metrics()
    for name in ("host1", "host2"):
        cfg = host_row(pool, name)["config"]
        assert cfg["written"] and cfg["in_effect"] and not cfg["pending"], cfg
        assert cfg["cur_cfg"] >= cfg["next_cfg"] >= 1
        assert 0 < cfg["write_seconds"] <= cfg["effect_seconds"] < 60
        assert cfg["in_effect_at"] >= cfg["written_at"]
        assert metric(text, f'netctl_ovsdb_pending_config{{host="{name}"}}') == 0
        assert metric(text, f'netctl_ovsdb_last_effect_seconds{{host="{name}"}}') == \
            pytest.approx(cfg["effect_seconds"], abs=1e-3)
    assert metric(text, "netctl_ovsdb_effect_seconds_count") >= 2
    assert metric(text, "netctl_ovsdb_write_seconds_count") >= 2
    out = cli_status()
    assert "written" in out and "in effect" in out


def test_stopped_vswitchd_shows_written_not_in_effect_then_in_effect(pool):
    x = pool.session.xenapi
    host1 = pool.ref("host", pool.topology.host("host1").uuid)
    eth0 = next(r for r, p in x.PIF.get_all_records().items()
                if p["host"] == host1 and p["device"] == "eth0" and str(p["VLAN"]) == "-1")
    before = host_row(pool, "host1")["config"]
    pid = int((pool.lab.reload().ovs("host1").rundir / "ovs-vswitchd.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        net = x.network.create({"name_label": "v77", "name_description": "",
                                "other_config": {}})
        x.VLAN.create(eth0, "77", net)
        assert until(lambda: (host_row(pool, "host1")["config"]["next_cfg"] or 0)
                     > before["next_cfg"], 20), "the change was not written"
        cfg = host_row(pool, "host1")["config"]
        assert cfg["written"] and cfg["pending"] and not cfg["in_effect"], cfg
        assert cfg["cur_cfg"] < cfg["next_cfg"] and cfg["write_seconds"] < 5
        assert metric(metrics(), 'netctl_ovsdb_pending_config{host="host1"}') == 1
        assert metric(metrics(), 'netctl_ovsdb_pending_config{host="host2"}') == 0
        assert not pool.converged()  # written is not converged
        time.sleep(1.5)
        cfg = host_row(pool, "host1")["config"]
        assert cfg["pending"] and cfg["waiting_seconds"] >= 1.5
        assert "not yet" in cli_status()
    finally:
        os.kill(pid, signal.SIGCONT)
    held = time.monotonic() - stopped
    assert until(lambda: host_row(pool, "host1")["config"]["in_effect"], 30)
    cfg = host_row(pool, "host1")["config"]
    assert cfg["effect_seconds"] >= 1.5 and cfg["effect_seconds"] <= held + 5
    assert metric(metrics(), 'netctl_ovsdb_pending_config{host="host1"}') == 0
    assert pool.lab.reload().ovs("host1").bridge_exists(x.network.get_bridge(net))
    assert until(pool.converged, 60)
