"""The engine's incremental result equals a from-scratch compile of the same state (issue 9):
host configurations, and every connected switch's flow table — both the table the engine
holds and the one a switch would hold after receiving exactly the engine's deltas — after
every step of random change sequences, with switches connecting, ports coming and going, and
a moved VM's old ports sometimes lingering a step (issue 12: the VIF is then held where its
port is, `flows.handover`; the from-scratch compile is given the same holds, and each hold is
checked against the rule: xapi moved the VIF, its old port is there, its new one not yet)."""

from __future__ import annotations

import os
import random

import pytest

from flows.compile import (
    BridgePorts,
    bridge_intent,
    bridge_shape,
    compile_bridge,
    compile_meters,
    disabled_ports,
)
from flows.handover import HeldPool, port_names
from flows.pipeline import OFPP_LOCAL
from flows.ports import datapath_id, tap_port_name, tunnel_peers, uplink_devices, vif_port_name
from flows.wire import canon_flow
from harness.engine_rig import RecordingSwitches, port_number
from netctl.engine.core import NetctlEngine, SwitchEvent
from netctl.engine.hosts import HostSettings, with_datapath_ids
from netctl.model import VIF, VM, PoolState
from tests.unit.engine_cases import mutate, topology_state
from vlan.checks import check_host_networking
from vlan.host import compile_host

SETTINGS = HostSettings(controllers=("tcp:192.0.2.1:6653",), datapath_type="netdev")


class FakeSwitches(RecordingSwitches):
    """What the pool's hosts would show the controller, judged from scratch: a switch per
    bridge `compile_host` builds, with the ports OVSDB and the hypervisor put on it (NICs,
    bond members, tunnels, fake bridges, VIF ports, some not plugged yet). `installed` is each
    switch's table, changed only by the deltas (checked: each delta's add/modify/delete claim
    against what the switch holds)."""

    def __init__(self) -> None:
        super().__init__(keep=True)
        self.lingering: dict[int, set[str]] = {}  # dpid -> VIF ports kept one step too long
        self.no_flood: dict[int, set[int]] = {}  # dpid -> ports NO_FLOOD (the 1.0 session's)

    def wanted(self, raw: PoolState, kept: PoolState, rng: random.Random
               ) -> dict[int, tuple[str, str, dict]]:
        out = {}
        for host in kept.hosts.values():
            cfg = compile_host(raw, host.ref, controllers=SETTINGS.controllers)
            for br in cfg.bridges:
                names = {p.name for p in br.ports} | {i.name for p in br.ports
                                                      for i in p.interfaces}
                names.discard(br.name)
                intent = bridge_intent(kept, host.ref, br.name)
                for vif in intent.local_vifs:
                    name = vif_port_name(kept, vif)
                    if name is not None and rng.random() < 0.85:
                        names.add(name if rng.random() < 0.9 else tap_port_name(kept, vif))
                dpid = datapath_id(host.uuid, br.name)
                # a VIF port xapi no longer puts here may linger a step (the hypervisor is
                # slower than xapi, as in a migration where xapi moves the VM first)
                gone = {n for n in self.names.get(dpid, {}) if n[:3] in ("vif", "tap")
                        and n not in names and n not in self.lingering.get(dpid, set())}
                stay = {n for n in sorted(gone) if rng.random() < 0.4}
                self.lingering[dpid] = stay
                names |= stay
                out[dpid] = (host.ref, br.name, {n: port_number(n) for n in names})
        return out

    def sync(self, engine: NetctlEngine, wanted: dict) -> None:
        self.last = {d: (h, b) for d, (h, b, _n) in wanted.items()}
        for dpid in list(self.names):
            if dpid not in wanted:
                engine.switch(SwitchEvent("gone", dpid))
                del self.names[dpid]
                self.installed.pop(dpid, None)
                self.no_flood.pop(dpid, None)
        for dpid, (_h, _b, names) in wanted.items():
            if dpid not in self.names:
                self.names[dpid] = dict(names)
                engine.switch(SwitchEvent("connect", dpid, names=dict(names)))
                continue
            have = self.names[dpid]
            for name in sorted(have.keys() - names.keys()):
                engine.switch(SwitchEvent("port", dpid, name=name, number=None))
                self.no_flood.get(dpid, set()).discard(have.pop(name))  # its config goes too
            for name in sorted(names.keys() - have.keys()):
                engine.switch(SwitchEvent("port", dpid, name=name, number=names[name]))
                have[name] = names[name]


    def confirm(self, engine: NetctlEngine, rng: random.Random) -> None:
        """The OpenFlow 1.0 sessions (`netctl.sinks.portconfig`): each switch sets NO_FLOOD
        as netctl wants it, some ports not yet (a port-mod still on its way), and reports
        every port that has it."""
        for dpid, names in self.names.items():
            wants = engine.flows.tables.flood_wants(dpid)
            have = self.no_flood.setdefault(dpid, set())
            now = {p for p in have if p in names.values() and wants.get(p, True)}
            now |= {p for p, on in wants.items() if on and rng.random() < 0.8}
            if now != have:
                self.no_flood[dpid] = now
                engine.switch(SwitchEvent("no_flood", dpid, ports=frozenset(now)))


