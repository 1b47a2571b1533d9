"""The os-ken application: a thin adapter from OpenFlow messages to `SwitchFeed` events.

It decides nothing and keeps no state: every handler turns one os-ken event into one feed
event (`netctl.sources.switches`), which the reconcile loop takes on its own thread. Every
handler is wrapped so an exception is logged and counted, never escaping: with os-ken's native
hub one escaping exception silently ends the whole app's event loop.
"""

from __future__ import annotations

import functools
import logging
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
from os_ken.ofproto import ofproto_v1_3

from netctl.sources.switches import (
    Aggregate,
    Barrier,
    Error,
    FlowStats,
    PacketIn,
    Port,
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
                "OFPET_TABLE_MOD_FAILED": "OFPTMFC_"}
    prefix = prefixes.get(kind)
    what = next((n for n in dir(ofp) if prefix and n.startswith(prefix)
                 and getattr(ofp, n) == code), f"code {code}")
    return f"{kind}/{what} ({type_}/{code})"


def port_of(desc: Any) -> Port:
    name = desc.name.decode() if isinstance(desc.name, bytes) else str(desc.name)
    return Port(desc.port_no, name, desc.hw_addr, desc.config)


class NetctlApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if FEED is None:
            raise RuntimeError(f"{APP}.FEED must be set before os-ken starts the app")
        self.feed = FEED

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.feed.connected(dp, [port_of(p) for p in dict(dp.ports).values()])
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            self.feed.gone(dp)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def flow_stats(self, ev: Any) -> None:
        msg = ev.msg
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        self.feed.put(FlowStats(msg.datapath, msg.body, more))

    @set_ev_cls(ofp_event.EventOFPAggregateStatsReply, MAIN_DISPATCHER)
    @guarded
    def aggregate(self, ev: Any) -> None:
        self.feed.put(Aggregate(ev.msg.datapath, ev.msg.body.flow_count))

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
