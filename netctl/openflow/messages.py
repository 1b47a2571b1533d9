"""`Flow` values <-> os-ken OpenFlow 1.3 messages, and one canonical form for both.

The controller never wipes a switch: it compares what is installed (flow stats) with what it
wants (compiled `Flow`s) and sends the difference. Both sides are brought to the same
canonical form here — matches as sorted (field, value, mask) with addresses as integers and
all-ones masks dropped, instructions as sorted tuples — so that a flow the switch reports back
compares equal to the flow that installed it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from flows.pipeline import COOKIE, COOKIE_MASK, Flow, Output, PopVlan, PushVlan

ETH_8021Q = 0x8100
Canon = tuple
Key = tuple  # (table, priority, canonical match)


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    text = str(value)
    if text.count(":") == 5 and len(text) == 17:
        return int(text.replace(":", ""), 16)
    return int(ipaddress.ip_address(text))


FULL_MASK_BITS = {"eth_src": 48, "eth_dst": 48, "ipv4_src": 32, "arp_spa": 32, "ipv6_src": 128,
                  "ipv6_nd_target": 128, "metadata": 64, "vlan_vid": 13}


def canon_match(fields: Iterable[tuple[str, Any]]) -> Canon:
    """(field, value) pairs (value may be (value, mask)) -> canonical tuple."""
    out = []
    for name, value in fields:
        if isinstance(value, tuple):
            v, m = _int(value[0]), _int(value[1])
            bits = FULL_MASK_BITS.get(name)
            if bits is not None and m == (1 << bits) - 1:
                out.append((name, v, None))
            else:
                out.append((name, v & m, m))
        else:
            out.append((name, _int(value), None))
    return tuple(sorted(out))


def canon_flow(flow: Flow) -> tuple[Key, Canon]:
    actions = []
    for a in flow.actions:
        if isinstance(a, Output):
            actions.append(("output", a.port))
        elif isinstance(a, PushVlan):
            actions += [("push_vlan", ETH_8021Q), ("set_field", "vlan_vid", 0x1000 | a.vid)]
        elif isinstance(a, PopVlan):
            actions.append(("pop_vlan",))
    instr = []
    if actions:
        instr.append(("apply", tuple(actions)))
    if flow.write_metadata is not None:
        instr.append(("meta", *flow.write_metadata))
    if flow.goto is not None:
        instr.append(("goto", flow.goto))
    return (flow.table, flow.priority, canon_match(flow.match)), tuple(sorted(instr))


def canon_stats(stat: Any, ofp: Any) -> tuple[Key, Canon]:
    """A flow-stats entry as the switch reported it -> the same canonical form."""
    match = [(name, value) for name, value in stat.match.items()]
    instr = []
    for ins in stat.instructions:
        kind = type(ins).__name__
        if kind == "OFPInstructionActions" and ins.type == ofp.OFPIT_APPLY_ACTIONS:
            actions = []
            for a in ins.actions:
                akind = type(a).__name__
                if akind == "OFPActionOutput":
                    actions.append(("output", a.port))
                elif akind == "OFPActionPushVlan":
                    actions.append(("push_vlan", a.ethertype))
                elif akind == "OFPActionPopVlan":
                    actions.append(("pop_vlan",))
                elif akind == "OFPActionSetField":
                    actions.append(("set_field", a.key, _int(a.value)))
                else:
                    actions.append(("other", akind))
            if actions:
                instr.append(("apply", tuple(actions)))
        elif kind == "OFPInstructionWriteMetadata":
            instr.append(("meta", ins.metadata, ins.metadata_mask))
        elif kind == "OFPInstructionGotoTable":
            instr.append(("goto", ins.table_id))
        else:
            instr.append(("other", kind))
    return (stat.table_id, stat.priority, canon_match(match)), tuple(sorted(instr))


def flow_mod(dp: Any, flow: Flow, command: int) -> Any:
    """An OFPFlowMod for `flow` (add, modify-strict or delete-strict)."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    match = parser.OFPMatch(**{k: _match_value(v) for k, v in flow.match})
    if command == ofp.OFPFC_DELETE_STRICT:
        return parser.OFPFlowMod(dp, cookie=COOKIE, cookie_mask=COOKIE_MASK,
                                 table_id=flow.table, command=command, priority=flow.priority,
                                 out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=match)
    actions = []
    for a in flow.actions:
        if isinstance(a, Output):
            actions.append(parser.OFPActionOutput(a.port, ofp.OFPCML_NO_BUFFER))
        elif isinstance(a, PushVlan):
            actions.append(parser.OFPActionPushVlan(ETH_8021Q))
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
    return parser.OFPFlowMod(dp, cookie=flow.cookie, table_id=flow.table, command=command,
                             priority=flow.priority, match=match, instructions=instructions)


def delete_stale(dp: Any, key: Key) -> Any:
    """Delete an installed netctl flow we only know by its canonical key."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    table, priority, match = key
    fields = {}
    for name, value, mask in match:
        fields[name] = _from_int(name, value) if mask is None else (
            _from_int(name, value), _from_int(name, mask))
    return parser.OFPFlowMod(dp, cookie=COOKIE, cookie_mask=COOKIE_MASK, table_id=table,
                             command=ofp.OFPFC_DELETE_STRICT, priority=priority,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             match=parser.OFPMatch(**fields))


def _match_value(value: Any) -> Any:
    return value


MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "ipv6_nd_sll"}
IPV4_FIELDS = {"ipv4_src", "arp_spa"}
IPV6_FIELDS = {"ipv6_src", "ipv6_nd_target"}


def _from_int(name: str, value: int) -> Any:
    if name in MAC_FIELDS:
        raw = f"{value:012x}"
        return ":".join(raw[i:i + 2] for i in range(0, 12, 2))
    if name in IPV4_FIELDS:
        return str(ipaddress.IPv4Address(value))
    if name in IPV6_FIELDS:
        return str(ipaddress.IPv6Address(value))
    return value
