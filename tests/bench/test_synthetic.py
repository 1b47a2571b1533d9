"""harness/synthetic.py builds the pools the benchmarks measure: they must be what the docstring
promises (counts, shapes, valid intent), and the same spec must always give the same pool."""

from __future__ import annotations

import pytest

from harness.synthetic import PoolSpec, pool_state, records, simulator
from netctl.model import validate
from vlan import compile_host


@pytest.mark.parametrize("spec", [
    PoolSpec(hosts=3, vifs_per_host=10),
    PoolSpec(hosts=2, vifs_per_host=7, uplink="nic", networks=("external", "private"),
             vifs_per_vm=(1,), locked_every=1),
], ids=["default-shape", "churn-shape"])
def test_shape_counts_and_valid_intent(spec: PoolSpec) -> None:
    state = pool_state(spec)
    assert len(state.hosts) == spec.hosts
    guests = [vm for vm in state.vms.values() if not vm.is_control_domain]
    assert all(vm.power_state == "Running" and vm.resident_on in state.hosts for vm in guests)
    assert len(state.vifs) == spec.hosts * spec.vifs_per_host
    assert all(v.currently_attached for v in state.vifs.values())
    assert len(state.bonds) == (spec.hosts if spec.uplink == "bond" else 0)
    assert len(state.vlans) == spec.hosts and len(state.tunnels) == spec.hosts
    locked = [v for v in state.vifs.values() if v.locking_mode == "locked"]
    assert locked and all(v.ipv4_allowed and v.ipv6_allowed for v in locked)
    used = {state.networks[v.network].name_label for v in state.vifs.values()}
    assert len(used) == len(spec.networks)
    _valid, problems = validate(state)
    assert problems == []
    for host in state.hosts:
        assert compile_host(state, host, datapath_type="netdev").problems == ()


def test_same_spec_same_records() -> None:
    spec = PoolSpec(hosts=2, vifs_per_host=5)
    assert records(spec) == records(spec)
    assert records(spec) != records(PoolSpec(hosts=2, vifs_per_host=5, seed=1))


def test_add_vm_follows_the_pool() -> None:
    sim, pool = simulator(PoolSpec(hosts=2, vifs_per_host=4), event_delay=0.0)
    host = pool.hosts[1]
    before = len(pool.vifs[host])
    vm, vifs = pool.add_vm(sim.store, host, ["external", "private"])
    assert sim.store.get("VM", vm, "resident_on") == host
    assert [sim.store.get("VIF", v, "network") for v in vifs] == [
        pool.network["external"], pool.network["private"]]
    assert len(pool.vifs[host]) == before + 2
