"""An IPv6-only pool (issue 18), as XCP-ng 8.3 installs one: `topologies/demo-pool-v6.yaml`.

The management network has no IPv4: xapi's `host.address` is each host's IPv6 address, each
host's ovsdb-server listens there (`ptcp:6640:[...]`), `netctl run` reaches it as
`tcp:[...]:6640` and the bridges connect to the controller at `tcp:[...]:PORT`. The transport
PIFs (the pool network's bond) are IPv6-only (`primary_address_type` IPv6), so the private
networks' VXLAN and GRE tunnels carry the VMs' traffic over IPv6. The VMs keep the demo's own
IPv4 and IPv6 addresses, so the demo's connectivity matrix must hold unchanged."""

from __future__ import annotations

import pytest

from harness.running import capture, running_pool
from netctl.lab.expect import probes
from netctl.lab.probe import run_probes

pytestmark = pytest.mark.lab
PREFIX = "tv6"
MANAGEMENT = "fd00:18:6::/64"
PORTS = (28611, 26811, 29611)  # xapi simulator, OpenFlow, metrics
TRANSPORT = {"host1": "fd4e:30::1", "host2": "fd4e:30::2", "host3": "fd4e:30::3"}


@pytest.fixture(scope="module")
def pool():
    with running_pool("demo-pool-v6.yaml", PREFIX, MANAGEMENT, PORTS) as demo:
        yield demo


def test_netctl_reaches_every_host_over_ipv6_management(pool):
    lab = pool.lab
    controller = f"tcp:[{lab.topology.management_address(None)}]:{PORTS[1]}"
    status = pool.status()
    assert sorted((h["name"], h["endpoint"], h["connected"]) for h in status["hosts"]) == [
        (name, f"tcp:[{lab.topology.management_address(name)}]:6640", True)
        for name in ("host1", "host2", "host3")]
    for host in lab.topology.hosts:
        ovs = lab.ovs(host.name)
        # IPv6 only: no IPv4 address in the host but loopback's
        v4 = lab.exec(host.name, ["ip", "-4", "-o", "addr", "show"]).stdout
        assert [line.split()[1] for line in v4.splitlines()] == ["lo"], v4
        for bridge in ("xapi1", "xapi4", "xapi5"):
            # (an external bridge also has the OpenFlow 1.0 port-config target, port + 1)
            assert controller in ovs.vsctl("get-controller", bridge).split()
    switches = status["switches"]
    # every bridge of every host (xapi1, xenbr2, xapi4, xapi5) came to the IPv6 controller
    assert len(switches) == 12 and all(s["flows"] is not None for s in switches)


def test_tunnel_ports_run_between_the_transport_pifs_ipv6_addresses(pool):
    lab = pool.lab
    for host, own in TRANSPORT.items():
        ovs = lab.ovs(host)
        for bridge, kind in (("xapi4", "vxlan"), ("xapi5", "gre")):
            remotes = []
            for port in ovs.vsctl("list-ports", bridge).split():
                if ovs.vsctl("get", "interface", port, "type") != kind:
                    continue
                options = ovs.vsctl("get", "interface", port, "options")
                remote = ovs.vsctl("get", "interface", port, "options:remote_ip").strip('"')
                local = ovs.vsctl("get", "interface", port, "options:local_ip").strip('"')
                assert local == own, options
                remotes.append(remote)
            assert sorted(remotes) == sorted(a for h, a in TRANSPORT.items() if h != host), \
                (host, bridge)
    tunnels = pool.status()["tunnels"]
    assert len(tunnels) == 6 and all(t["status"]["active"] == "true" for t in tunnels), tunnels
    assert not pool.status()["problems"]


def test_the_demo_connectivity_matrix_holds(pool):
    lab = pool.lab.reload()
    expected = probes(lab.topology, lab.state.plugged)
    assert any(p.expected for p in expected) and any(not p.expected for p in expected)
    results = run_probes(lab, expected)
    wrong = [f"{r.probe.src.label} -> {r.probe.address}: expected "
             f"{'reach' if r.probe.expected else 'isolated'}" for r in results if not r.ok]
    assert not wrong, "\n".join(wrong)
    assert len(results) == 92


@pytest.mark.parametrize(("vm", "address", "receiver", "wire"), [
    # priva: VXLAN from host1 to host2 (UDP 4789 over IPv6)
    ("vm1", "10.40.0.13", "host2", ("ip6", "and", "udp", "port", "4789")),
    # privb: GRE from host1 to host3 (IPv6 next header 47)
    ("vm2", "10.40.0.15", "host3", ("ip6", "proto", "47")),
])
def test_private_network_traffic_crosses_the_wire_in_ipv6_tunnels(pool, vm, address, receiver,
                                                                   wire):
    lab = pool.lab.reload()
    seen = capture(lab, receiver, "any", lambda: lab.exec(
        vm, ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", address], check=False),
        expression=wire)
    from_host1 = [line for line in seen.splitlines()
                  if f"{TRANSPORT['host1']} > {TRANSPORT[receiver]}" in line
                  or f"{TRANSPORT['host1']}." in line and f"> {TRANSPORT[receiver]}." in line]
    assert len(from_host1) >= 3, seen
