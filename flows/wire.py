"""`Flow` values <-> OpenFlow 1.3 wire bytes, and one canonical form for both directions.

The controller never wipes a switch: it compares what is installed (flow stats) with what it
wants (compiled `Flow`s) and sends the difference. The canonical form *is* the wire form:
a flow's key is (table, priority, match bytes) and its body (instruction bytes, cookie), with
OXM fields in field-number order, addresses as OpenFlow encodes them and all-ones masks
dropped. A flow the switch reports back is re-encoded the same way, so it compares equal to
the flow that installed it; and the bytes compared are the bytes sent (adds, modifies and
deletes are written directly, byte-identical to os-ken's serialisation — tested for every flow
netctl compiles — at a fraction of the cost of building os-ken objects).

The same goes for the one request os-ken cannot write for OVS: the flow monitor subscription
(`flow_monitor_request_bytes`, ONF extension 187 over OpenFlow 1.3). A flow the monitor reports
is canonicalised like a flow-stats entry (`canon_stats`), and `match_text` names a match for
people (the log, a Problem).
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from collections.abc import Iterable
from typing import Any

from flows.pipeline import (
    COOKIE,
    COOKIE_MASK,
    Ct,
    Flow,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetReg,
)

ETH_8021Q = 0x8100
OFP_VERSION = 0x04
OFPT_EXPERIMENTER, OFPT_FLOW_MOD, OFPT_MULTIPART_REQUEST = 4, 14, 18
OFPMP_EXPERIMENTER = 0xFFFF
OFPFC_MODIFY_STRICT, OFPFC_DELETE_STRICT = 2, 4
OFP_NO_BUFFER = 0xFFFFFFFF
OFPP_ANY = OFPG_ANY = 0xFFFFFFFF
OFPCML_NO_BUFFER = 0xFFFF
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_ADD_MESSAGE = 2301
ONFMP_FLOW_MONITOR = 1870  # ONF extension 187: flow monitoring for OpenFlow 1.3
# onf_flow_monitor_request.flags (the same bits as Nicira's NXFMF_*)
ONFFMF_INITIAL, ONFFMF_ADD, ONFFMF_DELETE, ONFFMF_MODIFY = 1 << 0, 1 << 1, 1 << 2, 1 << 3
ONFFMF_ACTIONS, ONFFMF_OWN = 1 << 4, 1 << 5
OFPIT_GOTO_TABLE, OFPIT_WRITE_METADATA, OFPIT_APPLY_ACTIONS, OFPIT_METER = 1, 2, 4, 6
OFPAT_OUTPUT, OFPAT_PUSH_VLAN, OFPAT_POP_VLAN, OFPAT_SET_FIELD = 0, 17, 18, 25
OXM_FIELDS: dict[str, tuple[int, int]] = {  # name -> (OXM field number, value length)
    "in_port": (0, 4), "metadata": (2, 8), "eth_dst": (3, 6), "eth_src": (4, 6),
    "eth_type": (5, 2), "vlan_vid": (6, 2), "ip_proto": (10, 1), "ipv4_src": (11, 4),
    "udp_src": (15, 2), "udp_dst": (16, 2), "arp_spa": (22, 4), "arp_sha": (24, 6),
    "ipv6_src": (26, 16), "icmpv6_type": (29, 1), "ipv6_nd_target": (31, 16),
    "ipv6_nd_sll": (32, 6),
    "ipv4_dst": (12, 4), "tcp_dst": (14, 2), "arp_tpa": (23, 4), "ipv6_dst": (27, 16),
}
# Nicira extension fields (OXM class 0x0001) that traffic rules use (`flows.rules`)
NXM1_FIELDS: dict[str, tuple[int, int]] = {"reg5": (5, 4), "reg6": (6, 4), "ct_state": (105, 4)}
NX_VENDOR = 0x00002320
NXAST_RESUBMIT_TABLE, NXAST_CT = 14, 35
NX_CT_F_COMMIT, NX_CT_RECIRC_NONE = 1, 0xFF
OFPP_IN_PORT_16 = 0xFFF8
FULL_MASK_BITS = {"eth_src": 48, "eth_dst": 48, "ipv4_src": 32, "arp_spa": 32, "ipv6_src": 128,
                  "ipv6_nd_target": 128, "metadata": 64, "vlan_vid": 13, "ipv4_dst": 32,
                  "arp_tpa": 32, "ipv6_dst": 128, "tcp_dst": 16, "udp_dst": 16, "reg5": 32,
                  "reg6": 32, "ct_state": 32}

Key = tuple  # (table, priority, match bytes)
Body = tuple  # (instruction bytes, cookie)


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


def _oxm(name: str, value: int, mask: int | None) -> bytes:
    nx = NXM1_FIELDS.get(name)
    oxm_class, (field, size) = (0x0001, nx) if nx is not None else (0x8000, OXM_FIELDS[name])
    header = (oxm_class << 16) | (field << 9) | ((1 if mask is not None else 0) << 8)
    body = value.to_bytes(size, "big")
    if mask is not None:
        body += mask.to_bytes(size, "big")
    return struct.pack("!I", header | len(body)) + body


def _order(name: str) -> tuple[int, int]:
    """OXM order as os-ken writes it: by class (Nicira's 0x0001 first), then field number."""
    nx = NXM1_FIELDS.get(name)
    return (0, nx[0]) if nx is not None else (1, OXM_FIELDS[name][0])


def match_bytes(fields: Any) -> bytes:
    """An ofp_match (OXM, padded) from (name, value) pairs, value possibly (value, mask)."""
    norm = []
    for name, value in fields:
        if isinstance(value, tuple):
            v, m = _int(value[0]), _int(value[1])
            bits = FULL_MASK_BITS.get(name)
            if bits is not None and m == (1 << bits) - 1:
                norm.append((name, v, None))
            else:
                norm.append((name, v & m, m))
        else:
            norm.append((name, _int(value), None))
    oxms = b"".join(_oxm(n, v, m) for n, v, m in sorted(norm, key=lambda f: _order(f[0])))
    length = 4 + len(oxms)
    return struct.pack("!HH", 1, length) + oxms + bytes(-length % 8)


def _output(port: int) -> bytes:
    return struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, port, OFPCML_NO_BUFFER)


