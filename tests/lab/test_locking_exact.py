"""VIF locking and fail-safety exactly as promised (issue 10), under `netctl run` on the demo
pool, with real packets: `disabled` in both directions, an allowed IPv6 prefix, `tap` ports,
duplicate MACs, fail modes, refused flows, drift repair and foreign flows."""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request

import pytest

from flows.locking import Locking, port_security_flows
from harness.running import capture, running_pool, until
from netctl.lab.spoof import LEGIT, SPOOFED, spoof_check

pytestmark = pytest.mark.lab
PREFIX = "tlk"
PORTS = (28453, 26643, 29474)
AUDIT = 2.0  # seconds between audits in this pool


@pytest.fixture(scope="module")
def pool():
    with running_pool("demo-pool.yaml", PREFIX, "198.18.44.0/24", PORTS,
                      settings={"openflow": {"audit_interval": AUDIT}}) as demo:
        yield demo



def reaches(lab, node: str, address: str, tries: int = 3) -> bool:
    argv = ["ping", "-n", "-q", "-c", str(tries), "-i", "0.2", "-W", "1", address]
    return lab.exec(node, argv, check=False).returncode == 0


def metric(pool, name: str) -> float:
    url = f"http://127.0.0.1:{PORTS[2]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def problems(pool) -> list[str]:
    return pool.status().get("problems", [])


def flows(pool, host: str, bridge: str = "xapi1") -> list[str]:
    out = pool.lab.ovs(host).ofctl("-O", "OpenFlow13", "dump-flows", bridge)
    return [line.strip() for line in out.splitlines() if "cookie=" in line]


def flush_neighbours(pool, *nodes: str) -> None:
    for node in nodes:
        pool.lab.exec(node, ["ip", "neigh", "flush", "all"], check=False)
        pool.lab.exec(node, ["ip", "-6", "neigh", "flush", "all"], check=False)


def locking_evidence(pool, vm: str, device: int, seen: set[str]) -> str:
    """Everything about a locked VIF whose spoofed frames get through, for the log of a
    failure: the bridge's whole flow table and the rows of the VIF's port and of IPv6, the
    switch's verdict on a spoofed IPv6 frame (`ofproto/trace`), the datapath's cached flows
    from the VIF's MAC (a stale datapath flow passes frames the tables drop), the controller
    rows, and what netctl's /status says of the VM."""
    lab = pool.lab
    host, port = lab.vm_host(vm), lab.vif_port(vm, device)
    vif = lab.vif(vm, device)
    mac = vif.mac.lower()
    ip6 = vif.ipv6[0].split("/")[0]
    spoof6 = ip6.rsplit(":", 1)[0] + ":99"  # as `netctl.lab.spoof` builds spoofed-ipv6
    bridge = "xapi1" if device == 0 else "xapi4"
    ovs = lab.ovs(host)
    out = [f"===== locking evidence: {vm} VIF {device} on {host} {bridge} (port {port}, MAC "
           f"{mac}, IPv6 {ip6}); arrived: {sorted(seen)}; spoofed: {sorted(seen & SPOOFED)}"]

    def section(title: str, produce) -> None:
        try:
            text = produce()
        except Exception as exc:  # noqa: BLE001 - evidence is best effort
            text = f"<failed: {exc!r}>"
        out.append(f"----- {title}\n{text}")

    show = ovs.ofctl("-O", "OpenFlow13", "show", bridge, check=False)
    found = re.search(rf"^\s*(\d+)\({re.escape(port)}\)", show, re.M)
    ofport = found.group(1) if found else None
    section(f"ovs-ofctl show {bridge} (the VIF's OpenFlow port: {ofport})", lambda: show)
    table = ovs.ofctl("-O", "OpenFlow13", "dump-flows", bridge, check=False)
    section(f"dump-flows {bridge}: rows of in_port={ofport} and of IPv6", lambda: "\n".join(
        line for line in table.splitlines()
        if (ofport and re.search(rf"in_port={ofport}\b", line)) or "ipv6" in line
        or "udp6" in line or "icmp6" in line or "tcp6" in line))
    section(f"dump-flows {bridge} (all)", lambda: table)
    packet = (f"udp6,in_port={ofport or port},dl_src={mac},dl_dst=33:33:00:00:00:01,"
              f"ipv6_src={spoof6},ipv6_dst=ff02::1,udp_src=40000,udp_dst=9999")
    section(f"ofproto/trace {bridge} {packet}",
            lambda: ovs.appctl("ofproto/trace", bridge, packet))
    section(f"dpctl/dump-flows: the datapath's flows from {mac}", lambda: "\n".join(
        line for line in ovs.appctl("dpctl/dump-flows", "-m").splitlines()
        if mac in line.lower()))
    section("ovs-appctl upcall/show (revalidator lag: a stale datapath flow)",
            lambda: ovs.appctl("upcall/show"))
    section("ovs-vsctl list controller", lambda: ovs.vsctl("list", "controller", check=False))
    section(f"ovs-vsctl get bridge {bridge} fail_mode",
            lambda: ovs.vsctl("get", "bridge", bridge, "fail_mode", check=False))

    def status() -> str:
        url = f"http://127.0.0.1:{PORTS[2]}/status?vm={vm}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.dumps(json.load(resp), indent=1, sort_keys=True)

    section(f"netctl /status?vm={vm}", status)
    out.append("===== end of locking evidence")
    return "\n".join(out)


