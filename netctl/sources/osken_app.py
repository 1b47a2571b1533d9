"""The os-ken application: a thin adapter from OpenFlow messages to `SwitchFeed` events.

It decides nothing and keeps no state: every handler turns one os-ken event into one feed
event (`netctl.sources.switches`), which the reconcile loop takes on its own thread. Every
handler is wrapped so an exception is logged and counted, never escaping: with os-ken's native
hub one escaping exception silently ends the whole app's event loop.

os-ken 4.x writes an ONF flow monitor request (`ONFFlowMonitorRequest`) but parses neither the
replies nor the updates: both arrive as an experimenter multipart reply whose body is raw bytes
(`OFPExperimenterStatsReply`), which `flow_updates` reads here with os-ken's own match and
instruction parsers (the updates' layout is OVS's: a Nicira flow update header, a whole
ofp_match, OpenFlow 1.3 instructions).
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Callable
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_common, ofproto_v1_3, ofproto_v1_3_parser

from netctl.sources.switches import (
    Aggregate,
    Barrier,
    Error,
    FlowChanged,
    FlowStats,
    FlowUpdate,
    MeterConfig,
    PacketIn,
    Port,
    RoleReply,
    SwitchFeed,
)

LOG = logging.getLogger("netctl.openflow")
APP = "netctl.sources.osken_app"  # what os-ken's app manager is told to run

# Set before os-ken instantiates the app (os-ken builds apps itself, without arguments).
FEED: SwitchFeed | None = None


def guarded(handler: Callable) -> Callable:
    @functools.wraps(handler)
    def run(self: NetctlApp, ev: Any) -> None:
        try:
            handler(self, ev)
        except Exception:  # noqa: BLE001 - the app must outlive any one bad event
            self.feed.handler_errors += 1
            LOG.exception("handler %s failed", handler.__name__)

    return run


def error_text(ofp: Any, type_: int, code: int) -> str:
    """An OpenFlow error as its names (OFPET_FLOW_MOD_FAILED / OFPFMFC_TABLE_FULL), which is
    what an operator can look up, with the numbers."""
    kind = next((n for n in dir(ofp) if n.startswith("OFPET_") and getattr(ofp, n) == type_),
                f"type {type_}")
    prefixes = {"OFPET_FLOW_MOD_FAILED": "OFPFMFC_", "OFPET_BAD_REQUEST": "OFPBRC_",
                "OFPET_BAD_ACTION": "OFPBAC_", "OFPET_BAD_MATCH": "OFPBMC_",
                "OFPET_BAD_INSTRUCTION": "OFPBIC_", "OFPET_PORT_MOD_FAILED": "OFPPMFC_",
                "OFPET_TABLE_MOD_FAILED": "OFPTMFC_", "OFPET_ROLE_REQUEST_FAILED": "OFPRRFC_"}
    prefix = prefixes.get(kind)
    what = next((n for n in dir(ofp) if prefix and n.startswith(prefix)
                 and getattr(ofp, n) == code), f"code {code}")
    return f"{kind}/{what} ({type_}/{code})"


def port_of(desc: Any) -> Port:
    name = desc.name.decode() if isinstance(desc.name, bytes) else str(desc.name)
    return Port(desc.port_no, name, desc.hw_addr, desc.config)


# onf_flow_update_header.event (as OVS writes them: Nicira's NXFME_*)
UPDATE_EVENTS = {ofproto_v1_3.ONFFME_ADDED: "added", ofproto_v1_3.ONFFME_DELETED: "deleted",
                 ofproto_v1_3.ONFFME_MODIFIED: "modified"}
UPDATE_FULL = struct.Struct("!HHHHHHHBxQ")  # length, event, reason, priority, idle, hard,
# match_len, table_id, cookie: 24 bytes, then a whole ofp_match, then the instructions


def flow_updates(data: bytes, parser: Any) -> tuple[list[FlowUpdate], int]:
    """The flow updates in one ONFMP_FLOW_MONITOR reply body, and how many abbreviated ones
    (changes made over this very connection, reported only by their xid) it held."""
    out: list[FlowUpdate] = []
    own = 0
    pos = 0
    while pos + 4 <= len(data):
        length, event = struct.unpack_from("!HH", data, pos)
        if length < 8 or pos + length > len(data):
            raise ValueError(f"flow update of length {length} at {pos} in {len(data)} bytes")
        if event == ofproto_v1_3.ONFFME_ABBREV:
            own += 1
        elif event in UPDATE_EVENTS:
            (_length, _event, reason, priority, _idle, _hard, _match_len, table_id,
             cookie) = UPDATE_FULL.unpack_from(data, pos)
            match = parser.OFPMatch.parser(data, pos + UPDATE_FULL.size)
            at = pos + UPDATE_FULL.size + (match.length + 7) // 8 * 8
            instructions = []
            while at < pos + length:
                ins = parser.OFPInstruction.parser(data, at)
                instructions.append(ins)
                at += ins.len
            out.append(FlowUpdate(UPDATE_EVENTS[event], table_id, priority, cookie, match,
                                  tuple(instructions), reason))
        pos += length
    return out, own


_MULTIPART = struct.Struct("!HH")  # ofp_multipart_reply: type, flags (after the header)


def install_stats_parser() -> None:
    """Put the statistics poller's replies to it before os-ken parses their entries.

    os-ken parses every message it reads, each entry of a multipart reply into objects (a
    flow-stats entry's match field by field, ~17 µs); at 64 x 1000 one statistics round would
    cost 11 s of CPU. So the OpenFlow 1.3 multipart-reply parser is wrapped: a reply whose xid
    the poller owns is handed to it as bytes (`StatsPoller.reply`, read by
    `netctl.stats.wire`), and os-ken gets it with an empty body, marked `netctl_stats`, which
    the handlers below then ignore. Every other reply (the sink's dumps) is parsed as before.
    Idempotent."""
    parsers = ofproto_v1_3_parser._MSG_PARSERS  # noqa: SLF001 - os-ken's parser registry
    original = parsers[ofproto_v1_3.OFPT_MULTIPART_REPLY]
    if getattr(original, "netctl_stats", False):
        return

    def parse(datapath: Any, version: int, msg_type: int, msg_len: int, xid: int,
              buf: bytes) -> Any:
        stats = FEED.stats if FEED is not None else None
        if stats is None or not stats.owns(xid):
            return original(datapath, version, msg_type, msg_len, xid, buf)
        header = ofproto_v1_3.OFP_MULTIPART_REPLY_SIZE
        kind, flags = _MULTIPART.unpack_from(buf, ofproto_v1_3.OFP_HEADER_SIZE)
        try:
            stats.reply(datapath, xid, kind, bool(flags & ofproto_v1_3.OFPMPF_REPLY_MORE),
                        bytes(buf[header:msg_len]))
        except Exception:  # noqa: BLE001 - a bad reply must not end the session's reader
            LOG.exception("statistics reply of %s not read", datapath.id)
        msg = original(datapath, version, msg_type, header, xid, bytes(buf[:header]))
        msg.netctl_stats = True
        return msg

    parse.netctl_stats = True  # type: ignore[attr-defined]
    parsers[ofproto_v1_3.OFPT_MULTIPART_REPLY] = parse


class NetctlApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if FEED is None:
            raise RuntimeError(f"{APP}.FEED must be set before os-ken starts the app")
        self.feed = FEED
        install_stats_parser()

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def state_change(self, ev: Any) -> None:
        dp = ev.datapath
        stats = self.feed.stats
        if ev.state == MAIN_DISPATCHER:
            self.feed.connected(dp, [port_of(p) for p in dict(dp.ports).values()])
            if stats is not None:
                stats.connected(dp)
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            self.feed.gone(dp)
            if stats is not None:
                stats.gone(dp)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def flow_stats(self, ev: Any) -> None:
        msg = ev.msg
        if getattr(msg, "netctl_stats", False):
            return  # the statistics poller's, already read (`install_stats_parser`)
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        self.feed.put(FlowStats(msg.datapath, msg.body, more))

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    @guarded
    def meter_config(self, ev: Any) -> None:
        msg = ev.msg
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        self.feed.put(MeterConfig(msg.datapath, msg.body, more))

    @set_ev_cls(ofp_event.EventOFPAggregateStatsReply, MAIN_DISPATCHER)
    @guarded
    def aggregate(self, ev: Any) -> None:
        self.feed.put(Aggregate(ev.msg.datapath, ev.msg.body.flow_count))

    @set_ev_cls(ofp_event.EventOFPExperimenterStatsReply, MAIN_DISPATCHER)
    @guarded
    def experimenter_stats(self, ev: Any) -> None:
        """The flow monitor: its answer to the subscription (the request's xid) and the
        updates the switch sends of its own accord (xid 0)."""
        msg = ev.msg
        body = msg.body
        if (body.experimenter != ofproto_common.ONF_EXPERIMENTER_ID
                or body.exp_type != ofproto_v1_3.ONFMP_FLOW_MONITOR):
            return
        updates, own = flow_updates(bytes(body.data), msg.datapath.ofproto_parser)
        self.feed.own_changes += own
        if updates or msg.xid:
            self.feed.put(FlowChanged(msg.datapath, tuple(updates), msg.xid))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def port_status(self, ev: Any) -> None:
        msg = ev.msg
        self.feed.port(msg.datapath, port_of(msg.desc),
                       deleted=msg.reason == msg.datapath.ofproto.OFPPR_DELETE)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def packet_in(self, ev: Any) -> None:
        msg = ev.msg
        self.feed.put(PacketIn(msg.datapath, msg.match["in_port"], bytes(msg.data)))

    @set_ev_cls(ofp_event.EventOFPRoleReply, MAIN_DISPATCHER)
    @guarded
    def role_reply(self, ev: Any) -> None:
        msg = ev.msg
        self.feed.put(RoleReply(msg.datapath, msg.role, msg.generation_id, msg.xid))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def barrier(self, ev: Any) -> None:
        self.feed.put(Barrier(ev.msg.datapath, ev.msg.xid))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def error(self, ev: Any) -> None:
        msg = ev.msg
        self.feed.put(Error(msg.datapath, error_text(msg.datapath.ofproto, msg.type, msg.code),
                            msg.xid))
