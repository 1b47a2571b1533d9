"""`netctl run` as an operator meets it: status, metrics, trace, bad intent, and surviving
xapi, OVSDB and its own restarts — on the demo pool, built from empty hosts by netctl."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.running import capture, running_pool, until
from netctl.cli.demo import ping_ok
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
PREFIX = "trn"
PORTS = (28443, 26633, 29464)


@pytest.fixture(scope="module")
def pool():
    with running_pool("demo-pool.yaml", PREFIX, "198.18.36.0/24", PORTS) as demo:
        yield demo


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netctl.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def reaches(lab, vm: str, address: str, *extra: str) -> bool:
    """At least one of three echo replies (the first may wait for a tunnel's ARP)."""
    argv = ["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", *extra, address]
    return lab.exec(vm, argv, check=False).returncode == 0



def test_status_shows_hosts_bonds_tunnels_vifs_and_no_problem(pool):
    st = pool.status()
    assert {h["name"] for h in st["hosts"]} == {"host1", "host2", "host3"}
    assert all(h["connected"] and not h["error"] for h in st["hosts"])
    assert len(st["switches"]) == 12 and all(s["flows"] for s in st["switches"])
    for bond in st["bonds"]:
        assert set(bond["members"]) == {"eth0", "eth1"}
        assert all("lacp current" in m for m in bond["members"].values()), bond
    keys = {t["network"]: t["status"]["key"] for t in st["tunnels"]}
    assert set(keys) == {"priva", "privb"} and keys["priva"] != keys["privb"]
    assert all(t["status"]["active"] == "true" for t in st["tunnels"])
    vm1 = next(v for v in st["vifs"] if v["vm"] == "vm1" and v["device"] == "0")
    assert vm1["locking"] == "locked" and vm1["port"] == "vif1.0" and vm1["flows"] > 10
    assert st["problems"] == []
    out = cli("status", "--url", f"http://127.0.0.1:{PORTS[2]}").stdout
    for title in ("Hosts", "OpenFlow switches", "Bonds", "Tunnels", "VIFs", "no problems"):
        assert title in out


def test_prometheus_metrics(pool):
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics", timeout=5) as resp:
        text = resp.read().decode()

    def value(name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert match, name
        return float(match.group(1))

    assert value('netctl_ovsdb_connected{host="host1"}') == 1
    assert value("netctl_openflow_switches") == 12
    assert value("netctl_flow_mods_total") > 100
    assert value("netctl_convergence_seconds_count") > 0
    assert value('netctl_recomputes_total{kind="full"}') >= 1
    assert value("netctl_problems") == 0
    assert value("netctl_xapi_events_total") > 0


def test_trace_shows_the_switch_dropping_a_spoofed_packet(pool):
    password = str(pool.lab.state.dir / "password")
    common = ["trace", "--xapi", pool.xapi_url, "--password-file", password, "--lab", PREFIX]
    spoofed = cli(*common, "vm1", "icmp,nw_src=10.10.0.99,nw_dst=10.10.0.13")
    assert spoofed.returncode == 0, spoofed.stderr
    assert "host1 bridge xapi1, port vif1.0" in spoofed.stdout
    assert "Datapath actions: drop" in spoofed.stdout
    legit = cli(*common, "vm1", "icmp,nw_src=10.10.0.11,nw_dst=10.10.0.13")
    assert "Datapath actions: drop" not in legit.stdout and "NORMAL" in legit.stdout
    missing = cli(*common, "vm9", "icmp")
    assert missing.returncode != 0 and "no VM or VIF named 'vm9'" in missing.stderr


def test_bad_intent_is_a_problem_and_the_rest_keeps_working(pool):
    x = pool.session.xenapi
    net = x.network.get_by_name_label("vlan20")[0]
    x.network.set_MTU(net, 20000)
    try:
        assert until(lambda: any("MTU" in p and "20000" in p for p in pool.status()["problems"]))
        problem = next(p for p in pool.status()["problems"] if "20000" in p)
        assert "vlan20" in problem
        assert reaches(pool.lab, "vm1", "10.10.0.13")
        assert reaches(pool.lab, "vm2", "10.20.0.15")  # VLAN 10 is unaffected
    finally:
        x.network.set_MTU(net, 1500)
    assert until(lambda: pool.status()["problems"] == [])


def test_vif_plug_unplug_locking_and_migration_cause_no_recompute(pool):
    """The common changes take the engine's fast path: a VIF's own part of its bridge's
    table, its remote flows elsewhere; no node recomputes, no bridge is rebuilt (issue 9)."""
    x = pool.session.xenapi
    before = pool.status()["engine"]
    vif, vm3 = pool.vif_ref("vm3", 0), pool.ref("VM", pool.topology.vm("vm3").uuid)
    host2 = x.VM.get_resident_on(vm3)
    host3 = next(h for h in x.host.get_all() if x.host.get_name_label(h) == "host3")
    x.VIF.unplug(vif)
    assert until(lambda: not ping_ok(pool.lab, "vm1", "10.10.0.13"), 15)
    x.VIF.plug(vif)
    assert until(lambda: reaches(pool.lab, "vm1", "10.10.0.13"), 15)
    x.VIF.set_locking_mode(vif, "disabled")
    assert until(lambda: not ping_ok(pool.lab, "vm1", "10.10.0.13"), 15)
    x.VIF.set_locking_mode(vif, "network_default")
    assert until(lambda: reaches(pool.lab, "vm1", "10.10.0.13"), 15)
    for target in (host3, host2):
        x.VM.pool_migrate(vm3, target, {})
        assert until(lambda: reaches(pool.lab, "vm1", "10.10.0.13"), 15)
        assert until(lambda: reaches(pool.lab, "vm1", "10.40.0.13"), 15)  # priva, tunnels
    after = pool.status()["engine"]
    assert {n: s["recomputes"] for n, s in after["nodes"].items()} == \
        {n: s["recomputes"] for n, s in before["nodes"].items()}
    assert after["bridges_rebuilt"] == before["bridges_rebuilt"]
    assert after["vif_updates"] > before["vif_updates"]
    assert after["hosts_rebuilt"] == before["hosts_rebuilt"]


def test_a_vif_port_that_appears_is_announced_upstream(pool):
    """When vm3's port appears on its new host's external bridge, netctl sends a RARP from its
    MAC out of that host's uplink (as QEMU announces a migrated guest): the ToR learns where
    the VM went without waiting for the guest. The lab's guest announces with ARP; a RARP
    from vm3's MAC on the ToR can only be netctl's."""
    x = pool.session.xenapi
    vm3 = pool.ref("VM", pool.topology.vm("vm3").uuid)
    mac = x.VIF.get_MAC(pool.vif_ref("vm3", 0)).lower()
    home = x.VM.get_resident_on(vm3)
    other = next(h for h in x.host.get_all() if h != home
                 and x.host.get_name_label(h) in ("host2", "host3"))
    switch = pool.topology.switch.name
    try:
        seen = capture(pool.lab, switch, "any", lambda: x.VM.pool_migrate(vm3, other, {}),
                       seconds=2.0, expression=("ether", "proto", "0x8035"))
        rarps = [line for line in seen.splitlines() if mac in line.lower()]
        name = x.host.get_name_label(other)
        assert rarps, f"no RARP from {mac} reached the ToR:\n{seen}"
        assert all(f"h{name[-1]}-eth" in line for line in rarps), rarps  # from its new host
        assert until(lambda: reaches(pool.lab, "vm1", "10.10.0.13"), 15)
    finally:
        x.VM.pool_migrate(vm3, home, {})
        assert until(lambda: reaches(pool.lab, "vm1", "10.10.0.13"), 15)
    assert pool.status()["problems"] == []


def test_netctl_run_restart_keeps_traffic_and_changes_nothing(pool):
    ping = pool.lab.popen("vm1", ["ping", "-n", "-q", "-i", "0.01", "-c", "500", "10.10.0.13"])
    time.sleep(0.5)
    pool.restart("netctl-run")
    out, _ = ping.communicate(timeout=60)
    assert " 0% packet loss" in out, out
    assert until(lambda: pool.status().get("hosts") and all(
        h["connected"] and h["applies"] for h in pool.status()["hosts"]), 60)
    assert until(lambda: len(pool.status()["switches"]) == 12, 30)
    st = pool.status()
    assert st["flows"]["flow_mods"] == 0, "a restart with unchanged intent sent flow-mods"
    assert all(h["operations"] == 0 for h in st["hosts"]), st["hosts"]


def test_ovsdb_server_restart_is_survived(pool):
    lab = pool.lab.reload()
    ovsdb = next(p for p in lab.state.owned_processes() if p.what == f"{PREFIX}-host2 "
                 "ovsdb-server")
    ovsdb.stop()
    assert until(lambda: not next(h for h in pool.status()["hosts"]
                                  if h["name"] == "host2")["connected"], 20)
    # (ovs-vswitchd itself stops forwarding without its database: nothing to assert there)
    lab.state.add_process(lab.ovs("host2").start_ovsdb())
    assert until(lambda: next(h for h in pool.status()["hosts"]
                              if h["name"] == "host2")["connected"], 30)
    assert until(lambda: reaches(lab, "vm1", "10.40.0.13", "-I", "eth1"), 20)
    assert until(lambda: reaches(lab, "vm1", "10.10.0.13"), 20)


def test_xapi_restart_is_survived_and_changes_still_apply(pool):
    pool.stop("xapi-sim")
    assert until(lambda: not pool.status()["xapi"]["connected"], 30)
    assert reaches(pool.lab, "vm1", "10.10.0.13")  # nothing torn down meanwhile
    pool.restart("xapi-sim")
    assert until(lambda: pool.status()["xapi"]["connected"], 30)
    assert pool.status()["xapi"]["reconnects"] >= 1
    import XenAPI

    session = XenAPI.Session(pool.xapi_url)
    session.xenapi.login_with_password("root", "netctl")
    vif = session.xenapi.VIF.get_by_uuid(pool.topology.vm("vm3").vifs[0].uuid)
    session.xenapi.VIF.set_locking_mode(vif, "disabled")
    try:
        assert until(lambda: not ping_ok(pool.lab, "vm1", "10.10.0.13"), 15)
    finally:
        session.xenapi.VIF.set_locking_mode(vif, "network_default")
    assert until(lambda: ping_ok(pool.lab, "vm1", "10.10.0.13"), 15)
    assert json.dumps(pool.status()["problems"]) == "[]"


def test_netctl_run_on_the_eventlet_hub(pool):
    """The same process restarted with os-ken's other hub: nothing resent, changes applied."""
    import yaml

    config = pool.lab.state.dir / "netctl.yaml"
    original = config.read_text()
    data = yaml.safe_load(original)
    data["openflow"]["hub"] = "eventlet"
    config.write_text(yaml.safe_dump(data))
    log = pool.lab.state.dir / "netctl-run.log"
    seen = len(log.read_text().splitlines()) if log.exists() else 0
    try:
        pool.restart("netctl-run")
        assert until(lambda: len(pool.status().get("switches", [])) == 12 and all(
            h["connected"] and h["applies"] for h in pool.status()["hosts"]), 60)
        st = pool.status()
        assert st["flows"]["flow_mods"] == 0, "\n".join(
            line for line in log.read_text().splitlines()[seen:]
            if "flow-mod" in line or "repair" in line or "WARNING" in line or "ERROR" in line)
        assert all(h["operations"] == 0 for h in st["hosts"])
        vif = pool.vif_ref("vm3", 0)
        pool.session.xenapi.VIF.set_locking_mode(vif, "disabled")
        try:
            assert until(lambda: not ping_ok(pool.lab, "vm1", "10.10.0.13"), 15)
            now = pool.status()["engine"]
            assert [n["recomputes"] for n in now["nodes"].values()] == \
                [n["recomputes"] for n in st["engine"]["nodes"].values()]
            assert now["bridges_rebuilt"] == st["engine"]["bridges_rebuilt"]
        finally:
            pool.session.xenapi.VIF.set_locking_mode(vif, "network_default")
        assert until(lambda: reaches(pool.lab, "vm1", "10.10.0.13"), 15)
    finally:
        config.write_text(original)
        pool.restart("netctl-run")
