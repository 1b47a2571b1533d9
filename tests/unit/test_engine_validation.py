"""Incremental validation equals validating from scratch, after every step of random change
sequences (good intent and bad), and the live pool answers like a frozen snapshot."""

from __future__ import annotations

import os
import random

import pytest

from netctl.engine.pool import LivePool
from netctl.engine.validation import IncrementalValidator
from netctl.model import PoolState
from tests.unit.engine_cases import mutate, topology_state
from vlan.checks import check_host_networking


def key(p):
    return (p.object_class, p.ref, p.field, p.message)


def same_queries(live: LivePool, state: PoolState) -> None:
    for net in state.networks:
        assert set(live.network_vifs(net)) == set(state.network_vifs(net))
        assert set(live.network_pifs(net)) == set(state.network_pifs(net))
        for host in state.hosts:
            assert live.pif_of(net, host) == state.pif_of(net, host)
            assert set(live.host_network_vifs(host, net)) == set(
                state.host_network_vifs(host, net))
    for host in state.hosts:
        assert set(live.host_pifs(host)) == set(state.host_pifs(host))
        assert set(live.resident_vms(host)) == set(state.resident_vms(host))
        assert set(live.host_vifs(host)) == set(state.host_vifs(host))
    for vm in state.vms:
        assert set(live.vm_vifs(vm)) == set(state.vm_vifs(vm))
    for pif in state.pifs:
        assert set(live.vlans_on(pif)) == set(state.vlans_on(pif))
    for obj in state.objects():
        assert live.by_uuid(obj.uuid) == obj
        assert live.get(obj.ref) == obj


@pytest.mark.parametrize("seed", range(int(os.environ.get("ENGINE_SEEDS", "12"))))
def test_incremental_validation_equals_from_scratch(seed):
    rng = random.Random(seed)
    objs = {o.ref: o for o in topology_state().objects()}
    raw = LivePool(objs.values())
    validator = IncrementalValidator(raw)
    validator.rebuild()
    removed: dict = {}
    for step in range(40):
        before = {r: raw.get(r) for r in objs}
        changed = mutate(objs, rng, removed)
        previous = {r: before.get(r) or raw.get(r) for r in changed}
        for ref in changed:
            if ref in objs:
                raw.upsert(objs[ref])
            else:
                raw.remove(ref)
        validator.apply(changed, previous)
        snapshot = raw.snapshot()
        kept, problems = check_host_networking(snapshot, validator.winners())
        assert validator.out.view.snapshot() == kept, f"seed {seed} step {step}: {changed}"
        assert sorted(map(key, validator.out.all_problems())) == sorted(map(key, problems)), \
            f"seed {seed} step {step}: {changed}"
        same_queries(raw, snapshot)
        assert all(raw.get(r) is None for r in changed if r not in objs), "a removed ref"

