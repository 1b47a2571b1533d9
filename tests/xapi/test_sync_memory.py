"""A sync consumer that never reads the history keeps none: no unbounded memory.

Consumers without `on_changes` (the lab agent, `netctl trace`, tests, benchmarks) read the
latest `sync.state` or `wait_for` it; the sync must not keep a snapshot per batch for them.
Here such a consumer follows thousands of batches (one `VIF.set_locking_mode` each, waited for
as the lab agent waits) and the memory of the process — sync, simulator and client — is
measured with tracemalloc after a warm-up, in the middle and at the end: what the second half
adds must stay flat (a sync that queued every (state, changes) grew by several MiB here).
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from netctl.sources.xapi.sync import XapiSync
from tests.xapi.conftest import PASSWORD, USER, login

BATCHES = 3000
MIB = 1024 * 1024


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.timeout(120)
def test_a_consumer_without_on_changes_stays_flat_over_thousands_of_batches(demo_server, demo):
    sync = XapiSync(demo_server.url, USER, PASSWORD, timeout=1.0, backoff_initial=0.01)
    x = login(demo_server).xenapi
    vif = x.VIF.get_by_uuid(demo.vm("vm2").vifs[0].uuid)
    sync.start()
    tracemalloc.start()
    try:
        sync.wait_for(lambda s: vif in s.vifs, 10)
        marks = {}
        for i in range(1, BATCHES + 1):
            mode = ("disabled", "unlocked")[i % 2]
            x.VIF.set_locking_mode(vif, mode)
            # each change is waited for, so every call is (at least) its own batch
            sync.wait_for(lambda s, m=mode: s.vifs[vif].locking_mode == m, 10)
            if i in (BATCHES // 6, BATCHES // 2, BATCHES):
                marks[i] = traced()
        warm, middle, end = (marks[i] for i in sorted(marks))
    finally:
        tracemalloc.stop()
        sync.stop()
        x.session.logout()
    assert end - middle < 1 * MIB, (
        f"the second half of {BATCHES} batches added {(end - middle) / MIB:.1f} MiB "
        f"(warm-up -> middle {(middle - warm) / MIB:.1f} MiB)")
