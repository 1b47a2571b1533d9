"""`netctl run` as a service an operator runs (issue 18, Operations), on a real lab under a real
`netctl run` process: `/healthz` answers 200 only while xapi and every host's OVSDB and
OpenFlow sessions are up, and 503 naming what is down (a host's ovsdb-server stopped, a
bridge's OpenFlow session lost, a host's OVSDB endpoint changed to one nothing answers); SIGHUP
re-reads the configuration file — applies what can change live (the audit interval: audits
come faster; an OVSDB endpoint: the host reconnects), names in the log each key that cannot
(the metrics address stays as it was), keeps the configuration in effect when the file is bad
— and never touches the dataplane: not one flow-mod, not one OVSDB operation, a ping between
the hosts' VMs loses nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from harness.running import running_pool, until

pytestmark = pytest.mark.lab
PREFIX = "tso"
PORTS = (28601, 26801, 29601)  # xapi simulator, OpenFlow, metrics
HEALTHZ = f"http://127.0.0.1:{PORTS[2]}/healthz"


@pytest.fixture(scope="module")
def pool():
    with running_pool("mini-pool.yaml", PREFIX, "198.18.52.0/24", PORTS, lacp=False) as demo:
        yield demo


def healthz() -> tuple[int, dict]:
    """/healthz as a probe sees it: (HTTP code, JSON body); (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(HEALTHZ, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except OSError:
        return 0, {}


def healthy() -> bool:
    return healthz()[0] == 200


def netctl_run(pool):
    """The `netctl run` process the lab recorded (by PID and start time): the one alive
    (a restart leaves the stopped one's record)."""
    return [p for p in pool.lab.reload().state.owned_processes()
            if p.what == "netctl-run" and p.alive()][-1]


def log(pool) -> str:
    return (pool.lab.state.dir / "netctl-run.log").read_text(errors="replace")


def config_file(pool):
    return pool.lab.state.dir / "netctl.yaml"


def edit_config(pool, change) -> None:
    """Rewrite netctl run's configuration file: `change(data)` edits the parsed YAML."""
    path = config_file(pool)
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def sighup(pool, expect: str, since: int) -> str:
    """SIGHUP to `netctl run`, then its log from `since` once a line holds `expect`."""
    proc = netctl_run(pool)
    assert proc.alive()
    os.kill(proc.pid, signal.SIGHUP)
    assert until(lambda: expect in log(pool)[since:], 20), log(pool)[since:]
    assert proc.alive(), "SIGHUP ended netctl run"
    return log(pool)[since:]


def dataplane_counters(pool) -> tuple[int, int]:
    """(flow-mods sent, OVSDB operations sent) as /status reports them."""
    st = pool.status()
    return st["flows"]["flow_mods"], sum(h["operations"] for h in st["hosts"])


def test_healthz_is_200_while_everything_is_up(pool):
    assert until(healthy, 30), healthz()
    code, body = healthz()
    assert code == 200 and body["ok"] is True and body["down"] == []
    assert body["xapi"]["connected"] and body["hosts"] == 2 and body["switches"] == 2


def test_healthz_names_the_host_whose_ovsdb_is_down(pool):
    lab = pool.lab.reload()
    ovsdb = next(p for p in lab.state.owned_processes()
                 if p.what == f"{PREFIX}-host2 ovsdb-server")
    ovsdb.stop()
    try:
        assert until(lambda: healthz()[0] == 503, 20), healthz()
        code, body = healthz()
        assert body["ok"] is False
        assert [h["host"] for h in body["hosts_down"]] == ["host2"], body
        assert any(line.startswith("ovsdb host2 ") for line in body["down"]), body
        assert body["xapi"]["connected"]
    finally:
        lab.state.add_process(lab.ovs("host2").start_ovsdb())
    assert until(healthy, 30), healthz()


def test_healthz_names_the_bridge_without_an_openflow_session(pool):
    ovs = pool.lab.ovs("host1")
    # netctl's target and (xenbr0 is external) its OpenFlow 1.0 port-config one
    targets = ovs.vsctl("get-controller", "xenbr0").split()
    assert targets, "netctl set no controller on host1's xenbr0"
    ovs.vsctl("del-controller", "xenbr0")  # the bridge drops its session with netctl
    try:
        def bridge_down() -> bool:
            code, body = healthz()
            return code == 503 and any(
                s["host"] == "host1" and s["bridge"] == "xenbr0" for s in body["switches_down"])

        assert until(bridge_down, 20, step=0.02), healthz()
        assert "openflow host1 xenbr0: no session" in healthz()[1]["down"]
    finally:
        ovs.vsctl("set-controller", "xenbr0", *targets)
    assert until(healthy, 30), healthz()


def test_sighup_applies_live_keys_names_the_others_and_touches_nothing(pool):
    assert until(healthy, 30), healthz()
    flow_mods, operations = dataplane_counters(pool)
    audits = pool.status()["flows"]["audits"]
    ping = pool.lab.popen("vm1", ["ping", "-n", "-q", "-i", "0.05", "-W", "1", "10.50.0.2"],
                          stdout=subprocess.PIPE, text=True)
    original = config_file(pool).read_text()
    since = len(log(pool))

    def change(data: dict) -> None:
        data.setdefault("openflow", {})["audit_interval"] = 2  # live: was 60
        data["metrics"]["listen"] = f"127.0.0.1:{PORTS[2] + 1}"  # needs a restart

    edit_config(pool, change)
    out = sighup(pool, "reload: applied openflow.audit_interval", since)
    assert "metrics.listen changed but cannot change while netctl runs" in out, out
    assert "WARNING" in next(line for line in out.splitlines() if "metrics.listen" in line)
    # the audit interval is in effect: each of the two switches is audited every 2 s
    assert until(lambda: pool.status()["flows"]["audits"] >= audits + 4, 15), pool.status()
    # the metrics address is not: the old one still serves, the new one nothing
    assert healthy()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2] + 1}/healthz", timeout=2)

    # a file that does not load: said, and the configuration in effect stays
    config_file(pool).write_text(original + "bogus: {}\n")
    since = len(log(pool))
    out = sighup(pool, "the configuration in effect is unchanged", since)
    assert "unknown section 'bogus'" in out
    assert until(lambda: pool.status()["flows"]["audits"] >= audits + 8, 15)  # still 2 s
    config_file(pool).write_text(original)  # as it was: audits every 60 s again
    since = len(log(pool))
    sighup(pool, "reload: applied openflow.audit_interval", since)
    time.sleep(1)

    ping.send_signal(signal.SIGINT)
    summary, _ = ping.communicate(timeout=10)
    assert " 0% packet loss" in summary, summary
    assert dataplane_counters(pool) == (flow_mods, operations), \
        "a reload sent flow-mods or OVSDB operations"
    assert healthy()


