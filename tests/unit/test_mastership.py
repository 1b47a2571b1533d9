"""The pure part of coordination (`netctl/service/mastership.py`, issue 20): the share of the
hosts over the live instances (rendezvous hashing: stable when an instance joins or leaves)
and the writer deadline (an instance stops writing before etcd can expire its lease)."""

from __future__ import annotations

import random

import pytest

from netctl.service.mastership import WriterDeadline, desired_share, moved, owner

HOSTS = [f"host-{i:03d}" for i in range(300)]


def owners(share: dict[str, frozenset[str]]) -> dict[str, str]:
    return {h: i for i, hosts in share.items() for h in hosts}


def test_every_host_has_exactly_one_owner_among_the_live_instances() -> None:
    share = desired_share(["c", "a", "b"], HOSTS)
    assert sorted(share) == ["a", "b", "c"]
    assert sorted(h for hosts in share.values() for h in hosts) == sorted(HOSTS)
    # Spread: each of 3 instances gets roughly a third of 300 hosts.
    assert all(60 <= len(hosts) <= 140 for hosts in share.values())


def test_the_share_does_not_depend_on_order_or_duplicates() -> None:
    a = desired_share(["i1", "i2", "i3"], HOSTS)
    shuffled = HOSTS[:]
    random.Random(7).shuffle(shuffled)
    assert desired_share(["i3", "i1", "i2", "i1"], shuffled + HOSTS[:5]) == a
    assert all(owner(["i3", "i2", "i1"], h) == owners(a)[h] for h in HOSTS)


def test_an_instance_leaving_moves_only_its_own_hosts() -> None:
    instances = ["i1", "i2", "i3", "i4"]
    before = desired_share(instances, HOSTS)
    for gone in instances:
        after = desired_share([i for i in instances if i != gone], HOSTS)
        assert moved(before, after) == set(before[gone])


def test_an_instance_joining_takes_about_one_nth_and_only_for_itself() -> None:
    for n in (1, 2, 3, 5):
        instances = [f"i{k}" for k in range(n)]
        before = desired_share(instances, HOSTS)
        after = desired_share(instances + ["new"], HOSTS)
        changed = moved(before, after)
        assert changed == set(after["new"])  # every moved host went to the newcomer
        expected = len(HOSTS) / (n + 1)
        assert 0.5 * expected <= len(changed) <= 1.5 * expected, (n, len(changed))


def test_no_instances_no_owner() -> None:
    assert desired_share([], HOSTS) == {}
    assert owner([], "h") is None
    assert desired_share(["a"], []) == {"a": frozenset()}


def test_the_writer_deadline_counts_from_the_keepalive_sent() -> None:
    w = WriterDeadline(ttl=3.0)
    assert w.margin == pytest.approx(1.0)
    assert not w.fresh(0.0)  # never renewed: never a writer
    w.renewed(sent_at=10.0)
    assert w.deadline() == pytest.approx(12.0)  # 10 + TTL - margin, before etcd's 13
    assert w.fresh(11.999) and not w.fresh(12.0)
    w.renewed(sent_at=9.0)  # an older keepalive answered late: no effect
    assert w.deadline() == pytest.approx(12.0)
    w.renewed(sent_at=11.0)
    assert w.deadline() == pytest.approx(13.0)
    w.renewed(sent_at=12.0, granted_ttl=2.0)  # a shorter grant: the deadline is shorter
    assert w.deadline() == pytest.approx(13.0)  # 12 - 1 + 3 - 1: never later than etcd's
    w.renewed(sent_at=13.0, granted_ttl=30.0)  # a longer one is not trusted beyond the TTL
    assert w.deadline() == pytest.approx(15.0)
    w.lost()
    assert w.deadline() is None and not w.fresh(13.5)


def test_the_margin_must_leave_time() -> None:
    with pytest.raises(ValueError):
        WriterDeadline(ttl=3.0, margin=3.0)
    with pytest.raises(ValueError):
        WriterDeadline(ttl=0)
