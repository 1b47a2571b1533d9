"""The OpenFlow pipeline, checked by what packets would do (a table walker), not by text."""

from __future__ import annotations

import pytest

from flows.compile import BridgePorts, bridge_intent, compile_bridge
from flows.locking import OVERRIDE_KEY
from flows.pipeline import (
    CLASSIFY,
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    FORWARD,
    PORT_SECURITY,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    Flow,
    FlowError,
    Output,
    flow,
)
from flows.walker import ports_reached, walk
from netctl.model import FrozenMap, PoolState
from netctl.sources.xapi.convert import state_from_records
from netctl.topology import parse_file
from netctl.xapisim.sim import Simulator
from tests.conftest import TOPOLOGIES

CLASSES = (
    "pool",
    "host",
    "host_metrics",
    "network",
    "PIF",
    "Bond",
    "VLAN",
    "tunnel",
    "VIF",
    "VM",
    "SDN_controller",
)


def pool_state(topology: str) -> PoolState:
    """The PoolState the xapi simulator holds for a shipped topology (no sockets needed)."""
    sim = Simulator.from_topology(parse_file(TOPOLOGIES / topology))
    user, password = next(iter(sim.users.items()))
    session = sim.call("session.login_with_password", [user, password])
    return state_from_records({c: sim.call(f"{c}.get_all_records", [session]) for c in CLASSES})


@pytest.fixture(scope="module")
def demo() -> PoolState:
    return pool_state("demo-pool.yaml")


def host(state: PoolState, name: str) -> str:
    return next(h.ref for h in state.hosts.values() if h.name_label == name)


def vif_of(state: PoolState, vm: str, device: str = "0"):
    vm_ref = next(v.ref for v in state.vms.values() if v.name_label == vm)
    return next(v for v in state.vm_vifs(vm_ref) if v.device == device)


def with_vif(state: PoolState, vif, **changes) -> PoolState:
    from dataclasses import replace

    vifs = dict(state.vifs)
    vifs[vif.ref] = replace(vif, **changes)
    return state.replace(vifs=vifs)


# Port numbers as a switch would report them.
UPLINK, UPLINK2, LOCAL_PORT = 1, 2, 0xFFFFFFFE


def pool_bridge(state: PoolState, hostname: str) -> tuple[frozenset[Flow], dict[str, int]]:
    """host's xapi1 (bond uplink, carries the pool network and VLANs 10/20)."""
    h = host(state, hostname)
    intent = bridge_intent(state, h, "xapi1")
    vifs = {v.uuid: 10 + i for i, v in enumerate(intent.local_vifs)}
    ports = BridgePorts(vifs=vifs, uplinks=(UPLINK, UPLINK2), internal={LOCAL_PORT: 0})
    return compile_bridge(state, h, "xapi1", ports), vifs


def test_flow_is_validated_against_the_pipeline():
    with pytest.raises(FlowError, match="does not match on eth_dst"):
        flow(PORT_SECURITY, 1, eth_dst="02:00:00:00:00:01")
    with pytest.raises(FlowError, match="ipv4_src needs eth_type"):
        flow(PORT_SECURITY, 1, ipv4_src="10.0.0.1")
    with pytest.raises(FlowError, match="ipv6_nd_sll needs icmpv6_type"):
        flow(
            PORT_SECURITY,
            1,
            eth_type=ETH_IPV6,
            ip_proto=PROTO_ICMPV6,
            icmpv6_type=136,
            ipv6_nd_sll="02:00:00:00:00:01",
        )
    with pytest.raises(FlowError, match="cannot go to table 1"):
        flow(FORWARD, 1, goto=PORT_SECURITY)
    with pytest.raises(FlowError, match="no table 9"):
        Flow(9, 1, ())


