"""The demo pool: LACP with the switch, VLAN trunks, private networks, expected connectivity."""

from __future__ import annotations

import json
import time

import pytest

from netctl.lab.expect import probes
from netctl.lab.probe import run_probes

pytestmark = pytest.mark.lab


def test_host_bonds_negotiate_lacp_with_the_switch(demo_lab):
    assert demo_lab.wait_lacp(timeout=20)
    for host in demo_lab.topology.hosts:
        out = demo_lab.ovs(host.name).appctl("lacp/show", "bond0")
        assert "status: active negotiated" in out
        assert out.count("current attached") == 2


def test_connectivity_matches_the_topology(demo_lab):
    demo_lab.wait_lacp(timeout=20)
    expected = probes(demo_lab.topology, demo_lab.state.plugged)
    assert any(p.expected for p in expected) and any(not p.expected for p in expected)
    results = run_probes(demo_lab, expected)
    wrong = [
        f"{r.probe.src.label} -> {r.probe.address}: expected "
        f"{'reach' if r.probe.expected else 'isolated'}"
        for r in results
        if not r.ok
    ]
    assert not wrong, "\n".join(wrong)


def test_tcp_across_hosts_over_the_bond_and_over_a_vxlan_private_network(demo_lab):
    for server_vm, address in (("vm3", "10.10.0.13"), ("vm6", "10.40.0.16")):
        server = demo_lab.popen(server_vm, ["iperf3", "-s", "-1", "-B", address, "-p", "5202"])
        try:
            time.sleep(0.5)
            out = demo_lab.exec(
                "vm1", ["iperf3", "-c", address, "-p", "5202", "-t", "2", "-J"], timeout=30
            ).stdout
            assert json.loads(out)["end"]["sum_received"]["bytes"] > 1_000_000, address
        finally:
            server.kill()
            server.communicate()


def test_a_silent_cable_is_noticed_only_by_lacp(demo_lab):
    """Carrier stays up; LACP (fast) expires the member; traffic keeps flowing on the other."""
    host1 = demo_lab.ovs("host1")
    demo_lab.silence_cable("host1", "eth0")
    try:
        carrier = demo_lab.exec("host1", ["cat", "/sys/class/net/eth0/carrier"]).stdout.strip()
        assert carrier == "1"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "member: eth0: current" not in host1.appctl("lacp/show", "bond0"):
                break
            time.sleep(0.2)
        else:
            pytest.fail("LACP never noticed the silent member")
        ping = demo_lab.exec("vm1", ["ping", "-n", "-c", "5", "-i", "0.2", "-W", "1",
                                     "10.10.0.13"], check=False)
        assert ping.returncode == 0, ping.stdout
    finally:
        demo_lab.silence_cable("host1", "eth0", silent=False)
    assert demo_lab.wait_lacp(timeout=20)
