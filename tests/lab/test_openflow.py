"""The OpenFlow controller on the demo pool, with real packets (issue: the SDN half)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.sdn import sdn_pool
from netctl.lab.expect import probes
from netctl.lab.probe import run_probes
from netctl.lab.spoof import LEGIT, SPOOFED, spoof_check
from netctl.topology import parse_file
from tests.conftest import TOPOLOGIES, lab_footprint
from tests.lab.conftest import NOTHING

pytestmark = pytest.mark.lab
PREFIX = "tof"


@pytest.fixture(scope="module")
def sdn(tmp_path_factory):
    topo = parse_file(TOPOLOGIES / "demo-pool.yaml").relabel(PREFIX, "198.18.35.0/24")
    pool = sdn_pool(topo, tmp_path_factory.mktemp("sdn"), port=26653)
    yield pool
    pool.close()
    assert lab_footprint(PREFIX) == NOTHING


def test_every_network_forwards_and_isolates_under_the_controller(sdn):
    """External (over the LACP bonds), VLAN 10/20, VXLAN and GRE private networks, machines
    outside the pool; networks sharing a subnet stay apart; IPv4 and IPv6."""
    expected = probes(sdn.topology, sdn.lab.state.plugged)
    results = run_probes(sdn.lab, expected)
    wrong = [
        f"{r.probe.src.label} -> {r.probe.address}: expected "
        f"{'reach' if r.probe.expected else 'isolated'}"
        for r in results
        if not r.ok
    ]
    assert not wrong, "\n".join(wrong)
    assert {p.dst.segment for p in expected if p.expected} >= {
        "net:pool",
        "net:vlan10",
        "net:vlan20",
        "net:priva",
        "net:privb",
    }


def send_and_capture(sdn, tmp_path) -> set[str]:
    """vm1 (pool network, host1) sends crafted frames; vm3 (pool network, host2) captures."""
    return spoof_check(sdn.lab, "vm1", 0, "vm3", 0)


def set_locking(sdn, vm: str, mode: str) -> None:
    sdn.session.xenapi.VIF.set_locking_mode(sdn.vif_ref(vm, 0), mode)


def test_locked_vif_lets_only_its_own_addresses_out(sdn, tmp_path):
    assert sdn.topology.vm("vm1").vifs[0].locking_mode == "locked"
    seen = send_and_capture(sdn, tmp_path)
    assert LEGIT <= seen, f"legitimate frames missing: {LEGIT - seen}"
    assert not seen & SPOOFED, f"spoofed frames got through: {seen & SPOOFED}"


def test_unlocked_passes_everything_and_disabled_nothing(sdn, tmp_path):
    before = sdn.controller.status()["engine"]
    try:
        set_locking(sdn, "vm1", "unlocked")
        deadline = time.monotonic() + 10
        seen: set[str] = set()
        while time.monotonic() < deadline and not SPOOFED - {"dhcp-server-reply"} <= seen:
            seen = send_and_capture(sdn, tmp_path)
        assert (LEGIT | SPOOFED) <= seen
        set_locking(sdn, "vm1", "disabled")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and seen:
            seen = send_and_capture(sdn, tmp_path)
        assert seen == set()
    finally:
        set_locking(sdn, "vm1", "locked")
    # Each change replaced only vm1's part of its bridge's table: no recompute, no bridge
    # rebuilt, anywhere.
    after = sdn.controller.status()["engine"]
    assert recomputes(after) == recomputes(before)
    assert after["bridges_rebuilt"] == before["bridges_rebuilt"]
    assert after["vif_updates"] > before["vif_updates"]


def recomputes(engine: dict) -> int:
    return sum(node["recomputes"] for node in engine["nodes"].values())


def flow_table(sdn) -> dict[str, list[tuple[str, float]]]:
    """Every host bridge's netctl flows with their age (duration resets if re-added)."""
    out = {}
    for host in sdn.topology.hosts:
        ovs = sdn.lab.ovs(host.name)
        for bridge in ovs.vsctl("list-br").split():
            if ovs.vsctl("br-to-parent", bridge) != bridge:
                continue
            rows = []
            for line in ovs.ofctl(
                "-O",
                "OpenFlow13",
                "dump-flows",
                bridge,
                "cookie=0x6e63000000000000/0xffff000000000000",
            ).splitlines():
                if "duration=" not in line:
                    continue
                duration = float(line.split("duration=")[1].split("s,")[0])
                key = ",".join(
                    p
                    for p in line.split(", ")
                    if not p.startswith(("duration", "n_packets", "n_bytes", " cookie", "cookie"))
                )
                rows.append((key, duration))
            out[f"{host.name}/{bridge}"] = sorted(rows)
    return out


