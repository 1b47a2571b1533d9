"""Traffic rules (issue 22 part 2) on the demo pool under `netctl run`, with real traffic:
rules set through XenAPI in `other_config:netctl-rules` of a VIF or a network, per protocol
(tcp and udp with Python sockets — no netcat on this machine —, icmp with ping, icmpv6 with
ping -6, arp, any), direction, port range and IPv4/IPv6 peer; stateful (replies of allowed
connections come back through `drop any`); VIF rules before network rules; a rule change
applied within a second with only its own flow-mods; a restart sends nothing; a bad rule is a
Problem and the VM keeps its network.

The VMs on private network `priva` (a tunnel mesh): vm1 (host1) 10.40.0.11, vm3 (host2)
10.40.0.13, vm6 (host3) 10.40.0.16, each its eth1 (VIF device 1); on the external network
`pool`: vm1 10.10.0.11 and vm3 10.10.0.13 (eth0).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from flows.rules import VifRules, port_rule_flows
from flows.wire import canon_flow
from harness.ofctl import no_flood_ports
from harness.running import running_pool, until
from netctl.model.rules import parse

pytestmark = pytest.mark.lab
PREFIX = "tru"
PORTS = (28781, 26981, 29791)  # xapi simulator, OpenFlow, metrics
MGMT = "198.18.86.0/24"
RULE_COOKIE = "cookie=0x6e63a00000000000/0xfffff00000000000"
V4 = {"vm1": "10.40.0.11", "vm3": "10.40.0.13", "vm6": "10.40.0.16"}
V6 = {"vm1": "fd4e:40::11", "vm3": "fd4e:40::13", "vm6": "fd4e:40::16"}
HOST = {"vm1": "host1", "vm3": "host2", "vm6": "host3"}

SERVE = r"""
import socket, sys, threading
host = sys.argv[1]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
def tcp(port):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.settimeout(3)
        try:
            c.sendall(b"echo:" + c.recv(100))
        except OSError:
            pass
        c.close()
def udp(port):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, port))
    while True:
        d, a = s.recvfrom(100); s.sendto(b"echo:" + d, a)
