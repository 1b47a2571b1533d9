"""What the bridges say over OpenFlow, as the reconcile loop takes it: a source, like xapi.

os-ken's handlers (`netctl.sources.osken_app`) run on os-ken's threads; they only call
`SwitchFeed`'s methods, which enqueue and wake the loop, so a port event or a packet-in never
waits behind a recompute. The reconcile loop drains the feed on its own thread (`drain`), and
only there is a session's state read: which datapath object is a switch's current session (a
reconnected switch's old session may still deliver a late event, which is dropped), and which
port names it has (a port whose state or config changed — link, LACP, netctl's own port-mod —
is `PortState`, not a topology change, so the engine hears only of ports that came or went).

Three kinds of events come out, and the loop routes them:
- topology — `Connected`, `PortChanged` (came, went or renumbered), `Gone` — for the engine's
  switch input and for the OpenFlow sink's sessions;
- feedback on what the sink sent or asked — `FlowStats`, `Aggregate`, `Barrier`, `Error`,
  `PacketIn`, `PortState`, `RoleReply` — for the sink alone;
- what other OpenFlow clients did to a switch's flows — `FlowChanged`, from the flow monitor
  the sink subscribes to (ONF extension 187) — for the sink alone. The switch reports the
  changes made over netctl's own connection only as an abbreviation (an xid), which the app
  counts (`own_changes`) and does not pass on.

Traffic statistics are not events: the app hands their replies straight to `stats` (a
`netctl.sources.stats_poller.StatsPoller`, when `netctl run` reads statistics), by xid, so a
poll round never enters the loop's rounds nor waits behind one.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Port:
    number: int
    name: str
    hw_addr: str | None = None
    config: int = 0  # OpenFlow port config bits (NO_RECV, NO_FWD, ...)


@dataclass(frozen=True)
class Connected:
    """A switch's session came up (os-ken's MAIN_DISPATCHER), with every port it has."""

    dp: Any
    ports: tuple[Port, ...]


@dataclass(frozen=True)
class PortChanged:
    """A port came (or was renumbered) or went (`deleted`)."""

    dp: Any
    port: Port
    deleted: bool


@dataclass(frozen=True)
class PortState:
    """A known port's state or config changed (link, LACP, a port-mod): nothing structural."""

    dp: Any
    port: Port


@dataclass(frozen=True)
class Gone:
    dp: Any


@dataclass(frozen=True)
class FlowStats:
    dp: Any
    body: list
    more: bool  # more replies follow (OFPMPF_REPLY_MORE)


@dataclass(frozen=True)
class MeterConfig:
    """A meter-config reply (part): the meters a switch holds, for the sink's diff."""

    dp: Any
    body: list
    more: bool


@dataclass(frozen=True)
class Aggregate:
    dp: Any
    flow_count: int


@dataclass(frozen=True)
class Barrier:
    dp: Any
    xid: int


@dataclass(frozen=True)
class Error:
    dp: Any
    text: str
    xid: int | None


@dataclass(frozen=True)
class RoleReply:
    """The switch took the OpenFlow role a controller instance asked (several instances)."""

    dp: Any
    role: int
    generation: int
    xid: int


@dataclass(frozen=True)
class PacketIn:
    dp: Any
    in_port: int
    data: bytes


@dataclass(frozen=True)
class FlowUpdate:
    """One flow as another OpenFlow client left it, as the switch's flow monitor reports it:
    the same fields as a flow-stats entry (os-ken's match and instructions)."""

    event: str  # "added" | "modified" | "deleted"
    table_id: int
    priority: int
    cookie: int
    match: Any
    instructions: tuple  # as the flow holds them (a "deleted" one's too); empty: it drops
    reason: int = 0  # "deleted": why (OFPRR_DELETE for a client's delete; timeouts, eviction)


@dataclass(frozen=True)
class FlowChanged:
    """Flows other OpenFlow clients added, changed or deleted (`updates`), or, with the xid of
    the sink's subscription and perhaps no updates, the switch's answer to it."""

    dp: Any
    updates: tuple[FlowUpdate, ...]
    xid: int = 0  # 0: an update the switch sent of its own accord


@dataclass(frozen=True)
class NoFlood:
    """The ports a switch reports NO_FLOOD, all of them, from its OpenFlow 1.0 session
    (`netctl.sinks.portconfig`): for the engine, whichever OpenFlow 1.3 session is current."""

    dpid: int
    ports: frozenset[int]


TOPOLOGY = (Connected, PortChanged, Gone)
Event = (Connected | PortChanged | PortState | Gone | FlowStats | MeterConfig | Aggregate
         | Barrier | Error | PacketIn | FlowChanged | RoleReply | NoFlood)


@dataclass
class _Session:
    dp: Any
    names: dict[str, int] = field(default_factory=dict)  # port name -> number


class SwitchFeed:
    """The switches' events, queued by os-ken's threads and drained by the reconcile loop."""

    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = wake
        self._sessions: dict[int, _Session] = {}  # dpid -> current session (loop thread)
        self.handler_errors = 0  # os-ken handlers that raised (counted by the app)
        # changes made over netctl's own connections, which the flow monitors report only as
        # an abbreviation (counted by the app, never queued)
        self.own_changes = 0
        self.stats: Any = None  # the statistics poller (replies by xid, sessions), if any

    # ------------------------------------------------------------------ os-ken's threads
    def put(self, event: Event) -> None:
        self._queue.put(event)
        self._wake()

    def connected(self, dp: Any, ports: list[Port]) -> None:
        self.put(Connected(dp, tuple(ports)))

    def port(self, dp: Any, port: Port, deleted: bool) -> None:
        self.put(PortChanged(dp, port, deleted))

    def gone(self, dp: Any) -> None:
        self.put(Gone(dp))

    def no_flood(self, dpid: int, ports: frozenset[int]) -> None:
        """(the port-config sessions' threads)"""
        self.put(NoFlood(dpid, ports))

    # ------------------------------------------------------------------ the loop's thread
    def drain(self, limit: int) -> list[Event]:
        """Up to `limit` events, in order, with stale sessions' events dropped and port
        events sorted into structural (`PortChanged`) and state-only (`PortState`)."""
        out: list[Event] = []
        while len(out) < limit:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            event = self._sorted(event)
            if event is not None:
                out.append(event)
        return out

    def _sorted(self, event: Event) -> Event | None:
        if isinstance(event, NoFlood):
            return event  # the switch's, not a session's
        dpid = event.dp.id
        session = self._sessions.get(dpid)
        if isinstance(event, Connected):
            self._sessions[dpid] = _Session(event.dp, {p.name: p.number for p in event.ports})
            return event
        if session is None or session.dp is not event.dp:
            # an event of a session that is no longer (or not yet) the switch's: dropped, but
            # for an error, which is still worth a line in the log
            return event if isinstance(event, Error) else None
        if isinstance(event, Gone):
            del self._sessions[dpid]
            return event
        if isinstance(event, PortChanged):
            name, number = event.port.name, event.port.number
            known = session.names.get(name) == number
            if event.deleted:
                session.names.pop(name, None)
            else:
                session.names[name] = number
                if known:
                    return PortState(event.dp, event.port)
        return event