def test_external_bridge_forwards_known_macs_and_leaves_the_rest_to_normal(demo):
    flows, vifs = pool_bridge(demo, "host1")
    vm1 = vif_of(demo, "vm1")  # pool network, locked, on host1
    vm2 = vif_of(demo, "vm2")  # VLAN 10, on host1
    vm3 = vif_of(demo, "vm3")  # pool network, on host2
    p1, p2 = vifs[vm1.uuid], vifs[vm2.uuid]
    # From the uplink (untagged) to vm1: straight to its port.
    assert ports_reached(flows, {"in_port": UPLINK, "eth_dst": vm1.mac}) == {p1}
    # Tagged VLAN 10 from the trunk to vm2: VLAN popped, to its port.
    out = walk(flows, {"in_port": UPLINK, "vlan_vid": 0x1000 | 10, "eth_dst": vm2.mac})
    assert [(d.port, d.vlan) for d in out] == [(p2, 0)]
    # The same frame in VLAN 20 does not reach vm2 (another network).
    assert p2 not in ports_reached(
        flows, {"in_port": UPLINK, "vlan_vid": 0x1000 | 20, "eth_dst": vm2.mac}
    )
    # VLAN 30 is no network of this bridge: dropped.
    assert walk(flows, {"in_port": UPLINK, "vlan_vid": 0x1000 | 30, "eth_dst": vm2.mac}) == []
    # vm1 -> vm3 (remote, bond uplink) and broadcast go to NORMAL.
    ip = {"eth_src": vm1.mac, "eth_type": ETH_IPV4, "ipv4_src": "10.10.0.11", "ip_proto": 1}
    assert ports_reached(flows, {"in_port": p1, "eth_dst": vm3.mac, **ip}) == {"NORMAL"}
    assert ports_reached(flows, {"in_port": p1, "eth_dst": "ff:ff:ff:ff:ff:ff", **ip}) == {"NORMAL"}


def test_a_vif_cannot_send_tagged_frames(demo):
    flows, vifs = pool_bridge(demo, "host1")
    vm2 = vif_of(demo, "vm2")
    assert (
        walk(
            flows,
            {
                "in_port": vifs[vm2.uuid],
                "vlan_vid": 0x1000 | 20,
                "eth_src": vm2.mac,
                "eth_dst": "ff:ff:ff:ff:ff:ff",
            },
        )
        == []
    )


def locked_flows(state: PoolState):
    flows, vifs = pool_bridge(state, "host1")
    vm1 = vif_of(state, "vm1")
    return flows, vifs[vm1.uuid], vm1.mac


