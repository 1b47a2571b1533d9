"""Several `netctl run` instances on etcd (issue 20), on the lab with real packets: three
instances over a three-host pool (`topologies/trio-pool.yaml`), a three-member etcd on
loopback (`netctl.lab.etcd`, stopped by PID), lease TTL 3 s.

What a network engineer would check: every host has exactly one master and every bridge knows
every instance; kill -9 of a host's master during a 10 ms ping between VMs on two hosts loses
no reply and sends no flow-mod; the instance coming back gets its share again with no churn;
a VIF plug and a locking change made during a failover are in force after it; a hung master
(SIGSTOP) is fenced by the switch (its connection demoted to slave by the new master's
higher generation) and, once resumed, steps down and comes back with no churn; etcd
losing its quorum and getting it back changes nothing on the switches.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from harness.ha import master_of, masters, pid_of, settled, writes
from harness.running import Ping, running_pool, until

pytestmark = pytest.mark.lab
PREFIX = "tha"
# xapi simulator, OpenFlow (+2i per instance; +2i+1 its OpenFlow 1.0 port), metrics (+i)
PORTS = (28651, 26851, 29651)
TTL = 3.0
INSTANCES = 3


@pytest.fixture(scope="module")
def pool():
    from netctl.lab.etcd import etcd_available

    if not etcd_available():
        pytest.skip("no /usr/bin/etcd (make setup installs Debian's etcd-server)")
    with running_pool("trio-pool.yaml", PREFIX, "198.18.57.0/24", PORTS, lacp=False,
                      instances=INSTANCES, etcd_members=3, ttl=TTL) as demo:
        yield demo


# ---------------------------------------------------------------------------- helpers
HOSTS = ("host1", "host2", "host3")


def controllers(pool, host: str) -> dict[str, str]:
    """The host's controller rows (every bridge's): target -> the role the switch gives that
    connection on all of the host's bridges ("mixed" when they differ)."""
    ovs = pool.lab.ovs(host)
    rows = json.loads(ovs.vsctl("--format=json", "--columns=target,role", "list",
                                "controller"))
    roles: dict[str, set[str]] = {}
    for target, role in rows["data"]:
        roles.setdefault(target, set()).add(role if isinstance(role, str) else "")
    return {t: r.pop() if len(r) == 1 else "mixed" for t, r in roles.items()}


def ping_ok(pool, node: str, address: str) -> bool:
    return pool.lab.exec(node, ["ping", "-n", "-c", "1", "-W", "0.3", address],
                         check=False).returncode == 0


def locking(pool, i: int, vm: str) -> list[str]:
    with urllib.request.urlopen(f"{pool.status_url_of(i)}?vm={vm}", timeout=5) as resp:
        return [r["locking"] for r in json.load(resp).get("vifs", [])]


# ---------------------------------------------------------------------------- the tests
def test_every_host_has_one_master_and_every_bridge_knows_every_instance(pool) -> None:
    assert until(lambda: settled(pool, list(range(INSTANCES))), 30), \
        [pool.status(i).get("coordination") for i in range(INSTANCES)]
    owners = masters(pool, 0)
    print(f"\nmasters: {owners}")
    targets = {f"tcp:{pool.mgmt}:{PORTS[1] + 2 * i}" for i in range(INSTANCES)}
    # each instance's OpenFlow 1.0 port-config target too (external bridges; NO_FLOOD), in
    # session with each instance, in the role OVS gives a connection that never asked one
    port_config = {f"tcp:{pool.mgmt}:{PORTS[1] + 2 * i + 1}" for i in range(INSTANCES)}
    for host in HOSTS:
        assert until(lambda h=host: all(controllers(pool, h).get(t) == "other"
                                        for t in port_config), 10), controllers(pool, host)
    for host in HOSTS:
        rows = controllers(pool, host)
        assert targets <= set(rows), rows
        owner = next(i for i in range(INSTANCES) if pool.instance_id(i) == owners[host])
        # the switch itself says which connection is master (per bridge: one row each)
        assert until(lambda h=host, o=owner: {t for t, r in controllers(pool, h).items()
                                              if r == "master"} == {
                                                  f"tcp:{pool.mgmt}:{PORTS[1] + 2 * o}"}, 10), \
            controllers(pool, host)
    for i in range(INSTANCES):
        st = pool.status(i)
        mine = [h["name"] for h in st["hosts"] if h["master"]]
        assert mine == [h for h, o in owners.items() if o == pool.instance_id(i)] or \
            sorted(mine) == sorted(h for h, o in owners.items() if o == pool.instance_id(i))
    for address in ("10.50.0.2", "10.50.0.3", "10.60.0.2", "10.60.0.3"):
        assert ping_ok(pool, "vm1", address), address


