"""The OpenFlow sink: keeps every connected bridge's netctl flows equal to the engine's desired
table — never wiping a switch (OVN's `ofctrl` lesson) — and reports what it could not do.

It is a sink, not a source: it hears of switches only from the reconcile loop
(`netctl.service.loop`), which takes them from the switch feed (`netctl.sources.switches`) and
hands the sink each session (`connected`, `port`, `gone`) and each reply (flow stats, barriers,
errors, packet-ins), on the loop's own thread. It reads nothing of the engine but the
`DesiredTables` below (a switch's whole table when it must diff one, a port's classification,
names for the log and for Problems), and per round it is handed exactly what it sends
(`RoundFlows`: the deltas, the VIF ports whose disabled state changed, the arrivals).

Per switch:
- on connect: dump every flow (netctl's by cookie, and the others: an ADD would silently
  replace another owner's flow with the same match), diff the whole desired table against
  the dump, send the difference in one ONF bundle (atomic), then a barrier;
- afterwards only the engine's deltas are sent (each says add, modify or delete: no copy of the
  installed table is kept);
- a flow-mod the switch refuses (found by its xid) is a Problem, left out until it changes,
  and the table is re-read after a back-off — never an endless resend loop;
- right behind the first dump request, a subscription to the switch's flow monitor (ONF
  extension 187 for OpenFlow 1.3, OVS 3.0 and later): the tables of netctl's pipeline (not
  OVS's internal table 254, whose bond rules change at every rebalancing), adds, deletes and
  modifications with their actions, not netctl's own changes (OVS reports those to the
  connection that made them only as an abbreviation, so a repair is never reported back).
  OVS answers a connection's requests in order, so every change after the dump's snapshot is
  reported, at no polling cost. A change another client made to one of netctl's flows (its
  cookie, or a key of the desired table) that leaves it different from the desired flow —
  actions modified, deleted, or added with netctl's cookie where netctl wants nothing — is
  put right (modify-strict, add or delete-strict, in a bundle as always): at once, but for a
  deletion, compared `DELETE_SETTLE` seconds later, as it then stands (a script that deletes
  and adds again is answered once, when it is done; a deletion is also what the audit sees
  anyway, a modification it cannot see). Each is counted
  (`changes_repaired`, also in `repairs`), logged with the flow's note and reported as a
  Problem that expires `CHANGE_NOTICE` seconds (5 minutes) after the last change. A flow
  another client keeps changing back is restored at most every `FIGHT_HOLD` seconds. Another
  owner's flow is never touched: on a match netctl wants it is reported as holding that match
  (as a dump would find it), and when it goes netctl's flow goes in. Deletions the switch
  made itself (timeouts, evictions) are left to the audit. A switch that refuses the
  subscription (an OpenFlow error) is logged once and not asked again in that session;
- an audit every `audit_interval`, the safety net (and the only check on a switch without the
  flow monitor): the switch's count of netctl flows (one aggregate-stats reply) against the
  count sent; a difference (a flow deleted or replaced by hand) re-reads the table and
  repairs it, counted;
- VIF ports of `disabled` VIFs are set NO_RECV|NO_FWD|NO_PACKET_IN (port-mod);
- frames from a port without rules yet (a VIF plugged a moment ago) are held and replayed
  once its rules are sent, instead of being lost to the guest's ARP retry;
- a VIF port that appears on an external bridge is announced upstream: one RARP from the
  VIF's MAC through NORMAL, as QEMU announces a migrated guest, so the physical switches move
  the MAC to this host's uplink at once instead of at the guest's first frame (a guest that
  says nothing after a migration, or says it late, is reachable anyway).
Flows without netctl's cookie are never touched.

With several instances (`netctl run --coordination`, `netctl.service.coordination`) every
instance keeps a session to every bridge, and `roles` says which hosts this one masters now:
on a switch of a host it masters the sink asks the OpenFlow role MASTER with the mastership's
generation id (which only grows), then dumps and diffs as on a connect (with unchanged intent:
nothing sent); on any other switch it asks SLAVE (with the current master's generation) and
sends nothing at all — no flow-mods, port-mods, packet-outs or audits. The switch itself fences
a stale master: it demotes the previous master when a newer one asks, refuses a MASTER request
with an older generation (OFPRRFC_STALE) and every write from a slave (OFPBRC_IS_SLAVE); the
sink takes either as "not master here" and stops writing to that switch. Before each write it
also asks `roles` again, whose answer turns False when the instance could have lost its lease
(`mastership.WriterDeadline`), even before it heard so.
"""


from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from os_ken.lib.packet import arp, ether_types, ethernet, packet

from flows import wire
from flows.pipeline import COOKIE, COOKIE_MASK, MAX_METER, PIPELINE
from flows.wire import ONFFMF_ACTIONS, ONFFMF_ADD, ONFFMF_DELETE, ONFFMF_MODIFY, Body, Key
from netctl.model import Problem
from netctl.sinks.portconfig import PortConfigServer

LOG = logging.getLogger("netctl.openflow")
FEW_SHOWN = 4  # a bundle of at most this many flow-mods is logged flow by flow
HELD_PER_PORT = 32
SEND_CHUNK = 256 * 1024
HOLD_SECONDS = 2.0
# OpenFlow 1.3 port config bits netctl manages on VIF ports: a `disabled` VIF takes no traffic
# in either direction (NO_FWD also keeps NORMAL's flooding away, verified on OVS 3.1).
OFPPC_NO_RECV, OFPPC_NO_FWD, OFPPC_NO_PACKET_IN = 1 << 2, 1 << 5, 1 << 6
DISABLED_PORT = OFPPC_NO_RECV | OFPPC_NO_FWD | OFPPC_NO_PACKET_IN
READ_REFUSED = "OFPBRC_BAD_MULTIPART"  # the error a switch sends for a multipart type it lacks
RETRY_FIRST, RETRY_MAX = 0.5, 60.0  # back-off after a switch refused a bundle (seconds)
REFUSED_RETRY = 600.0  # a flow the switch refused is offered again after this long
AUDIT_INTERVAL = 60.0  # default period of the flow-count audit that repairs drift
ETH_RARP = 0x8035
# The flow monitor: per session, one monitor (its id, its table) per table of netctl's
# pipeline — not every table: OVS's own balance-tcp bond rules in its internal table 254 are
# re-added at every rebalancing and reported to a monitor of all tables (some 1800 updates in
# the demo pool's first seconds) —; every change but the session's own (no ONFFMF_OWN: OVS
# then reports netctl's own changes only as an abbreviated update) and no initial copy of the
# tables (no ONFFMF_INITIAL: the sink reads them with a flow-stats request anyway).
MONITORS = tuple((number + 1, table) for number, table in enumerate(sorted(PIPELINE)))
MONITOR_FLAGS = ONFFMF_ADD | ONFFMF_DELETE | ONFFMF_MODIFY | ONFFMF_ACTIONS
OFPRR_DELETE = 2  # a deletion a client asked for (not a timeout, not an eviction)
DELETE_SETTLE = 1.0  # a flow another client deleted is compared (and restored) this much later
CHANGE_NOTICE = 300.0  # a flow another client changed is a Problem this long after the last
FIGHT_WINDOW, FIGHT_LIMIT, FIGHT_HOLD = 10.0, 3, 10.0  # restored 3 times in 10 s: hold 10 s
RARP_REQUEST_REVERSE = 3  # RFC 903