LOCKED_CASES = [
    # (what, packet fields beyond in_port, expected to pass)
    (
        "IPv4 from the allowed address",
        dict(eth_type=ETH_IPV4, ipv4_src="10.10.0.11", ip_proto=PROTO_TCP),
        True,
    ),
    (
        "IPv4 from a spoofed address",
        dict(eth_type=ETH_IPV4, ipv4_src="10.10.0.99", ip_proto=PROTO_TCP),
        False,
    ),
    (
        "ARP for the allowed address",
        dict(eth_type=ETH_ARP, arp_spa="10.10.0.11", arp_sha="MAC"),
        True,
    ),
    ("ARP probe", dict(eth_type=ETH_ARP, arp_spa="0.0.0.0", arp_sha="MAC"), True),
    (
        "ARP with a spoofed sender IP",
        dict(eth_type=ETH_ARP, arp_spa="10.10.0.13", arp_sha="MAC"),
        False,
    ),
    (
        "ARP with a spoofed sender MAC",
        dict(eth_type=ETH_ARP, arp_spa="10.10.0.11", arp_sha="02:66:66:66:66:66"),
        False,
    ),
    (
        "DHCP request",
        dict(eth_type=ETH_IPV4, ipv4_src="0.0.0.0", ip_proto=PROTO_UDP, udp_src=68, udp_dst=67),
        True,
    ),
    (
        "DHCP server reply from the allowed address",
        dict(eth_type=ETH_IPV4, ipv4_src="10.10.0.11", ip_proto=PROTO_UDP, udp_src=67, udp_dst=68),
        False,
    ),
    (
        "IPv6 from the allowed address",
        dict(eth_type=ETH_IPV6, ipv6_src="fd4e:10::11", ip_proto=PROTO_TCP),
        True,
    ),
    (
        "IPv6 from a spoofed address",
        dict(eth_type=ETH_IPV6, ipv6_src="fd4e:10::99", ip_proto=PROTO_TCP),
        False,
    ),
    (
        "NS with its own MAC as source link-layer address",
        dict(
            eth_type=ETH_IPV6,
            ipv6_src="fd4e:10::11",
            ip_proto=PROTO_ICMPV6,
            icmpv6_type=135,
            ipv6_nd_sll="MAC",
            ipv6_nd_target="fd4e:10::13",
        ),
        True,
    ),
    (
        "NS with a forged source link-layer address",
        dict(
            eth_type=ETH_IPV6,
            ipv6_src="fd4e:10::11",
            ip_proto=PROTO_ICMPV6,
            icmpv6_type=135,
            ipv6_nd_sll="02:66:66:66:66:66",
            ipv6_nd_target="fd4e:10::13",
        ),
        False,
    ),
    (
        "NA for its own address",
        dict(
            eth_type=ETH_IPV6,
            ipv6_src="fd4e:10::11",
            ip_proto=PROTO_ICMPV6,
            icmpv6_type=136,
            ipv6_nd_target="fd4e:10::11",
        ),
        True,
    ),
    (
        "NA for someone else's address",
        dict(
            eth_type=ETH_IPV6,
            ipv6_src="fd4e:10::11",
            ip_proto=PROTO_ICMPV6,
            icmpv6_type=136,
            ipv6_nd_target="fd4e:10::13",
        ),
        False,
    ),
    (
        "router advertisement",
        dict(eth_type=ETH_IPV6, ipv6_src="fd4e:10::11", ip_proto=PROTO_ICMPV6, icmpv6_type=134),
        False,
    ),
    (
        "ICMPv6 redirect",
        dict(eth_type=ETH_IPV6, ipv6_src="fd4e:10::11", ip_proto=PROTO_ICMPV6, icmpv6_type=137),
        False,
    ),
    (
        "ping6 from the allowed address",
        dict(eth_type=ETH_IPV6, ipv6_src="fd4e:10::11", ip_proto=PROTO_ICMPV6, icmpv6_type=128),
        True,
    ),
    ("something else entirely", dict(eth_type=0x88CC), False),
]


@pytest.mark.parametrize("what, fields, passes", LOCKED_CASES, ids=[c[0] for c in LOCKED_CASES])
def test_locked_vif(demo, what, fields, passes):
    flows, port, mac = locked_flows(demo)
    fields = {k: (mac if v == "MAC" else v) for k, v in fields.items()}
    reached = ports_reached(
        flows, {"in_port": port, "eth_src": mac, "eth_dst": "ff:ff:ff:ff:ff:ff", **fields}
    )
    assert bool(reached) is passes, what


def test_locked_vif_with_a_spoofed_source_mac_gets_nothing_out(demo):
    flows, port, _mac = locked_flows(demo)
    for fields, _ in [(c[1], c[2]) for c in LOCKED_CASES]:
        spoofed = {k: ("02:66:66:66:66:66" if v == "MAC" else v) for k, v in fields.items()}
        assert not walk(
            flows,
            {
                "in_port": port,
                "eth_src": "02:66:66:66:66:66",
                "eth_dst": "ff:ff:ff:ff:ff:ff",
                **spoofed,
            },
        )


@pytest.mark.parametrize("mode, passes", [("unlocked", True), ("disabled", False)])
def test_unlocked_passes_everything_and_disabled_nothing(demo, mode, passes):
    vm1 = vif_of(demo, "vm1")
    state = with_vif(demo, vm1, locking_mode=mode)
    flows, vifs = pool_bridge(state, "host1")
    for fields, _ in [(c[1], c[2]) for c in LOCKED_CASES]:
        pkt = {
            "in_port": vifs[vm1.uuid],
            "eth_src": "02:66:66:66:66:66",
            "eth_dst": "ff:ff:ff:ff:ff:ff",
            **fields,
        }
        pkt = {k: ("02:66:66:66:66:66" if v == "MAC" else v) for k, v in pkt.items()}
        assert bool(walk(flows, pkt)) is passes


