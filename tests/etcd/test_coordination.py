"""Mastership per host on a real etcd (issue 20, groundwork: `netctl/service/coordination.py`).

Single member: claim and release, generations that only grow, two coordinators that never
both own a host, a coordinator killed with -9 (a child process) whose hosts the other takes
within TTL + 1 s with higher generations, and a coordinator whose keepalive hangs that stops
being a writer before etcd expires its lease. Three members: one member down changes nothing;
two down (no quorum) make every instance stop writing within the TTL, and when quorum comes
back they hold their hosts again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netctl.lab.etcd import EtcdCluster
from netctl.service.coordination import Coordinator
from netctl.service.mastership import desired_share

pytestmark = [
    pytest.mark.etcd,
    # etcd3gw imports futurist, which imports eventlet (installed for os-ken) only to warn
    # that it is deprecated; eventlet then warns on every fork (the child coordinator, a
    # restarted etcd member). Neither concerns these tests.
    pytest.mark.filterwarnings("ignore:.*Eventlet is deprecated"),
    pytest.mark.filterwarnings("ignore:Using fork\\(\\) is a bad idea"),
]

ROOT = Path(__file__).resolve().parents[2]
HOSTS = [f"host{i}" for i in range(8)]


def until(pred: Callable[[], object], timeout: float, step: float = 0.01) -> float:
    """Wait for `pred`; the seconds it took (AssertionError after `timeout`)."""
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


class Events:
    """on_gained / on_lost, recorded with the monotonic time they fired at."""

    def __init__(self) -> None:
        self.gained: list[tuple[str, int, float]] = []
        self.lost: list[tuple[str, float]] = []

    def on_gained(self, host: str, generation: int) -> None:
        self.gained.append((host, generation, time.monotonic()))

    def on_lost(self, host: str) -> None:
        self.lost.append((host, time.monotonic()))


def coordinator(url: str, name: str, ttl: float, events: Events | None = None,
                **kw) -> Coordinator:
    ev = events or Events()
    return Coordinator(url, name, ttl, on_gained=ev.on_gained, on_lost=ev.on_lost,
                       **kw).start()


def test_claim_release_and_growing_generations(etcd: EtcdCluster) -> None:
    with Coordinator(etcd.url, "a", 2.0) as a, Coordinator(etcd.url, "b", 2.0) as b:
        assert a.instances() == ["a", "b"]
        g1 = a.claim("h")
        assert g1 is not None and a.is_writer("h") and a.mine() == {"h": g1}
        assert a.claim("h") == g1  # already ours: the same mastership
        assert b.claim("h") is None and not b.is_writer("h")
        assert b.masters() == {"h": ("a", g1)}
        assert a.release("h") and not a.is_writer("h") and a.masters() == {}
        assert not a.release("h")
        g2 = b.claim("h")
        assert g2 is not None and g2 > g1 and b.is_writer("h")
        assert b.release("h")
        g3 = a.claim("h")
        assert g3 is not None and g3 > g2
        assert a.masters() == {"h": ("a", g3)}
    # Closing revokes the lease: nothing of either instance is left.
    with Coordinator(etcd.url, "c", 2.0) as c:
        assert c.instances() == ["c"] and c.masters() == {}


def test_two_coordinators_never_both_own_a_host(etcd: EtcdCluster) -> None:
    """Sampled every few ms while the share moves (b joins, a's keepalive hangs and comes
    back) and while both race to claim one host by hand: never two writers of a host, and
    every new mastership of a host has a higher generation than the one before."""
    ttl = 2.0
    overlaps: list[str] = []
    seen: dict[str, list[int]] = {}
    stop = threading.Event()
    a = coordinator(etcd.url, "a", ttl, hosts=HOSTS)
    b: Coordinator | None = None

    def sample() -> None:
        while not stop.is_set():
            for h in HOSTS + ["raced"]:
                if a.is_writer(h) and b is not None and b.is_writer(h):
                    overlaps.append(h)
            for c in (a, b):
                for h, g in (c.mine().items() if c is not None else ()):
                    if not seen.setdefault(h, []) or seen[h][-1] != g:
                        seen[h].append(g)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        until(lambda: set(a.mine()) == set(HOSTS), 3)
        b = coordinator(etcd.url, "b", ttl, hosts=HOSTS)
        share = desired_share(["a", "b"], HOSTS)
        until(lambda: set(a.mine()) == share["a"] and set(b.mine()) == share["b"], 3)
        for _ in range(20):  # a race for one host: exactly one wins
            results: dict[str, int | None] = {}

            def race(c: Coordinator, results: dict[str, int | None] = results) -> None:
                results[c.instance_id] = c.claim("raced")

            ts = [threading.Thread(target=race, args=(c,)) for c in (a, b)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert sum(g is not None for g in results.values()) == 1, results
            winner = a if results["a"] is not None else b
            assert winner.release("raced")
        a.pause_keepalive()  # a hangs: b takes everything, then a comes back
        until(lambda: set(b.mine()) == set(HOSTS), ttl + 1.5)
        a.pause_keepalive(False)
        until(lambda: set(a.mine()) == share["a"] and set(b.mine()) == share["b"], ttl + 2)
    finally:
        stop.set()
        sampler.join()
        for c in (a, b):
            if c is not None:
                c.close()
    assert overlaps == []
    assert all(gens == sorted(set(gens)) for gens in seen.values()), seen
    assert all(len(seen[h]) >= 2 for h in share["a"])  # a's hosts changed hands twice


CHILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from netctl.service.coordination import Coordinator
url, name, ttl, hosts = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].split(",")
c = Coordinator(url, name, ttl, hosts=hosts).start()
from netctl.service.mastership import desired_share
while True:
    mine = c.mine()
    if len(c.instances()) == 2 and set(mine) == desired_share(c.instances(), hosts)[name]:
        print(json.dumps(mine), flush=True)
        break
    time.sleep(0.02)
time.sleep(3600)
"""


