"""Reads every switch's traffic counters on its own schedule: a source beside the switch
events that never enters the engine's rounds.

Each round (every `interval` seconds, default 5: xapi's RRD step) asks each switch this
instance writes over its OpenFlow session for the statistics of every port (one
OFPMP_PORT_STATS request) and, every `DROPS_EVERY` rounds, for the counters of VIF locking's
drop flows (one flow-stats request filtered by their cookie tag, `flows.drops`: nothing else
comes back). OpenFlow rather than
OVSDB's Interface.statistics: the reply holds exactly the ports of one bridge, costs one round
trip, and needs no OVSDB monitor of a column that changes every few seconds on every interface
of the host (which each host's OVSDB session would then carry all the time).

The replies arrive on os-ken's threads (`netctl.sources.osken_app` hands them here by xid,
as bytes, before os-ken parses their entries; never to the switch feed), are queued there and
read on the poller's own thread, then stored in the `StatsTable` (`netctl.stats.table`); the
reconcile loop never sees them. A round's requests go out one switch at a time (`STEP`
apart, within `SPREAD` of the interval): asked all at once, the 128 switches of a 64 x 1000
pool answered together, ~130 threads wanted the GIL at the same moment, and a XenAPI change
could wait a few hundred ms to reach its switch (`bench/process_path.py`, p99 of 30 changes
at 64 x 1000: 85-364 ms with the requests all at once, 59-64 ms spread, 55-60 ms without
statistics; see bench/README). A switch
another instance masters (several instances) is not read here: its master reads it.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netctl.stats.drops import DROP_COOKIE, DROP_MASK, DROP_TABLE
from netctl.stats.rules import ALL_TABLES, RULE_COOKIE, RULE_MASK, Hit, rule_entries
from netctl.stats.table import StatsTable
from netctl.stats.wire import OFPMP_PORT_STATS, drop_entries, port_entries

LOG = logging.getLogger("netctl.stats")
DEFAULT_INTERVAL = 5.0
# Drop counters are read every DROPS_EVERY rounds (10 s at the default interval), port
# counters every round: a locked VIF has ~16 drop flows, so at 64 x 1000 (~250,000 drop-flow
# entries against ~80,000 ports) reading them every round would cost twice the rest.
DROPS_EVERY = 2
_XID_BASE = 0x5A00_0000  # the poller's own xids: told apart from the sink's by `owns`
_STOP = object()  # tells the poller's thread to end
# A round's requests go out one switch at a time (`StatsPoller.poll`), STEP seconds apart
# (a 64 x 1000 switch's answers are read in a few ms) and all within SPREAD of the interval,
# the rest of it left for the last ones' answers: 128 switches take 2.6 s, a lab's few
# switches are read together as before.
SPREAD = 0.6
STEP = 0.02


@dataclass
class _Asked:
    """What one switch owes this round."""

    dpid: int
    at: float  # wall clock when asked
    ports: list = field(default_factory=list)
    drops: dict = field(default_factory=dict)  # in_port -> kind -> packets
    rules: dict = field(default_factory=dict)  # VIF port -> (direction, origin, n) -> packets
    parts: dict = field(default_factory=dict)  # xid -> part (ports, drops, rules)
    waiting: set[str] = field(default_factory=lambda: {"ports", "drops", "rules"})
    drops_read: bool = True  # False: the drop counters were not asked this round


@dataclass
class PollerStats:
    rounds: int = 0
    requests: int = 0
    replies: int = 0
    unanswered: int = 0  # switches that had not answered when the next round began
    cpu_seconds: float = 0.0  # thread time spent asking and reading replies
    last_round_cpu: float = 0.0


class StatsPoller:
    """Asks the switches for their counters every `interval` seconds (its own thread) and
    stores what they answer in `table`. `may_poll(dpid)`: whether this instance reads that
    switch now (several instances: only its master)."""

    def __init__(self, table: StatsTable, interval: float = DEFAULT_INTERVAL,
                 may_poll: Callable[[int], bool] | None = None) -> None:
        self.table = table
        self.interval = interval
        self.may_poll = may_poll or (lambda _dpid: True)
        self.stats = PollerStats()
        self._lock = threading.Lock()
        self._dps: dict[int, Any] = {}  # dpid -> its current session (os-ken's datapath)
        self._asked: dict[int, _Asked] = {}  # xid -> what it asked
        # the round before's xids: a late answer is still the poller's (and dropped here),
        # never taken by the sink for a dump of its own
        self._late: set[int] = set()
        self._names: dict[int, tuple[Any, dict]] = {}  # dpid -> (session, port names)
        # traffic rules' hit counters (`flows.rules`), read with the drop counters: dpid ->
        # VIF port name -> (direction, origin, rule number) -> packets; replaced whole
        self.rule_hits: dict[int, dict[str, dict[Hit, int]]] = {}
        self._xid = 0
        self._round_cpu = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # replies as os-ken's threads hand them, read by the poller's thread (while it runs)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # this round's requests not sent yet: (when, session, with drop counters), in order
        self._schedule: collections.deque = collections.deque()

    # ------------------------------------------------------------------ os-ken's threads
    def connected(self, dp: Any) -> None:
        with self._lock:
            self._dps[dp.id] = dp

    def gone(self, dp: Any) -> None:
        with self._lock:
            if self._dps.get(dp.id) is dp:
                del self._dps[dp.id]
                self._names.pop(dp.id, None)
                self.rule_hits.pop(dp.id, None)
                self.table.forget(dp.id)

    def owns(self, xid: int) -> bool:
        """Is this reply an answer to the poller (not to the sink)?"""
        return xid in self._asked or xid in self._late

    def reply(self, dp: Any, xid: int, kind: int, more: bool, body: bytes) -> None:
        """A reply to one of the poller's requests (`owns(xid)`), as the switch sent it: its
        multipart type, REPLY_MORE and body bytes (read by `netctl.stats.wire`, not parsed
        by os-ken: see there why). Queued for the poller's thread while it runs (read here
        otherwise: a poller driven by hand)."""
        if self._thread is not None:
            self._inbox.put((dp, xid, kind, more, body))
        else:
            self._read(dp, xid, kind, more, body)

    def _read(self, dp: Any, xid: int, kind: int, more: bool, body: bytes) -> None:
        start = time.thread_time()
        asked = self._asked.get(xid)
        if asked is not None:
            if kind == OFPMP_PORT_STATS:
                asked.ports.extend(port_entries(body))
                part = "ports"
            elif asked.parts.get(xid) == "rules":
                for port, hits in rule_entries(body).items():
                    per = asked.rules.setdefault(port, {})
                    for hit, packets in hits.items():
                        per[hit] = per.get(hit, 0) + packets
                part = "rules"
            else:
                for port, kinds in drop_entries(body).items():
                    per = asked.drops.setdefault(port, {})
                    for kind, packets in kinds.items():
                        per[kind] = per.get(kind, 0) + packets
                part = "drops"
            if not more:
                self._part_done(dp, xid, asked, part)
        self._count(start)

    def _count(self, start: float) -> None:
        spent = time.thread_time() - start
        with self._lock:
            self.stats.replies += 1
            self.stats.cpu_seconds += spent
            self._round_cpu += spent

    def _part_done(self, dp: Any, xid: int, asked: _Asked, part: str) -> None:
        with self._lock:
            self._asked.pop(xid, None)
            asked.waiting.discard(part)
            if asked.waiting or self._dps.get(asked.dpid) is not dp:
                return  # more to come, or the session went meanwhile (`gone` forgot it)
        names = self._names_of(dp)
        entries = [(number, names.get(number) or str(number), counters)
                   for number, counters in asked.ports]
        if asked.drops_read:
            self.rule_hits[asked.dpid] = {names.get(port) or str(port): hits
                                          for port, hits in asked.rules.items()}
        self.table.ports(asked.dpid, asked.at, entries,
                         asked.drops if asked.drops_read else None)

    def _names_of(self, dp: Any) -> dict[int, str]:
        """Port number -> name as os-ken's session knows them (its port objects are replaced
        on a port status, so a name is decoded again only for a port object not seen)."""
        cache = self._names.get(dp.id)
        if cache is None or cache[0] is not dp:
            cache = self._names[dp.id] = (dp, {})
        known: dict[int, tuple[Any, str]] = cache[1]
        out: dict[int, str] = {}
        for number, port in list(dp.ports.items()):
            seen = known.get(number)
            if seen is None or seen[0] is not port:
                seen = known[number] = (port, _name(port))
            out[number] = seen[1]
        return out

    # ------------------------------------------------------------------ its own thread
    def start(self) -> StatsPoller:
        self._thread = threading.Thread(target=self._run, name="netctl-stats", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(_STOP)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        """A round every `interval` seconds (read each time: a reload may change it; 0
        pauses the statistics, and what was read is forgotten rather than left to go
        stale), its requests spread over `SPREAD` of the interval; between them, the
        replies os-ken's threads queued."""
        due = time.monotonic() + (self.interval or 1.0)
        while not self._stop.is_set():
            wake = min(due, self._schedule[0][0]) if self._schedule else due
            try:
                item = self._inbox.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if item is not None:
                try:
                    self._read(*item)
                except Exception:  # noqa: BLE001 - one bad reply; the rest are read
                    LOG.exception("statistics reply not read")
            now = time.monotonic()
            while self._schedule and self._schedule[0][0] <= now:
                _at, dp, drops = self._schedule.popleft()
                self._ask_one(dp, drops)
            if now < due:
                continue
            due = now + (self.interval or 1.0)
            if not self.interval:
                self._schedule.clear()
                for dpid in list(self.table.switches()):
                    self.table.forget(dpid)
                continue
            try:
                self.poll(spread=self.interval * SPREAD)
            except Exception:  # noqa: BLE001 - the next round tries again
                LOG.exception("statistics round failed")

    def poll(self, spread: float = 0.0) -> int:
        """One round: ask every switch this instance reads; returns how many are asked.
        Whatever a switch has not answered from the round before is given up (counted).
        With `spread` (seconds, the poller's thread) the requests are sent one switch at a
        time, `STEP` apart and within `spread`, else all at once: at 64 x 1000, 128 switches
        answering at once kept os-ken's 128 receive threads busy together, and the reconcile
        thread, one of ~130 threads wanting the GIL, waited for it (a XenAPI change's p99 to
        the switch: 85-364 ms, against 59-64 ms spread; `bench/process_path.py`)."""
        start = time.thread_time()
        with self._lock:
            unanswered = {a.dpid for a in self._asked.values()}
            self.stats.unanswered += len(unanswered)
            self._late = set(self._asked)
            self._asked.clear()
            self.stats.last_round_cpu, self._round_cpu = self._round_cpu, 0.0
            dps = dict(self._dps)
        if self.stats.rounds:
            self.table.round_done(time.time())
        drops = self.stats.rounds % DROPS_EVERY == 0
        chosen = []
        for dpid, dp in dps.items():
            if self.may_poll(dpid):
                chosen.append(dp)
            else:
                self.table.forget(dpid)
        self._schedule.clear()
        with self._lock:
            self.stats.rounds += 1
            spent = time.thread_time() - start
            self.stats.cpu_seconds += spent
            self._round_cpu += spent
        if spread > 0 and len(chosen) > 1:
            now, step = time.monotonic(), min(STEP, spread / len(chosen))
            self._schedule.extend((now + i * step, dp, drops) for i, dp in enumerate(chosen))
        else:
            for dp in chosen:
                self._ask_one(dp, drops)
        return len(chosen)

    def _ask_one(self, dp: Any, drops: bool) -> None:
        start = time.thread_time()
        with self._lock:
            current = self._dps.get(dp.id) is dp
        if current:  # (a scheduled switch may have gone meanwhile)
            try:
                self._ask(dp, drops)
                with self._lock:
                    self.stats.requests += 3 if drops else 1
            except Exception as exc:  # noqa: BLE001 - a closing session; next round
                LOG.debug("statistics of %016x not asked: %s", dp.id, exc)
        spent = time.thread_time() - start
        with self._lock:
            self.stats.cpu_seconds += spent
            self._round_cpu += spent

    def _ask(self, dp: Any, drops: bool = True) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        asked = _Asked(dp.id, time.time())
        msgs = [parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY)]
        parts = ["ports"]
        if drops:
            msgs.append(parser.OFPFlowStatsRequest(dp, 0, DROP_TABLE, ofp.OFPP_ANY,
                                                   ofp.OFPG_ANY, DROP_COOKIE, DROP_MASK,
                                                   parser.OFPMatch()))
            # traffic rules' hit counters, every rule flow in every table by its cookie tag
            msgs.append(parser.OFPFlowStatsRequest(dp, 0, ALL_TABLES, ofp.OFPP_ANY,
                                                   ofp.OFPG_ANY, RULE_COOKIE, RULE_MASK,
                                                   parser.OFPMatch()))
            parts += ["drops", "rules"]
        else:
            asked.waiting.discard("drops")
            asked.waiting.discard("rules")
            asked.drops_read = False
        with self._lock:
            for msg, part in zip(msgs, parts, strict=True):
                self._xid = (self._xid + 1) & 0xFF_FFFF
                msg.xid = _XID_BASE | self._xid
                self._asked[msg.xid] = asked
                asked.parts[msg.xid] = part
        for msg in msgs:
            dp.send_msg(msg)


def _name(port: Any) -> str:
    name = port.name
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)
