"""Port mirroring (issue 22 part 3) on topologies/mirror-pool.yaml, with real traffic.

vm1 and vm2 (host1) and vm3 (host2) are on the untagged pool network (bridge xapi1, over an
LACP bond); mon1 (host1) and mon2 (host2) are monitoring VMs on network mon, VLAN 30 — their
VIFs are ports of xapi1 too. Intent goes in through XenAPI (`other_config:netctl-mirror-to`,
`netctl-mirror-direction` on a VIF or a network); tcpdump in the monitoring VM shows what it
gets: vm1's frames (both ways, or one) and not vm2's.

Two things the physical network and the lab's pipeline add, and how the tests deal with them:
- RSPAN needs the physical switches to carry the RSPAN VLAN with MAC learning off (every
  RSPAN does: the copies carry other hosts' MACs, and a learning switch drops a copy whose
  destination it learnt on the port it came in by). The top-of-rack switch is not netctl's:
  the RSPAN test configures it (`flood_vlans=30` on the lab's ToR bridge), as an operator
  configures an RSPAN VLAN on a real switch.
- OVS mirrors what a port *received*, flooding included: on a bond bridge, frames to another
  host's VM go through NORMAL, which floods them to every local VIF (vm1's too) while it has
  not learnt that MAC from a broadcast; then vm1 really received vm2's frame and the mirror
  copies it. `learn()` makes vm3 broadcast first, so that "not the others'" tests the mirror,
  not the flooding.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from harness.running import capture, running_pool, until
from netctl.lab.lab import TOR_BRIDGE

pytestmark = pytest.mark.lab
PREFIX = "tmr"
MGMT = "198.18.84.0/24"
PORTS = (28761, 26961, 29761)  # xapi simulator, OpenFlow, metrics
VM1, VM2, VM3 = "10.10.0.11", "10.10.0.12", "10.10.0.13"
TO, DIRECTION = "netctl-mirror-to", "netctl-mirror-direction"


@pytest.fixture(scope="module")
def pool():
    with running_pool("mirror-pool.yaml", PREFIX, MGMT, PORTS) as demo:
        yield demo


@pytest.fixture(autouse=True)
def no_mirror_keys(pool):
    yield
    for vm in ("vm1", "vm2"):
        set_vif_keys(pool, vm, {})
    set_network_keys(pool, "pool", {})


def x(pool):
    return pool.session.xenapi


def vif_ref(pool, vm: str) -> str:
    return pool.vif_ref(vm, 0)


def vif_uuid(pool, vm: str) -> str:
    return x(pool).VIF.get_uuid(vif_ref(pool, vm))


def _set(api, ref: str, keys: dict[str, str]) -> float:
    present = api.get_other_config(ref)
    for key in (TO, DIRECTION):
        if key in present:
            api.remove_from_other_config(ref, key)
    started = time.monotonic()
    for key, value in keys.items():
        api.add_to_other_config(ref, key, value)
    return started


def set_vif_keys(pool, vm: str, keys: dict[str, str]) -> float:
    """Set (replace) the VIF's mirror keys through XenAPI; returns when the last was sent."""
    return _set(x(pool).VIF, vif_ref(pool, vm), keys)


def set_network_keys(pool, name: str, keys: dict[str, str]) -> float:
    api = x(pool).network
    return _set(api, api.get_by_name_label(name)[0], keys)


def _value(v):
    """A cell of ovs-vsctl's JSON output as Python (sets as lists, maps as dicts)."""
    if isinstance(v, list) and v and v[0] == "set":
        return [_value(i) for i in v[1]]
    if isinstance(v, list) and v and v[0] == "map":
        return {k: _value(i) for k, i in v[1]}
    if isinstance(v, list) and v and v[0] == "uuid":
        return v[1]
    return v


def table(pool, host: str, name: str, *columns: str) -> list[dict]:
    out = pool.lab.ovs(host).vsctl("--format=json", f"--columns={','.join(columns)}", "list",
                                   name)
    data = json.loads(out)
    return [{c: _value(v) for c, v in zip(data["headings"], row, strict=True)}
            for row in data["data"]]


def mirrors(pool, host: str) -> list[dict]:
    """The host's Mirror rows, their ports by name."""
    names = {r["_uuid"]: r["name"] for r in table(pool, host, "Port", "_uuid", "name")}
    rows = table(pool, host, "Mirror", "name", "external_ids", "select_src_port",
                 "select_dst_port", "output_port", "output_vlan", "statistics")
    for r in rows:
        for col in ("select_src_port", "select_dst_port", "output_port"):
            value = r[col] if isinstance(r[col], list) else [r[col]]
            r[col] = sorted(names.get(u, u) for u in value)
        r["output_vlan"] = r["output_vlan"] if r["output_vlan"] != [] else None
    return rows