for spec in sys.argv[2:]:
    kind, port = spec.split(":")
    threading.Thread(target=tcp if kind == "tcp" else udp, args=(int(port),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

ASK = r"""
import socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.settimeout(1.5)
try:
    if kind == "tcp":
        s.connect((host, port)); s.sendall(b"hi"); ok = s.recv(100) == b"echo:hi"
    else:
        ok = False
        for _ in range(3):
            s.sendto(b"hi", (host, port))
            try:
                ok = s.recvfrom(100)[0] == b"echo:hi"
                break
            except socket.timeout:
                pass
except OSError:
    ok = False
print("ok" if ok else "no")
"""


@pytest.fixture(scope="module")
def pool():
    with running_pool("demo-pool.yaml", PREFIX, MGMT, PORTS) as demo:
        yield demo


@contextlib.contextmanager
def serving(pool, vm: str, *specs: str, v6: bool = False):
    """Echo servers (tcp:PORT, udp:PORT) in a VM on its priva address, while inside."""
    proc = pool.lab.popen(vm, ["python3", "-c", SERVE, (V6 if v6 else V4)[vm], *specs])
    try:
        line = proc.stdout.readline()
        assert (line.decode() if isinstance(line, bytes) else line).strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.communicate()


def talks(pool, vm: str, kind: str, address: str, port: int) -> bool:
    """A TCP connection or a UDP exchange from `vm` gets its echo back."""
    out = pool.lab.exec(vm, ["python3", "-c", ASK, kind, address, str(port)], check=False)
    return out.stdout.strip() == "ok"


def pings(pool, vm: str, address: str) -> bool:
    argv = ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", address]
    return pool.lab.exec(vm, argv, check=False).returncode == 0


def flush_neighbours(pool, *vms: str) -> None:
    for vm in vms:
        pool.lab.exec(vm, ["ip", "neigh", "flush", "all"], check=False)
        pool.lab.exec(vm, ["ip", "-6", "neigh", "flush", "all"], check=False)


def vif_ref(pool, vm: str, device: int = 1) -> str:
    return pool.vif_ref(vm, device)


def ofport(pool, vm: str, device: int = 1) -> int:
    uuid = pool.session.xenapi.VIF.get_uuid(vif_ref(pool, vm, device))
    out = pool.lab.ovs(HOST[vm]).vsctl("--bare", "--columns=ofport", "find", "Interface",
                                       f"external_ids:xs-vif-uuid={uuid}", "type=\"\"")
    return int(out.split()[0])


def bridge(pool, vm: str, device: int = 1) -> str:
    x = pool.session.xenapi
    return x.network.get_bridge(x.VIF.get_network(vif_ref(pool, vm, device)))


_COUNTERS = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s?")


def rule_flows(pool, vm: str, device: int = 1) -> list[str]:
    """The rule flows (tables 11 and 13, by their cookie tag) of a VIF's port on its switch,
    without their counters."""
    port = ofport(pool, vm, device)
    out = pool.lab.ovs(HOST[vm]).ofctl("-O", "OpenFlow13", "dump-flows",
                                       bridge(pool, vm, device), RULE_COOKIE)
    mine = []
    ours = re.compile(rf"(in_port={port}|reg5=0x{port:x}|reg5={port})[, ]")
    for line in out.splitlines():
        if ours.search(line):
            mine.append(_COUNTERS.sub("", line.strip()))
    return sorted(mine)


def expected(vif_rules: str, net_rules: str = "") -> int:
    """How many rule flows (tables 11, 13) a port with these rules holds."""
    rules = VifRules(parse(vif_rules).rules, parse(net_rules).rules)
    return sum(1 for f in port_rule_flows(7, rules) if f.table in (11, 13))


def set_rules(obj_class: str, pool, ref: str, rules: str | None) -> float:
    """Set (None: remove) `other_config:netctl-rules` through XenAPI; when it was sent."""
    api = getattr(pool.session.xenapi, obj_class)
    started = time.monotonic()
    with contextlib.suppress(Exception):
        api.remove_from_other_config(ref, "netctl-rules")
    if rules is not None:
        api.add_to_other_config(ref, "netctl-rules", rules)
    return started


def vif_rules(pool, vm: str, rules: str | None, device: int = 1, net: str = "") -> float:
    """Set a VIF's rules and wait until its switch holds them; returns the seconds it took."""
    before = rule_flows(pool, vm, device)
    started = set_rules("VIF", pool, vif_ref(pool, vm, device), rules)
    want = expected(rules or "", net) if (rules or net) else 0

    def there() -> bool:
        now = rule_flows(pool, vm, device)
        return len(now) == want and (now != before or want == 0)
    assert until(there, 5, step=0.02), (rules, want, rule_flows(pool, vm, device))
    return time.monotonic() - started


def network_ref(pool, vm: str, device: int = 1) -> str:
    return pool.session.xenapi.VIF.get_network(vif_ref(pool, vm, device))


def flow_mods(pool) -> int:
    return pool.status()["flows"]["flow_mods"]


def settled_flow_mods(pool) -> int:
    """netctl's flow-mod counter once it stops moving."""
    last = flow_mods(pool)
    for _ in range(20):
        time.sleep(0.3)
        now = flow_mods(pool)
        if now == last:
            return now
        last = now
    return last


@pytest.fixture(autouse=True)
def no_rules_after(pool):
    yield
    for vm in ("vm1", "vm3", "vm6"):
        set_rules("VIF", pool, vif_ref(pool, vm), None)
    set_rules("network", pool, network_ref(pool, "vm3"), None)
    set_rules("VIF", pool, vif_ref(pool, "vm3", 0), None)
    for vm in ("vm1", "vm3", "vm6"):
        assert until(lambda vm=vm: rule_flows(pool, vm) == [], 5)


def test_without_rules_everything_talks_and_no_rule_flow_exists(pool):
    for vm in ("vm1", "vm3", "vm6"):
        assert rule_flows(pool, vm) == []
    with serving(pool, "vm3", "tcp:5301", "udp:5401"):
        assert talks(pool, "vm1", "tcp", V4["vm3"], 5301)
        assert talks(pool, "vm1", "udp", V4["vm3"], 5401)
    assert pings(pool, "vm1", V4["vm3"]) and pings(pool, "vm1", V6["vm3"])


def test_allow_tcp_out_to_one_port_drop_the_rest_lets_the_replies_back(pool):
    """vm1: 'allow arp; allow icmpv6; allow tcp out 5301; drop any' — it opens TCP to 5301 and
    gets the answers (conntrack: the replies of an allowed connection), nothing else."""
    took = vif_rules(pool, "vm1", "allow arp; allow icmpv6; allow tcp out 5301; drop any")
    with serving(pool, "vm3", "tcp:5301", "tcp:5302", "udp:5301"), \
            serving(pool, "vm1", "tcp:5303"):
        assert talks(pool, "vm1", "tcp", V4["vm3"], 5301)  # out, and its replies in
        assert not talks(pool, "vm1", "tcp", V4["vm3"], 5302)  # another port: dropped
        assert not talks(pool, "vm1", "udp", V4["vm3"], 5301)  # another protocol
        assert not talks(pool, "vm3", "tcp", V4["vm1"], 5303)  # opened from outside: in
        assert not pings(pool, "vm1", V4["vm3"]) and not pings(pool, "vm3", V4["vm1"])
    with serving(pool, "vm3", "tcp:5301", v6=True):
        assert talks(pool, "vm1", "tcp", V6["vm3"], 5301)  # IPv6 too (ND allowed: icmpv6)
    vif_rules(pool, "vm1", None)
    with serving(pool, "vm3", "tcp:5302"):
        assert talks(pool, "vm1", "tcp", V4["vm3"], 5302)  # rules gone: open again
    print(f"\nrules applied in {took:.2f} s")
    assert took < 1.0


def test_udp_port_range_each_direction(pool):
    vif_rules(pool, "vm3", "drop udp in 5400-5410")
    with serving(pool, "vm3", "udp:5400", "udp:5405", "udp:5410", "udp:5411"):
        assert not talks(pool, "vm1", "udp", V4["vm3"], 5400)
        assert not talks(pool, "vm1", "udp", V4["vm3"], 5405)
        assert not talks(pool, "vm1", "udp", V4["vm3"], 5410)
        assert talks(pool, "vm1", "udp", V4["vm3"], 5411)
    vif_rules(pool, "vm3", "drop udp out 5400-5410")
    with serving(pool, "vm1", "udp:5405", "udp:5411"), serving(pool, "vm3", "udp:5405"):
        assert not talks(pool, "vm3", "udp", V4["vm1"], 5405)  # vm3 sends: dropped
        assert talks(pool, "vm3", "udp", V4["vm1"], 5411)
        assert talks(pool, "vm1", "udp", V4["vm3"], 5405)  # in: not a rule of this one


def test_icmp_by_peer_and_direction_stateful(pool):
    """'drop icmp in 10.40.0.11/32' stops vm1's pings to vm3, not vm6's; 'drop icmp out'
    stops vm3's own pings but not its replies to pings it was sent (replies of allowed)."""
    vif_rules(pool, "vm3", "drop icmp in 10.40.0.11/32")
    assert not pings(pool, "vm1", V4["vm3"])
    assert pings(pool, "vm6", V4["vm3"])
    vif_rules(pool, "vm3", "drop icmp out")
    assert not pings(pool, "vm3", V4["vm1"])
    assert pings(pool, "vm1", V4["vm3"])  # the echo reply is a reply of an allowed request


def test_icmpv6_by_ipv6_peer(pool):
    vif_rules(pool, "vm3", "drop icmpv6 in fd4e:40::11")
    flush_neighbours(pool, "vm1", "vm3", "vm6")
    assert not pings(pool, "vm1", V6["vm3"])
    assert pings(pool, "vm6", V6["vm3"])
    assert pings(pool, "vm1", V4["vm3"])  # IPv4 untouched


def test_arp_by_sender(pool):
    vif_rules(pool, "vm3", "drop arp in 10.40.0.11")
    flush_neighbours(pool, "vm1", "vm3", "vm6")
    assert not pings(pool, "vm1", V4["vm3"])  # vm1's ARP request never reaches vm3
    assert pings(pool, "vm6", V4["vm3"])
    assert pings(pool, "vm1", V6["vm3"])  # IPv6 (ND) untouched


def test_any_both_ways_with_a_v4_peer_and_tcp_with_a_v6_peer(pool):
    vif_rules(pool, "vm3", "drop any 10.40.0.16/32")
    flush_neighbours(pool, "vm3", "vm6")
    assert not pings(pool, "vm6", V4["vm3"]) and not pings(pool, "vm3", V4["vm6"])
    assert pings(pool, "vm1", V4["vm3"]) and pings(pool, "vm3", V4["vm1"])
    assert pings(pool, "vm6", V6["vm3"])  # a v4 peer: IPv6 untouched
    vif_rules(pool, "vm3", "drop tcp in 5301 fd4e:40::16")
    with serving(pool, "vm3", "tcp:5301", v6=True):
        assert not talks(pool, "vm6", "tcp", V6["vm3"], 5301)
        assert talks(pool, "vm1", "tcp", V6["vm3"], 5301)


def test_vif_rules_come_before_the_networks(pool):
    net = network_ref(pool, "vm3")
    set_rules("network", pool, net, "drop tcp in 5501")
    for vm in ("vm1", "vm3", "vm6"):
        assert until(lambda vm=vm: len(rule_flows(pool, vm)) == expected("", "drop tcp in 5501"),
                     5), rule_flows(pool, vm)
    vif_rules(pool, "vm3", "allow tcp in 5501", net="drop tcp in 5501")
    with serving(pool, "vm3", "tcp:5501"), serving(pool, "vm6", "tcp:5501"):
        assert talks(pool, "vm1", "tcp", V4["vm3"], 5501)  # its own rule allows
        assert not talks(pool, "vm1", "tcp", V4["vm6"], 5501)  # the network's drops


def test_flooding_and_a_guest_that_changes_its_mac_still_pass_the_rules(pool):
    """Broadcast ARP to vm3 on the private network goes through the flood list, and frames to
    a MAC the guest made up go through the flooding too: both reach vm3 only through its
    to-VM rules (matched on its port, never its MAC)."""
    vif_rules(pool, "vm3", "drop any in 10.40.0.11/32")
    flush_neighbours(pool, "vm1", "vm3", "vm6")
    assert not pings(pool, "vm1", V4["vm3"])
    lab = pool.lab
    old = lab.exec("vm3", ["cat", "/sys/class/net/eth1/address"]).stdout.strip()
    try:
        lab.exec("vm3", ["ip", "link", "set", "eth1", "address", "02:00:00:99:99:13"])
        lab.exec("vm1", ["ip", "neigh", "replace", V4["vm3"], "lladdr", "02:00:00:99:99:13",
                         "dev", "eth1"])
        assert not pings(pool, "vm1", V4["vm3"])  # unknown unicast: flooded, through rules
        assert pings(pool, "vm6", V4["vm3"])
    finally:
        lab.exec("vm3", ["ip", "link", "set", "eth1", "address", old])
        lab.exec("vm1", ["ip", "neigh", "del", V4["vm3"], "dev", "eth1"], check=False)
        flush_neighbours(pool, "vm1", "vm3", "vm6")  # (flush leaves permanent entries)
    with serving(pool, "vm3", "tcp:5301"):
        assert talks(pool, "vm6", "tcp", V4["vm3"], 5301)


def test_rules_on_an_external_network(pool):
    """On the pool network (an external bridge, bond uplink): unicast to the VIF passes its
    to-VM rules, what it sends its from-VM rules."""
    vif_rules(pool, "vm3", "drop icmp in 10.10.0.11", device=0)
    assert not pings(pool, "vm1", "10.10.0.13")
    vif_rules(pool, "vm3", "drop icmp out 10.10.0.11", device=0)
    assert not pings(pool, "vm3", "10.10.0.11")
    assert pings(pool, "vm1", "10.10.0.13")  # replies of allowed requests go out
    vif_rules(pool, "vm3", None, device=0)
    assert pings(pool, "vm1", "10.10.0.13")


def test_broadcasts_on_an_external_network_pass_the_to_vm_rules(pool):
    """On the pool network (an external bridge, bond uplink) NORMAL floods: vm3's port is
    taken out of its flooding (NO_FLOOD, over netctl's OpenFlow 1.0 session) while vm3 has
    rules, and broadcasts reach it through them. vm1's ARP request (a broadcast, from
    another host through the physical switch) no longer reaches vm3 when a to-VM rule drops
    it; without such a rule it does (vm1 resolves vm3 and pings it); without rules the port
    is back in NORMAL's flooding."""
    lab = pool.lab
    ovs, br = lab.ovs(HOST["vm3"]), bridge(pool, "vm3", device=0)
    port = ofport(pool, "vm3", device=0)

    def no_flood() -> bool:
        return port in no_flood_ports(ovs.ofctl("-O", "OpenFlow10", "show", br))

    def status() -> tuple[bool | None, bool]:
        """/status: whether vm3's floods pass its rules; whether its switch has the session."""
        switch = next(s for s in vm_status("vm3")["switches"] if s["host"] == HOST["vm3"]
                      and s["bridge"] == br)
        return floods_through_rules(pool, "vm3", 0), switch["port_config"]

    vif_rules(pool, "vm3", "drop arp in 10.10.0.11", device=0)
    assert until(no_flood, 5)
    assert until(lambda: status() == (True, True), 5), status()
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics",
                                     timeout=10).read().decode()
    assert re.search(r"^netctl_port_config_sessions [1-9]", metrics, re.M), metrics[-2000:]
    flush_neighbours(pool, "vm1", "vm3")
    assert not pings(pool, "vm1", "10.10.0.13")  # vm1's ARP request never reaches vm3
    vif_rules(pool, "vm3", "drop icmp in 10.10.0.99", device=0)
    flush_neighbours(pool, "vm1", "vm3")
    assert pings(pool, "vm1", "10.10.0.13")  # the broadcast reaches vm3 through its rules
    vif_rules(pool, "vm3", None, device=0)
    assert until(lambda: not no_flood(), 5)
    assert status() == (None, True)
    flush_neighbours(pool, "vm1", "vm3")
    assert pings(pool, "vm1", "10.10.0.13")


def vm_status(vm: str) -> dict:
    """netctl's /status about one VM (its VIFs, the switches on their path)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/status?vm={vm}",
                                timeout=10) as resp:
        return json.load(resp)


def floods_through_rules(pool, vm: str, device: int) -> bool | None:
    """/status: whether a ruled VIF's broadcasts and multicasts pass its rules."""
    rows = vm_status(vm)["vifs"]
    return next(r for r in rows if r["device"] == str(device)).get("floods_through_rules")


def changed(old: set, new: set) -> int:
    """Flow-mods between two canonical tables: adds, deletes and modifies."""
    a, b = dict(old), dict(new)
    return len(a.keys() ^ b.keys()) + sum(1 for k in a.keys() & b.keys() if a[k] != b[k])


def test_a_rule_change_sends_only_its_own_flow_mods(pool):
    first = "allow tcp out 5301; drop udp in 5400-5403"
    vif_rules(pool, "vm3", first)
    before = settled_flow_mods(pool)
    took = vif_rules(pool, "vm3", first + "; drop icmp in")
    sent = settled_flow_mods(pool) - before
    # the new rule's flows: icmp in, IPv4 only (one flow)
    old = {canon_flow(f) for f in port_rule_flows(7, VifRules(parse(first).rules, ()))}
    new = {canon_flow(f) for f in port_rule_flows(
        7, VifRules(parse(first + "; drop icmp in").rules, ()))}
    want = changed(old, new)
    print(f"\na rule added: {sent} flow-mod(s) in {took:.2f} s (expected {want})")
    assert want == 1 and sent == want
    assert took < 1.0
    # changing one rule's port: only that rule's flows (IPv4 and IPv6: out, in)
    before = settled_flow_mods(pool)
    vif_rules(pool, "vm3", "allow tcp out 5302; drop udp in 5400-5403; drop icmp in")
    assert settled_flow_mods(pool) - before == 4


def test_a_restart_with_rules_in_place_sends_nothing(pool):
    vif_rules(pool, "vm1", "allow arp; allow icmpv6; allow tcp out 5301; drop any")
    vif_rules(pool, "vm3", "drop udp in 5400-5410 10.40.0.0/24; drop icmpv6 in fd4e:40::16")
    # and on the external network: its port NO_FLOOD, its floods through netctl's flow, which
    # the restarted netctl must want as soon as it diffs the table (nothing deleted, re-added)
    vif_rules(pool, "vm3", "drop icmp in 10.10.0.99", device=0)
    assert until(lambda: floods_through_rules(pool, "vm3", 0), 5)
    pool.restart("netctl-run")
    assert until(pool.converged, 60), pool.status()
    time.sleep(1)
    assert pool.status()["flows"]["flow_mods"] == 0, "a restart with rules sent flow-mods"
    with serving(pool, "vm3", "tcp:5301"):
        assert talks(pool, "vm1", "tcp", V4["vm3"], 5301)


def test_a_bad_rule_is_a_problem_and_the_vm_keeps_its_network(pool):
    uuid = pool.session.xenapi.VIF.get_uuid(vif_ref(pool, "vm3"))
    set_rules("VIF", pool, vif_ref(pool, "vm3"), "drop tpc in 22; alow icmp in")

    def problem() -> list[str]:
        return [p for p in pool.status().get("problems", [])
                if uuid in p and "other_config:netctl-rules" in p]
    assert until(lambda: len(problem()) == 2, 5), pool.status().get("problems")
    assert any("'tpc' is not a protocol" in p and "left out" in p for p in problem())
    assert any("enforced as 'drop icmp in'" in p for p in problem())
    assert until(lambda: len(rule_flows(pool, "vm3")) == expected("drop icmp in"), 5)
    assert not pings(pool, "vm1", V4["vm3"])  # the bad 'alow' read as its strict drop
    with serving(pool, "vm3", "tcp:22"):
        assert talks(pool, "vm1", "tcp", V4["vm3"], 22)  # the VM keeps its network


def test_hit_counters_in_status(pool):
    vif_rules(pool, "vm3", "drop icmp in; allow udp in 5401")
    assert not pings(pool, "vm1", V4["vm3"])
    with serving(pool, "vm3", "udp:5401"):
        assert talks(pool, "vm1", "udp", V4["vm3"], 5401)

    def row() -> dict:
        return next(r for r in vm_status("vm3")["vifs"] if r["device"] == "1")

    def hits() -> list:
        return [(r["from"], r["number"], r["rule"], r["packets"] > 0)
                for r in (row().get("rules") or [])]
    # read with the drop counters: every other statistics round (10 s)
    assert until(lambda: hits() == [("vif", 1, "drop icmp in", True),
                                    ("vif", 2, "allow udp in 5401", True)], 25), row()
    assert row()["rules_passed"]["replies"] > 0  # the UDP echo back out of vm3
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics",
                                     timeout=10).read().decode()
    assert re.search(r'netctl_vif_rule_packets_total\{device="1",host="host2",list="vif",'
                     r'network="priva",number="1",rule="drop icmp in",vm="vm3"\} [1-9]',
                     metrics), \
        [ln for ln in metrics.splitlines() if "rule_packets" in ln]
    out = subprocess.run([sys.executable, "-m", "netctl.cli", "status", "--url",
                          f"http://127.0.0.1:{PORTS[2]}", "--vm", "vm3"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "Traffic rules" in out and "drop icmp in" in out and "allow udp in 5401" in out, out


def test_iperf3_through_rules_on_both_ends(pool):
    """TCP through conntrack on both VIFs (vm1: only TCP 5201 out; vm3: only TCP 5201 in),
    iperf3's own figure; with another port nothing gets through."""
    vif_rules(pool, "vm1", "allow arp; allow tcp out 5201; drop any")
    vif_rules(pool, "vm3", "allow arp; allow tcp in 5201; drop any")
    lab = pool.lab
    server = lab.popen("vm3", ["iperf3", "-s", "-1", "-B", V4["vm3"], "-p", "5201"])
    try:
        time.sleep(0.5)
        out = lab.exec("vm1", ["iperf3", "-c", V4["vm3"], "-p", "5201", "-t", "3", "-J"],
                       timeout=60).stdout
    finally:
        server.kill()
        server.communicate()
    mbit = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    print(f"\niperf3 TCP through both VIFs' rules: {mbit:.0f} Mbit/s")
    assert mbit > 10
    server = lab.popen("vm3", ["iperf3", "-s", "-1", "-B", V4["vm3"], "-p", "5202"])
    try:
        time.sleep(0.5)
        refused = lab.exec("vm1", ["iperf3", "-c", V4["vm3"], "-p", "5202", "-t", "1",
                                   "--connect-timeout", "1500"], check=False, timeout=30)
    finally:
        server.kill()
        server.communicate()
    assert refused.returncode != 0