def test_kill_9_of_a_master_loses_no_reply_and_sends_no_flow_mod(pool) -> None:
    assert until(lambda: settled(pool, list(range(INSTANCES))), 30)
    victim = master_of(pool, "host2")
    survivors = [i for i in range(INSTANCES) if i != victim]
    before = writes(pool, survivors)
    with Ping(pool.lab, "vm1", "10.50.0.2", 0.009) as ping:
        killed = time.time()
        os.kill(pid_of(pool, victim), signal.SIGKILL)
        assert until(lambda: settled(pool, survivors), 3 * TTL + 5), \
            [pool.status(i).get("coordination") for i in survivors]
        time.sleep(1.0)  # whatever the takeover's diff sent, it has sent
    new = master_of(pool, "host2")
    take = pool.status(new)["coordination"]["takeovers"]["host2"]
    print(f"\nkill -9 of {pool.instance_id(victim)}: host2 taken by {pool.instance_id(new)} "
          f"(generation {take['generation']}) {take['gained'] - killed:.2f} s after the kill, "
          f"MASTER acknowledged by its {take['switches_acked']} bridges after "
          f"{take['acked'] - killed:.2f} s (TTL {TTL:.0f} s); ping: {ping.lost} of {ping.sent} "
          f"lost")
    assert ping.sent > 100 and ping.lost == 0, f"{ping.lost} of {ping.sent} replies lost"
    assert writes(pool, survivors) == before, "the takeover of unchanged intent sent writes"
    assert take["acked"] - killed <= TTL + 2.0
    # the killed instance comes back: it gets its share again, without churn
    pool.restart(pool.instance_name(victim))
    assert until(lambda: settled(pool, list(range(INSTANCES))), 30), \
        [pool.status(i).get("coordination") for i in range(INSTANCES)]
    time.sleep(1.0)
    assert master_of(pool, "host2") == victim  # rendezvous: the same share as before
    after = writes(pool, list(range(INSTANCES)))
    assert {i: after[i] for i in survivors} == before, "the rebalance sent writes"
    assert after[victim][:2] == (0, 0), "the returning instance sent flow-mods"
    assert after[victim][2] == 0, "the returning instance wrote OVSDB"


def test_changes_made_during_a_failover_are_in_force_after_it(pool) -> None:
    assert until(lambda: settled(pool, list(range(INSTANCES))), 30)
    x = pool.session.xenapi
    pool_vif, priv_vif = pool.vif_ref("vm3", 0), pool.vif_ref("vm3", 1)
    x.VIF.unplug(pool_vif)
    assert until(lambda: not ping_ok(pool, "vm1", "10.50.0.3"), 10)
    victim = master_of(pool, "host3")
    survivors = [i for i in range(INSTANCES) if i != victim]
    os.kill(pid_of(pool, victim), signal.SIGKILL)
    x.VIF.plug(pool_vif)  # while host3 has no live master
    x.VIF.set_locking_mode(priv_vif, "disabled")
    changed = time.monotonic()
    assert until(lambda: ping_ok(pool, "vm1", "10.50.0.3"), 3 * TTL + 10)
    assert until(lambda: not ping_ok(pool, "vm1", "10.60.0.3"), 10)
    print(f"\nchanges made during the failover in force {time.monotonic() - changed:.1f} s "
          "after they were made")
    assert until(lambda: settled(pool, survivors), 10)
    assert locking(pool, survivors[0], "vm3") == ["network_default", "disabled"] or \
        locking(pool, survivors[0], "vm3")[1] == "disabled"
    x.VIF.set_locking_mode(priv_vif, "network_default")
    assert until(lambda: ping_ok(pool, "vm1", "10.60.0.3"), 10)
    pool.restart(pool.instance_name(victim))
    assert until(lambda: settled(pool, list(range(INSTANCES))), 30)