def scratch_ports(kept: PoolState, host: str, bridge: str, names: dict[str, int],
                  no_flood: set[int] | None = None) -> BridgePorts:
    """Port roles from names, as the controller has always read them."""
    intent = bridge_intent(kept, host, bridge)
    vifs, taps = {}, {}
    for vif in intent.local_vifs:
        for name, role in ((vif_port_name(kept, vif), vifs), (tap_port_name(kept, vif), taps)):
            if name in names:
                role[vif.uuid] = names[name]
    uplinks = tuple(names[d] for d in uplink_devices(kept, host, bridge) if d in names)
    tunnels = {peer: names[n] for n, peer in tunnel_peers(kept, host, bridge).items()
               if n in names} if intent.kind == "private" else {}
    internal = {}
    if intent.kind == "external":
        internal[OFPP_LOCAL] = 0
        for net_ref, vlan in intent.vlans.items():
            net = kept.networks.get(net_ref)
            if vlan and net is not None and net.bridge in names:
                internal[names[net.bridge]] = vlan
    return BridgePorts(vifs=vifs, taps=taps, uplinks=uplinks, tunnels=tunnels,
                       internal=internal, no_flood=frozenset(no_flood or ()))


@pytest.mark.parametrize("seed", range(int(os.environ.get("ENGINE_SEEDS", "8"))))
def test_the_engine_equals_a_from_scratch_compile(seed):
    rng = random.Random(seed)
    objs = {o.ref: o for o in topology_state().objects()}
    engine = NetctlEngine(SETTINGS)
    engine.xapi((r, None, o) for r, o in objs.items())
    switches = FakeSwitches()
    removed: dict = {}
    changed: list = []
    for step in range(30):
        if step:
            changed = mutate(objs, rng, removed)
            engine.xapi((r, None, objs.get(r)) for r in changed)
        engine.run()
        raw = PoolState.build(objs.values())
        kept, _problems = check_host_networking(raw, engine.intent.validator.winners())
        switches.apply(engine)
        engine.clear()
        where = f"seed {seed} step {step}"
        if all(isinstance(objs.get(r) or removed.get(r), VM | VIF) for r in changed):
            # before the switches follow (a VM or VIF change: the hypervisor's ports are still
            # as they were; changes to host networking are judged once OVSDB has followed)
            compare_tables(engine, switches, kept, f"{where} (ports not moved)", known_only=True)
        # switches follow what netctl built (and which VIF ports the hypervisor plugged)
        switches.sync(engine, switches.wanted(raw, kept, rng))
        switches.confirm(engine, rng)
        engine.run()
        switches.apply(engine)
        engine.clear()
        for host in kept.hosts:
            want = with_datapath_ids(compile_host(raw, host, controllers=SETTINGS.controllers,
                                                  datapath_type=SETTINGS.datapath_type))
            assert engine.hosts.configs.config(host) == want, where
        compare_tables(engine, switches, kept, where)


def compare_tables(engine: NetctlEngine, switches: FakeSwitches, kept: PoolState, where: str,
                   known_only: bool = False) -> None:
    """Every switch's table (held by the engine, and installed from its deltas) equals the
    from-scratch compile under the engine's holds, and each hold obeys its rule. `known_only`:
    skip switches that are no longer one of the pool's bridges (not yet gone)."""
    holds = dict(engine.flows.tables.holds)
    check_holds(kept, holds, switches, where)
    seen = HeldPool(kept, holds)
    for dpid, names in switches.names.items():
        if known_only and dpid not in engine.flows.tables.tables:
            continue
        assert dpid in engine.flows.tables.identities, (where, dpid, switches.last.get(dpid))
        host, bridge = engine.flows.tables.identities[dpid]
        ports = scratch_ports(seen, host, bridge, names, switches.no_flood.get(dpid))
        want = dict(canon_flow(f) for f in compile_bridge(seen, host, bridge, ports))
        have = dict(engine.flows.tables.entries(dpid))
        assert have == want, f"{where}: {bridge} on {kept.hosts[host].name_label}"
        assert switches.installed[dpid] == want, f"{where}: deltas, {bridge}"
        meters = compile_meters(seen, host, bridge, ports)  # VIF rate limits (`flows.qos`)
        assert engine.flows.tables.meters(dpid) == meters, f"{where}: meters, {bridge}"
        assert switches.meters.get(dpid, {}) == meters, f"{where}: meters handed on, {bridge}"
        # the ports the sink sets NO_FWD/NO_RECV (disabled VIFs), as from scratch: in the
        # engine's table, and as set on the switch by the port modes handed on per round
        table = engine.flows.tables.tables[dpid]
        scratch = set(disabled_ports(seen, bridge_intent(seen, host, bridge), ports))
        assert table.disabled_ports() == scratch, f"{where}: port config"
        set_on_switch = {p for p, off in switches.disabled.get(dpid, {}).items()
                         if off and p in names.values()}
        assert set_on_switch == scratch, f"{where}: port modes handed on, {bridge}"


