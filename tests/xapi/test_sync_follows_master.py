"""XapiSync follows the pool's master (issue 19; netctl.sources.xapi.members) against the
simulator with an endpoint per host: started on a slave's URL it goes to the master;
`pool.designate_new_master` moves it; with the master's endpoint gone and another host made
master by `pool.emergency_transition_to_master` it finds the new one by itself (the other
slave still naming the dead one); changes made on the new master reach its state; and a
resync that finds the pool unchanged hands on nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import XenAPI

from harness.running import until
from netctl.sources.xapi.sync import XapiSync
from netctl.topology import Topology
from tests.xapi.conftest import PASSWORD, USER
from tests.xapi.test_members import Pool, login, running_members


@pytest.fixture
def pool(demo: Topology) -> Iterator[Pool]:
    with running_members(demo) as running:
        yield running


@pytest.fixture
def sync(pool: Pool) -> Iterator[XapiSync]:
    changes: list = []
    s = XapiSync(pool.url("host2"), USER, PASSWORD, timeout=1.0, rpc_timeout=2.0,
                 backoff_initial=0.05, backoff_max=0.5, on_changes=changes.append)
    s.changes = changes  # type: ignore[attr-defined]
    s.start()
    yield s
    s.stop()


def locking(sync: XapiSync, vif_ref: str) -> str:
    vif = sync.state.vifs.get(vif_ref)
    return vif.locking_mode if vif else ""


def test_started_on_a_slave_it_follows_to_the_master(pool: Pool, sync: XapiSync) -> None:
    assert until(lambda: sync.connected and sync.url == pool.url("host1"))
    assert len(sync.state.hosts) == 3
    assert len(sync.members.urls) == 3  # every host's address learnt (host2 given, host1 named)


def test_designated_master_is_followed_and_its_changes_applied(pool: Pool,
                                                                sync: XapiSync) -> None:
    assert until(lambda: sync.url == pool.url("host1") and sync.connected)
    x = login(pool.url("host1")).xenapi
    x.pool.designate_new_master(pool.refs["host3"])
    assert until(lambda: sync.url == pool.url("host3") and sync.connected)
    new = login(pool.url("host3")).xenapi
    vif = next(iter(new.VIF.get_all()))
    mode = "disabled" if locking(sync, vif) != "disabled" else "unlocked"
    new.VIF.set_locking_mode(vif, mode)
    assert until(lambda: locking(sync, vif) == mode, 5)


def test_dead_master_a_new_one_is_found_by_itself(pool: Pool, sync: XapiSync) -> None:
    assert until(lambda: sync.url == pool.url("host1") and sync.connected)
    full_syncs = sync.full_syncs
    pool.members[pool.refs["host1"]].stop()  # the master dies
    local = XenAPI.Session(pool.url("host3"))
    local.slave_local_login_with_password(USER, PASSWORD)
    local.xenapi.pool.emergency_transition_to_master()
    # host2 still names host1 (no recover_slaves yet): the sync must go on to host3
    assert until(lambda: sync.url == pool.url("host3") and sync.connected, 20), sync.url
    assert sync.full_syncs > full_syncs
    new = login(pool.url("host3")).xenapi
    vif = next(iter(new.VIF.get_all()))
    mode = "disabled" if locking(sync, vif) != "disabled" else "unlocked"
    new.VIF.set_locking_mode(vif, mode)
    assert until(lambda: locking(sync, vif) == mode, 5)