def test_a_hung_master_is_replaced_and_once_resumed_writes_nothing(pool) -> None:
    assert until(lambda: settled(pool, list(range(INSTANCES))), 30)
    hung = master_of(pool, "host1")
    others = [i for i in range(INSTANCES) if i != hung]
    before = writes(pool, list(range(INSTANCES)))
    pid = pid_of(pool, hung)
    generation = pool.status(hung)["coordination"]["takeovers"]["host1"]["generation"]
    hung_target = f"tcp:{pool.mgmt}:{PORTS[1] + 2 * hung}"
    with Ping(pool.lab, "vm2", "10.50.0.1", 0.009) as ping:
        os.kill(pid, signal.SIGSTOP)
        try:
            assert until(lambda: masters(pool, others[0]).get("host1") in
                         {pool.instance_id(i) for i in others}, 3 * TTL + 5)
            new = master_of(pool, "host1")
            new_target = f"tcp:{pool.mgmt}:{PORTS[1] + 2 * new}"
            # the switch fences the hung one: the new master's MASTER request (a higher
            # generation) demoted its connection to slave -- or the switch has already dropped
            # it (three unanswered inactivity probes; its role is then empty, and on a
            # reconnection its stale generation would be refused)
            assert until(lambda: controllers(pool, "host1").get(new_target) == "master", 10)
            assert controllers(pool, "host1").get(hung_target) in ("slave", ""), \
                controllers(pool, "host1")
        finally:
            os.kill(pid, signal.SIGCONT)
        # resumed, it learns it lost host1 (its lease expired while it hung) and steps down
        assert until(lambda: pool.status(hung).get("coordination", {}).get("lost", 0) >= 1,
                     10), pool.status(hung).get("coordination")
        # then it joins again with a new lease and, by the share, gets host1 back (handed
        # over by the interim master) with a newer generation: again without churn
        assert until(lambda: settled(pool, list(range(INSTANCES))), 30)
        time.sleep(1.0)
    took = pool.status(hung)["coordination"]["takeovers"]["host1"]
    assert took["generation"] > generation
    assert writes(pool, list(range(INSTANCES))) == before, "the failover or return wrote"
    assert ping.sent > 100 and ping.lost == 0, f"{ping.lost} of {ping.sent} replies lost"


def test_etcd_losing_quorum_stops_every_writer_and_its_return_changes_nothing(pool) -> None:
    assert until(lambda: settled(pool, list(range(INSTANCES))), 30)
    before = writes(pool, list(range(INSTANCES)))
    etcd = pool.etcd
    with Ping(pool.lab, "vm1", "10.60.0.3", 0.009) as ping:
        etcd.stop_member(1)  # one member down: nothing changes
        time.sleep(TTL)
        assert all(pool.status(i)["coordination"]["writer"] for i in range(INSTANCES))
        etcd.stop_member(2)  # quorum lost
        assert until(lambda: not any(pool.status(i)["coordination"]["writer"]
                                     for i in range(INSTANCES)), TTL + 2)
        time.sleep(1.0)
        etcd.start_member(1, wait=False)
        etcd.start_member(2, wait=False)
        assert until(lambda: all(pool.status(i)["coordination"]["writer"]
                                 for i in range(INSTANCES)), 30)
        assert until(lambda: settled(pool, list(range(INSTANCES))), 30)
        time.sleep(1.0)
    assert ping.sent > 100 and ping.lost == 0, f"{ping.lost} of {ping.sent} replies lost"
    assert writes(pool, list(range(INSTANCES))) == before, "etcd's return caused churn"