def _push_vlan(ethertype: int) -> bytes:
    return struct.pack("!HHH2x", OFPAT_PUSH_VLAN, 8, ethertype)


def _set_vlan_vid(vid: int) -> bytes:
    oxm = _oxm("vlan_vid", vid, None)
    length = 4 + len(oxm)
    return struct.pack("!HH", OFPAT_SET_FIELD, length + (-length % 8)) + oxm + bytes(-length % 8)


POP_VLAN = struct.pack("!HH4x", OFPAT_POP_VLAN, 8)


def _set_reg(reg: str, value: int) -> bytes:
    oxm = _oxm(reg, value, None)
    length = 4 + len(oxm)
    return struct.pack("!HH", OFPAT_SET_FIELD, length + (-length % 8)) + oxm + bytes(-length % 8)


def _resubmit(table: int) -> bytes:
    return struct.pack("!HHIHHB3x", 0xFFFF, 16, NX_VENDOR, NXAST_RESUBMIT_TABLE,
                       OFPP_IN_PORT_16, table)


def _ct(zone: int, commit: bool, table: int | None) -> bytes:
    """ct(zone=ZONE[,commit][,table=T]): an immediate zone, no ALG, no nested actions."""
    return struct.pack("!HHIHHIHB3xH", 0xFFFF, 24, NX_VENDOR, NXAST_CT,
                       NX_CT_F_COMMIT if commit else 0, 0, zone,
                       NX_CT_RECIRC_NONE if table is None else table, 0)


def instruction_bytes(actions: bytes, metadata: tuple[int, int] | None,
                      goto: int | None, meter: int | None = None) -> bytes:
    """meter, apply-actions, write-metadata, goto-table — in that order, as OVS reports them."""
    out = b"" if meter is None else struct.pack("!HHI", OFPIT_METER, 8, meter)
    if actions:
        out += struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions
    if metadata is not None:
        out += struct.pack("!HH4xQQ", OFPIT_WRITE_METADATA, 24, *metadata)
    if goto is not None:
        out += struct.pack("!HHB3x", OFPIT_GOTO_TABLE, 8, goto)
    return out


