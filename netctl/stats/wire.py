"""The two statistics replies read straight from their bytes (OpenFlow 1.3 multipart bodies).

os-ken parses every entry of a reply into objects, the match of a flow-stats entry field by
field: ~17 µs per entry. At 64 hosts x 1000 VIFs a round holds ~80,000 port entries and
~250,000 drop-flow entries — 11 s of CPU every 5 s through os-ken. What the poller needs of
an entry sits at fixed offsets (a port's counters; a flow's cookie, packet count and in_port),
so it reads them with `struct`, and os-ken is handed the reply with an empty body
(`netctl.sources.osken_app.install_stats_parser`).
"""

from __future__ import annotations

import struct

from netctl.stats.drops import kind_of
from netctl.stats.table import UNSET, counters_of

OFPMP_FLOW, OFPMP_PORT_STATS = 1, 4
OFPMPF_REPLY_MORE = 1
_PORT = struct.Struct("!I4x8Q")  # ofp_port_stats: port_no, pad, the 8 counters we keep, ...
PORT_ENTRY = 112  # bytes of an ofp_port_stats
_OXM = struct.Struct("!I")
OXM_IN_PORT = 0x8000_0004  # OFPXMC_OPENFLOW_BASIC, OFPXMT_OFB_IN_PORT, no mask, 4 bytes


def port_entries(body: bytes) -> list[tuple[int, tuple[int, ...]]]:
    """(port number, counters in `netctl.stats.table.COUNTERS` order) per ofp_port_stats.
    OpenFlow's order is rx/tx packets, rx/tx bytes, rx/tx dropped, rx/tx errors; a counter
    the switch does not keep (all ones) reads 0."""
    out = []
    for pos in range(0, len(body) - PORT_ENTRY + 1, PORT_ENTRY):
        (number, rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped,
         rx_errors, tx_errors) = _PORT.unpack_from(body, pos)
        counters = (rx_bytes, tx_bytes, rx_packets, tx_packets, rx_dropped, tx_dropped,
                    rx_errors, tx_errors)
        out.append((number, counters_of(counters) if UNSET in counters else counters))
    return out


# One read of what an entry of netctl's drop flows holds where it holds it: length, cookie,
# packet count, the match's type and length, and its first OXM (in_port, as OVS writes it).
_DROP_FAST = struct.Struct("!H22xQQ8xHHII")
_KINDS: dict[int, str | None] = {}  # cookie -> kind (a handful of distinct cookies)


def drop_entries(body: bytes) -> dict[int, dict[str, int]]:
    """Packets per in_port and drop kind (`flows.drops` reads the kind from the cookie) over
    the ofp_flow_stats entries of a reply; entries that dropped nothing yet (most, in a sane
    pool), of no kind or without in_port are left out."""
    counted: dict[tuple[int, int], int] = {}  # (in_port, cookie) -> packets
    pos, end = 0, len(body)
    unpack = _DROP_FAST.unpack_from
    while pos + 60 <= end:
        length, cookie, packets, _type, match_length, header, value = unpack(body, pos)
        if length < 56 or pos + length > end:
            raise ValueError(f"flow stats entry of length {length} at {pos} in {end} bytes")
        if packets:
            in_port = value if header == OXM_IN_PORT else oxm_value(body, pos, match_length)
            if in_port is not None:
                key = (in_port, cookie)
                counted[key] = counted.get(key, 0) + packets
        pos += length
    out: dict[int, dict[str, int]] = {}
    for (in_port, cookie), packets in counted.items():
        kind = _KINDS.get(cookie, "")
        if kind == "":
            kind = _KINDS[cookie] = kind_of(cookie)
        if kind is not None:
            per = out.setdefault(in_port, {})
            per[kind] = per.get(kind, 0) + packets
    return out


def oxm_value(body: bytes, pos: int, match_length: int, wanted: int = OXM_IN_PORT
              ) -> int | None:
    """A 4-byte field (by its OXM header: in_port unless told) wherever it is in the match of
    the ofp_flow_stats entry at `pos` (None: not matched)."""
    at, match_end = pos + 52, pos + 48 + match_length
    while at + 4 <= match_end:
        (header,) = _OXM.unpack_from(body, at)
        if header == wanted:
            return _OXM.unpack_from(body, at + 4)[0]
        at += 4 + (header & 0xFF)
    return None