def test_network_default_follows_the_network_and_the_override_wins(demo):
    vm3 = vif_of(demo, "vm3")  # network_default on the pool network (default unlocked)
    nets = dict(demo.networks)
    from dataclasses import replace

    nets[vm3.network] = replace(nets[vm3.network], default_locking_mode="disabled")
    state = demo.replace(networks=nets)
    h2 = host(state, "host2")
    ports = BridgePorts(vifs={vm3.uuid: 7}, uplinks=(UPLINK,))
    pkt = {"in_port": 7, "eth_src": vm3.mac, "eth_dst": "ff:ff:ff:ff:ff:ff"}
    assert walk(compile_bridge(state, h2, "xapi1", ports), pkt) == []
    unlocked = with_vif(
        state, state.vifs[vm3.ref], other_config=FrozenMap({OVERRIDE_KEY: "unlocked"})
    )
    assert walk(compile_bridge(unlocked, h2, "xapi1", ports), pkt)


def private_bridge(state: PoolState, hostname: str, bridge: str = "xapi4"):
    h = host(state, hostname)
    intent = bridge_intent(state, h, bridge)
    assert intent.kind == "private"
    vifs = {v.uuid: 20 + i for i, v in enumerate(intent.local_vifs)}
    peers = sorted(state.hosts[r].uuid for r in state.hosts if r != h)
    tunnels = {uuid: 100 + i for i, uuid in enumerate(peers)}
    flows = compile_bridge(state, h, bridge, BridgePorts(vifs=vifs, tunnels=tunnels))
    return flows, vifs, tunnels


def test_private_network_split_horizon_and_remote_macs(demo):
    flows, vifs, tunnels = private_bridge(demo, "host1")
    vm1 = vif_of(demo, "vm1", "1")  # priva on host1
    vm3 = vif_of(demo, "vm3", "1")  # priva on host2
    vm6 = vif_of(demo, "vm6", "1")  # priva on host3
    h2 = demo.hosts[demo.vms[vm3.vm].resident_on].uuid
    h3 = demo.hosts[demo.vms[vm6.vm].resident_on].uuid
    p1 = vifs[vm1.uuid]
    unicast = {"in_port": p1, "eth_src": vm1.mac}
    assert ports_reached(flows, {**unicast, "eth_dst": vm3.mac}) == {tunnels[h2]}
    assert ports_reached(flows, {**unicast, "eth_dst": vm6.mac}) == {tunnels[h3]}
    # Broadcast from a local VIF: every tunnel (and other local VIFs: none here).
    assert ports_reached(flows, {**unicast, "eth_dst": "ff:ff:ff:ff:ff:ff"}) == set(
        tunnels.values()
    )
    # Broadcast from a tunnel: local VIFs only, never back into the mesh.
    assert ports_reached(flows, {"in_port": tunnels[h2], "eth_dst": "ff:ff:ff:ff:ff:ff"}) == {p1}
    # Unicast from a tunnel to another host's VIF is neither relayed nor leaked to local VIFs.
    assert ports_reached(flows, {"in_port": tunnels[h2], "eth_dst": vm6.mac}) == set()
    assert ports_reached(flows, {"in_port": tunnels[h2], "eth_dst": vm1.mac}) == {p1}


def test_private_networks_do_not_mix(demo):
    flows_a, _vifs, _t = private_bridge(demo, "host1", "xapi4")
    vm2 = vif_of(demo, "vm2", "1")  # privb on host1: not on xapi4
    assert vm2.uuid not in _vifs
    flows_b, vifs_b, _t = private_bridge(demo, "host1", "xapi5")
    vm1 = vif_of(demo, "vm1", "1")
    assert vm1.uuid not in vifs_b and vifs_b  # each bridge knows only its own VIFs


def test_single_nic_uplink_sends_remote_macs_with_the_right_vlan():
    state = pool_state("mini-pool.yaml")
    h1 = host(state, "host1")
    vm1, vm2 = vif_of(state, "vm1"), vif_of(state, "vm2")
    flows = compile_bridge(state, h1, "xenbr0", BridgePorts(vifs={vm1.uuid: 5}, uplinks=(1,)))
    pkt = {
        "in_port": 5,
        "eth_src": vm1.mac,
        "eth_dst": vm2.mac,
        "eth_type": ETH_IPV4,
        "ipv4_src": "10.50.0.1",
    }
    assert [(d.port, d.vlan) for d in walk(flows, pkt)] == [(1, 0)]