# ---------------------------------------------------------------------------- what it reads
class DesiredTables(Protocol):
    """What the sink reads of the engine's desired tables (`netctl.engine.flows.FlowTables`),
    on the reconcile thread, and nothing else."""

    def desired(self, dpid: int) -> Iterator[tuple[Key, Body]] | None:
        """A switch's whole desired table; None: not one of the pool's (never written)."""

    def port_modes(self, dpid: int) -> Mapping[int, bool]:
        """Every VIF port of the switch -> whether its VIF is disabled."""

    def meters(self, dpid: int) -> Mapping[int, tuple[int, int]]:
        """Every meter the switch's desired table uses: id -> (rate kbit/s, burst kbit)."""

    def flood_wants(self, dpid: int, ports: Iterable[int] | None = None) -> Mapping[int, bool]:
        """VIF ports of the switch (these, or None: every one) -> whether each should be set
        NO_FLOOD (external bridges, VIFs with traffic rules; `netctl.sinks.portconfig`)."""

    def classifies(self, dpid: int, port: int) -> bool:
        """Whether the table has rules for frames from this port."""

    def identity(self, dpid: int) -> tuple[str, str] | None:
        """(host ref, bridge) of one of the pool's switches."""

    def describe(self, dpid: int) -> str:
        """The switch as a person names it, for the log."""

    def note(self, dpid: int, key: Key) -> str:
        """What a desired flow is for, for a Problem."""


class TableDelta(Protocol):
    ops: Mapping[Key, tuple[Body | None, bool]]  # key -> (new body or None, existed before)
    full: bool  # built whole: diff it against the switch


class RoundFlows(Protocol):
    """What a round hands the sink (`netctl.engine.flows.FlowOutput`): what it sends."""

    deltas: Mapping[int, TableDelta]
    port_modes: Mapping[int, Mapping[int, bool]]
    arrivals: Mapping[int, list[tuple[int, str]]]
    meters: Collection[int]  # switches whose meters changed


class MonitoredFlow(Protocol):
    """A flow as another OpenFlow client left it (`netctl.sources.switches.FlowUpdate`): the
    fields of a flow-stats entry, and what happened to it."""

    event: str  # "added" | "modified" | "deleted"
    table_id: int
    priority: int
    cookie: int
    match: Any
    instructions: Any
    reason: int


class PortDesc(Protocol):
    number: int
    hw_addr: str | None
    config: int


class Roles(Protocol):
    """Which hosts this instance masters (`netctl.service.run`'s adapter over the
    coordinator); absent when it runs alone and masters every switch."""

    def role(self, host_ref: str) -> tuple[bool, int]:
        """(whether this instance masters the host and may write to it now, the generation
        to send: its own as master, else the current master's as far as known, 0: none)."""


# ---------------------------------------------------------------------------- its state
@dataclass
class Stats:
    """Counters a person (and the metrics endpoint) can read."""

    flow_mods: int = 0  # adds + modifies + deletes sent
    bundles: int = 0
    full_diffs: int = 0  # whole tables diffed against a dump (connects, audits, retries)
    errors: int = 0  # OpenFlow errors the switches sent
    connects: int = 0
    replayed: int = 0  # frames held from a just-plugged port and replayed once it had rules
    announced: int = 0  # RARPs sent upstream for VIF ports that appeared on external bridges
    port_mods: int = 0  # VIF ports set (or cleared) NO_FWD/NO_RECV for `disabled`
    refused: int = 0  # flow-mods the switch refused (each reported as a Problem)
    retries: int = 0  # re-reads after a refused bundle (backed off)
    audits: int = 0  # flow-count audits
    repairs: int = 0  # flows found missing, changed or extra (audit or monitor), put right
    # of those, the ones a switch's flow monitor reported another client changing, put right
    # at once
    changes_repaired: int = 0
    monitors: int = 0  # flow monitor subscriptions the switches accepted (one per session)
    monitor_updates: int = 0  # flow changes by other OpenFlow clients the monitors reported
    monitors_refused: int = 0  # switches that refused the flow monitor (the audit checks them)
    foreign_blocked: int = 0  # desired flows not sent: another owner's flow holds the match
    role_requests: int = 0  # OpenFlow role requests sent (several instances only)
    masters: int = 0  # MASTER role requests the switches acknowledged
    fenced: int = 0  # writes or MASTER requests a switch refused: another instance is master
    meter_mods: int = 0  # meters added, changed or deleted (`flows.qos`: VIF rate limits)


@dataclass
class Refusal:
    text: str
    body: Any
    at: float
    note: str  # what the flow is for (the Problem's words)
    label: str  # the switch as a person names it ("host1 xenbr0")
    installed: bool = False  # whether the switch still holds an older version of the flow


@dataclass
class Change:
    """A flow as another client last left it (the flow monitor's report), not yet compared."""

    body: Body | None  # None: deleted
    cookie: int
    due: float  # when to compare it (monotonic): at once, or after DELETE_SETTLE


@dataclass
class ChangeNotice:
    """A netctl flow another client changed and netctl restored (a Problem for a while)."""

    note: str  # what the flow is for ("": none netctl wants)
    match: str  # its match, as a person reads it
    label: str  # the switch as a person names it ("host1 xenbr0")
    what: str  # what the other client did ("deleted", "changed (its actions)", ...)
    last: float  # when it was last restored (wall clock)
    done: str = "restored"  # what netctl did: restored, or removed (a flow it does not want)
    times: int = 0
    recent: list[float] = field(default_factory=list)  # monotonic times of recent restores
    held_until: float = 0.0  # restored too often: not again before this (monotonic)

    @property
    def flow(self) -> str:
        return f"flow '{self.note}' ({self.match})" if self.note else f"a flow ({self.match})"