def bridge_mirrors(pool, host: str) -> dict:
    """xapi1's `mirrors` and `flood_vlans` (as lists)."""
    (br,) = [b for b in table(pool, host, "Bridge", "name", "mirrors", "flood_vlans")
             if b["name"] == "xapi1"]
    return {k: v if isinstance(v, list) else [v] for k, v in br.items() if k != "name"}


def port(pool, vm: str) -> str:
    return pool.lab.vif_port(vm, 0)


def learn(pool) -> None:
    """vm3 broadcasts (ARP), so host1's NORMAL knows where vm3's MAC is and sends vm2's
    frames to vm3 out of the bond only, instead of flooding them to vm1 too."""
    lab = pool.lab
    lab.exec("vm3", ["ip", "neigh", "flush", "all"], check=False)
    for addr in (VM1, VM2):
        lab.exec("vm3", ["ping", "-c", "1", "-W", "1", addr], check=False)
    lab.exec("vm1", ["ping", "-c", "1", "-W", "1", VM3], check=False)
    lab.exec("vm2", ["ping", "-c", "1", "-W", "1", VM3], check=False)


def seen(pool, monitor: str) -> dict[str, int]:
    """What `monitor` captured (ICMP) while vm1 and then vm2 ping vm3 three times each."""
    lab = pool.lab

    def traffic() -> None:
        for vm in ("vm1", "vm2"):
            lab.exec(vm, ["ping", "-c", "3", "-i", "0.2", "-W", "1", VM3], check=False)
    out = capture(lab, monitor, "eth0", traffic, seconds=1.0, expression=("icmp",))
    return {
        "vm1 sent": out.count(f"{VM1} > {VM3}: ICMP echo request"),
        "vm1 received": out.count(f"{VM3} > {VM1}: ICMP echo reply"),
        "vm2 sent": out.count(f"{VM2} > {VM3}: ICMP echo request"),
        "vm2 received": out.count(f"{VM3} > {VM2}: ICMP echo reply"),
    }


def status(pool) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/status", timeout=10) as resp:
        return json.load(resp)


def metrics(pool) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics", timeout=10) as resp:
        return resp.read().decode()


def applied_within(pool, host: str, predicate, started: float) -> float:
    assert until(lambda: predicate(mirrors(pool, host)), 5, step=0.02), mirrors(pool, host)
    return time.monotonic() - started


def test_a_vif_mirrored_to_a_monitoring_vif_shows_its_traffic_and_not_the_others(pool):
    mon1 = vif_uuid(pool, "mon1")
    started = set_vif_keys(pool, "vm1", {TO: mon1})
    delay = applied_within(pool, "host1", lambda ms: len(ms) == 1, started)
    (m,) = mirrors(pool, "host1")
    assert m["select_src_port"] == m["select_dst_port"] == [port(pool, "vm1")]
    assert m["output_port"] == [port(pool, "mon1")] and m["output_vlan"] is None
    assert m["external_ids"]["netctl-owner"] == "netctl"
    assert m["external_ids"]["netctl-mirror-source"] == f"VIF {vif_uuid(pool, 'vm1')}"
    assert mirrors(pool, "host2") == []  # only on the bridge that needs it
    learn(pool)
    got = seen(pool, "mon1")
    print(f"\nmirror applied in {delay:.2f} s; mon1 saw {got}")
    assert got["vm1 sent"] >= 3 and got["vm1 received"] >= 3, got
    assert got["vm2 sent"] == got["vm2 received"] == 0, got
    assert delay < 1.0
    # /status and /metrics show it, with what OVS copied
    def row() -> dict:
        return next(r for r in status(pool)["mirrors"] if r["host"] == "host1")
    assert row()["applied"] and row()["source"]["name"] == "vm1 VIF 0"
    assert row()["output"] == {"port": port(pool, "mon1")} and row()["direction"] == "both"
    # OVS refreshes Mirror.statistics with its other statistics (every 5 s by default)
    assert until(lambda: row()["statistics"].get("tx_packets", 0) >= 6, 12), row()
    text = metrics(pool)
    assert 'netctl_mirrors{host="host1",state="applied"} 1.0' in text
    assert "netctl_mirror_tx_packets_total{" in text


@pytest.mark.parametrize("direction,sent,received", [("from-vm", True, False),
                                                     ("to-vm", False, True)])