def test_compiling_twice_gives_the_same_table(demo):
    a, _ = pool_bridge(demo, "host2")
    b, _ = pool_bridge(demo, "host2")
    assert a == b and all(isinstance(f, Flow) for f in a)
    assert any(Output(0xFFFFFFFA) in f.actions for f in a if f.table == FORWARD)
    assert {f.table for f in a} == {CLASSIFY, PORT_SECURITY, FORWARD}


def test_a_port_not_classified_yet_goes_to_the_controller_and_known_ports_never_do(demo):
    flows, vifs = pool_bridge(demo, "host1")
    # A VIF plugged a moment ago: the controller holds its frames and replays them.
    assert ports_reached(flows, {"in_port": 999, "eth_dst": "ff:ff:ff:ff:ff:ff"}) == {
        "CONTROLLER"}
    # Known ports whose traffic matches nothing are dropped, never sent to the controller.
    assert walk(flows, {"in_port": UPLINK, "vlan_vid": 0x1000 | 30}) == []
    assert walk(flows, {"in_port": next(iter(vifs.values())), "vlan_vid": 0x1000 | 20}) == []


def test_vif_trunks_let_exactly_those_vlans_in_tagged(demo):
    vm3 = vif_of(demo, "vm3")  # pool network (untagged on host2's xapi1)
    state = with_vif(demo, vm3, trunks=(10,))
    h2 = host(state, "host2")
    flows = compile_bridge(state, h2, "xapi1", BridgePorts(vifs={vm3.uuid: 7}, uplinks=(UPLINK,)))
    frame = {"in_port": 7, "eth_src": vm3.mac, "eth_dst": "ff:ff:ff:ff:ff:ff"}
    assert [(d.port, d.vlan) for d in walk(flows, {**frame, "vlan_vid": 0x1000 | 10})] == [
        ("NORMAL", 10)]
    assert walk(flows, {**frame, "vlan_vid": 0x1000 | 20}) == []
    assert ports_reached(flows, frame) == {"NORMAL"}
    untrunked = compile_bridge(demo, h2, "xapi1", BridgePorts(vifs={vm3.uuid: 7},
                                                              uplinks=(UPLINK,)))
    assert walk(untrunked, {**frame, "vlan_vid": 0x1000 | 10}) == []


# --- issue 10: exactly xapi's locking, in both directions --------------------------------------


def test_disabled_vif_receives_nothing_either(demo):
    """xapi's `disabled` takes the port off the bridge: nothing in either direction. Unicast
    and the explicit flood of a private network leave it out; NORMAL's flooding is kept away by
    the port config (`disabled_ports` -> NO_FWD)."""
    from flows.compile import disabled_ports

    vm1 = vif_of(demo, "vm1")
    state = with_vif(demo, vm1, locking_mode="disabled")
    flows, vifs = pool_bridge(state, "host1")
    p1 = vifs[vm1.uuid]
    assert p1 not in ports_reached(flows, {"in_port": UPLINK, "eth_dst": vm1.mac})
    h1 = host(state, "host1")
    ports = BridgePorts(vifs=vifs, uplinks=(UPLINK, UPLINK2), internal={LOCAL_PORT: 0})
    assert disabled_ports(state, bridge_intent(state, h1, "xapi1"), ports) == {p1}
    assert disabled_ports(demo, bridge_intent(demo, h1, "xapi1"), ports) == frozenset()
    # Private network: broadcast from a tunnel and unicast both skip a disabled VIF.
    vm1b = vif_of(demo, "vm1", "1")
    state = with_vif(demo, vm1b, locking_mode="disabled")
    flows, pvifs, tunnels = private_bridge(state, "host1")
    some_tunnel = next(iter(tunnels.values()))
    assert ports_reached(flows, {"in_port": some_tunnel, "eth_dst": "ff:ff:ff:ff:ff:ff"}) == set()
    assert ports_reached(flows, {"in_port": some_tunnel, "eth_dst": vm1b.mac}) == set()


