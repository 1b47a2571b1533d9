"""An operator's day on a pool run by `netctl run`, every change made through the official
XenAPI client (the lab's agent plays xenopsd from xapi, as real hosts would):

1. a new private network over VXLAN across two hosts, new VIFs on two running VMs: ping and
   ping6 between them;
2. a second private network over GRE with the *same* addresses, between two VMs made from
   the pool's template: each network reaches its own, never the other's;
3. the new VIF locked to its addresses: legitimate traffic passes, a spoofed source does not;
4. a live migration of the VM: its traffic on the new network recovers (timed);
5. a new VIF unplugged and destroyed: it leaves the VM and the bridge;
6. the GRE VMs, created and started through XenAPI and reached above, are stopped (one
   through `Async.`), started again, stopped and destroyed: nothing of them is left;
7. `netctl lab show` lists what the lab runs (the XenAPI-made VMs while they run, a halted
   topology VM as stopped).
The guests' addresses are the operator's, given with `netctl lab exec VM -- ip addr ...`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from harness.running import running_pool, until
from netctl.lab import netns
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
PREFIX = "tops"
PORTS = (27180, 27133, 27164)  # xapi simulator, OpenFlow, metrics
BLUE = {"vm1": ("10.70.0.1/24", "fd70::1/64"), "vm2": ("10.70.0.2/24", "fd70::2/64")}
RED = {"red1": ("10.70.0.1/24", "fd70::1/64"), "red2": ("10.70.0.2/24", "fd70::2/64")}


@pytest.fixture(scope="module")
def pool():
    with running_pool("mini-pool.yaml", PREFIX, "198.18.80.0/24", PORTS, lacp=False) as demo:
        yield demo


def lab_exec(*argv: str) -> subprocess.CompletedProcess:
    """What the operator types: `netctl lab exec --lab tops NODE -- COMMAND`."""
    return subprocess.run([sys.executable, "-m", "netctl.cli", "lab", "exec", "--lab", PREFIX,
                           *argv], capture_output=True, text=True, timeout=30, cwd=ROOT)


def lab_show_rows() -> dict[str, list[str]]:
    """`netctl lab show --lab tops`: the VM table's rows by VM, each row's text."""
    out = subprocess.run([sys.executable, "-m", "netctl.cli", "lab", "show", "--lab", PREFIX],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows: dict[str, list[str]] = {}
    for line in out.stdout.split("VMs (", 1)[1].splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 6 and cells[0] not in ("VM", ""):
            rows.setdefault(cells[0], []).append(" ".join(cells))
    return rows


def reaches(pool, vm: str, address: str, *extra: str, count: int = 3) -> bool:
    """At least one echo reply (the first request may wait for neighbour discovery)."""
    family = "-6" if ":" in address else "-4"
    argv = ["ping", family, "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", *extra,
            address]
    return pool.lab.reload().exec(vm, argv, check=False).returncode == 0


def has_link(pool, vm: str, ifname: str) -> bool:
    """The VIF is plugged: the lab recorded it (after MAC, addresses and port), not merely
    that `ifname` exists (it does before its MAC is set)."""
    lab = pool.lab.reload()
    device = int(ifname.removeprefix("eth"))
    return (device in lab.state.plugged.get(vm, [])
            and netns.link_exists(lab.ns(vm), ifname))


def configure(vm: str, ifname: str, addresses: tuple[str, ...]) -> None:
    for cidr in addresses:
        out = lab_exec(vm, "--", "ip", "addr", "add", cidr, "dev", ifname)
        assert out.returncode == 0, out.stderr


def neighbour_mac(pool, vm: str, address: str) -> str:
    out = pool.lab.reload().exec(vm, ["ip", "neigh", "show", address]).stdout
    m = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return m.group(1) if m else ""


def private_network(x, name: str, protocol: str) -> str:
    """network.create, then tunnel.create on every host's management PIF."""
    net = x.network.create({"name_label": name, "name_description": f"{protocol} private",
                            "other_config": {}})
    for host in x.host.get_all():
        x.tunnel.create(x.host.get_management_interface(host), net, protocol)
    return net