def test_one_direction(pool, direction, sent, received):
    started = set_vif_keys(pool, "vm1", {TO: vif_uuid(pool, "mon1"), DIRECTION: direction})
    want_src = [port(pool, "vm1")] if sent else []
    want_dst = [port(pool, "vm1")] if received else []
    applied_within(pool, "host1", lambda ms: len(ms) == 1 and ms[0]["select_src_port"] ==
                   want_src and ms[0]["select_dst_port"] == want_dst, started)
    learn(pool)
    got = seen(pool, "mon1")
    print(f"\n{direction}: mon1 saw {got}")
    assert (got["vm1 sent"] >= 3) == sent and (got["vm1 received"] >= 3) == received, got
    assert (got["vm1 sent"] == 0) != sent and (got["vm1 received"] == 0) != received, got
    assert got["vm2 sent"] == got["vm2 received"] == 0, got


def test_rspan_shows_the_vms_traffic_to_a_monitoring_vm_on_another_host(pool):
    # the physical network's part: the RSPAN VLAN is trunked (the topology) without learning
    pool.lab.tor.vsctl("set", "bridge", TOR_BRIDGE, "flood_vlans=30")
    started = set_vif_keys(pool, "vm1", {TO: "vlan:30"})
    delay = applied_within(pool, "host1", lambda ms: len(ms) == 1 and ms[0]["output_vlan"] == 30,
                           started)
    assert mirrors(pool, "host2") == []
    # learning off for the RSPAN VLAN on every bridge that carries it (the receiver's above all)
    assert until(lambda: all(bridge_mirrors(pool, h)["flood_vlans"] == [30]
                             for h in ("host1", "host2")), 2)
    learn(pool)
    got = seen(pool, "mon2")
    print(f"\nRSPAN applied in {delay:.2f} s; mon2 (host2) saw {got}")
    assert got["vm1 sent"] >= 3 and got["vm1 received"] >= 3, got
    assert got["vm2 sent"] == got["vm2 received"] == 0, got
    assert delay < 1.0
    row = next(r for r in status(pool)["mirrors"] if r["host"] == "host1")
    assert row["output"] == {"vlan": 30} and row["applied"]


def test_a_network_mirrored_by_rspan_mirrors_its_vifs_on_every_host(pool):
    pool.lab.tor.vsctl("set", "bridge", TOR_BRIDGE, "flood_vlans=30")
    started = set_network_keys(pool, "pool", {TO: "vlan:30", DIRECTION: "from-vm"})
    applied_within(pool, "host2", lambda ms: len(ms) == 1, started)
    (m1,) = mirrors(pool, "host1")
    (m2,) = mirrors(pool, "host2")
    assert m1["select_src_port"] == sorted([port(pool, "vm1"), port(pool, "vm2")])
    assert m2["select_src_port"] == [port(pool, "vm3")] and m2["select_dst_port"] == []
    learn(pool)
    got = seen(pool, "mon2")  # every VM of the network sends: vm1, vm2 and vm3's replies
    print(f"\nnetwork pool by RSPAN, from-vm: mon2 saw {got}")
    assert min(got.values()) >= 3, got


def test_removing_the_key_stops_the_mirror_within_a_second(pool):
    set_vif_keys(pool, "vm1", {TO: vif_uuid(pool, "mon1")})
    applied_within(pool, "host1", lambda ms: len(ms) == 1, time.monotonic())
    started = set_vif_keys(pool, "vm1", {})
    delay = applied_within(pool, "host1", lambda ms: ms == [], started)
    assert bridge_mirrors(pool, "host1")["mirrors"] == []
    learn(pool)
    got = seen(pool, "mon1")
    print(f"\nremoved in {delay:.2f} s; mon1 then saw {got}")
    assert sum(got.values()) == 0, got
    assert delay < 1.0


def test_a_bad_value_is_a_problem_and_the_vm_keeps_its_network(pool):
    uuid = vif_uuid(pool, "vm1")
    set_vif_keys(pool, "vm1", {TO: "mon1", DIRECTION: "sideways"})

    def problems() -> list[str]:
        return [p for p in status(pool)["problems"] if uuid in p and "netctl-mirror" in p]
    assert until(lambda: len(problems()) == 2, 5), status(pool)["problems"]
    assert any("other_config:netctl-mirror-to: 'mon1' is not a monitoring VIF's uuid" in p
               for p in problems())
    assert any("other_config:netctl-mirror-direction: 'sideways' is not one of both, from-vm, "
               "to-vm" in p for p in problems())
    assert mirrors(pool, "host1") == []
    pool.lab.exec("vm1", ["ping", "-c", "2", "-W", "2", VM3])
    # a monitoring VIF on another host: said, nothing mirrored, the VM unharmed
    set_vif_keys(pool, "vm1", {TO: vif_uuid(pool, "mon2")})
    assert until(lambda: any("runs on another host" in p for p in problems()), 5), problems()
    assert mirrors(pool, "host1") == []
    pool.lab.exec("vm1", ["ping", "-c", "2", "-W", "2", VM3])