@dataclass
class Switch:
    """One OpenFlow session as the sink sees it (the reconcile thread's alone)."""

    dp: Any
    port_hw: dict[int, str] = field(default_factory=dict)
    port_config: dict[int, int] = field(default_factory=dict)  # as the switch reported it
    requested: dict[int, int] = field(default_factory=dict)  # port -> config bits last asked
    dumped: bool = False  # the switch's table has been read and diffed
    dumping: list = field(default_factory=list)
    dump_reason: str = "connect"  # connect | audit | retry | rebuilt
    expected: int = 0  # netctl flows the switch should hold (for the audit)
    # bundles in flight: (first flow-mod's xid, its flow-mods as sent: (command, key, body)),
    # the xids of one bundle consecutive — not a dict entry per flow-mod, which at 128
    # switches' first tables (3.3 M flow-mods in flight at once) was hundreds of MiB
    inflight: list[tuple[int, list]] = field(default_factory=list)

    def in_flight(self, xid: int) -> tuple[int, Any, Any] | None:
        """(command, key, body) of the flow-mod sent with this xid, if one is in flight."""
        for first, msgs in self.inflight:
            at = (xid - first) & 0xFFFFFFFF
            if at < len(msgs):
                return msgs[at]
        return None
    pending_barriers: dict[int, float] = field(default_factory=dict)  # xid -> change seen at
    refused: dict = field(default_factory=dict)  # key -> Refusal
    foreign: dict = field(default_factory=dict)  # key -> cookie (another owner's flows)
    # desired keys held by another owner's flow -> (note, its cookie, the switch's name)
    blocked: dict = field(default_factory=dict)
    failures: int = 0
    retry_at: float | None = None
    audit_at: float = 0.0
    audit_pending: bool = False
    last_error: str = ""
    held: dict[int, list[tuple[float, bytes]]] = field(default_factory=dict)
    converged_at: float = 0.0
    monitor: str = "off"  # the flow monitor subscription: off | asked | on | refused
    monitor_xid: int | None = None
    changes: dict = field(default_factory=dict)  # key -> Change (reported, to compare)
    changed: dict = field(default_factory=dict)  # key -> ChangeNotice (restored)
    role: str = ""  # the role last asked (several instances only): "" | master | slave
    role_generation: int = 0
    role_xid: int | None = None
    role_acked: bool = False  # the switch acknowledged the role last asked
    fenced: bool = False  # the switch refused this instance as master (until the next ask)
    # netctl's meters (ids below MAX_METER) as the switch holds them: id -> (rate, burst);
    # read with each dump (the reply comes before the flows'), then kept as sent
    meters: dict[int, tuple[int, int]] = field(default_factory=dict)
    meters_dumping: list = field(default_factory=list)
    meter_xids: dict[int, int] = field(default_factory=dict)  # xid -> meter id (in flight)
    meters_refused: dict[int, str] = field(default_factory=dict)  # meter id -> the error

    @property
    def id(self) -> int:
        return self.dp.id