@pytest.mark.parametrize("new_hub", ["eventlet"])
def test_controller_restart_loses_no_reply_and_sends_no_flow_mod(sdn, new_hub):
    paths = [
        ("vm1", ["10.10.0.13"]),
        ("vm1", ["-I", "eth1", "10.40.0.16"]),
        ("vm2", ["-6", "fd4e:20::15"]),
    ]  # over the bonds, over VXLAN, on VLAN 10
    for vm, args in paths:  # steady state first: neighbours resolved
        assert (
            sdn.lab.exec(
                vm, ["ping", "-n", "-q", "-c", "3", "-W", "1", *args], check=False
            ).returncode
            == 0
        )
    pings = [
        sdn.lab.popen(vm, ["ping", "-n", "-q", "-i", "0.01", "-c", "600", *args])
        for vm, args in paths
    ]
    time.sleep(1.0)
    before = flow_table(sdn)
    sdn.controller.stop()
    time.sleep(1.0)
    sdn.controller.start(new_hub)  # the other os-ken hub: both are exercised
    status = sdn.controller.wait_converged(sdn.switch_count)
    for ping in pings:
        out, _ = ping.communicate(timeout=60)
        assert " 0% packet loss" in out, out
    after = flow_table(sdn)
    # The new controller sent nothing: its own count, and the switches agree (same flows,
    # none re-added: every flow is older than before).
    assert status["stats"]["flow_mods"] == 0
    assert [k for k, _ in sum(before.values(), [])] == [k for k, _ in sum(after.values(), [])]
    for bridge, rows in after.items():
        for (key, age_after), (_, age_before) in zip(rows, before[bridge], strict=True):
            assert age_after > age_before, f"{bridge}: {key} was re-installed"


def test_controller_never_touches_flows_it_does_not_own(sdn):
    ovs = sdn.lab.ovs("host2")
    foreign = "cookie=0x1,table=0,priority=65000,in_port=LOCAL,udp,tp_dst=9,actions=drop"
    ovs.ofctl("-O", "OpenFlow13", "add-flow", "xapi1", foreign)
    try:
        set_locking(sdn, "vm3", "unlocked")  # a change that recomputes host2's xapi1
        time.sleep(2.0)
        dump = ovs.ofctl("-O", "OpenFlow13", "dump-flows", "xapi1", "cookie=0x1/-1")
        assert "tp_dst=9" in dump
    finally:
        set_locking(sdn, "vm3", "network_default")
        ovs.ofctl("-O", "OpenFlow13", "del-flows", "xapi1", "cookie=0x1/-1")


def test_the_controller_rejects_a_busy_port(sdn, tmp_path):
    host, port = sdn.controller.listen.rsplit(":", 1)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "netctl.cli",
            "openflow",
            "--listen",
            f"{host}:{port}",
            "--xapi",
            sdn.server.url,
            "--password-file",
            str(sdn.controller.workdir / "password"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert f"cannot listen for OpenFlow on {host}:{port}" in proc.stderr


def test_a_replugged_vif_gets_its_flows_from_the_port_status_event(sdn):
    old = sdn.lab.ovs("host2").vsctl("get", "Interface", sdn.lab.vif_port("vm3", 0), "ofport")
    sdn.lab.unplug_vif("vm3", 0)
    sdn.lab.ovs("host2").vsctl(
        "add-port", "xapi1", "tofpad", "--", "set", "Interface", "tofpad", "type=internal"
    )  # takes the old port number
    try:
        sdn.lab.plug_vif("vm3", 0)
        new = sdn.lab.ovs("host2").vsctl("get", "Interface", sdn.lab.vif_port("vm3", 0), "ofport")
        assert new != old
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (
                sdn.lab.exec(
                    "vm1", ["ping", "-n", "-c", "1", "-W", "1", "10.10.0.13"], check=False
                ).returncode
                == 0
            ):
                break
        else:
            pytest.fail("vm3 unreachable after its VIF came back on a new port")
    finally:
        sdn.lab.ovs("host2").vsctl("--if-exists", "del-port", "xapi1", "tofpad")