def test_sighup_changes_a_hosts_ovsdb_endpoint_live(pool):
    assert until(healthy, 30), healthz()
    flow_mods, operations = dataplane_counters(pool)
    since = len(log(pool))
    # host2's OVSDB moved (here: to where nothing answers, on loopback)
    edit_config(pool, lambda d: d["ovsdb"].update(hosts={"host2": "tcp:127.0.0.1:1"}))
    sighup(pool, "reload: applied ovsdb.hosts", since)
    assert until(lambda: healthz()[0] == 503, 20), healthz()
    body = healthz()[1]
    assert [(h["host"], h["endpoint"]) for h in body["hosts_down"]] == [
        ("host2", "tcp:127.0.0.1:1")], body
    since = len(log(pool))
    edit_config(pool, lambda d: d["ovsdb"].pop("hosts"))
    sighup(pool, "reload: applied ovsdb.hosts", since)
    assert until(healthy, 30), healthz()
    # reconnected: compared with what is there, nothing sent
    assert dataplane_counters(pool) == (flow_mods, operations)


def test_sighup_on_the_eventlet_hub(pool):
    """The same with os-ken's other hub (the handler runs in eventlet's main thread, the
    reload on a green thread): applied, and nothing sent."""
    original = config_file(pool).read_text()
    edit_config(pool, lambda d: d["openflow"].update(hub="eventlet"))
    try:
        pool.restart("netctl-run")
        assert until(healthy, 60), healthz()
        flow_mods, operations = dataplane_counters(pool)
        assert flow_mods == 0 and operations == 0, [  # a restart with unchanged intent
            ln for ln in log(pool).splitlines() if "OVSDB operations" in ln][-3:]
        since = len(log(pool))
        edit_config(pool, lambda d: d["openflow"].update(audit_interval=2))
        sighup(pool, "reload: applied openflow.audit_interval", since)
        audits = pool.status()["flows"]["audits"]
        assert until(lambda: pool.status()["flows"]["audits"] >= audits + 4, 15)
        assert dataplane_counters(pool) == (0, 0) and healthy()
    finally:
        config_file(pool).write_text(original)
        pool.restart("netctl-run")
    assert until(healthy, 60), healthz()