class FlowSink:
    """The OpenFlow sink (see the module docstring). Every method runs on the reconcile
    thread but `problems()` and `summary()`, which read copies from any thread."""

    def __init__(self, tables: DesiredTables,
                 on_converged: Callable[[int, float], None] | None = None,
                 audit_interval: float = AUDIT_INTERVAL, flow_monitor: bool = True,
                 roles: Roles | None = None,
                 on_master: Callable[[int, int], None] | None = None) -> None:
        """`roles`: several instances (see the module's docstring); `on_master(dpid,
        generation)`: a switch acknowledged this instance as its master."""
        self.tables = tables
        self.roles = roles
        self.on_master = on_master
        self.switches: dict[int, Switch] = {}
        self.stats = Stats()
        self.audit_interval = audit_interval
        self.flow_monitor = flow_monitor  # subscribe to each switch's flow monitor
        self._monitor_refused: set[int] = set()  # switches whose refusal was logged
        self._reads_refused: set[int] = set()  # switches whose refused read was logged
        self.on_converged = on_converged
        self._bundle_id = 0
        self._since = time.monotonic()
        self._holding: set[int] = set()  # switches holding frames from unclassified ports
        self._changing: set[int] = set()  # switches with flow changes not yet compared
        # the bridges' OpenFlow 1.0 sessions, for NO_FLOOD (`netctl.sinks.portconfig`; None:
        # not started, NORMAL floods to every port)
        self.portconfig: PortConfigServer | None = None

    # ------------------------------------------------------------------ sessions
    def connected(self, dp: Any, ports: Iterable[PortDesc]) -> None:
        """A switch's session came up: read its table (and diff it once read)."""
        sw = Switch(dp)
        for port in ports:
            sw.port_hw[port.number] = port.hw_addr or ""
            sw.port_config[port.number] = port.config
        old = self.switches.get(dp.id)
        if old is not None and old.dp is not dp:
            sw.held = old.held
        self.switches[dp.id] = sw
        self.stats.connects += 1
        if self.roles is None:
            self._request_dump(sw, "connect")
        else:
            self.sync_role(sw)  # MASTER: a dump follows; SLAVE: never written
        if self.flow_monitor:
            self._subscribe(sw)

    def port(self, dp: Any, port: PortDesc, deleted: bool, fresh: bool = False) -> None:
        """A port came (`fresh`), went (`deleted`) or changed state (its reported config)."""
        sw = self._session(dp)
        if sw is None:
            return
        if deleted or fresh:  # a port that went, or came (its number may be reused)
            sw.port_config.pop(port.number, None)
            sw.port_hw.pop(port.number, None)
            sw.requested.pop(port.number, None)
            if deleted:
                return
        sw.port_config[port.number] = port.config
        if port.hw_addr is not None:
            sw.port_hw[port.number] = port.hw_addr

    def gone(self, dp: Any) -> None:
        if self._session(dp) is not None:
            del self.switches[dp.id]
            if self.portconfig is not None:
                self.portconfig.forget(dp.id)
            self._holding.discard(dp.id)
            self._changing.discard(dp.id)

    def _session(self, dp: Any) -> Switch | None:
        sw = self.switches.get(dp.id)
        return sw if sw is not None and sw.dp is dp else None

    # ------------------------------------------------------------------ the switches' replies
    def flow_stats(self, dp: Any, body: list, more: bool) -> None:
        sw = self._session(dp)
        if sw is None:
            return
        sw.dumping.extend(body)
        if more:
            return
        ours, foreign = {}, {}
        for stat in sw.dumping:
            key, canon = wire.canon_stats(stat, dp.ofproto)
            if stat.cookie & COOKIE_MASK == COOKIE:
                ours[key] = canon
            else:
                foreign[key] = stat.cookie
        sw.dumping = []
        sw.foreign = foreign
        sw.changes.clear()  # reported before the dump's snapshot: the dump has them
        self._full_diff(sw, ours)

    def meter_config(self, dp: Any, body: list, more: bool) -> None:
        """(Part of) the meters a switch holds, asked with each dump: netctl's (ids below
        MAX_METER) as (rate, burst) of their one drop band; any other shape is kept as
        something that never equals a band netctl wants, so it is rewritten."""
        sw = self._session(dp)
        if sw is None:
            return
        sw.meters_dumping.extend(body)
        if more:
            return
        held: dict[int, tuple[int, int]] = {}
        for meter in sw.meters_dumping:
            if meter.meter_id >= MAX_METER:
                continue  # not netctl's: never touched
            bands = list(meter.bands)
            kbps_burst = dp.ofproto.OFPMF_KBPS | dp.ofproto.OFPMF_BURST
            if len(bands) == 1 and meter.flags & kbps_burst == kbps_burst \
                    and getattr(bands[0], "type", None) == dp.ofproto.OFPMBT_DROP:
                held[meter.meter_id] = (bands[0].rate, bands[0].burst_size)
            else:
                held[meter.meter_id] = (-1, -1)
        sw.meters, sw.meters_dumping = held, []

    def aggregate(self, dp: Any, count: int) -> None:
        sw = self._session(dp)
        if sw is None or not sw.audit_pending:
            return
        sw.audit_pending = False
        self.stats.audits += 1
        if count != sw.expected or sw.blocked:
            LOG.info("switch %016x (%s): %d netctl flows, %d expected: re-reading its table",
                     dp.id, self.tables.describe(dp.id), count, sw.expected)
            self._request_dump(sw, "audit")

    def packet_in(self, dp: Any, in_port: int, data: bytes) -> None:
        sw = self._session(dp)
        if sw is None:
            return
        held = sw.held.setdefault(in_port, [])
        if len(held) < HELD_PER_PORT:
            held.append((time.monotonic(), data))
        self._holding.add(sw.id)
        self._replay(sw)

    def flow_changed(self, dp: Any, updates: Iterable[MonitoredFlow], xid: int = 0) -> None:
        """The flow monitor: the switch's answer to the subscription (its xid) and the flows
        other clients changed, kept (the last state of each) until the end of the round,
        when they are compared with the desired table (`_repair_changes`; a deletion
        `DELETE_SETTLE` seconds later, at a tick)."""
        sw = self._session(dp)
        if sw is None:
            return
        if xid and xid == sw.monitor_xid and sw.monitor == "asked":
            sw.monitor = "on"
            self.stats.monitors += 1
            LOG.info("switch %016x (%s): flow monitor on", dp.id, self.tables.describe(dp.id))
        ofp = dp.ofproto
        now = time.monotonic()
        for update in updates:
            self.stats.monitor_updates += 1
            if update.event == "deleted" and update.reason != OFPRR_DELETE:
                continue  # the switch's own doing (a timeout, an eviction): the audit's
            try:
                key, body = wire.canon_stats(update, ofp)
            except Exception:  # noqa: BLE001 - one odd flow must not cost the round
                LOG.exception("switch %016x: flow update not understood: %s", dp.id, update)
                continue
            if update.event == "deleted":
                sw.changes[key] = Change(None, update.cookie, now + DELETE_SETTLE)
            else:
                sw.changes[key] = Change(body, update.cookie, now)
            self._changing.add(sw.id)

    def role_reply(self, dp: Any, xid: int) -> None:
        """The switch took the role last asked (several instances)."""
        sw = self._session(dp)
        if sw is None or xid != sw.role_xid or sw.role_acked:
            return
        sw.role_acked = True
        if sw.role == "master":
            self.stats.masters += 1
            LOG.info("switch %016x (%s): this instance is its master (generation %d)", dp.id,
                     self.tables.describe(dp.id), sw.role_generation)
            if self.on_master is not None:
                self.on_master(sw.id, sw.role_generation)

    def barrier(self, dp: Any, xid: int) -> None:
        sw = self._session(dp)
        if sw is None or xid not in sw.pending_barriers:
            return
        since = sw.pending_barriers.pop(xid)
        sw.converged_at = time.monotonic()
        if not sw.pending_barriers:
            sw.inflight.clear()
            sw.meter_xids.clear()
        if sw.retry_at is None:
            sw.failures = 0
        if self.on_converged is not None:
            self.on_converged(sw.id, sw.converged_at - since)

    def error(self, dp: Any, text: str, xid: int | None) -> None:
        """A refused flow-mod (found by its xid) is reported and left out until it changes;
        the table is re-read after a back-off and sent again without it (a bundle is
        atomic: none of it was applied)."""
        self.stats.errors += 1
        sw = self._session(dp)
        if sw is None:
            LOG.error("switch %016x: %s", dp.id or 0, text)
            return
        if xid is not None and xid == sw.monitor_xid:
            # no flow monitor here: said once per switch, never asked again in this session
            sw.monitor = "refused"
            self.stats.monitors_refused += 1
            level = logging.DEBUG if dp.id in self._monitor_refused else logging.WARNING
            self._monitor_refused.add(dp.id)
            LOG.log(level, "switch %016x (%s) refused the flow monitor (%s): changes other "
                    "clients make to its flows are found by the audit (every %d s) only",
                    dp.id, self.tables.describe(dp.id), text, int(self.audit_interval))
            return
        if READ_REFUSED in text:
            # a read the switch does not implement (a statistics or meter request): nothing
            # was written, so nothing is re-read or re-sent (that loop, at 128 switches
            # refusing the statistics poller's requests every few seconds, sent the whole
            # table again and again); said once per switch
            level = logging.DEBUG if dp.id in self._reads_refused else logging.WARNING
            self._reads_refused.add(dp.id)
            LOG.log(level, "switch %016x (%s) does not answer a request (%s); nothing to send "
                    "again", dp.id, self.tables.describe(dp.id), text)
            return
        if self.roles is not None and (xid is not None and xid == sw.role_xid
                                       or "OFPBRC_IS_SLAVE" in text):
            self._refused_role(sw, text)
            return
        sw.last_error = text
        now = time.monotonic()
        meter = sw.meter_xids.pop(xid, None) if xid is not None else None
        if meter is not None:
            band = sw.meters.pop(meter, None)
            sw.meters_refused[meter] = f"{band}: {text}"
            LOG.error("switch %016x (%s) refused meter %d (the rate limit of the VIF on port "
                      "%d): %s", dp.id, self.tables.describe(sw.id), meter, meter, text)
            return  # the flows that use it are refused in turn, and retried with it
        sent = sw.in_flight(xid) if xid is not None else None
        where = self.tables.describe(sw.id)
        if sent is not None:
            command, key, body = sent
            self.stats.refused += 1
            installed = command == sw.dp.ofproto.OFPFC_MODIFY_STRICT
            sw.refused[key] = Refusal(text, body, now, self.tables.note(sw.id, key), where,
                                      installed)
            if not installed and command is not None:
                sw.expected -= 1  # counted when sent; the switch does not hold it
            LOG.error("switch %016x (%s) refused a flow (table %d priority %d): %s", dp.id,
                      where, key[0], key[1], text)
        else:
            LOG.error("switch %016x (%s): %s", dp.id, where, text)
        if sw.retry_at is None:
            delay = min(RETRY_FIRST * (2 ** sw.failures), RETRY_MAX)
            sw.failures += 1
            sw.retry_at = now + delay

    # ------------------------------------------------------------------ after a round
    def flush(self, out: RoundFlows, since: float | None = None) -> None:
        """Send what a round changed: each switch's delta (or re-read a switch whose table
        was built whole), the port-mods of VIF ports whose disabled state changed, the
        announcements of VIF ports that arrived; then replay held frames whose rules came."""
        if since is not None:
            self._since = since
        meters = out.meters
        for dpid in {*out.deltas, *meters}:
            sw = self.switches.get(dpid)
            if sw is None or not sw.dumped or self.tables.identity(dpid) is None:
                continue
            delta = out.deltas.get(dpid)
            if delta is not None and delta.full:
                self._request_dump(sw, "rebuilt")
                continue
            # a flow's meter must exist before the flow: meters added or changed first, those
            # no flow uses any more after the bundle (deleting a meter deletes its flows)
            sent = self.stats.meter_mods
            unused = self._put_meters(sw) if dpid in meters else []
            bundles = self.stats.bundles
            if delta is not None:
                self._send_ops(sw, delta.ops.items())
            self._delete_meters(sw, unused)
            if self.stats.meter_mods != sent and self.stats.bundles == bundles:
                self._barrier(sw)  # meters alone: converged (and their xids let go) at its reply
        now = time.monotonic()
        for dpid in [d for d in self.switches if d in self._changing]:
            self._repair_changes(self.switches[dpid], now)
        for dpid, arrivals in out.arrivals.items():
            sw = self.switches.get(dpid)
            if sw is not None:
                self._announce(sw, arrivals)
        for dpid, modes in out.port_modes.items():
            sw = self.switches.get(dpid)
            if sw is not None and sw.dumped and self.tables.identity(dpid) is not None:
                self._port_mods(sw, modes)
                self._flood_mods(sw, modes)
        for dpid in list(self._holding):
            sw = self.switches.get(dpid)
            if sw is not None:
                self._replay(sw)

    def tick(self, now: float | None = None) -> None:
        """Timers: back-off retries after a refused bundle, the flow-count audit, changes
        other clients made whose comparison waited (a deletion settling, a flow fought over),
        and the notices of restored flows that expired."""
        now = time.monotonic() if now is None else now
        wall = time.time()
        for sw in list(self.switches.values()):
            if self.roles is not None:
                self.sync_role(sw)  # a mastership gained, lost or timed out
            if sw.id in self._changing:
                self._repair_changes(sw, now)  # deletions settled, flows fought over
            for key in [k for k, n in sw.changed.items()
                        if wall - n.last >= CHANGE_NOTICE and n.held_until <= now]:
                del sw.changed[key]
            if not sw.dumped or sw.dumping:
                continue
            if sw.retry_at is not None and now >= sw.retry_at or (
                    sw.refused and any(now - r.at >= REFUSED_RETRY for r in sw.refused.values())):
                sw.retry_at = None
                self.stats.retries += 1
                self._request_dump(sw, "retry")  # a whole diff offers stale refusals again
            elif self.audit_interval > 0 and now >= sw.audit_at and not sw.audit_pending:
                sw.audit_at = now + self.audit_interval
                sw.audit_pending = True
                dp = sw.dp
                parser, ofp = dp.ofproto_parser, dp.ofproto
                dp.send_msg(parser.OFPAggregateStatsRequest(
                    dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, COOKIE, COOKIE_MASK,
                    parser.OFPMatch()))

    # ------------------------------------------------------------------ what /status reads
    def summary(self) -> list[dict]:
        """Per switch: dpid, host ref and bridge (None: not the pool's), ports, netctl flows
        (None until its table was read, or while another instance masters it), the OpenFlow
        role asked (several instances). From any thread: reads copies."""
        out = []
        for dpid, sw in sorted(dict(self.switches).items()):
            ident = self.tables.identity(dpid)
            host_ref, bridge = ident if ident is not None else (None, None)
            out.append({"dpid": dpid, "host": host_ref, "bridge": bridge,
                        "ports": len(sw.port_hw), "flows": sw.expected if sw.dumped else None,
                        "role": (sw.role + ("" if sw.role_acked else " (asked)")
                                 + (" (fenced)" if sw.fenced else "")) if sw.role else None})
        return out

    def problems(self) -> list[Problem]:
        """The flows a switch refused, those another owner's flows hold, and netctl's flows
        another client changed (for `CHANGE_NOTICE` seconds after the last change). From any
        thread: reads copies."""
        problems: list[Problem] = []
        wall, now = time.time(), time.monotonic()
        for dpid, sw in sorted(dict(self.switches).items()):
            ident = self.tables.identity(dpid)
            where = f"{ident[0]}/{ident[1]}" if ident is not None else "None/None"
            name = f"{dpid:016x}"
            for key, refusal in sorted(dict(sw.refused).items(), key=lambda kv: repr(kv[0])):
                problems.append(Problem(
                    "bridge", where, name, refusal.label, f"table {key[0]} priority {key[1]}",
                    f"the switch refused flow '{refusal.note}': {refusal.text}; the rest of the "
                    f"table is installed, this flow is offered again when it changes or in "
                    f"{int(REFUSED_RETRY)} s"))
            for meter, text in sorted(dict(sw.meters_refused).items()):
                problems.append(Problem(
                    "bridge", where, name, self.tables.describe(dpid), f"meter {meter}",
                    f"the switch refused the meter of the VIF on port {meter} (its rate "
                    f"limit): {text.split(': ', 1)[-1]}; that VIF's frames are not forwarded "
                    "until it is accepted"))
            for key, (note, cookie, label) in sorted(dict(sw.blocked).items(),
                                                     key=lambda kv: repr(kv[0])):
                problems.append(Problem(
                    "bridge", where, name, label, f"table {key[0]} priority {key[1]}",
                    f"flow '{note}' not installed: another owner's flow (cookie {cookie:#x}) "
                    "holds the same match and priority, and netctl never replaces a flow it "
                    "does not own"))
            for key, notice in sorted(dict(sw.changed).items(), key=lambda kv: repr(kv[0])):
                if wall - notice.last >= CHANGE_NOTICE:
                    continue
                times = f"{notice.times} time{'s' if notice.times != 1 else ''}"
                held = (f"; it keeps being changed back, so netctl puts it right at most every "
                        f"{int(FIGHT_HOLD)} s" if notice.held_until > now else "")
                problems.append(Problem(
                    "bridge", where, name, notice.label, f"table {key[0]} priority {key[1]}",
                    f"{notice.flow} was {notice.what} by another OpenFlow client and netctl "
                    f"{notice.done} it ({times}, last at "
                    f"{time.strftime('%H:%M:%S', time.localtime(notice.last))}){held}; this "
                    f"notice expires {int(CHANGE_NOTICE // 60)} minutes after the last change"))
        return problems

    # ------------------------------------------------------------------ internals
    def _request_dump(self, sw: Switch, reason: str) -> None:
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        sw.dumping = []
        sw.dump_reason = reason
        sw.audit_at = time.monotonic() + self.audit_interval
        # the meters first: a switch answers a session's requests in order, so they are
        # known when the flows' reply completes the dump
        sw.meters_dumping = []
        dp.send_msg(parser.OFPMeterConfigStatsRequest(dp, 0, ofp.OFPM_ALL))
        dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                               ofp.OFPG_ANY, 0, 0, parser.OFPMatch()))

    def _full_diff(self, sw: Switch, have: dict) -> None:
        """The whole desired table against what the switch holds (a dump)."""
        desired = self.tables.desired(sw.id)
        if desired is None:
            sw.dumped = True  # not a bridge of this pool (yet): never touch it
            sw.expected = len(have)
            return
        self.stats.full_diffs += 1
        ofp = sw.dp.ofproto
        now = time.monotonic()
        msgs = []
        blocked = set()
        wanted = set()
        for key, body in desired:
            wanted.add(key)
            refusal = sw.refused.get(key)
            if refusal is not None:
                if refusal.body == body and now - refusal.at < REFUSED_RETRY:
                    continue
                del sw.refused[key]
            if key in sw.foreign and key not in have:
                blocked.add(key)
                continue
            old = have.get(key)
            if old is None:
                msgs.append((ofp.OFPFC_ADD, key, body))
            elif old != body:
                msgs += changed(ofp, key, old, body)
        for key in have:
            if key not in wanted:
                msgs.append((ofp.OFPFC_DELETE_STRICT, key, None))
        for key in [k for k in sw.refused if k not in wanted]:
            del sw.refused[key]
        where = self.tables.describe(sw.id)
        new_blocks = blocked - sw.blocked.keys()
        if new_blocks:
            self.stats.foreign_blocked += len(new_blocks)
            LOG.error("switch %016x (%s): %d desired flows held by another owner's flows; "
                      "not replaced", sw.id, where, len(new_blocks))
        sw.blocked = {k: sw.blocked.get(k) or (self.tables.note(sw.id, k),
                                                sw.foreign.get(k, 0), where)
                      for k in blocked}
        if sw.dump_reason == "audit" and msgs:
            self.stats.repairs += len(msgs)
            LOG.warning("switch %016x (%s): %d flows drifted from netctl's table (changed by "
                        "hand?): repaired", sw.id, where, len(msgs))
        sw.expected = len(wanted) - len(blocked) - sum(1 for k in sw.refused if k in wanted)
        sw.dumped = True
        unused = self._put_meters(sw)
        if msgs:
            self._send_bundle(sw, msgs)
        self._delete_meters(sw, unused)
        self._port_mods(sw, self.tables.port_modes(sw.id), whole=True)
        self._flood_mods(sw, None)
        self._replay(sw)

    # ------------------------------------------------------------------ roles (several instances)
    def roles_changed(self) -> None:
        """Masterships changed (the coordinator said so): every switch's role, now."""
        for sw in list(self.switches.values()):
            self.sync_role(sw)

    def sync_role(self, sw: Switch) -> None:
        """Ask the switch for the role this instance should have on it now: MASTER with the
        mastership's generation, then a dump and a diff (as on a connect: nothing is sent when
        the switch already holds the desired table); or SLAVE, after which nothing is written
        to it. Nothing is sent when the role and generation asked last still hold."""
        if self.roles is None:
            return
        ident = self.tables.identity(sw.id)
        if ident is None:
            return  # not one of the pool's switches (yet): never written anyway
        master, generation = self.roles.role(ident[0])
        want = "master" if master else "slave"
        if not master:
            # a SLAVE request with an older generation than the switch has seen is refused
            # as stale: never go back
            generation = max(generation, sw.role_generation)
        if (want, generation) == (sw.role, sw.role_generation):
            return
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        req = parser.OFPRoleRequest(dp, ofp.OFPCR_ROLE_MASTER if master else ofp.OFPCR_ROLE_SLAVE,
                                    generation)
        dp.set_xid(req)
        was = sw.role
        sw.role, sw.role_generation, sw.role_xid = want, generation, req.xid
        sw.role_acked = sw.fenced = False
        dp.send_msg(req)
        self.stats.role_requests += 1
        where = self.tables.describe(sw.id)
        if master:
            LOG.info("switch %016x (%s): asking to be its master (generation %d)", sw.id, where,
                     generation)
            self._request_dump(sw, "takeover")
            return
        sw.dumped, sw.dumping, sw.audit_pending = False, [], False
        if self.portconfig is not None:  # nor over its OpenFlow 1.0 session
            self.portconfig.forget(sw.id)
        if was == "master":
            LOG.info("switch %016x (%s): not its master any more (SLAVE): writing nothing",
                     sw.id, where)

    def _may_write(self, sw: Switch) -> bool:
        """Whether this instance may write to the switch now: alone, always; with others,
        only as the master it asked to be, still master by the coordinator (asked
        at every write: its answer turns False on time, see `Roles`), and not fenced."""
        if self.roles is None:
            return True
        if sw.role == "master" and not sw.fenced:
            ident = self.tables.identity(sw.id)
            if ident is not None and self.roles.role(ident[0]) == (True, sw.role_generation):
                return True
        self.sync_role(sw)
        return False

    def _refused_role(self, sw: Switch, text: str) -> None:
        """The switch refused a role request or a write: another instance masters it with a
        newer generation. Nothing more is written to it until a newer mastership."""
        where = self.tables.describe(sw.id)
        if sw.role != "master":
            LOG.debug("switch %016x (%s): SLAVE request not taken: %s", sw.id, where, text)
            return
        if sw.fenced:
            return
        sw.fenced = True
        sw.dumped, sw.dumping, sw.audit_pending = False, [], False
        self.stats.fenced += 1
        LOG.warning("switch %016x (%s) refused this instance as its master (generation %d): "
                    "%s; another instance masters it: writing nothing to it", sw.id, where,
                    sw.role_generation, text)

    def configure(self, audit_interval: float, flow_monitor: bool) -> None:
        """New settings (a configuration reload; the reconcile thread): a shorter audit
        interval applies now, not after the longer one ran out; switching the flow monitor on
        subscribes the switches that are not (switching it off only stops new subscriptions).
        Nothing else is sent."""
        now = time.monotonic()
        self.audit_interval = audit_interval
        for sw in self.switches.values():
            if audit_interval > 0 and sw.audit_at > now + audit_interval:
                sw.audit_at = now + audit_interval
        turned_on = flow_monitor and not self.flow_monitor
        self.flow_monitor = flow_monitor
        if turned_on:
            for sw in self.switches.values():
                if sw.monitor == "off":
                    self._subscribe(sw)

    def _subscribe(self, sw: Switch) -> None:
        """Ask the switch for every change other clients make to its flows (written as bytes:
        os-ken's request is not the layout OVS reads, see `wire.flow_monitor_request_bytes`)."""
        dp = sw.dp
        xid = (dp.xid + 1) & dp.ofproto.MAX_XID or 1  # as Datapath.set_xid does, never 0
        dp.xid = xid
        sw.monitor, sw.monitor_xid = "asked", xid
        dp.send(wire.flow_monitor_request_bytes(MONITORS, MONITOR_FLAGS, xid))

    def _repair_changes(self, sw: Switch, now: float) -> None:
        """The flows other clients changed (the flow monitor's reports) that are due, against
        the desired table: netctl's flows are put right, in one bundle; another owner's flows
        are only noted. One pass over the desired table per round with changes due."""
        try:
            self._compare_changes(sw, now)
        finally:
            if not sw.changes:
                self._changing.discard(sw.id)

    def _compare_changes(self, sw: Switch, now: float) -> None:
        if not sw.dumped or self.tables.identity(sw.id) is None:
            sw.changes.clear()  # never written, or its next dump and diff sees them anyway
            return
        due = {k: c for k, c in sw.changes.items() if c.due <= now
               and (k not in sw.changed or sw.changed[k].held_until <= now)}
        if not due:
            return
        desired = self.tables.desired(sw.id)
        if desired is None:
            sw.changes.clear()
            return
        for key in due:
            del sw.changes[key]
        want = {k: b for k, b in desired if k in due}
        ofp = sw.dp.ofproto
        where = self.tables.describe(sw.id)
        msgs = []
        for key, change in due.items():
            body, have = want.get(key), change.body
            if have is not None and change.cookie & COOKIE_MASK != COOKIE:
                # another owner's flow: never netctl's to change (a match netctl wants is
                # reported as held, as a dump would find it)
                sw.foreign[key] = change.cookie
                if body is not None and key not in sw.blocked:
                    self._blocked_by_change(sw, key, change.cookie, where)
                continue
            if have is None:
                sw.foreign.pop(key, None)
                if key in sw.blocked:
                    # the other owner's flow that held this match went: netctl's goes in
                    del sw.blocked[key]
                    if body is not None:
                        msgs.append((ofp.OFPFC_ADD, key, body))
                        sw.expected += 1
                        LOG.info("switch %016x (%s): another owner's flow on the match of "
                                 "flow '%s' went: netctl's installed", sw.id, where,
                                 self.tables.note(sw.id, key))
                    continue
            if have == body:
                continue
            refusal = sw.refused.get(key)
            if refusal is not None and refusal.body == body:
                continue  # the switch refused it: offered again on its retry
            if have is None:
                command, what = ofp.OFPFC_ADD, "deleted"
            elif body is None:
                command = ofp.OFPFC_DELETE_STRICT
                what = "added with netctl's cookie where netctl wants none"
            else:
                command = ofp.OFPFC_MODIFY_STRICT
                what = "changed (its actions)" if have[0] != body[0] else "changed (its cookie)"
            if command == ofp.OFPFC_MODIFY_STRICT:
                msgs += changed(ofp, key, have, body)
            else:
                msgs.append((command, key, body))
            self._restored(sw, key, what, where, now, wanted=body is not None)
        if msgs:
            self._send_bundle(sw, msgs, since=now)

    def _restored(self, sw: Switch, key: Key, what: str, where: str, now: float,
                  wanted: bool) -> None:
        """Count, log and remember (for a Problem) a flow put right after another client's
        change; one put right again and again is held back for a while (no fight at line
        rate with another controller)."""
        self.stats.changes_repaired += 1
        self.stats.repairs += 1
        notice = sw.changed.get(key)
        if notice is None:
            notice = sw.changed[key] = ChangeNotice(
                self.tables.note(sw.id, key) if wanted else "", wire.match_text(key[2]), where,
                what, 0.0)
        notice.what, notice.last = what, time.time()
        notice.done = "restored" if wanted else "removed"
        notice.times += 1
        notice.recent = [t for t in notice.recent if now - t < FIGHT_WINDOW] + [now]
        LOG.warning("switch %016x (%s): %s (table %d priority %d) was %s by another OpenFlow "
                    "client: %s", sw.id, where, notice.flow, key[0], key[1], what, notice.done)
        if len(notice.recent) >= FIGHT_LIMIT:
            notice.held_until = now + FIGHT_HOLD
            LOG.error("switch %016x (%s): %s was changed back %d times in %d s: put right at "
                      "most every %d s from now on", sw.id, where, notice.flow,
                      len(notice.recent), int(FIGHT_WINDOW), int(FIGHT_HOLD))
            notice.recent = []

    def _blocked_by_change(self, sw: Switch, key: Key, cookie: int, where: str) -> None:
        """Another owner's flow took the match of a desired flow (an add replaces): reported
        as holding it, never replaced (as `_full_diff` finds it in a dump)."""
        note = self.tables.note(sw.id, key)
        if key not in sw.refused:
            sw.expected -= 1  # the switch no longer holds netctl's flow there
        sw.blocked[key] = (note, cookie, where)
        self.stats.foreign_blocked += 1
        LOG.error("switch %016x (%s): another owner's flow (cookie %#x) took the match of flow "
                  "'%s' (table %d priority %d); not replaced", sw.id, where, cookie, note,
                  key[0], key[1])

    def _send_ops(self, sw: Switch, ops: Iterable) -> None:
        ofp = sw.dp.ofproto
        msgs = []
        for key, (body, existed) in ops:
            refusal = sw.refused.get(key)
            if refusal is not None:
                # the switch never took it: whatever the engine's table held before
                existed = refusal.installed
            if body is None:
                sw.refused.pop(key, None)
                if key in sw.blocked:
                    del sw.blocked[key]  # another owner's flow: never ours to delete
                    continue
                msgs.append((ofp.OFPFC_DELETE_STRICT, key, None))
                if existed:
                    sw.expected -= 1
                continue
            if refusal is not None:
                if refusal.body == body:
                    continue
                del sw.refused[key]
            if key in sw.blocked:
                continue
            # (a modify keeps the installed cookie: the compilers never give one key two
            # cookies, tests/unit/test_stats.py; a dump's diff and a repair use `changed`)
            msgs.append((ofp.OFPFC_MODIFY_STRICT if existed else ofp.OFPFC_ADD, key, body))
            if not existed:
                sw.expected += 1
        if msgs:
            self._send_bundle(sw, msgs)

    def _put_meters(self, sw: Switch) -> list[int]:
        """Add or change the meters the switch's desired table uses (before the flows that
        use them); returns netctl's meters it holds and no flow needs, to delete after."""
        if not self._may_write(sw):
            return []
        want = self.tables.meters(sw.id)
        for meter, band in sorted(want.items()):
            if sw.meters.get(meter) == band:
                continue
            refused = sw.meters_refused.get(meter)
            if refused is not None and refused.startswith(f"{band}:"):
                continue  # refused as it is: offered again when it changes (or a retry)
            command = "modify" if meter in sw.meters else "add"
            self._meter_mod(sw, meter, command, band)
        return sorted(m for m in sw.meters if m not in want)

    def _delete_meters(self, sw: Switch, meters: list[int]) -> None:
        if meters and self._may_write(sw):
            for meter in meters:
                self._meter_mod(sw, meter, "delete", None)

    def _meter_mod(self, sw: Switch, meter: int, command: str,
                   band: tuple[int, int] | None) -> None:
        """One meter-mod (meters cannot go in a bundle): a single drop band in kbit/s with
        its burst; the switch is believed to hold it as sent (an error says otherwise)."""
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        cmd = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY, "delete": ofp.OFPMC_DELETE}
        bands = [] if band is None else [parser.OFPMeterBandDrop(rate=band[0],
                                                                 burst_size=band[1])]
        msg = parser.OFPMeterMod(dp, command=cmd[command],
                                 flags=ofp.OFPMF_KBPS | ofp.OFPMF_BURST if band else 0,
                                 meter_id=meter, bands=bands)
        dp.set_xid(msg)
        sw.meter_xids[msg.xid] = meter
        dp.send_msg(msg)
        self.stats.meter_mods += 1
        if band is None:
            sw.meters.pop(meter, None)
            sw.meters_refused.pop(meter, None)
        else:
            sw.meters[meter] = band
        LOG.info("switch %016x (%s): meter %d %s%s", sw.id, self.tables.describe(sw.id), meter,
                 command, f" ({band[0]} kbit/s, burst {band[1]} kbit)" if band else "")

    def _port_mods(self, sw: Switch, modes: Mapping[int, bool], whole: bool = False) -> None:
        """A disabled VIF's ports NO_RECV|NO_FWD|NO_PACKET_IN; every other VIF port clear.
        Compared with what netctl last asked of the port, else (and on a `whole` walk, after
        a dump) with what the switch reported: a port status sent before netctl's port-mod
        but read after it (OVS reports a new port twice) must not pass for the switch undoing
        the port-mod, or the VIF could never be enabled again."""
        if not self._may_write(sw):
            return
        dp = sw.dp
        parser = dp.ofproto_parser
        for port, disabled in sorted(modes.items()):
            if port not in sw.port_hw:
                continue
            want = DISABLED_PORT if disabled else 0
            have = None if whole else sw.requested.get(port)
            if have is None:
                have = sw.port_config.get(port, 0) & DISABLED_PORT
            if want == have:
                sw.requested[port] = want
                continue
            dp.send_msg(parser.OFPPortMod(dp, port_no=port, hw_addr=sw.port_hw[port],
                                          config=want, mask=DISABLED_PORT, advertise=0))
            sw.port_config[port] = (sw.port_config.get(port, 0) & ~DISABLED_PORT) | want
            sw.requested[port] = want
            self.stats.port_mods += 1
            LOG.info("switch %016x (%s): port %d %s", sw.id, self.tables.describe(sw.id), port,
                     "disabled (NO_RECV, NO_FWD)" if want else "enabled")

    def _flood_mods(self, sw: Switch, ports: Iterable[int] | None) -> None:
        """What netctl wants of the NO_FLOOD of these VIF ports (None: every one), handed to
        the switch's OpenFlow 1.0 session, which sends what the switch does not have."""
        config = self.portconfig
        if config is None or not self._may_write(sw):
            return
        for port, on in sorted(self.tables.flood_wants(sw.id, ports).items()):
            config.want(sw.id, port, on)

    def _announce(self, sw: Switch, arrivals: list[tuple[int, str]]) -> None:
        """One RARP per arrived VIF port, as if the guest had sent it (in_port = its port),
        through NORMAL: out of the uplink (or bond, tagged for a VLAN network's port) — not
        through netctl's table, whose locking may not let a guest send RARP."""
        if not self._may_write(sw):
            return
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        for port, mac in arrivals:
            dp.send_msg(parser.OFPPacketOut(
                datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=port,
                actions=[parser.OFPActionOutput(ofp.OFPP_NORMAL)], data=rarp(mac)))
            self.stats.announced += 1

    def _replay(self, sw: Switch) -> None:
        """Send held frames of ports whose rules are in back through the table (after the
        bundle: a switch processes one connection's messages in order); forget old ones."""
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        now = time.monotonic()
        writable = bool(sw.held) and sw.dumped and self._may_write(sw)
        for port in list(sw.held):
            frames = [(t, d) for t, d in sw.held[port] if now - t < HOLD_SECONDS]
            if writable and self.tables.classifies(sw.id, port):
                for _t, data in frames:
                    dp.send_msg(parser.OFPPacketOut(
                        datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=port,
                        actions=[parser.OFPActionOutput(ofp.OFPP_TABLE)], data=data))
                    self.stats.replayed += 1
                frames = []
            if frames:
                sw.held[port] = frames
            else:
                del sw.held[port]
        if not sw.held:
            self._holding.discard(sw.id)

    def _barrier(self, sw: Switch, since: float | None = None) -> None:
        """A barrier after what was just sent: its reply says the switch holds it (converged,
        and the flow-mods' and meter-mods' xids can be let go)."""
        dp = sw.dp
        barrier = dp.ofproto_parser.OFPBarrierRequest(dp)
        dp.set_xid(barrier)
        sw.pending_barriers[barrier.xid] = self._since if since is None else since
        dp.send_msg(barrier)

    def _send_bundle(self, sw: Switch, msgs: list, since: float | None = None) -> None:
        """Open, add, commit, barrier. Each (command, key, body) is written as bytes from its
        canonical form (`flows.wire`: byte-identical to os-ken's, far cheaper), many messages
        per socket write. `since`: when the change it answers was seen (the round's)."""
        if not self._may_write(sw):
            return
        dp = sw.dp
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
        bid = self._bundle_id
        flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
        dp.send_msg(parser.ONFBundleCtrlMsg(dp, bid, ofp.ONF_BCT_OPEN_REQUEST, flags, []))
        chunk = bytearray()  # OpenFlow is a byte stream: many messages per socket write
        sw.inflight.append(((dp.xid + 1) & ofp.MAX_XID, msgs))
        for command, key, body in msgs:
            dp.xid = xid = (dp.xid + 1) & ofp.MAX_XID  # as Datapath.set_xid does
            inner = (wire.delete_bytes(key, xid) if body is None
                     else wire.flow_mod_bytes(key, body, command, xid))
            chunk += wire.bundle_add_bytes(bid, flags, inner, xid)
            if len(chunk) >= SEND_CHUNK:
                dp.send(bytes(chunk))
                chunk.clear()
        if chunk:
            dp.send(bytes(chunk))
        dp.send_msg(parser.ONFBundleCtrlMsg(dp, bid, ofp.ONF_BCT_COMMIT_REQUEST, flags, []))
        self._barrier(sw, since)
        self.stats.flow_mods += len(msgs)
        self.stats.bundles += 1
        few = ""
        if len(msgs) <= FEW_SHOWN:  # a handful: which ones (a full table is just counted)
            few = ": " + "; ".join(
                f"{'delete' if body is None else 'set'} table {key[0]} priority {key[1]} "
                f"{wire.match_text(key[2])}" for _command, key, body in msgs)
        LOG.info("switch %016x (%s): %d flow-mods in bundle %d%s", dp.id,
                 self.tables.describe(sw.id), len(msgs), bid, few)