@functools.lru_cache(maxsize=1 << 16)
def canon_flow(flow: Flow) -> tuple[Key, Body]:
    """(Cached: shared flows — per-port drops, tunnel entries, the table-miss entries — are
    canonicalised once.)"""
    return _canon_flow(flow)


def _canon_flow(flow: Flow) -> tuple[Key, Body]:
    actions = b""
    for a in flow.actions:
        if isinstance(a, Output):
            actions += _output(a.port)
        elif isinstance(a, PushVlan):
            actions += _push_vlan(ETH_8021Q) + _set_vlan_vid(0x1000 | a.vid)
        elif isinstance(a, PopVlan):
            actions += POP_VLAN
        elif isinstance(a, SetReg):
            actions += _set_reg(a.reg, a.value)
        elif isinstance(a, Resubmit):
            actions += _resubmit(a.table)
        elif isinstance(a, Ct):
            actions += _ct(a.zone, a.commit, a.table)
    instr = instruction_bytes(actions, flow.write_metadata, flow.goto, flow.meter)
    return (flow.table, flow.priority, match_bytes(flow.match)), (instr, flow.cookie)


def canon_stats(stat: Any, ofp: Any) -> tuple[Key, Body]:
    """A flow-stats entry as the switch reported it, re-encoded to the same form."""
    actions, metadata, goto, meter = b"", None, None, None
    for ins in stat.instructions:
        kind = type(ins).__name__
        if kind == "OFPInstructionActions" and ins.type == ofp.OFPIT_APPLY_ACTIONS:
            for a in ins.actions:
                akind = type(a).__name__
                if akind == "OFPActionOutput":
                    actions += _output(a.port)
                elif akind == "OFPActionPushVlan":
                    actions += _push_vlan(a.ethertype)
                elif akind == "OFPActionPopVlan":
                    actions += POP_VLAN
                elif akind == "OFPActionSetField" and a.key == "vlan_vid":
                    actions += _set_vlan_vid(_int(a.value))
                elif akind == "OFPActionSetField" and a.key in NXM1_FIELDS:
                    actions += _set_reg(a.key, _int(a.value))
                elif akind == "NXActionResubmitTable" and a.in_port == OFPP_IN_PORT_16:
                    actions += _resubmit(a.table_id)
                elif akind == "NXActionCT" and not a.zone_src and not a.alg \
                        and not a.actions and not a.flags & ~NX_CT_F_COMMIT:
                    actions += _ct(a.zone_ofs_nbits, bool(a.flags & NX_CT_F_COMMIT),
                                   None if a.recirc_table == NX_CT_RECIRC_NONE
                                   else a.recirc_table)
                else:  # nothing netctl writes: make sure it never compares equal
                    actions += f"<{akind}>".encode()
        elif kind == "OFPInstructionWriteMetadata":
            metadata = (ins.metadata, ins.metadata_mask)
        elif kind == "OFPInstructionGotoTable":
            goto = ins.table_id
        elif kind == "OFPInstructionMeter":
            meter = ins.meter_id
        else:
            actions += f"<{kind}>".encode()
    try:
        match = match_bytes(list(stat.match.items()))
    except (KeyError, ValueError) as exc:  # a field netctl never matches: keep it distinct
        match = f"<unknown match field {exc}>".encode()
    return ((stat.table_id, stat.priority, match),
            (instruction_bytes(actions, metadata, goto, meter), stat.cookie))


def flow_mod_bytes(key: Key, body: Body, command: int, xid: int) -> bytes:
    """An add or modify-strict flow-mod, from a flow's canonical form. A modify is
    cookie-masked: it changes netctl's flow, never another owner's that took its match."""
    table, priority, match = key
    instructions, cookie = body
    mask = COOKIE_MASK if command == OFPFC_MODIFY_STRICT else 0
    fixed = struct.pack("!QQBBHHHIIIH2x", cookie, mask, table, command, 0, 0, priority,
                        OFP_NO_BUFFER, 0, 0, 0)
    length = 8 + len(fixed) + len(match) + len(instructions)
    return struct.pack("!BBHI", OFP_VERSION, OFPT_FLOW_MOD, length, xid) + fixed + match + \
        instructions