def test_an_allowed_ipv6_prefix_lets_the_vm_answer_for_addresses_inside_it(demo):
    vm1 = vif_of(demo, "vm1")
    state = with_vif(demo, vm1, ipv6_allowed=("fd4e:10::/64",))
    flows, vifs = pool_bridge(state, "host1")
    na = {"in_port": vifs[vm1.uuid], "eth_src": vm1.mac, "eth_dst": "ff:ff:ff:ff:ff:ff",
          "eth_type": ETH_IPV6, "ip_proto": PROTO_ICMPV6, "icmpv6_type": 136,
          "ipv6_src": "fd4e:10::11"}
    assert ports_reached(flows, {**na, "ipv6_nd_target": "fd4e:10::11"}) == {"NORMAL"}
    assert ports_reached(flows, {**na, "ipv6_nd_target": "fd4e:10::99"}) == {"NORMAL"}
    assert walk(flows, {**na, "ipv6_nd_target": "fd4e:20::11"}) == []  # outside the prefix


def test_a_tap_port_is_the_same_vif(demo):
    """xapi plugs `tap<domid>.<dev>` for an HVM guest without PV drivers: same locking, same
    forwarding as its `vif` twin."""
    vm1 = vif_of(demo, "vm1")
    h1 = host(demo, "host1")
    intent = bridge_intent(demo, h1, "xapi1")
    vifs = {v.uuid: 10 + i for i, v in enumerate(intent.local_vifs)}
    tap = 40
    flows = compile_bridge(demo, h1, "xapi1", BridgePorts(
        vifs=vifs, taps={vm1.uuid: tap}, uplinks=(UPLINK, UPLINK2), internal={LOCAL_PORT: 0}))
    assert ports_reached(flows, {"in_port": UPLINK, "eth_dst": vm1.mac}) == {vifs[vm1.uuid], tap}
    legit = {"in_port": tap, "eth_src": vm1.mac, "eth_dst": "ff:ff:ff:ff:ff:ff",
             "eth_type": ETH_IPV4, "ipv4_src": "10.10.0.11", "ip_proto": PROTO_TCP}
    assert ports_reached(flows, legit) == {"NORMAL"}
    assert walk(flows, {**legit, "ipv4_src": "10.10.0.99"}) == []  # locked like its twin
    flows_tap_only = compile_bridge(demo, h1, "xapi1", BridgePorts(
        vifs={}, taps={vm1.uuid: tap}, uplinks=(UPLINK, UPLINK2), internal={LOCAL_PORT: 0}))
    assert ports_reached(flows_tap_only, {"in_port": UPLINK, "eth_dst": vm1.mac}) == {tap}


def test_a_duplicate_mac_is_a_problem_the_first_vif_keeps_working(demo):
    from netctl.model import validate

    vm1 = vif_of(demo, "vm1")  # host1, pool network, locked
    vm3 = vif_of(demo, "vm3")  # host2, pool network
    clash = with_vif(demo, vm3, mac=vm1.mac.upper())
    kept, problems = validate(clash, incumbents={vm1.ref})
    [problem] = [p for p in problems if p.field == "MAC"]
    assert problem.ref == vm3.ref and vm1.uuid in problem.message
    assert "vm1 VIF 0" in problem.message and problem.name_label == "vm3 VIF 0"
    assert kept.quarantined == {vm3.ref}
    assert kept.enforced_locking_mode(kept.vifs[vm3.ref]) == "disabled"
    # Without history the lower uuid wins; with it, the incumbent does.
    kept2, _ = validate(clash, incumbents={vm3.ref})
    assert kept2.quarantined == {vm1.ref}
    # Never an ambiguous table: on every bridge of every host, one entry per (network, MAC).
    for hostname in ("host1", "host2", "host3"):
        flows, _vifs = pool_bridge(kept, hostname)
        forward = [f for f in flows if f.table == FORWARD and dict(f.match).get("eth_dst")
                   == vm1.mac.lower()]
        assert len({f.key for f in forward}) == len(forward) <= 2
        metas = [dict(f.match)["metadata"] for f in forward if f.priority in (180, 200)]
        assert len(metas) == len(set(metas)), hostname
