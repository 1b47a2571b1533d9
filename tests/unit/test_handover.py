"""A migrating VIF's traffic follows its port, not `VM.resident_on` (issue 12, `flows.handover`).

The demo pool: vm3 runs on host2 with a VIF on the private network `priva` (bridge xapi4);
vm1 on host1 talks to it through host1's tunnels. xapi moves vm3 to host3 (new domid) while
the hypervisor's ports lag behind, in either order. What a frame from vm1 to vm3 does on
host1's switch is read by walking the table the engine holds (equal, flow for flow, to the
from-scratch compile under the engine's holds — checked here too)."""

from __future__ import annotations

from dataclasses import replace

from flows.compile import compile_bridge
from flows.ports import datapath_id, tunnel_peers
from flows.walker import ports_reached
from flows.wire import canon_flow
from harness.engine_rig import RecordingSwitches, port_number
from netctl.engine.core import NetctlEngine
from netctl.model import PoolState
from tests.unit.engine_cases import topology_state
from tests.unit.test_engine import SETTINGS, scratch_ports


class Pool:
    def __init__(self) -> None:
        self.objs = {o.ref: o for o in topology_state().objects()}
        self.engine = NetctlEngine(SETTINGS)
        self.engine.xapi((r, None, o) for r, o in self.objs.items())
        self.engine.run()
        self.engine.clear()
        self.switches = RecordingSwitches(keep=True)
        self.switches.connect_all(self.engine)
        self.round()

    def state(self) -> PoolState:
        return PoolState.build(self.objs.values())

    def named(self, cls: str, label: str):  # noqa: ANN201
        return next(o for o in self.objs.values()
                    if type(o).__name__ == cls and getattr(o, "name_label", None) == label)

    def round(self) -> None:
        self.engine.run()
        self.switches.apply(self.engine)
        self.arrived = dict(self.engine.flows.tables.arrivals)  # what the sink would announce
        self.engine.clear()

    def xapi_migrates(self, vm_label: str, host_label: str, domid: int) -> None:
        vm = self.named("VM", vm_label)
        moved = replace(vm, resident_on=self.named("Host", host_label).ref, domid=domid)
        self.objs[vm.ref] = moved
        self.engine.xapi([(vm.ref, vm, moved)])
        self.round()

    def dpid(self, host_label: str, bridge: str) -> int:
        return datapath_id(self.named("Host", host_label).uuid, bridge)

    def hypervisor(self, host_label: str, port: str, up: bool, bridge: str = "xapi4") -> None:
        self.switches.port(self.engine, self.dpid(host_label, bridge), port, up)
        self.round()

    def tables_equal_scratch(self) -> None:
        tables = self.engine.flows.tables
        for dpid, names in self.switches.names.items():
            host, bridge = tables.identities[dpid]
            seen = tables.where  # the pool under the engine's holds
            want = dict(canon_flow(f) for f in compile_bridge(
                seen, host, bridge, scratch_ports(seen, host, bridge, names)))
            assert dict(tables.entries(dpid)) == want
            assert self.switches.installed[dpid] == want

    def vm3_vif(self):  # noqa: ANN201
        vm3 = self.named("VM", "vm3").ref
        return next(v for v in self.objs.values()
                    if type(v).__name__ == "VIF" and v.vm == vm3 and v.device == "1")

    def where_vm3_goes_from(self, host_label: str) -> str:
        """Where a frame to vm3 on priva goes on a host's switch: the peer host's name (by its
        tunnel), "local" (a VIF port of this switch), or "dropped". From vm1's port on host1,
        else from the tunnel from host1."""
        tables = self.engine.flows.tables
        dpid = self.dpid(host_label, "xapi4")
        host, bridge = tables.identities[dpid]
        names = self.switches.names[dpid]
        state = self.state()
        by_uuid = {h.uuid: h.name_label for h in state.hosts.values()}
        peer_of = {names[n]: by_uuid[u] for n, u in tunnel_peers(state, host, bridge).items()
                   if n in names}
        src = names["vif1.1"] if host_label == "host1" else next(
            p for p, peer in peer_of.items() if peer == "host1")
        seen = tables.where
        flows = compile_bridge(seen, host, bridge, scratch_ports(seen, host, bridge, names))
        reached = ports_reached(flows, {"in_port": src, "eth_src": "02:99:74:8d:b1:17",
                                        "eth_dst": self.vm3_vif().mac, "eth_type": 0x0800,
                                        "vlan_vid": 0})
        out = {peer_of.get(p, "local") for p in reached}
        return ",".join(sorted(out)) or "dropped"


