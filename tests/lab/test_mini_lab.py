"""The 2-host lab: per-host OVSDB, cross-host IPv4/IPv6/TCP, VIF hotplug and migration."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from netctl.lab.lab import Lab
from netctl.topology import parse_file
from tests.conftest import TOPOLOGIES, lab_footprint
from tests.lab.conftest import NOTHING

pytestmark = pytest.mark.lab


def ping(lab: Lab, node: str, address: str, count: int = 3) -> bool:
    family = "-6" if ":" in address else "-4"
    proc = lab.exec(
        node, ["ping", family, "-n", "-c", str(count), "-i", "0.2", "-W", "1", address], check=False
    )
    return proc.returncode == 0


def test_each_host_ovsdb_answers_on_its_own_endpoint_with_only_its_bridges(mini_lab):
    ports = {}
    for host in mini_lab.topology.hosts:
        endpoint = mini_lab.ovsdb_endpoint(host.name)
        assert endpoint == f"tcp:{mini_lab.topology.management_address(host.name)}:6640"
        # From the root namespace, over the management network, as a controller would.
        out = subprocess.run(
            [
                "ovs-vsctl",
                f"--db={endpoint}",
                "--timeout=10",
                "--format=json",
                "--columns=name,external_ids",
                "list",
                "Interface",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = json.loads(out)["data"]
        ports[host.name] = {row[0] for row in rows}
        system_id = (
            subprocess.run(
                [
                    "ovs-vsctl",
                    f"--db={endpoint}",
                    "get",
                    "Open_vSwitch",
                    ".",
                    "external_ids:system-id",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .strip('"')
        )
        assert system_id == host.uuid
    vm1, vm2 = (mini_lab.vif_port(v, 0) for v in ("vm1", "vm2"))
    assert vm1 in ports["host1"] and vm1 not in ports["host2"]
    assert vm2 in ports["host2"] and vm2 not in ports["host1"]
    assert {"xenbr0", "eth0"} <= ports["host1"] and {"xenbr0", "eth0"} <= ports["host2"]


def test_vif_port_carries_the_xapi_external_ids(mini_lab):
    vm = mini_lab.topology.vm("vm1")
    vif = vm.vifs[0]
    net = mini_lab.topology.network(vif.network)
    ids = mini_lab.ovs("host1").vsctl(
        "get", "Interface", mini_lab.vif_port("vm1", 0), "external_ids"
    )
    for key, value in (
        ("xs-vif-uuid", vif.uuid),
        ("xs-vm-uuid", vm.uuid),
        ("xs-network-uuid", net.uuid),
        ("attached-mac", vif.mac),
    ):
        assert f'{key}="{value}"' in ids
    assert mini_lab.vif_port("vm1", 0) == f"vif{vm.domid}.0"


def test_vms_on_two_hosts_ping_over_ipv4_and_ipv6(mini_lab):
    assert ping(mini_lab, "vm1", "10.50.0.2")
    assert ping(mini_lab, "vm2", "fd4e:50::1")
    # The frames crossed the switch: it learned both VM MACs on the hosts' ports.
    fdb = mini_lab.tor.appctl("fdb/show", "tor")
    for vm in ("vm1", "vm2"):
        assert mini_lab.topology.vm(vm).vifs[0].mac in fdb


def test_iperf3_tcp_between_hosts(mini_lab):
    server = mini_lab.popen("vm2", ["iperf3", "-s", "-1", "-B", "10.50.0.2", "-p", "5201"])
    try:
        time.sleep(0.5)
        out = mini_lab.exec(
            "vm1", ["iperf3", "-c", "10.50.0.2", "-p", "5201", "-t", "2", "-J"], timeout=30
        ).stdout
        result = json.loads(out)
        assert result["end"]["sum_received"]["bytes"] > 1_000_000
    finally:
        server.kill()
        server.communicate()


def test_unplug_plug_and_migrate_while_running(mini_lab):
    mini_lab.unplug_vif("vm2", 0)
    assert not ping(mini_lab, "vm1", "10.50.0.2", count=2)
    assert mini_lab.vif_port("vm2", 0) not in mini_lab.ovs("host2").vsctl("list-ports", "xenbr0")
    mini_lab.plug_vif("vm2", 0)
    assert ping(mini_lab, "vm1", "10.50.0.2")
    mini_lab.migrate_vm("vm2", "host1")
    try:
        port = mini_lab.vif_port("vm2", 0)
        assert port in mini_lab.ovs("host1").vsctl("list-ports", "xenbr0").split()
        assert port not in mini_lab.ovs("host2").vsctl("list-ports", "xenbr0").split()
        assert ping(mini_lab, "vm1", "10.50.0.2")
        # A second process sees where the VM is now (the lab records it).
        assert Lab.attach("tmin").vm_host("vm2") == "host1"
    finally:
        mini_lab.migrate_vm("vm2", "host2")
    assert ping(mini_lab, "vm1", "10.50.0.2")


def test_lab_exec_command(mini_lab):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "netctl.cli",
            "lab",
            "exec",
            "--lab",
            "tmin",
            "vm1",
            "--",
            "ip",
            "-br",
            "addr",
            "show",
            "eth0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "10.50.0.1/24" in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "netctl.cli",
            "lab",
            "exec",
            "--lab",
            "tmin",
            "host2",
            "--",
            "ovs-vsctl",
            "list-br",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.split() == ["xenbr0"]
    proc = subprocess.run(
        [sys.executable, "-m", "netctl.cli", "lab", "exec", "--lab", "tmin", "vm9", "--", "true"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "no host, VM or switch named 'vm9'" in proc.stderr


def test_mininet_view_pingall(mini_lab):
    from netctl.lab.mininet_view import LabView

    view = LabView(Lab.attach("tmin"))
    try:
        assert view.net.pingAll(timeout=1) == 0.0
        assert view.net["host1"].cmd("ovs-vsctl list-br").split() == ["xenbr0"]
    finally:
        view.stop()


def test_a_second_lab_with_the_same_prefix_is_refused(mini_lab):
    from netctl.lab.lab import LabError

    topo = parse_file(TOPOLOGIES / "mini-pool.yaml").relabel("tmin", "198.18.33.0/24")
    with pytest.raises(LabError, match="already up"):
        Lab.up(topo)


def test_crashed_lab_is_cleaned_by_lab_down_from_its_record():
    """Build a lab in a child process that dies without tearing down, then `netctl lab down`."""
    code = (
        "import os; from netctl.lab.lab import Lab; from netctl.topology import parse_file;"
        f"Lab.up(parse_file('{TOPOLOGIES / 'mini-pool.yaml'}').relabel('tcr', '198.18.34.0/24'));"
        "os._exit(3)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 3
    left = lab_footprint("tcr")
    assert left["namespaces"] and left["processes"]  # it really was left running
    proc = subprocess.run(
        [sys.executable, "-m", "netctl.cli", "lab", "down", "--lab", "tcr"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert lab_footprint("tcr") == NOTHING