def check_holds(kept: PoolState, holds: dict, switches: FakeSwitches, where: str) -> None:
    """Each hold obeys the rule of `flows.handover`: a running VIF that xapi puts on another
    host than the hold's, whose old port is still on the hold's host and whose new port is not
    on xapi's host yet."""
    def names_at(host: str, net: str) -> set[str]:
        out: set[str] = set()
        for dpid, names in switches.names.items():
            h, bridge = switches.last[dpid]
            if h == host and net in bridge_shape(kept, host, bridge)[2]:
                out |= names.keys()
        return out

    for ref, held in holds.items():
        vif = kept.vifs[ref]
        assert kept.is_vif_active(vif) and kept.vif_host(vif) != held.host, (where, ref)
        assert names_at(held.host, vif.network) & set(port_names(held.domid, vif.device)), \
            (where, ref, "held without its old port")
        new = set(port_names(kept.vif_domid(vif), vif.device))
        assert not names_at(kept.vif_host(vif), vif.network) & new, \
            (where, ref, "held though its new port is there")


def renamed(state: PoolState) -> PoolState:
    """The same pool with every ref new (what a restarted xapi serves: refs are per process)."""
    from dataclasses import fields, replace

    from netctl.model import FrozenMap

    mapping = {o.ref: f"OpaqueRef:restarted-{i}" for i, o in enumerate(state.objects())}

    def remap(value):  # noqa: ANN001, ANN202
        if isinstance(value, str):
            return mapping.get(value, value)
        if isinstance(value, tuple):
            return tuple(remap(v) for v in value)
        if isinstance(value, FrozenMap):
            return value
        return value

    return PoolState.build(replace(o, **{f.name: remap(getattr(o, f.name)) for f in fields(o)})
                           for o in state.objects())


def test_a_restarted_xapi_with_new_refs_rebuilds_identities_and_tables():
    rng = random.Random(1)
    state = topology_state()
    engine = NetctlEngine(SETTINGS)
    engine.xapi((o.ref, None, o) for o in state.objects())
    switches = FakeSwitches()
    engine.run()
    switches.sync(engine, switches.wanted(state, state, rng))
    engine.run()
    switches.apply(engine)
    engine.clear()
    fresh = renamed(state)
    engine.xapi([(o.ref, o, None) for o in state.objects()] +
                [(o.ref, None, o) for o in fresh.objects()])
    engine.run()
    switches.apply(engine)
    engine.clear()
    for dpid, names in switches.names.items():
        assert dpid in engine.flows.tables.identities
        host, bridge = engine.flows.tables.identities[dpid]
        assert host.startswith("OpaqueRef:restarted-")
        ports = scratch_ports(fresh, host, bridge, names)
        want = dict(canon_flow(f) for f in compile_bridge(fresh, host, bridge, ports))
        assert dict(engine.flows.tables.entries(dpid)) == want


def test_switches_connected_before_the_first_sync_are_built_once():
    """Real bridges connect as soon as netctl listens, long before its full sync is read: the
    round that reads the pool builds each of their tables once (identities first, then one
    build), and the switches that are not the pool's wait untouched."""
    state = topology_state("demo-pool.yaml")
    engine = NetctlEngine(SETTINGS)
    engine.run()  # the loop's first round: nothing from xapi yet
    engine.clear()
    pool_switches = {}
    for host in state.hosts.values():
        cfg = with_datapath_ids(compile_host(state, host.ref, controllers=SETTINGS.controllers))
        for br in cfg.bridges:
            names = {i.name for p in br.ports for i in p.interfaces} - {br.name}
            pool_switches[datapath_id(host.uuid, br.name)] = {n: port_number(n) for n in names}
    for dpid, names in pool_switches.items():
        engine.switch(SwitchEvent("connect", dpid, names=names))
    engine.switch(SwitchEvent("connect", 0xBEEF, names={"eth9": 1}))  # someone else's bridge
    engine.run()
    engine.clear()
    assert engine.flows.tables.rebuilds == 0  # nothing known yet: every switch waits
    engine.xapi((o.ref, None, o) for o in state.objects())
    engine.run()
    tables = engine.flows.tables
    assert set(tables.tables) == set(pool_switches)
    assert tables.rebuilds == len(pool_switches)
    assert all(tables.output().deltas[d].full for d in pool_switches)