def test_xapi_first_then_old_port_goes_then_new_port_comes():
    pool = Pool()
    assert pool.where_vm3_goes_from("host1") == "host2"
    pool.xapi_migrates("vm3", "host3", domid=13)  # the guest still runs behind vif3.1
    assert pool.where_vm3_goes_from("host1") == "host2"  # not into host3, where nothing is
    assert pool.vm3_vif().ref in pool.engine.flows.tables.holds
    pool.tables_equal_scratch()
    pool.hypervisor("host2", "vif3.1", up=False)  # the old port goes: follow xapi now
    assert pool.where_vm3_goes_from("host1") == "host3"
    pool.hypervisor("host3", "vif13.1", up=True)
    assert pool.where_vm3_goes_from("host1") == "host3"
    assert pool.where_vm3_goes_from("host3") == "local"
    # its VIF on `pool` (vif3.0, another bridge) is still held: that port has not moved
    assert set(pool.engine.flows.tables.holds) == {
        v.ref for v in pool.objs.values() if type(v).__name__ == "VIF"
        and v.vm == pool.vm3_vif().vm and v.device == "0"}
    pool.tables_equal_scratch()


def test_xapi_first_then_new_port_comes_before_the_old_one_goes():
    pool = Pool()
    pool.xapi_migrates("vm3", "host3", domid=13)
    assert pool.where_vm3_goes_from("host1") == "host2"
    pool.hypervisor("host3", "vif13.1", up=True)  # the new port: the guest is there now
    assert pool.where_vm3_goes_from("host1") == "host3"
    assert pool.where_vm3_goes_from("host3") == "local"
    host2 = pool.engine.flows.tables.tables[pool.dpid("host2", "xapi4")]
    assert "vif3.1" not in host2.owners  # host2 holds nothing for the old port any more
    pool.tables_equal_scratch()
    pool.hypervisor("host2", "vif3.1", up=False)
    assert pool.where_vm3_goes_from("host1") == "host3"
    pool.tables_equal_scratch()


def test_real_xapi_order_new_port_during_the_copy_changes_nothing_until_xapi_moves():
    """Real xapi: the destination's port exists for the whole memory copy (a paused domain),
    `resident_on` flips at the end, when the source's port is gone: no hold is ever needed."""
    pool = Pool()
    for port, bridge in (("vif13.1", "xapi4"), ("vif13.0", "xapi1")):  # xapi: host2, domid 3
        pool.hypervisor("host3", port, up=True, bridge=bridge)
    assert pool.where_vm3_goes_from("host1") == "host2"
    for port, bridge in (("vif3.1", "xapi4"), ("vif3.0", "xapi1")):
        pool.hypervisor("host2", port, up=False, bridge=bridge)
    pool.xapi_migrates("vm3", "host3", domid=13)
    assert not pool.engine.flows.tables.holds
    assert pool.where_vm3_goes_from("host1") == "host3"
    pool.tables_equal_scratch()


def test_a_held_vif_keeps_its_locking_and_a_move_back_ends_the_hold():
    pool = Pool()
    pool.xapi_migrates("vm3", "host3", domid=13)
    vif = pool.vm3_vif()
    locked = replace(vif, locking_mode="disabled")
    pool.objs[vif.ref] = locked
    pool.engine.xapi([(vif.ref, vif, locked)])
    pool.round()
    assert vif.ref in pool.engine.flows.tables.holds
    host2 = pool.engine.flows.tables.tables[pool.dpid("host2", "xapi4")]
    assert host2.disabled_ports() == {port_number("vif3.1")}  # disabled where the guest is
    pool.tables_equal_scratch()
    pool.xapi_migrates("vm3", "host2", domid=3)  # the migration failed: back where it was
    assert not pool.engine.flows.tables.holds  # (both its VIFs)
    assert host2.disabled_ports() == {port_number("vif3.1")}
    pool.tables_equal_scratch()


def test_a_vif_port_arriving_on_an_external_bridge_is_announced_unless_it_may_not_send():
    """The sink sends a RARP from the VIF's MAC for each arrival (`FlowSink._announce`):
    a port that appeared on an external bridge while connected — not a private one (no switch
    upstream learns there), not a disabled VIF, not a switch's (re)connect."""
    pool = Pool()
    assert pool.arrived == {}  # every switch just connected, every port with it: no burst
    pool.xapi_migrates("vm3", "host3", domid=13)
    pool.hypervisor("host2", "vif3.0", up=False, bridge="xapi1")
    pool.hypervisor("host3", "vif13.0", up=True, bridge="xapi1")
    vm3 = pool.named("VM", "vm3").ref
    mac = next(v.mac for v in pool.objs.values() if type(v).__name__ == "VIF" and v.vm == vm3
               and v.device == "0")
    assert pool.arrived == {pool.dpid("host3", "xapi1"): [(port_number("vif13.0"), mac)]}
    pool.hypervisor("host3", "vif13.1", up=True)  # priva: a private network
    assert pool.arrived == {}
    vif = next(v for v in pool.objs.values() if type(v).__name__ == "VIF" and v.vm == vm3
               and v.device == "0")
    disabled = replace(vif, locking_mode="disabled")
    pool.objs[vif.ref] = disabled
    pool.engine.xapi([(vif.ref, vif, disabled)])
    pool.round()
    pool.hypervisor("host3", "vif13.0", up=False, bridge="xapi1")
    pool.hypervisor("host3", "vif13.0", up=True, bridge="xapi1")
    assert pool.arrived == {}
