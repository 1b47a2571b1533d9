"""`netctl run` follows the pool's membership: a host that joins gets an OVSDB worker, a host
that leaves loses it, and an unreachable host is reported without delaying the others."""

from __future__ import annotations

import time
from types import SimpleNamespace

from netctl.model import FrozenRefMap, PoolState
from netctl.service.config import load
from netctl.service.run import Run
from tests.unit.test_flows import pool_state


def feed(run: Run, old: PoolState | None, new: PoolState) -> None:
    """What xapi's change set from `old` to `new` does to a running netctl (one round)."""
    before = {o.ref: o for o in old.objects()} if old is not None else {}
    after = {o.ref: o for o in new.objects()}
    objects = {r: (before.get(r), after.get(r)) for r in before.keys() | after.keys()
               if before.get(r) != after.get(r)}
    run.loop.submit_xapi(SimpleNamespace(objects=objects))
    run.loop.round()


def wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_hosts_joining_and_leaving_the_pool(tmp_path):
    config_file = tmp_path / "netctl.yaml"
    # Every host's OVSDB on a port nothing listens on: reported, retried, never blocking.
    config_file.write_text("openflow: {listen: 127.0.0.1:1, target: tcp:127.0.0.1:1}\n"
                           "ovsdb: {endpoint: 'tcp:127.0.0.1:1', timeout: 0.5}\n")
    run = Run(load(config_file), "http://127.0.0.1:1/", "root", "netctl")
    state = pool_state("demo-pool.yaml")
    by_name = {h.name_label: ref for ref, h in state.hosts.items()}
    without_host3 = state.replace(hosts=FrozenRefMap(
        {r: h for r, h in state.hosts.items() if h.name_label != "host3"}))
    try:
        feed(run, None, without_host3)
        assert {w.status.name for w in run.workers.values()} == {"host1", "host2"}
        feed(run, without_host3, state)  # host3 joins
        assert set(run.workers) == set(state.hosts)
        assert wait(lambda: all(w.status.last_error for w in run.workers.values()))
        snapshot = run.status()
        assert {h["name"] for h in snapshot["hosts"]} == {"host1", "host2", "host3"}
        assert not any(h["connected"] for h in snapshot["hosts"])
        leaving = run.workers[by_name["host2"]]
        feed(run, state, state.replace(hosts=FrozenRefMap(
            {r: h for r, h in state.hosts.items() if h.name_label != "host2"})))
        assert by_name["host2"] not in run.workers
        assert wait(lambda: not leaving.thread.is_alive())  # stopped without blocking netctl
    finally:
        for worker in run.workers.values():
            worker.stop()
