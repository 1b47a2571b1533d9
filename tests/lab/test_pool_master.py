"""Following the pool's master (issue 19), on the lab with real packets: every host serves its
own xapi on its management address (the simulator's member endpoints); `netctl run` is given
only host2's — a slave when the pool starts — and finds the master itself. While vm1 (host1)
pings vm2 (host2) every 10 ms: `pool.designate_new_master` moves the master, then the master's
endpoint dies and another host takes over by `pool.emergency_transition_to_master`; no reply
is lost, a resync of unchanged intent sends nothing, and what is changed through the new
master is applied.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest
import XenAPI

from harness.running import Ping, running_pool, until

pytestmark = pytest.mark.lab
PREFIX = "tpm"
PORTS = (28641, 26841, 29641)  # xapi simulator, OpenFlow, metrics


@pytest.fixture(scope="module")
def pool():
    with running_pool("mini-pool.yaml", PREFIX, "198.18.56.0/24", PORTS, lacp=False,
                      members=True) as demo:
        yield demo


def member(pool, host: str) -> XenAPI.Session:
    session = XenAPI.Session(pool.member_url(host))
    session.xenapi.login_with_password("root", "netctl", "1.0", "test-pool-master")
    return session


def counters(pool) -> tuple[int, int]:
    st = pool.status()
    return st["flows"]["flow_mods"], sum(h["operations"] for h in st["hosts"])


def master(pool) -> tuple[str | None, str]:
    xapi = pool.status().get("xapi", {})
    return xapi.get("master"), xapi.get("url", "")


def following(pool, host: str) -> bool:
    st = pool.status().get("xapi", {})
    return st.get("master") == host and st.get("url") == pool.member_url(host) and \
        st.get("connected", False)


def locking_in_force(pool, vm: str, mode: str) -> bool:
    with urllib.request.urlopen(f"{pool.status_url}?vm={vm}", timeout=5) as resp:
        rows = json.load(resp).get("vifs", [])
    return bool(rows) and rows[0]["locking"] == mode


def test_started_on_a_slave_netctl_runs_on_the_master(pool) -> None:
    assert pool.run_xapi_url == pool.member_url("host2")
    assert until(lambda: following(pool, "host1"), 10), pool.status().get("xapi")
    shown = subprocess.run([sys.executable, "-m", "netctl.cli", "status", "--url",
                            f"http://127.0.0.1:{PORTS[2]}"], capture_output=True, text=True,
                           timeout=30)
    assert re.search(r"pool master host1 \(198\.18\.56\.\d+\) since 20\d\d-", shown.stdout), \
        shown.stdout


def test_a_designated_master_is_followed_without_loss_or_churn(pool) -> None:
    assert until(lambda: following(pool, "host1"), 10)
    before = counters(pool)
    x = pool.session.xenapi
    with Ping(pool.lab, "vm1", "10.50.0.2", 0.01) as ping:
        x.pool.designate_new_master(x.host.get_by_name_label("host2")[0])
        assert until(lambda: following(pool, "host2"), 15), pool.status().get("xapi")
        time.sleep(1.0)  # the resync is done: what it sent, it has sent
    assert ping.sent > 100 and ping.lost == 0, f"{ping.lost} of {ping.sent} replies lost"
    assert counters(pool) == before, "a resync of unchanged intent changed the switches"
    new = member(pool, "host2").xenapi
    vif = pool.vif_ref("vm1", 0)
    mode = "disabled" if new.VIF.get_locking_mode(vif) != "disabled" else "unlocked"
    new.VIF.set_locking_mode(vif, mode)
    written = time.monotonic()
    assert until(lambda: locking_in_force(pool, "vm1", mode), 5, 0.02)
    assert time.monotonic() - written <= 1.0
    new.VIF.set_locking_mode(vif, "network_default")
    assert until(lambda: locking_in_force(pool, "vm1", "network_default")
                 or locking_in_force(pool, "vm1", "unlocked"), 5)


def test_a_dead_master_is_replaced_and_found_by_netctl_itself(pool) -> None:
    assert until(lambda: following(pool, "host2"), 10)
    before = counters(pool)
    with Ping(pool.lab, "vm1", "10.50.0.2", 0.01) as ping:
        pool.session.xenapi.simulator.stop_member("host2")  # the master's xapi dies
        local = XenAPI.Session(pool.member_url("host1"))
        local.slave_local_login_with_password("root", "netctl")
        local.xenapi.pool.emergency_transition_to_master()
        assert until(lambda: following(pool, "host1"), 30), pool.status().get("xapi")
        time.sleep(1.0)
    assert ping.sent > 100 and ping.lost == 0, f"{ping.lost} of {ping.sent} replies lost"
    assert counters(pool) == before, "a resync of unchanged intent changed the switches"
    # a VIF plugged through the new master is applied: vm2's VIF out and in again
    new = member(pool, "host1").xenapi
    vif = pool.vif_ref("vm2", 0)
    new.VIF.unplug(vif)
    assert until(lambda: not pool.lab.reload().state.plugged.get("vm2"), 10)
    new.VIF.plug(vif)
    assert until(lambda: bool(pool.lab.reload().state.plugged.get("vm2")), 10)
    assert until(lambda: pool.lab.exec("vm1", ["ping", "-n", "-c", "1", "-W", "0.2",
                                              "10.50.0.2"], check=False).returncode == 0, 10)