def test_a_monitoring_vif_plugged_later_gets_the_mirror_when_its_port_appears(pool):
    """The mirror waits for its output port (xapi says the VIF is attached before the lab's
    xenopsd has made its port): the port's appearance in OVSDB applies it."""
    api = x(pool).VIF
    mon = vif_ref(pool, "mon1")
    set_vif_keys(pool, "vm1", {TO: vif_uuid(pool, "mon1")})
    applied_within(pool, "host1", lambda ms: len(ms) == 1, time.monotonic())
    api.unplug(mon)
    assert until(lambda: mirrors(pool, "host1") == [], 5), mirrors(pool, "host1")
    started = time.monotonic()
    api.plug(mon)
    delay = applied_within(pool, "host1", lambda ms: len(ms) == 1 and ms[0]["output_port"] ==
                           [port(pool, "mon1")], started)
    print(f"\nmonitoring VIF replugged: mirror back {delay:.2f} s after VIF.plug")
    learn(pool)
    got = seen(pool, "mon1")
    assert got["vm1 sent"] >= 3 and got["vm2 sent"] == 0, got


def test_a_restart_with_unchanged_intent_sends_nothing(pool):
    set_vif_keys(pool, "vm1", {TO: vif_uuid(pool, "mon1")})
    set_network_keys(pool, "pool", {TO: "vlan:30", DIRECTION: "to-vm"})
    applied_within(pool, "host2", lambda ms: len(ms) == 1, time.monotonic())
    applied_within(pool, "host1", lambda ms: len(ms) == 2, time.monotonic())
    before = {h: mirrors(pool, h) for h in ("host1", "host2")}
    pool.restart("netctl-run")

    def ready() -> bool:
        try:
            hosts = status(pool).get("hosts")
        except OSError:  # not listening yet
            return False
        return bool(hosts) and all(h["connected"] and h["applies"] for h in hosts)
    assert until(ready, 60)
    time.sleep(1)
    hosts = status(pool)["hosts"]
    assert sum(h["operations"] for h in hosts) == 0, hosts
    after = {h: mirrors(pool, h) for h in ("host1", "host2")}
    for rows in (*before.values(), *after.values()):
        for r in rows:
            r.pop("statistics")
    assert after == before


# Measured: OVS floods an RSPAN copy (`output_vlan`) to every port of the bridge whose OVSDB
# VLAN configuration includes the VLAN. A VIF port of an untagged network has no `tag`, and
# netctl writes VIF.trunks as its `trunks`: empty, which is xapi's contract for VIF.trunks ("if
# empty, the port trunks all VLANs", reference/xapi-spec.md) and OVS's reading alike. So vm2
# and vm3 receive the copies tagged 30, as they receive every NORMAL flood of VLAN 10 tagged 10
# (not mirroring's doing). Writing `trunks=[0]` there (checked by hand in this lab: no more
# tagged copies, vm2 still reaches vm1 and vm3) would close both but break that contract; an
# RSPAN VLAN stays private only where the pool's VIFs trunk what they need. Strict: a change of
# that behaviour (XPASS) fails and must be decided on.
@pytest.mark.xfail(strict=True, reason="VIF ports with empty VIF.trunks trunk every VLAN "
                   "(xapi's contract), so OVS floods RSPAN copies to them too: see above")
def test_rspan_copies_reach_no_other_vm(pool):
    pool.lab.tor.vsctl("set", "bridge", TOR_BRIDGE, "flood_vlans=30")
    set_vif_keys(pool, "vm1", {TO: "vlan:30"})
    applied_within(pool, "host1", lambda ms: len(ms) == 1, time.monotonic())
    learn(pool)
    lab = pool.lab
    for vm in ("vm2", "vm3"):
        out = capture(lab, vm, "eth0", lambda: lab.exec(
            "vm1", ["ping", "-c", "3", "-i", "0.2", VM3], check=False), seconds=1.0,
            expression=("vlan", "30"))
        assert f"{VM1} > {VM3}" not in out, (vm, out)