def new_vif(x, vm: str, network: str) -> str:
    device = x.VM.get_allowed_VIF_devices(vm)[0]
    return x.VIF.create({"device": device, "network": network, "VM": vm, "MAC": "",
                         "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                         "qos_algorithm_params": {}})


def host_ref(pool, name: str) -> str:
    return pool.ref("host", pool.topology.host(name).uuid)


def test_operator_day(pool):
    x = pool.session.xenapi
    vm_refs = {vm: pool.ref("VM", pool.topology.vm(vm).uuid) for vm in BLUE}

    # 1. A VXLAN private network across host1 and host2, a new VIF on vm1 and on vm2.
    blue = private_network(x, "blue", "vxlan")
    blue_vifs = {}
    for vm, ref in vm_refs.items():
        blue_vifs[vm] = new_vif(x, ref, blue)
        x.VIF.plug(blue_vifs[vm])
        assert x.VIF.get_device(blue_vifs[vm]) == "1"
    for vm in BLUE:
        assert until(lambda vm=vm: has_link(pool, vm, "eth1")), f"{vm} has no eth1"
        assert pool.lab.reload().exec(vm, ["cat", "/sys/class/net/eth1/address"]).stdout \
            .strip() == x.VIF.get_MAC(blue_vifs[vm])
        configure(vm, "eth1", BLUE[vm])
    port = pool.lab.reload().vif_port("vm2", 1)
    ids = pool.lab.ovs("host2").vsctl("get", "interface", port, "external_ids")
    assert x.VIF.get_uuid(blue_vifs["vm2"]) in ids and x.network.get_uuid(blue) in ids
    assert until(lambda: reaches(pool, "vm1", "10.70.0.2", "-I", "eth1")), "blue IPv4"
    assert until(lambda: reaches(pool, "vm1", "fd70::2", "-I", "eth1")), "blue IPv6"
    # active once BFD says both ends of every pair forward (within a few seconds)
    assert until(lambda: all(x.tunnel.get_status(t).get("active") == "true"
                             for t in x.tunnel.get_all()
                             if x.PIF.get_network(x.tunnel.get_access_PIF(t)) == blue), 10)

    # 2. A GRE private network with the same addresses, between two VMs made from the
    # template, one on each host.
    red = private_network(x, "red", "gre")
    template = x.VM.get_by_name_label("Lab guest (netctl)")[0]
    red_refs = {}
    for name, host in (("red1", "host1"), ("red2", "host2")):
        ref = x.VM.clone(template, name)
        x.VM.provision(ref)
        new_vif(x, ref, red)
        x.VM.start_on(ref, host_ref(pool, host), False, False)
        red_refs[name] = ref
    for name in RED:
        assert until(lambda name=name: has_link(pool, name, "eth0")), f"{name} did not start"
        configure(name, "eth0", RED[name])
    assert pool.lab.reload().vm_host("red2") == "host2"
    # `netctl lab show` lists what the lab runs, the VMs made through XenAPI included.
    rows = lab_show_rows()
    for name, host in (("red1", "host1"), ("red2", "host2")):
        mac = x.VIF.get_MAC(x.VM.get_VIFs(red_refs[name])[0])
        port = pool.lab.vif_port(name, 0)
        assert any(r.startswith(f"{name} {host} {port} ") and mac in r for r in rows[name]), rows
    assert any(x.VIF.get_MAC(blue_vifs["vm1"]) in r and "vif" in r for r in rows["vm1"]), rows
    assert until(lambda: reaches(pool, "red1", "10.70.0.2")), "red IPv4"
    assert until(lambda: reaches(pool, "red1", "fd70::2")), "red IPv6"
    red2_mac = x.VIF.get_MAC(x.VM.get_VIFs(red_refs["red2"])[0])
    vm2_mac = x.VIF.get_MAC(blue_vifs["vm2"])
    assert neighbour_mac(pool, "red1", "10.70.0.2") == red2_mac
    assert neighbour_mac(pool, "vm1", "10.70.0.2") == vm2_mac
    # With red2 silent, 10.70.0.2 (vm2's address on blue) is out of red1's reach, and
    # 10.70.0.1 (red1's) out of vm2's: the networks do not leak into each other.
    pool.lab.reload().exec("red2", ["ip", "link", "set", "eth0", "down"])
    pool.lab.exec("red1", ["ip", "neigh", "flush", "dev", "eth0"])
    assert not reaches(pool, "red1", "10.70.0.2", count=2)
    assert not reaches(pool, "red1", "fd70::2", count=2)
    pool.lab.exec("vm1", ["ip", "link", "set", "eth1", "down"])
    pool.lab.exec("vm2", ["ip", "neigh", "flush", "dev", "eth1"])
    assert not reaches(pool, "vm2", "10.70.0.1", "-I", "eth1", count=2)
    for vm, ifname, cidr in (("vm1", "eth1", BLUE["vm1"][1]), ("red2", "eth0", RED["red2"][1])):
        pool.lab.exec(vm, ["ip", "link", "set", ifname, "up"])
        pool.lab.exec(vm, ["ip", "addr", "replace", cidr, "dev", ifname])  # gone with the link
    assert until(lambda: reaches(pool, "vm2", "10.70.0.1", "-I", "eth1"))
    assert until(lambda: reaches(pool, "vm2", "fd70::1", "-I", "eth1"))

    # 3. vm1's new VIF locked to its addresses: it keeps talking, a spoofed source does not.
    vif = blue_vifs["vm1"]
    x.VIF.set_ipv4_allowed(vif, ["10.70.0.1"])
    x.VIF.set_ipv6_allowed(vif, ["fd70::1"])
    x.VIF.set_locking_mode(vif, "locked")
    configure("vm1", "eth1", ("10.70.0.111/24", "fd70::111/64"))
    assert until(lambda: not reaches(pool, "vm1", "10.70.0.2", "-I", "10.70.0.111", count=1),
                 timeout=15), "a spoofed IPv4 source gets through a locked VIF"
    assert not reaches(pool, "vm1", "fd70::2", "-I", "fd70::111", count=2), \
        "a spoofed IPv6 source gets through a locked VIF"
    # An address the lock does not allow also spoils the guest's own neighbour discovery
    # (its solicitations may come from it): the guest drops it, as xapi's docs advise.
    lab_exec("vm1", "--", "ip", "addr", "del", "fd70::111/64", "dev", "eth1")
    pool.lab.exec("vm1", ["ip", "neigh", "flush", "dev", "eth1"])
    assert reaches(pool, "vm1", "10.70.0.2", "-I", "10.70.0.1")
    assert until(lambda: reaches(pool, "vm1", "fd70::2", "-I", "fd70::1"), timeout=10)

    # 4. Live migration of vm1 to host2: vm2 pings vm1's blue address every 9 ms throughout
    # (iputils paces -i 0.01 at 16 ms, -i 0.009 at 9).
    ping = pool.lab.reload().popen("vm2", ["ping", "-n", "-D", "-i", "0.009", "-W", "1", "-c",
                                           "800", "-I", "eth1", "10.70.0.1"])
    time.sleep(1.0)
    started = time.time()
    x.VM.pool_migrate(vm_refs["vm1"], host_ref(pool, "host2"), {})
    out, _ = ping.communicate(timeout=60)
    replies = sorted(float(t) for t in re.findall(r"^\[(\d+\.\d+)\].*bytes from", out, re.M))
    assert replies and replies[-1] - started > 4.0, "traffic did not come back after migrating"
    gap = max(range(1, len(replies)), key=lambda i: (replies[i] > started,
                                                     replies[i] - replies[i - 1]))
    outage = replies[gap] - replies[gap - 1]
    print(f"\nVM.pool_migrate vm1 host1 -> host2: vm2's pings over blue (every 9 ms) stopped "
          f"for {outage * 1000:.0f} ms; answered again {(replies[gap] - started) * 1000:.0f} "
          "ms after the call")
    assert outage < 5.0, f"traffic stopped for {outage:.1f} s"
    lab = pool.lab.reload()
    assert lab.vm_host("vm1") == "host2"
    assert lab.state.vm_domid["vm1"] == int(x.VM.get_domid(vm_refs["vm1"]))
    assert "10.70.0.1/24" in lab.exec("vm1", ["ip", "-br", "addr", "show", "eth1"]).stdout
    assert lab.vif_port("vm1", 1) in lab.ovs("host2").vsctl("list-ports", lab.vif_spec(
        "vm1", 1).bridge).split()
    assert not reaches(pool, "vm1", "10.70.0.2", "-I", "10.70.0.111", count=2), \
        "the lock did not follow the VIF to host2"

    # 5. vm2's blue VIF unplugged, then destroyed: its eth1 and its port go.
    port = pool.lab.reload().vif_port("vm2", 1)
    x.VIF.unplug(blue_vifs["vm2"])
    assert until(lambda: not has_link(pool, "vm2", "eth1")), "VIF.unplug left eth1 in vm2"
    assert port not in pool.lab.ovs("host2").vsctl("list-ports", pool.lab.vif_spec(
        "vm1", 1).bridge).split()
    x.VIF.destroy(blue_vifs["vm2"])

    # 6. The GRE VMs stop (red1 through Async), red1 starts again (with nothing configured:
    # its addresses were the guest's), and both are destroyed: nothing of them is left.
    red_uuids = [x.VM.get_uuid(ref) for ref in red_refs.values()]
    task = x.Async.VM.clean_shutdown(red_refs["red1"])
    x.VM.hard_shutdown(red_refs["red2"])
    assert until(lambda: x.task.get_status(task) != "pending", timeout=10)
    assert x.task.get_status(task) == "success"
    x.task.destroy(task)
    for name in red_refs:
        assert until(lambda name=name: name not in pool.lab.reload().state.vm_host), name
        assert not netns.exists(f"{PREFIX}-{name}")
    x.VM.start(red_refs["red1"], False, False)
    assert until(lambda: has_link(pool, "red1", "eth0")), "VM.start did not bring red1 back"
    assert "10.70.0.1" not in pool.lab.reload().exec("red1", ["ip", "addr"]).stdout
    x.VM.hard_shutdown(red_refs["red1"])
    for name, ref in red_refs.items():
        assert until(lambda name=name: name not in pool.lab.reload().state.vm_host), name
        x.VM.destroy(ref)
    lab = pool.lab.reload()
    for host in ("host1", "host2"):
        interfaces = lab.ovs(host).vsctl("--columns=external_ids", "list", "interface")
        assert not any(uuid in interfaces for uuid in red_uuids), host
    out = lab_exec("red1", "--", "true")
    assert out.returncode != 0 and "red1" in out.stderr

    # 7. A topology VM halted through XenAPI shows as stopped; xapi's VMs that no longer run
    # are no longer listed.
    x.VM.hard_shutdown(vm_refs["vm2"])
    assert until(lambda: "vm2" not in pool.lab.reload().state.vm_host), "vm2 still runs"
    rows = lab_show_rows()
    assert "red1" not in rows and "red2" not in rows, rows
    assert rows["vm2"] and all(r.startswith("vm2 - (VM stopped) ") for r in rows["vm2"]), rows
    assert any(r.startswith("vm1 host2 vif") for r in rows["vm1"]), rows
