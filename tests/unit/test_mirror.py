"""Port mirroring (issue 22 part 3), the pure part: `other_config:netctl-mirror-to` and
`netctl-mirror-direction` on a VIF or a network become OVSDB Mirror rows on the bridges that
need them (`vlan.mirror`, through `compile_host`); a bad value is a Problem naming the object,
the key and the reason, and everything else applies.

The pool is topologies/mirror-pool.yaml: vm1, vm2 (host1) and vm3 (host2) on the untagged
pool network (bridge xapi1), vm4 on VLAN 10, mon1 (host1) and mon2 (host2) on network mon
(VLAN 30, the RSPAN VLAN): every one of them a port of xapi1."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netctl.engine.core import NetctlEngine
from netctl.engine.hosts import HostSettings
from netctl.hostconfig import MirrorConfig
from netctl.model import VIF, FrozenMap, Network, PoolState, validate, vif_port
from netctl.model.export import ValueReason
from netctl.model.mirror import MirrorTarget, parse_target, selects
from tests.unit.engine_cases import topology_state
from vlan.host import compile_host
from vlan.mirror import all_sources, plan_mirrors

TO, DIRECTION = "other_config:netctl-mirror-to", "other_config:netctl-mirror-direction"


@pytest.fixture(scope="module")
def base() -> PoolState:
    return topology_state("mirror-pool.yaml")


def vif_of(state: PoolState, vm: str) -> VIF:
    ref = next(r for r, v in state.vms.items() if v.name_label == vm)
    return state.vm_vifs(ref)[0]


def host_of(state: PoolState, name: str) -> str:
    return next(r for r, h in state.hosts.items() if h.name_label == name)


def net_of(state: PoolState, name: str) -> Network:
    return next(n for n in state.networks.values() if n.name_label == name)


def port_of(state: PoolState, vm: str) -> str:
    vif = vif_of(state, vm)
    return vif_port(state.vms[vif.vm].domid, vif.device)


def with_keys(state: PoolState, obj: VIF | Network, **keys: str) -> PoolState:
    oc = {**obj.other_config, **{f"netctl-mirror-{k}": v for k, v in keys.items()}}
    new = replace(obj, other_config=FrozenMap(oc))
    if isinstance(obj, VIF):
        return state.replace(vifs={**state.vifs, obj.ref: new})
    return state.replace(networks={**state.networks, obj.ref: new})


def problems_of(state: PoolState, uuid: str, field: str = TO) -> list[str]:
    return [p.message for p in validate(state)[1] if p.uuid == uuid and p.field == field]


def host_problems(state: PoolState, host: str, uuid: str) -> list[str]:
    return [p.message for p in compile_host(state, host_of(state, host)).problems
            if p.uuid == uuid and p.field == TO]


@pytest.mark.parametrize("raw,want", [
    ("vlan:30", MirrorTarget(vlan=30)), (" VLAN:4094 ", MirrorTarget(vlan=4094)),
    ("6f1c0a3e-0d2b-4b8e-9a51-3c4d5e6f7a8b",
     MirrorTarget(vif_uuid="6f1c0a3e-0d2b-4b8e-9a51-3c4d5e6f7a8b")),
])
def test_targets_parse(raw, want):
    assert parse_target(raw) == want


@pytest.mark.parametrize("raw,reason", [
    ("vlan:0", "'0' is not a VLAN tag 1-4094"), ("vlan:4095", "is not a VLAN tag"),
    ("vlan:ten", "is not a VLAN tag"), ("mon1", "neither a VIF uuid nor vlan:N"), ("", "neither"),
])
def test_bad_targets_say_why(raw, reason):
    with pytest.raises(ValueReason, match=reason):
        parse_target(raw)


def test_directions_select_sent_and_received():
    assert selects("both") == (True, True)
    assert selects("from-vm") == (True, False)
    assert selects("to-vm") == (False, True)


def test_a_vif_mirrored_to_a_monitoring_vif_on_its_bridge(base):
    vm1, mon1 = vif_of(base, "vm1"), vif_of(base, "mon1")
    state = with_keys(base, vm1, to=mon1.uuid)
    config = compile_host(state, host_of(state, "host1"))
    p = port_of(state, "vm1")
    assert config.mirrors == (MirrorConfig(
        f"netctl-mirror-{vm1.uuid}", "xapi1", f"VIF {vm1.uuid}", select_src=(p,),
        select_dst=(p,), output_port=port_of(state, "mon1")),)
    assert config.flood_vlans == ()
    assert compile_host(state, host_of(state, "host2")).mirrors == ()  # only where needed
    assert not problems_of(state, vm1.uuid) and not host_problems(state, "host1", vm1.uuid)


@pytest.mark.parametrize("direction,src,dst", [("from-vm", True, False),
                                               ("to-vm", False, True), ("both", True, True)])
def test_direction_selects_one_way(base, direction, src, dst):
    vm1, mon1 = vif_of(base, "vm1"), vif_of(base, "mon1")
    state = with_keys(base, vm1, to=mon1.uuid, direction=direction)
    (m,) = compile_host(state, host_of(state, "host1")).mirrors
    p = (port_of(state, "vm1"),)
    assert (m.select_src, m.select_dst) == (p if src else (), p if dst else ())


def test_a_bad_direction_is_a_problem_and_both_are_mirrored(base):
    vm1, mon1 = vif_of(base, "vm1"), vif_of(base, "mon1")
    state = with_keys(base, vm1, to=mon1.uuid, direction="outbound")
    (msg,) = problems_of(state, vm1.uuid, DIRECTION)
    assert "'outbound' is not one of both, from-vm, to-vm; both directions are mirrored" in msg
    (m,) = compile_host(state, host_of(state, "host1")).mirrors
    assert m.select_src and m.select_dst


def test_a_bad_target_is_a_problem_and_the_vif_keeps_its_network(base):
    vm1 = vif_of(base, "vm1")
    state = with_keys(base, vm1, to="mon1")
    (msg,) = problems_of(state, vm1.uuid)
    assert msg == ("'mon1' is not a monitoring VIF's uuid or vlan:N (an RSPAN VLAN 1-4094) "
                   "(neither a VIF uuid nor vlan:N); nothing is mirrored")
    config = compile_host(state, host_of(state, "host1"))
    assert config.mirrors == ()
    assert vm1.uuid in {v.vif_uuid for v in config.vif_ports}  # a typo costs only the mirror
    kept, _ = validate(state)
    assert vm1.ref in kept.vifs


@pytest.mark.parametrize("target,words", [
    ("00000000-0000-4000-8000-000000000000", "no VIF has uuid 00000000-0000-4000-8000-"),
    ("mon2", "runs on another host (host2, this VIF on host1): use vlan:N (RSPAN)"),
    ("vm1", "a VIF cannot be mirrored to itself"),
])
def test_a_target_that_cannot_be_placed_is_a_problem(base, target, words):
    vm1 = vif_of(base, "vm1")
    uuid = target if "-" in target else vif_of(base, target).uuid
    state = with_keys(base, vm1, to=uuid)
    (msg,) = host_problems(state, "host1", vm1.uuid)
    assert words in msg and msg.endswith("; nothing is mirrored")
    assert compile_host(state, host_of(state, "host1")).mirrors == ()


def test_a_monitoring_vif_that_does_not_run_is_a_problem(base):
    vm1, mon1 = vif_of(base, "vm1"), vif_of(base, "mon1")
    state = with_keys(base, vm1, to=mon1.uuid)
    state = state.replace(vifs={**state.vifs, mon1.ref: replace(mon1, currently_attached=False)})
    (msg,) = host_problems(state, "host1", vm1.uuid)
    assert "the monitoring VIF mon1 VIF 0 is not running" in msg


def test_a_network_mirrored_to_a_vif_takes_its_vifs_on_that_host(base):
    pool, mon1 = net_of(base, "pool"), vif_of(base, "mon1")
    state = with_keys(base, pool, to=mon1.uuid, direction="to-vm")
    (m,) = compile_host(state, host_of(state, "host1")).mirrors
    assert m.select_src == () and m.select_dst == tuple(sorted(
        (port_of(state, "vm1"), port_of(state, "vm2"))))
    assert (m.bridge, m.output_port, m.source) == ("xapi1", port_of(state, "mon1"),
                                                    f"network {pool.uuid}")
    assert compile_host(state, host_of(state, "host2")).mirrors == ()


def test_rspan_mirrors_on_the_vifs_host_and_floods_the_vlan_everywhere(base):
    vm1 = vif_of(base, "vm1")
    state = with_keys(base, vm1, to="vlan:30")
    h1, h2 = (compile_host(state, host_of(state, h)) for h in ("host1", "host2"))
    p = port_of(state, "vm1")
    assert h1.mirrors == (MirrorConfig(f"netctl-mirror-{vm1.uuid}", "xapi1", f"VIF {vm1.uuid}",
                                       select_src=(p,), select_dst=(p,), output_vlan=30),)
    assert h2.mirrors == ()
    # learning off for VLAN 30 wherever a bridge carries it (the receiving host above all)
    assert h1.flood_vlans == h2.flood_vlans == (("xapi1", (30,)),)


def test_rspan_of_a_network_puts_a_mirror_on_every_host_running_its_vifs(base):
    pool = net_of(base, "pool")
    state = with_keys(base, pool, to="vlan:30", direction="from-vm")
    (m1,) = compile_host(state, host_of(state, "host1")).mirrors
    (m2,) = compile_host(state, host_of(state, "host2")).mirrors
    assert m1.select_src == tuple(sorted((port_of(state, "vm1"), port_of(state, "vm2"))))
    assert m2.select_src == (port_of(state, "vm3"),) and m2.select_dst == ()
    assert m1.output_vlan == m2.output_vlan == 30 and m1.name == m2.name


def test_rspan_to_the_vlans_own_network_is_refused(base):
    mon = net_of(base, "mon")
    state = with_keys(base, mon, to="vlan:30")
    msgs = [p.message for p in plan_mirrors(state, all_sources(state)).problems]
    assert len(msgs) == 1 and "VLAN 30 is this network's own VLAN" in msgs[0]
    assert compile_host(state, host_of(state, "host1")).mirrors == ()


def test_no_mirror_intent_leaves_every_host_as_it_was(base):
    for host in base.hosts:
        config = compile_host(base, host)
        assert config.mirrors == () and config.flood_vlans == ()


def test_the_engine_plans_again_only_when_a_mirror_reads_what_changed(base):
    """A locking change of a VIF no mirror reads costs no planning and no host config; the
    monitoring VIF unplugged removes the mirror from its host and says why."""
    engine = NetctlEngine(HostSettings(controllers=("tcp:192.0.2.1:6653",),
                                       datapath_type="netdev"))
    vm1, vm2, mon1 = (vif_of(base, n) for n in ("vm1", "vm2", "mon1"))
    state = with_keys(base, vm1, to=mon1.uuid)
    objs = {o.ref: o for o in state.objects()}
    engine.xapi((r, None, o) for r, o in objs.items())
    engine.run()
    engine.clear()
    configs = engine.hosts.configs
    host1 = host_of(state, "host1")
    assert len(configs.config(host1).mirrors) == 1
    plan = configs.mirrors.plan

    engine.xapi([(vm2.ref, vm2, replace(vm2, locking_mode="locked"))])
    engine.run()
    assert configs.mirrors.plan is plan and not configs.changed
    engine.clear()

    engine.xapi([(mon1.ref, mon1, replace(mon1, currently_attached=False))])
    engine.run()
    assert configs.config(host1).mirrors == () and host1 in configs.changed
    assert any(p.uuid == vm1.uuid and "is not running" in p.message
               for p in configs.problems())