def test_a_killed_instance_s_hosts_are_taken_within_ttl_plus_1s(etcd: EtcdCluster) -> None:
    """The victim is a real process killed with SIGKILL: no goodbye, its lease just stops
    being renewed. The survivor masters its hosts within TTL + 1 s of the kill, each with a
    higher generation."""
    ttl = 2.0
    share = desired_share(["survivor", "victim"], HOSTS)
    assert len(share["victim"]) >= 2  # the names are chosen so the victim has hosts
    events = Events()
    survivor = coordinator(etcd.url, "survivor", ttl, events, hosts=HOSTS)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, etcd.url, "victim", str(ttl), ",".join(HOSTS)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = child.stdout.readline() if child.stdout else ""
        victim = {h: int(g) for h, g in json.loads(line).items()}
        assert set(victim) == share["victim"]
        until(lambda: set(survivor.mine()) == share["survivor"], 2)
        assert {h: i for h, (i, _) in survivor.masters().items()} == {
            h: ("victim" if h in share["victim"] else "survivor") for h in HOSTS}
        killed = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        took = until(lambda: set(survivor.mine()) == set(HOSTS), ttl + 1.5)
        print(f"takeover after kill -9: {took:.2f} s (TTL {ttl} s)")
        assert took <= ttl + 1.0
        mine = survivor.mine()
        assert all(mine[h] > victim[h] for h in victim)
        gained = {h: t for h, _, t in events.gained if h in victim}
        assert set(gained) == set(victim) and max(gained.values()) - killed <= ttl + 1.0
        assert survivor.instances() == ["survivor"]
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(5)
        survivor.close()


def test_a_hung_instance_stops_writing_before_its_lease_expires(etcd: EtcdCluster) -> None:
    ttl = 2.0
    events = Events()
    hung = coordinator(etcd.url, "hung", ttl, events, hosts=HOSTS, rebalance=False)
    other: Coordinator | None = None
    try:
        until(lambda: set(hung.mine()) == set(HOSTS), 2)
        other = coordinator(etcd.url, "other", ttl)  # a reader: no hosts to claim
        hung.pause_keepalive()
        deadline = hung.writer.deadline()
        assert deadline is not None
        until(lambda: not any(hung.is_writer(h) for h in HOSTS), ttl, step=0.002)
        stopped_writing = time.monotonic()
        # The key is still there (etcd has not expired the lease): nobody else can write.
        assert {i for i, _ in other.masters().values()} == {"hung"}
        until(lambda: not other.masters(), ttl + 1.5, step=0.005)
        gone = time.monotonic()
        print(f"hung: stopped writing {gone - stopped_writing:.2f} s before etcd expired "
              f"the lease")
        # Not a writer from the deadline on (TTL - margin after the last keepalive sent),
        # at least the margin before etcd expired the lease (+ its 0.5 s sweep, - rounding).
        assert stopped_writing <= deadline + 0.1
        assert gone - stopped_writing >= hung.writer.margin - 0.1
        assert {h for h, _ in events.lost} == set(HOSTS)
        assert max(t for _, t in events.lost) < gone
    finally:
        hung.close()
        if other is not None:
            other.close()


