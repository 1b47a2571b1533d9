"""netctl's own flow-mod bytes are exactly os-ken's, for every flow netctl compiles."""

from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from flows import wire as messages
from flows.compile import BridgePorts, bridge_intent, compile_bridge
from flows.pipeline import FORWARD, Output, PopVlan, PushVlan, flow
from tests.unit.test_flows import host, pool_state, vif_of, with_vif


def oskens_flow_mod(dp, flow, command: int):
    """The reference: the same flow-mod built with os-ken's own message classes."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    match = parser.OFPMatch(**dict(flow.match))
    actions = []
    for a in flow.actions:
        if isinstance(a, Output):
            actions.append(parser.OFPActionOutput(a.port, ofp.OFPCML_NO_BUFFER))
        elif isinstance(a, PushVlan):
            actions.append(parser.OFPActionPushVlan(0x8100))
            actions.append(parser.OFPActionSetField(vlan_vid=0x1000 | a.vid))
        elif isinstance(a, PopVlan):
            actions.append(parser.OFPActionPopVlan())
    instructions = []
    if actions:
        instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    if flow.write_metadata is not None:
        instructions.append(parser.OFPInstructionWriteMetadata(*flow.write_metadata))
    if flow.goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(flow.goto))
    if command == ofp.OFPFC_DELETE_STRICT:
        return parser.OFPFlowMod(dp, cookie=messages.COOKIE, cookie_mask=messages.COOKIE_MASK,
                                 table_id=flow.table, command=command, priority=flow.priority,
                                 out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=match)
    mask = messages.COOKIE_MASK if command == ofp.OFPFC_MODIFY_STRICT else 0
    return parser.OFPFlowMod(dp, cookie=flow.cookie, cookie_mask=mask, table_id=flow.table,
                             command=command, priority=flow.priority, match=match,
                             instructions=instructions)


class _Datapath:
    """Just what os-ken's message classes read from a datapath to serialise a message."""

    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser
    id = 1


def oskens(f, command: int, xid: int) -> bytes:
    msg = oskens_flow_mod(_Datapath(), f, command)
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def every_flow():
    state = pool_state("demo-pool.yaml")
    vm1 = vif_of(state, "vm1")
    state = with_vif(state, vm1, ipv4_allowed=("10.10.0.11", "10.10.0.64/26"),
                     ipv6_allowed=("fd4e:10::11", "fd4e:10::/64"))
    flows = set()
    for name in ("host1", "host2", "host3"):
        h = host(state, name)
        for bridge in ("xapi1", "xapi4", "xapi5", "xenbr2"):
            intent = bridge_intent(state, h, bridge)
            ports = BridgePorts(vifs={v.uuid: 10 + i for i, v in enumerate(intent.local_vifs)},
                                uplinks=(1,), tunnels={h2.uuid: 50 + i for i, h2 in
                                                       enumerate(state.hosts.values())},
                                internal={0xFFFFFFFE: 0})
            flows |= compile_bridge(state, h, bridge, ports)
    flows.add(flow(FORWARD, 180, metadata=(10, 0xFFF), eth_dst="02:00:00:00:00:01",
                   vlan_vid=0, actions=(PushVlan(10), Output(1))))
    return flows


def test_flow_mod_bytes_equal_oskens():
    flows = every_flow()
    assert len(flows) > 60
    for i, f in enumerate(sorted(flows, key=lambda f: (f.table, f.priority, str(f.match)))):
        key, body = messages.canon_flow(f)
        for command in (ofproto_v1_3.OFPFC_ADD, ofproto_v1_3.OFPFC_MODIFY_STRICT):
            assert messages.flow_mod_bytes(key, body, command, 1000 + i) == oskens(
                f, command, 1000 + i), f
        assert messages.delete_bytes(key, 7) == oskens(f, ofproto_v1_3.OFPFC_DELETE_STRICT, 7)


def test_a_flow_reported_back_by_the_switch_has_the_same_canonical_form():
    """What the dump returns (parsed by os-ken from OFPMP_FLOW bytes) equals what was sent."""
    for f in every_flow():
        key, body = messages.canon_flow(f)
        table, priority, match = key
        instructions, cookie = body
        entry = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(match) + len(instructions), table,
                            12, 0, priority, 0, 0, 0, cookie, 5, 600) + match + instructions
        stat = ofproto_v1_3_parser.OFPFlowStats.parser(entry, 0)
        assert messages.canon_stats(stat, ofproto_v1_3) == (key, body), f


def test_bundle_add_bytes_equal_oskens():
    f = next(iter(every_flow()))
    inner = oskens_flow_mod(_Datapath(), f, ofproto_v1_3.OFPFC_ADD)
    msg = ofproto_v1_3_parser.ONFBundleAddMsg(_Datapath(), 7, 3, inner, [])
    msg.set_xid(42)
    msg.serialize()
    fast = messages.bundle_add_bytes(7, 3, messages.flow_mod_bytes(*messages.canon_flow(f), 0,
                                                                    42), 42)
    assert fast == bytes(msg.buf)


def test_remote_vif_flows_from_templates_equal_the_compiled_ones():
    """`remote_canon` builds a remote VIF's flows from per-shape byte templates with the MAC
    put in; they must be exactly `canon_flow` of what `remote_vif_flows` compiles, for each
    shape (private: into the tunnel; external single NIC: to the uplink, VLAN pushed)."""
    from dataclasses import replace

    from flows.compile import remote_vif_flows

    state = pool_state("demo-pool.yaml")
    vif = vif_of(state, "vm3")
    for mac in ("02:00:00:00:00:01", "fe:dc:ba:98:76:54", "02:1a:2b:3c:4d:5e"):
        moved = replace(vif, mac=mac.upper() if mac.startswith("fe") else mac)
        private = remote_vif_flows("private", False, {vif.network: 0},
                                   BridgePorts(tunnels={"peer": 7}), moved, "peer")
        assert sorted(map(messages.canon_flow, private)) == sorted(
            messages.remote_canon("private", 0, mac, 7))
        for vlan in (0, 10, 4094):
            external = remote_vif_flows("external", False, {vif.network: vlan},
                                        BridgePorts(uplinks=(3,)), moved, "peer")
            assert list(map(messages.canon_flow, external)) == messages.remote_canon(
                "external", vlan, mac, 3)