def delete_bytes(key: Key, xid: int) -> bytes:
    """Delete-strict of one netctl flow (cookie-masked: never another owner's flow)."""
    table, priority, match = key
    fixed = struct.pack("!QQBBHHHIIIH2x", COOKIE, COOKIE_MASK, table, OFPFC_DELETE_STRICT, 0,
                        0, priority, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0)
    length = 8 + len(fixed) + len(match)
    return struct.pack("!BBHI", OFP_VERSION, OFPT_FLOW_MOD, length, xid) + fixed + match


def bundle_add_bytes(bundle_id: int, flags: int, inner: bytes, xid: int) -> bytes:
    """An ONF (OF1.3 extension) bundle-add carrying `inner`, which must have the same xid."""
    length = 24 + len(inner)
    return struct.pack("!BBHIIIIxxH", OFP_VERSION, OFPT_EXPERIMENTER, length, xid,
                       ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_ADD_MESSAGE, bundle_id, flags) + inner


def flow_monitor_request_bytes(tables: Iterable[tuple[int, int]], flags: int,
                               xid: int) -> bytes:
    """An ONF flow monitor request (OFPMP_EXPERIMENTER multipart, ONFMP_FLOW_MONITOR): one
    monitor per (monitor id, table), any output port, every flow of the table. Each is an
    onf_flow_monitor_request followed by a whole ofp_match (header and padding), which is what
    OVS (3.0 and later) reads; os-ken's `ONFFlowMonitorRequest` writes the match without its
    header, as EXT-187's text reads, and OVS 3.1 refuses that (OFPBMC_BAD_LEN)."""
    match = struct.pack("!HH4x", 1, 4)  # OFPMT_OXM, no fields: every flow
    requests = b"".join(struct.pack("!IHHIB3x", monitor_id, flags, 4, OFPP_ANY, table) + match
                        for monitor_id, table in tables)
    body = struct.pack("!HH4xII", OFPMP_EXPERIMENTER, 0, ONF_EXPERIMENTER_ID,
                       ONFMP_FLOW_MONITOR) + requests
    return struct.pack("!BBHI", OFP_VERSION, OFPT_MULTIPART_REQUEST, 8 + len(body), xid) + body


_OXM_NAMES = {number: name for name, (number, _size) in OXM_FIELDS.items()}
_NXM1_NAMES = {number: name for name, (number, _size) in NXM1_FIELDS.items()}


def match_text(match: bytes) -> str:
    """A canonical match as a person reads it ("in_port=5,eth_type=2048,ipv4_src=..."), for
    the log and Problems."""
    if len(match) < 4 or match[:2] != b"\x00\x01":
        return match.decode(errors="replace")  # not an OXM match (see canon_stats)
    end = min(struct.unpack_from("!H", match, 2)[0], len(match))
    out, pos = [], 4
    while pos + 4 <= end:
        header = struct.unpack_from("!I", match, pos)[0]
        size, has_mask, number = header & 0xFF, header >> 8 & 1, header >> 9 & 0x7F
        raw = match[pos + 4:pos + 4 + size]
        pos += 4 + size
        name = _OXM_NAMES.get(number, f"oxm{number}") if header >> 16 == 0x8000 else \
            _NXM1_NAMES.get(number, f"oxm{header >> 16:#x}:{number}") \
            if header >> 16 == 0x0001 else f"oxm{header >> 16:#x}:{number}"
        if has_mask:
            half = len(raw) // 2
            out.append(f"{name}={_value_text(name, raw[:half])}/{_value_text(name, raw[half:])}")
        else:
            out.append(f"{name}={_value_text(name, raw)}")
    return ",".join(out) or "every frame"


