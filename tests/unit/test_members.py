"""Which pool member the sync talks to (netctl.sources.xapi.members): a slave's
HOST_IS_SLAVE is followed with the scheme and port given; every host's address becomes a
member to try; an unreachable member hands over to the next, one round at a time."""

from __future__ import annotations

import pytest

from netctl.sources.xapi.members import PoolMembers


def test_host_is_slave_is_followed_with_the_given_scheme_port_and_path() -> None:
    m = PoolMembers(["https://10.0.0.2:8443/"])
    assert m.follow("10.0.0.1") == "https://10.0.0.1:8443/"
    assert m.current == "https://10.0.0.1:8443/"
    assert PoolMembers(["http://pool-a/"]).follow("fd00::1") == "http://[fd00::1]/"


def test_hosts_are_learnt_once_and_the_given_urls_stay() -> None:
    m = PoolMembers(["http://10.0.0.9/"])
    m.learn(["10.0.0.1", "10.0.0.2", "", "10.0.0.1"])
    assert m.urls == ["http://10.0.0.9/", "http://10.0.0.1/", "http://10.0.0.2/"]


def test_an_unreachable_member_hands_over_to_the_next_one_round_at_a_time() -> None:
    m = PoolMembers(["http://10.0.0.1/", "http://10.0.0.2/", "http://10.0.0.3/"])
    assert m.failed() == "http://10.0.0.2/" and not m.wrapped
    assert m.failed() == "http://10.0.0.3/" and not m.wrapped
    assert m.failed() == "http://10.0.0.1/" and m.wrapped  # every one tried: back off


def test_a_stale_slave_does_not_send_the_sync_back_to_the_dead_master() -> None:
    """After an emergency transition the other slaves still name the old master until
    pool.recover_slaves: the sync must go on to the member it has not tried."""
    m = PoolMembers(["http://10.0.0.1/", "http://10.0.0.2/", "http://10.0.0.3/"])
    assert m.failed() == "http://10.0.0.2/"  # the master (10.0.0.1) is dead
    assert m.follow("10.0.0.1") is None  # 10.0.0.2 names it still
    assert m.failed() == "http://10.0.0.3/" and not m.wrapped  # the new master
    m.logged_in()
    assert m.follow("10.0.0.1") == "http://10.0.0.1/"  # a new round: it may be back


def test_no_member_is_an_error() -> None:
    with pytest.raises(ValueError):
        PoolMembers([])