def changed(ofp: Any, key: Key, old: Body, body: Body) -> list[tuple[int, Key, Body | None]]:
    """The flow-mods that turn an installed flow (`old`) into `body` on the same key: a modify,
    or, when the cookie differs, a delete and an add (in the same atomic bundle). OpenFlow
    1.3's modify never changes a flow's cookie (OVS keeps it), and netctl's cookies say what a
    flow is (`flows.drops`: a drop flow's kind), so a modify would leave it saying the old
    thing, and every later dump would find it drifted."""
    if old[1] != body[1]:
        return [(ofp.OFPFC_DELETE_STRICT, key, None), (ofp.OFPFC_ADD, key, body)]
    return [(ofp.OFPFC_MODIFY_STRICT, key, body)]


def rarp(mac: str) -> bytes:
    """A reverse-ARP request from `mac` to everyone (QEMU's self-announcement after a live
    migration: it needs no IP address, and every switch on the way learns the MAC's port)."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=mac, ethertype=ETH_RARP))
    pkt.add_protocol(arp.arp(hwtype=1, proto=ether_types.ETH_TYPE_IP, hlen=6, plen=4,
                             opcode=RARP_REQUEST_REVERSE, src_mac=mac, src_ip="0.0.0.0",
                             dst_mac=mac, dst_ip="0.0.0.0"))
    pkt.serialize()
    return bytes(pkt.data)
