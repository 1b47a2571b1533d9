"""Switches that answer the statistics poller as OVS would, without sockets (for bench.scale).

Each `ReplyingDatapath` stands for one bridge of `RecordingSwitches`: it has the bridge's ports
and answers the poller's two requests with the bytes OVS sends — port statistics of every port
(112 bytes each, split into replies of at most 64 KiB as OVS does) and the flow statistics of
VIF locking's drop flows (taken from the engine's own desired table of that switch). `answer`
hands each reply to os-ken's own message parser with netctl's statistics wrapper installed
(`netctl.sources.osken_app.install_stats_parser`, which gives the poller the bytes), so a round
costs what it costs in `netctl run`: asking, os-ken reading each reply's header, the poller
reading the entries into its table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_parser as osken_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netctl.sources.stats_poller import StatsPoller
from netctl.stats.drops import DROP_COOKIE, DROP_MASK, DROP_TABLE

MAX_BODY = 65535 - 16  # an OpenFlow message's length field, less the multipart header
PORT_STATS = struct.Struct("!I4x12QII")  # ofp_port_stats, 112 bytes
FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQ")  # ofp_flow_stats up to the match, 48 bytes


@dataclass
class _Port:
    port_no: int
    name: bytes


@dataclass
class ReplyingDatapath:
    id: int
    ports: dict[int, _Port]
    port_body: list[bytes]  # entries, pre-encoded
    drop_body: list[bytes]
    outbox: list = field(default_factory=list)
    _made: dict = field(default_factory=dict)  # kind -> the replies' bytes (xid 0)
    ofproto: Any = ofp
    ofproto_parser: Any = parser

    def send_msg(self, msg: Any) -> None:
        self.outbox.append(msg)


def datapaths(switches: Any, tables: Any, dropping_every: int = 1) -> list[ReplyingDatapath]:
    """One replying datapath per recorded switch, with its ports and its desired drop flows:
    every `dropping_every`-th of them has counted a few packets, the others none (1: every
    drop flow has dropped something, the worst case for the reader)."""
    out = []
    for dpid, names in switches.names.items():
        ports = {no: _Port(no, name.encode()) for name, no in names.items()}
        port_body = [PORT_STATS.pack(no, *(1000 * no + i for i in range(12)), 3600, 0)
                     for no in ports]
        drop_body = []
        n = 0
        for (table, priority, match), (_instructions, cookie) in tables.entries(dpid):
            if table != DROP_TABLE or cookie & DROP_MASK != DROP_COOKIE:
                continue
            length = FLOW_STATS.size + len(match)
            packets = 7 if n % dropping_every == 0 else 0
            n += 1
            drop_body.append(FLOW_STATS.pack(length, table, 3600, 0, priority, 0, 0, 0, cookie,
                                             packets, 100 * packets) + match)
        out.append(ReplyingDatapath(dpid, ports, port_body, drop_body))
    return out


def _replies(kind: int, entries: list[bytes], xid: int) -> list[bytes]:
    """Multipart replies holding `entries`, split as OVS splits them (REPLY_MORE on all but
    the last)."""
    chunks: list[list[bytes]] = [[]]
    size = 0
    for entry in entries:
        if size + len(entry) > MAX_BODY:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += len(entry)
    out = []
    for i, chunk in enumerate(chunks):
        body = b"".join(chunk)
        flags = ofp.OFPMPF_REPLY_MORE if i < len(chunks) - 1 else 0
        out.append(struct.pack("!BBHIHH4x", ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY,
                               16 + len(body), xid, kind, flags) + body)
    return out


def attach(poller: StatsPoller) -> None:
    """Route replies to `poller` as `netctl run` does (the os-ken app's feed and wrapper)."""
    from netctl.sources import osken_app
    from netctl.sources.switches import SwitchFeed

    feed = SwitchFeed()
    feed.stats = poller
    osken_app.FEED = feed
    osken_app.install_stats_parser()


def answer(dp: ReplyingDatapath, poller: StatsPoller) -> int:
    """Answer what the poller asked of this switch, through the same parser os-ken uses in
    `netctl run` (os-ken's registry, with netctl's statistics wrapper installed); returns the
    replies sent."""
    sent = 0
    asked, dp.outbox = dp.outbox, []
    for msg in asked:
        if isinstance(msg, parser.OFPPortStatsRequest):
            kind, entries = ofp.OFPMP_PORT_STATS, dp.port_body
        else:
            kind, entries = ofp.OFPMP_FLOW, dp.drop_body
        made = dp._made.get(kind)
        if made is None:  # the switch's side: encoded once, the xid set on each answer
            made = dp._made[kind] = _replies(kind, entries, 0)
        for template in made:
            raw = bytearray(template)
            struct.pack_into("!I", raw, 4, msg.xid)
            version, msg_type, length, xid = struct.unpack_from("!BBHI", raw)
            osken_parser.msg(dp, version, msg_type, length, xid, raw)
            sent += 1
    return sent