# --------------------------------------------------------------------------------- disabled
@pytest.mark.parametrize("vm, device, peer, peer_device, address", [
    ("vm6", 1, "vm3", 1, "10.40.0.16"),  # priva: a private network (explicit flooding)
    ("vm3", 0, "vm1", 0, "10.10.0.13"),  # pool: an external network (NORMAL's flooding)
])
def test_a_disabled_vif_gets_nothing_and_sends_nothing(pool, vm, device, peer, peer_device,
                                                        address):
    x = pool.session.xenapi
    vif = pool.vif_ref(vm, device)
    assert reaches(pool.lab, peer, address)
    x.VIF.set_locking_mode(vif, "disabled")
    try:
        assert until(lambda: not reaches(pool.lab, peer, address, tries=1), 15)
        flush_neighbours(pool, peer, vm)
        # Into the disabled VIF: ARP (broadcast) and pings from a peer; nothing arrives.
        got_in = capture(pool.lab, vm, f"eth{device}", lambda: pool.lab.exec(
            peer, ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", address], check=False))
        assert got_in.strip() == "", f"frames reached the disabled VIF:\n{got_in}"
        # Out of it: the peer hears nothing, not even broadcast ARP.
        peer_addr = pool.lab.vif(peer, peer_device).ipv4[0].split("/")[0]
        got_out = capture(pool.lab, peer, f"eth{peer_device}", lambda: pool.lab.exec(
            vm, ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", peer_addr], check=False))
        mac = pool.lab.vif(vm, device).mac.lower()
        assert mac not in got_out.lower(), f"frames from the disabled VIF:\n{got_out}"
        # The switch has the port set to take no traffic (OpenFlow port config).
        host = pool.lab.vm_host(vm)
        port = pool.lab.vif_port(vm, device)
        bridge = "xapi4" if device == 1 else "xapi1"
        show = pool.lab.ovs(host).ofctl("-O", "OpenFlow13", "show", bridge)
        config = show.split(f"({port})", 1)[1].split("config:", 1)[1].splitlines()[0]
        assert "NO_FWD" in config and "NO_RECV" in config, config
    finally:
        x.VIF.set_locking_mode(vif, "network_default")
    assert until(lambda: reaches(pool.lab, peer, address, tries=1), 15)


# --------------------------------------------------------------------------------- IPv6 prefix
NA_SEND = r"""
import sys
from scapy.all import Ether, IPv6, sendp
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
iface, mac, src = sys.argv[1:4]
for target in sys.argv[4:]:
    sendp(Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src=src, dst="ff02::1")
          / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mac),
          iface=iface, verbose=False, count=3)
"""


def test_an_allowed_ipv6_prefix_answers_neighbour_solicitations(pool):
    x = pool.session.xenapi
    vif = pool.vif_ref("vm1", 0)  # locked, on host1
    x.VIF.set_ipv6_allowed(vif, ["fd4e:10::/64"])
    try:
        time.sleep(1.0)
        flush_neighbours(pool, "vm1", "vm3")
        # vm3 solicits fd4e:10::11: vm1's NA (target inside the prefix) must get out.
        assert until(lambda: reaches(pool.lab, "vm3", "fd4e:10::11", tries=2), 15)
        mac = pool.lab.vif("vm1", 0).mac
        got = capture(pool.lab, "vm3", "eth0", lambda: pool.lab.exec(
            "vm1", [sys.executable, "-c", NA_SEND, "eth0", mac, "fd4e:10::11",
                    "fd4e:10::77", "fd4e:99::77"], timeout=60))
        assert "fd4e:10::77" in got  # inside the prefix: the control
        assert "fd4e:99::77" not in got, "an NA for a target outside the prefix got out"
    finally:
        x.VIF.set_ipv6_allowed(vif, ["fd4e:10::11"])


# --------------------------------------------------------------------------------- tap ports
def test_a_tap_port_gets_the_vifs_locking_and_forwarding(pool):
    """xapi plugs tap<domid>.<dev> for an HVM guest without PV drivers. The lab agent is
    stopped while the test renames vm1's port the way xapi would have named it."""
    lab = pool.lab
    host, vif_name = lab.vm_host("vm1"), lab.vif_port("vm1", 0)
    tap = "tap" + vif_name[3:]
    ovs = lab.ovs(host)
    ids = {k: ovs.vsctl("get", "interface", vif_name, f"external_ids:{k}").strip('"')
           for k in ("xs-vif-uuid", "xs-vm-uuid", "xs-network-uuid", "attached-mac")}
    pool.stop("lab-agent")
    try:
        ovs.vsctl("del-port", vif_name)
        lab.exec(host, ["ip", "link", "set", vif_name, "name", tap])
        ovs.vsctl("add-port", "xapi1", tap, "--", "set", "interface", tap,
                  *(f'external_ids:{k}="{v}"' for k, v in ids.items()))
        assert until(lambda: reaches(lab, "vm3", "10.10.0.11", tries=1), 15), \
            "the VIF is unreachable through its tap port"
        seen = spoof_check(lab, "vm1", 0, "vm3", 0)
        assert LEGIT <= seen, f"legitimate frames missing: {LEGIT - seen}"
        assert not seen & SPOOFED, f"spoofed frames got through the tap port: {seen & SPOOFED}"
    finally:
        ovs.vsctl("--if-exists", "del-port", tap)
        lab.exec(host, ["ip", "link", "set", tap, "name", vif_name], check=False)
        ovs.vsctl("add-port", "xapi1", vif_name, "--", "set", "interface", vif_name,
                  *(f'external_ids:{k}="{v}"' for k, v in ids.items()))
        pool.restart("lab-agent")
    assert until(lambda: reaches(lab, "vm3", "10.10.0.11", tries=1), 15)


# --------------------------------------------------------------------------------- duplicate MAC
def test_a_duplicate_mac_is_a_problem_and_the_first_vif_keeps_working(pool):
    x = pool.session.xenapi
    vm3_mac = pool.lab.vif("vm3", 0).mac
    vm5 = x.VM.get_by_name_label("vm5")[0]
    net = x.VIF.get_network(pool.vif_ref("vm3", 0))
    clone = x.VIF.create({"device": "7", "network": net, "VM": vm5, "MAC": vm3_mac, "MTU": "1500",
                          "other_config": {}, "qos_algorithm_type": "",
                          "qos_algorithm_params": {}, "locking_mode": "network_default",
                          "ipv4_allowed": [], "ipv6_allowed": []})
    try:
        x.VIF.plug(clone)
        clone_uuid = x.VIF.get_uuid(clone)
        vm3_uuid = x.VIF.get_uuid(pool.vif_ref("vm3", 0))
        assert until(lambda: any(clone_uuid in p and vm3_uuid in p and "MAC" in p
                                 for p in problems(pool)), 15), problems(pool)
        flush_neighbours(pool, "vm1", "vm3")
        assert reaches(pool.lab, "vm1", "10.10.0.13"), "the first VIF lost its traffic"
    finally:
        x.VIF.unplug(clone)
        x.VIF.destroy(clone)
    assert until(lambda: not any("MAC" in p for p in problems(pool)), 15)


# --------------------------------------------------------------------------------- fail mode
def fail_modes(pool, bridge: str) -> set[str]:
    return {pool.lab.ovs(h.name).vsctl("get", "bridge", bridge, "fail_mode")
            for h in pool.topology.hosts}


def test_bridges_are_secure_by_default_and_standalone_with_locked_vifs_is_a_problem(pool):
    x = pool.session.xenapi
    pool_ref = x.pool.get_all()[0]
    x.pool.remove_from_other_config(pool_ref, "vswitch-controller-fail-mode")
    priva = x.VIF.get_network(pool.vif_ref("vm6", 1))
    vm6 = pool.vif_ref("vm6", 1)
    try:
        x.VIF.set_locking_mode(vm6, "locked")
        x.VIF.set_ipv4_allowed(vm6, ["10.40.0.16"])
        x.network.add_to_other_config(priva, "vswitch-controller-fail-mode", "standalone")
        assert until(lambda: fail_modes(pool, "xapi4") == {"standalone"}, 15)
        assert until(lambda: any("standalone on bridge xapi4" in p and "vm6 VIF 1" in p
                                 for p in problems(pool)), 15), problems(pool)
        x.network.remove_from_other_config(priva, "vswitch-controller-fail-mode")
        # No key anywhere: netctl's default, secure (xapi's would be standalone).
        assert until(lambda: fail_modes(pool, "xapi4") == {"secure"}, 15)
        assert fail_modes(pool, "xapi1") == {"secure"}
        assert until(lambda: not any("standalone" in p for p in problems(pool)), 15)
    finally:
        x.VIF.set_locking_mode(vm6, "network_default")
        x.VIF.set_ipv4_allowed(vm6, [])
        x.pool.add_to_other_config(pool_ref, "vswitch-controller-fail-mode", "secure")


def test_with_the_controller_away_past_the_inactivity_probe_a_locked_vif_stays_locked(pool):
    """OVS gives up on a silent controller after three inactivity probes; a secure bridge then
    keeps its flows (the control: the same bridge made standalone by hand falls back to NORMAL
    and lets the spoofed frames through)."""
    lab = pool.lab
    ovs = lab.ovs("host1")
    before = ovs.ofctl("-O", "OpenFlow13", "dump-flows", "xapi1")  # printed if it fails
    pool.stop("netctl-run")
    try:
        for row in controller_rows(ovs, "xapi1"):  # (netctl's, and its OpenFlow 1.0 one)
            ovs.vsctl("set", "controller", row, "inactivity_probe=1000")
        time.sleep(5.0)  # > 3 x 1 s probe: OVS has given up on the controller
        seen = spoof_check(lab, "vm1", 0, "vm3", 0)
        assert LEGIT <= seen and not seen & SPOOFED, seen
        ovs.vsctl("set", "bridge", "xapi1", "fail_mode=standalone")
        assert until(lambda: bool(spoof_check(lab, "vm1", 0, "vm3", 0) & SPOOFED), 20), \
            "the control failed: a standalone bridge without its controller should leak"
    finally:
        ovs.vsctl("set", "bridge", "xapi1", "fail_mode=secure")
        for row in controller_rows(ovs, "xapi1"):
            ovs.vsctl("clear", "controller", row, "inactivity_probe")
        # undo the control to the datapath too: the standalone bridge's fail-open NORMAL made
        # datapath flows that leak the spoofed frames, and on a loaded machine this OVS (3.1,
        # userspace datapath) has kept one of them past the fail-open flow's removal (seen in
        # CI: ofproto/trace said drop, dpctl/dump-flows still forwarded it 47 s later). netctl
        # never makes a bridge standalone; the test's own control did.
        ovs.appctl("revalidator/purge")
        pool.restart("netctl-run")
    assert until(pool.converged, 60)
    # every bridge back (OVS backs off up to 8 s before it reconnects to a controller that was
    # away), then OVS has left fail-open and the locking holds again
    assert until(lambda: len([s for s in pool.status().get("switches", [])
                              if s["flows"] is not None]) == 12, 60)
    # (this has failed about once in 7 full runs, only with the machine loaded, never alone:
    # on a failure the whole evidence is printed, see `locking_evidence`)
    if not until(lambda: not spoof_check(lab, "vm1", 0, "vm3", 0) & SPOOFED, 40):
        seen = spoof_check(lab, "vm1", 0, "vm3", 0)
        print(f"----- dump-flows xapi1 on host1 before netctl run was stopped\n{before}")
        print(locking_evidence(pool, "vm1", 0, seen))
        pytest.fail(f"spoofed frames still get through after the restart: {sorted(seen & SPOOFED)}"
                    " (the evidence is printed above, in the captured stdout)")


# --------------------------------------------------------------------------------- refused flows
def test_a_flow_the_switch_refuses_is_one_problem_with_bounded_retries(pool):
    """host2's port-security table may hold one flow fewer than vm3's locking needs: the
    switch refuses one flow-mod (OFPFMFC_TABLE_FULL). netctl reports it, retries a bounded
    number of times, and installs everything else."""
    x = pool.session.xenapi
    ovs = pool.lab.ovs("host2")
    vm3 = pool.vif_ref("vm3", 0)
    table1 = [f for f in flows(pool, "host2") if "table=1," in f]
    before_retries = pool.status()["flows"]["retries"]
    # vm3 unlocked: 1 flow in table 1; locked with one IPv4 and one IPv6 address: as many as
    # flows.locking compiles (25), added before the unlocked one is deleted. Room for all but
    # one of them:
    locked = len(port_security_flows(1, pool.lab.vif("vm3", 0).mac, Locking(
        "locked", ("10.10.0.13",), ("fd4e:10::13",))))
    limit = len(table1) + locked - 1
    ovs.vsctl("--", "--id=@ft", "create", "Flow_Table", f"flow_limit={limit}",
              "overflow_policy=refuse", "--", "set", "bridge", "xapi1", "flow_tables:1=@ft")
    try:
        x.VIF.set_ipv4_allowed(vm3, ["10.10.0.13"])
        x.VIF.set_ipv6_allowed(vm3, ["fd4e:10::13"])
        x.VIF.set_locking_mode(vm3, "locked")
        assert until(lambda: any("refused" in p and "TABLE_FULL" in p for p in problems(pool)),
                     20), problems(pool)
        refused = [p for p in problems(pool) if "refused" in p]
        assert len(refused) == 1, refused
        time.sleep(4.0)
        retries = pool.status()["flows"]["retries"] - before_retries
        assert 1 <= retries <= 3, retries
        # Everything else of vm3's locking is in: legitimate traffic flows, spoofing does not.
        table1 = [f for f in flows(pool, "host2") if "table=1," in f]
        assert len(table1) == limit - 1, len(table1)  # all but the refused one, no unlocked
        assert reaches(pool.lab, "vm3", "10.10.0.11")
        assert metric(pool, "netctl_flows_refused_total") >= 1
    finally:
        x.VIF.set_locking_mode(vm3, "network_default")
        x.VIF.set_ipv4_allowed(vm3, [])
        x.VIF.set_ipv6_allowed(vm3, [])
        ovs.vsctl("clear", "bridge", "xapi1", "flow_tables")
    assert until(lambda: not any("refused" in p for p in problems(pool)), 20), problems(pool)


# --------------------------------------------------------------------------------- drift, foreign
def test_a_netctl_flow_deleted_by_hand_is_repaired_and_counted(pool):
    ovs = pool.lab.ovs("host1")
    before = metric(pool, "netctl_flow_repairs_total")
    mac = pool.lab.vif("vm1", 0).mac.lower()
    ovs.ofctl("-O", "OpenFlow13", "del-flows", "xapi1", f"table=2,dl_dst={mac}")
    assert not [f for f in flows(pool, "host1") if "table=2" in f and f"dl_dst={mac}" in f]
    assert until(lambda: [f for f in flows(pool, "host1")
                          if "table=2" in f and f"dl_dst={mac}" in f], AUDIT * 3 + 5)
    assert until(lambda: metric(pool, "netctl_flow_repairs_total") >= before + 1, 5)


def test_a_foreign_flow_on_netctls_match_is_reported_not_replaced(pool):
    ovs = pool.lab.ovs("host1")
    mac = pool.lab.vif("vm1", 0).mac.lower()
    ours = next(f for f in flows(pool, "host1") if "table=2" in f and f"dl_dst={mac}" in f
                and "priority=200" in f)
    match = ours.split("priority=200,", 1)[1].split(" actions=")[0]
    foreign = f"cookie=0x1,table=2,priority=200,{match},actions=drop"
    ovs.ofctl("-O", "OpenFlow13", "add-flow", "xapi1", foreign)
    try:
        assert until(lambda: any("another owner's flow" in p and "to VIF" in p
                                 for p in problems(pool)), AUDIT * 3 + 5), problems(pool)
        time.sleep(AUDIT * 2)
        mine = [f for f in flows(pool, "host1") if f"dl_dst={mac}" in f and "priority=200" in f
                and "table=2" in f]
        assert len(mine) == 1 and "cookie=0x1," in mine[0], mine  # still the foreign one
    finally:
        ovs.ofctl("-O", "OpenFlow13", "del-flows", "xapi1", "cookie=0x1/-1,table=2")
    assert until(lambda: any("cookie=0x6e63" in f for f in flows(pool, "host1")
                             if f"dl_dst={mac}" in f and "priority=200" in f), AUDIT * 3 + 5)
    assert until(lambda: not any("another owner" in p for p in problems(pool)), 10)


def controller_rows(ovs, bridge: str) -> list[str]:
    """The uuids of a bridge's Controller rows."""
    return ovs.vsctl("get", "bridge", bridge, "controller").strip().strip("[]").split(", ")