def _value_text(name: str, raw: bytes) -> str:
    if len(raw) == 6:
        return ":".join(f"{b:02x}" for b in raw)
    if name in ("ipv4_src", "arp_spa", "ipv4_dst", "arp_tpa") and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    value = int.from_bytes(raw, "big")
    return f"{value:#x}" if name in ("metadata", "vlan_vid", "ct_state") else str(value)


@functools.lru_cache(maxsize=1 << 12)
def _output_body(actions: bytes) -> Body:
    """Shared bodies: the few distinct bodies of remote-VIF flows exist once in memory."""
    return (instruction_bytes(actions, None, None), COOKIE)


_DROP_BODY: Body = (b"", COOKIE)


def remote_canon(kind: str, vlan: int, mac: str, port: int) -> list[tuple[Key, Body]]:
    """The canonical form of `flows.compile.remote_vif_flows` for one VIF on another host,
    built straight from bytes (the engine writes tens of thousands of these; equal to
    `canon_flow` of the compiled flows, as a test checks): into the tunnel to that host
    (private) or to the single-NIC uplink with the VLAN pushed (external). The keys do not
    depend on the switch (`_remote_keys`, cached per VIF), only the output port does."""
    keys = _remote_keys(kind, vlan, mac)
    if kind == "private":
        return [(keys[0], _port_body(port)), (keys[1], _DROP_BODY)]
    return [(keys[0], _uplink_body(vlan, port))]


@functools.lru_cache(maxsize=1 << 18)
def _remote_keys(kind: str, vlan: int, mac: str) -> tuple[Key, ...]:
    """The match side of a remote VIF's flows: the same on every switch of its network, so
    each is encoded once per VIF rather than once per switch (a cold start at 64 hosts x
    1000 VIFs would otherwise encode ~8 million of them). Each is its shape's match bytes
    with the VIF's MAC put in (`_mac_template`): a switch's first connect encodes ~50k."""
    value = bytes.fromhex(mac.replace(":", ""))
    out = []
    for table, priority, (head, tail) in _mac_templates(kind, vlan):
        out.append((table, priority, head + value + tail))
    return tuple(out)


@functools.lru_cache(maxsize=1 << 13)
def _mac_templates(kind: str, vlan: int) -> tuple[tuple[int, int, tuple[bytes, bytes]], ...]:
    """(table, priority, match bytes before and after the eth_dst value) of each of the
    remote-VIF flows of one shape (`flows.compile.remote_vif_flows`)."""
    from flows.pipeline import FORWARD, META_FROM_TUNNEL, META_MASK, META_VLAN_MASK

    if kind == "private":
        shapes = [(FORWARD, 200, (("metadata", (0, META_MASK)),)),
                  (FORWARD, 200, (("metadata", (META_FROM_TUNNEL, META_FROM_TUNNEL)),))]
    else:
        shapes = [(FORWARD, 180, (("metadata", (vlan, META_VLAN_MASK)), ("vlan_vid", 0)))]
    return tuple((table, priority, _mac_template(fields)) for table, priority, fields in shapes)


def _mac_template(fields: tuple) -> tuple[bytes, bytes]:
    """The match bytes of `fields` + eth_dst, split around the MAC's 6 bytes (found as where
    two encodings with different MACs differ, so it follows `match_bytes` whatever it does)."""
    zeros = match_bytes((*fields, ("eth_dst", "00:00:00:00:00:00")))
    ones = match_bytes((*fields, ("eth_dst", "ff:ff:ff:ff:ff:ff")))
    at = [i for i, (a, b) in enumerate(zip(zeros, ones, strict=True)) if a != b]
    assert len(at) == 6 and at[-1] - at[0] == 5, "eth_dst is 6 contiguous bytes"
    return zeros[:at[0]], zeros[at[-1] + 1:]


@functools.lru_cache(maxsize=1 << 12)
def _port_body(port: int) -> Body:
    return _output_body(_output(port))


@functools.lru_cache(maxsize=1 << 12)
def _uplink_body(vlan: int, port: int) -> Body:
    actions = (_push_vlan(ETH_8021Q) + _set_vlan_vid(0x1000 | vlan) if vlan else b"") + \
        _output(port)
    return _output_body(actions)
