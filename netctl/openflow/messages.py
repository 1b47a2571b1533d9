"""`Flow` values <-> os-ken OpenFlow 1.3 messages, and one canonical form for both.

The controller never wipes a switch: it compares what is installed (flow stats) with what it
wants (compiled `Flow`s) and sends the difference. Both sides are brought to the same
canonical form here — matches as sorted (field, value, mask) with addresses as integers and
all-ones masks dropped, instructions as sorted tuples — so that a flow the switch reports back
compares equal to the flow that installed it.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
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
    return _text_int(str(value))


@functools.lru_cache(maxsize=1 << 16)
def _text_int(text: str) -> int:
    """A MAC or IP address as an integer (cached: the same few thousand recur in every table)."""
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


# ---------------------------------------------------------------------------------------------
# Wire bytes without os-ken objects: the cold-start path. Building an os-ken OFPFlowMod costs
# ~100 µs; these few struct.pack calls produce the same bytes (tests compare them with
# os-ken's own serialisation for every flow netctl compiles).

OFP_VERSION = 0x04
OFPT_EXPERIMENTER, OFPT_FLOW_MOD = 4, 14
OFP_NO_BUFFER = 0xFFFFFFFF
OFPCML_NO_BUFFER = 0xFFFF
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_ADD_MESSAGE = 2301
OXM_FIELDS: dict[str, tuple[int, int]] = {  # name -> (OXM field number, value length)
    "in_port": (0, 4), "metadata": (2, 8), "eth_dst": (3, 6), "eth_src": (4, 6),
    "eth_type": (5, 2), "vlan_vid": (6, 2), "ip_proto": (10, 1), "ipv4_src": (11, 4),
    "udp_src": (15, 2), "udp_dst": (16, 2), "arp_spa": (22, 4), "arp_sha": (24, 6),
    "ipv6_src": (26, 16), "icmpv6_type": (29, 1), "ipv6_nd_target": (31, 16),
    "ipv6_nd_sll": (32, 6),
}


def _oxm(name: str, value: int, mask: int | None) -> bytes:
    field, size = OXM_FIELDS[name]
    header = (0x8000 << 16) | (field << 9) | ((1 if mask is not None else 0) << 8)
    body = value.to_bytes(size, "big")
    if mask is not None:
        body += mask.to_bytes(size, "big")
    return struct.pack("!I", header | len(body)) + body


def _match_bytes(flow: Flow) -> bytes:
    fields = []
    for name, value in flow.match:
        if isinstance(value, tuple):
            fields.append((name, _int(value[0]), _int(value[1])))
        else:
            fields.append((name, _int(value), None))
    oxms = b"".join(_oxm(n, v, m) for n, v, m in sorted(fields, key=lambda f: OXM_FIELDS[f[0]]))
    length = 4 + len(oxms)
    return struct.pack("!HH", 1, length) + oxms + bytes(-length % 8)


def _actions_bytes(flow: Flow) -> bytes:
    out = b""
    for a in flow.actions:
        if isinstance(a, Output):
            out += struct.pack("!HHIH6x", 0, 16, a.port, OFPCML_NO_BUFFER)
        elif isinstance(a, PushVlan):
            out += struct.pack("!HHH2x", 17, 8, ETH_8021Q)
            oxm = _oxm("vlan_vid", 0x1000 | a.vid, None)
            length = 4 + len(oxm)
            out += struct.pack("!HH", 25, length + (-length % 8)) + oxm + bytes(-length % 8)
        elif isinstance(a, PopVlan):
            out += struct.pack("!HH4x", 18, 8)
    return out


def flow_mod_bytes(flow: Flow, command: int, xid: int) -> bytes:
    """An OF1.3 flow-mod (add or modify-strict) for `flow`, as bytes."""
    instructions = b""
    actions = _actions_bytes(flow)
    if actions:
        instructions += struct.pack("!HH4x", 4, 8 + len(actions)) + actions
    if flow.write_metadata is not None:
        instructions += struct.pack("!HH4xQQ", 2, 24, *flow.write_metadata)
    if flow.goto is not None:
        instructions += struct.pack("!HHB3x", 1, 8, flow.goto)
    body = struct.pack("!QQBBHHHIIIH2x", flow.cookie, 0, flow.table, command, 0, 0,
                       flow.priority, OFP_NO_BUFFER, 0, 0, 0)
    body += _match_bytes(flow) + instructions
    return struct.pack("!BBHI", OFP_VERSION, OFPT_FLOW_MOD, 8 + len(body), xid) + body


def bundle_add_bytes(bundle_id: int, flags: int, inner: bytes, xid: int) -> bytes:
    """An ONF (OF1.3 extension) bundle-add carrying `inner`, which must have the same xid."""
    length = 24 + len(inner)
    return struct.pack("!BBHIIIIxxH", OFP_VERSION, OFPT_EXPERIMENTER, length, xid,
                       ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, flags) + inner