def test_three_members_one_down_changes_nothing(etcd3: EtcdCluster) -> None:
    """A follower down, then the leader: no mastership lost (same generations); with the
    follower down not even a moment without a writer."""
    ttl = 3.0
    ev_a, ev_b = Events(), Events()
    a = coordinator(etcd3.url, "a", ttl, ev_a, hosts=HOSTS)
    b = coordinator(etcd3.url, "b", ttl, ev_b, hosts=HOSTS)
    share = desired_share(["a", "b"], HOSTS)
    try:
        until(lambda: set(a.mine()) == share["a"] and set(b.mine()) == share["b"], 3)
        before = {**a.mine(), **b.mine()}
        ev_a.lost.clear()  # a handed b its share when b joined
        leader = etcd3.leader()
        assert leader is not None
        follower = next(i for i in range(3) if i != leader)
        etcd3.stop_member(follower)
        time.sleep(ttl)
        assert {**a.mine(), **b.mine()} == before
        assert ev_a.lost == [] and ev_b.lost == []
        etcd3.start_member(follower)
        etcd3.stop_member(leader)
        time.sleep(ttl)  # an election (1-2 s at etcd's defaults), leases kept by the new one
        until(lambda: {**a.mine(), **b.mine()} == before, ttl)
        # While the election runs keepalives fail; if that outlasts TTL - margin from the
        # last one sent, the instances stop writing for a moment (printed, not asserted):
        # the masterships themselves are kept, same generations.
        print(f"leader down: on_lost {len(ev_a.lost) + len(ev_b.lost)} times during the "
              f"election, masterships kept")
        etcd3.start_member(leader)
    finally:
        a.close()
        b.close()


def test_three_members_quorum_lost_then_back(etcd3: EtcdCluster) -> None:
    ttl = 3.0
    ev_a, ev_b = Events(), Events()
    a = coordinator(etcd3.url, "a", ttl, ev_a, hosts=HOSTS)
    b = coordinator(etcd3.url, "b", ttl, ev_b, hosts=HOSTS)
    share = desired_share(["a", "b"], HOSTS)
    try:
        until(lambda: set(a.mine()) == share["a"] and set(b.mine()) == share["b"], 3)
        before = {**a.mine(), **b.mine()}
        # The leader and a follower go: the member left is a follower without a leader, and
        # every request an instance makes fails at once or times out.
        leader = etcd3.leader()
        assert leader is not None
        down = [leader, next(i for i in range(3) if i != leader)]
        for i in down:
            etcd3.stop_member(i)
        took = until(lambda: not any(c.is_writer(h) for c in (a, b) for h in HOSTS), ttl)
        print(f"quorum lost: no writer left after {took:.2f} s (TTL {ttl} s)")
        until(lambda: {h for h, _ in ev_a.lost + ev_b.lost} == set(HOSTS), 1)
        time.sleep(0.5)
        assert not any(c.is_writer(h) for c in (a, b) for h in HOSTS)
        for i in down:
            etcd3.start_member(i, wait=False)
        etcd3.wait_healthy(range(3))
        back = until(lambda: set(a.mine()) == share["a"] and set(b.mine()) == share["b"],
                     2 * ttl)
        print(f"quorum back: hosts held again {back:.2f} s after etcd was healthy")
        # No lease expired without a leader, and the new leader extends them: the very same
        # masterships resume (no role change to send, no churn).
        assert {**a.mine(), **b.mine()} == before
    finally:
        a.close()
        b.close()
