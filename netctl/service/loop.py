"""The reconcile loop: the one thread that drives the engine, between its sources and sinks.

    XapiSync thread ─ change sets ─┐
    os-ken handlers ─ SwitchFeed ──┼─► a round: feed the engine's inputs, run it once, hand
    timer (0.25 s) ────────────────┘   the changed host configurations to the OVSDB side and
                                       the flow changes to the OpenFlow sink; then the sink's
                                       timers (retries, audits)

Everything that reads or changes the engine, or an OpenFlow session, happens on this thread,
one round at a time, so a source never waits for a compile (an os-ken handler only enqueues),
and events that arrive together are applied together (a boot storm is a few large rounds, not
thousands of small ones). The sources only enqueue; the sinks only do what they are handed;
the OVSDB side gets its configurations through `on_hosts`, and applies them on threads of its
own (`netctl.service.ovsdb_workers`).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netctl.engine.core import NetctlEngine, SwitchEvent
from netctl.hostconfig import HostConfig
from netctl.model import Problem
from netctl.sinks.openflow import FlowSink
from netctl.sources.switches import (
    Aggregate,
    Barrier,
    Connected,
    Error,
    Event,
    FlowChanged,
    FlowStats,
    Gone,
    MeterConfig,
    NoFlood,
    PacketIn,
    PortChanged,
    PortState,
    RoleReply,
    SwitchFeed,
)

LOG = logging.getLogger("netctl.reconcile")
TICK_SECONDS = 0.25
MAX_BATCH = 5000  # events taken into one round at most


@dataclass
class RoundStats:
    rounds: int = 0
    xapi_objects: int = 0  # xapi objects applied
    switch_events: int = 0
    last_round_ms: float = 0.0
    busy_ms: float = 0.0  # time spent in rounds, in all


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`). The first
    round reads the whole pool: at 64 hosts x 1000 VIFs the full sync's decoded records peak
    far above what stays, and glibc keeps the freed heap mapped, so the process would carry
    that peak as resident memory for its whole life. Elsewhere than glibc: nothing to do."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


class ReconcileLoop:
    """The engine's only driver. `submit_xapi` (the xapi sync's thread) and `switches` (the
    switch feed, filled by os-ken's threads) are its inputs; `sink` and `on_hosts` its outputs."""

    def __init__(self, engine: NetctlEngine, sink: FlowSink,
                 on_hosts: Callable[[dict[str, HostConfig | None]], None] | None = None,
                 on_round: Callable[[ReconcileLoop], None] | None = None) -> None:
        self.engine = engine
        self.sink = sink
        self.on_hosts = on_hosts
        self.on_round = on_round
        self.stats = RoundStats()
        self.problems: list[Problem] = []  # the engine's, published after a round (replaced)
        self._wake = threading.Event()
        self.switches = SwitchFeed(wake=self._wake.set)
        self._xapi: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_tick = 0.0
        self.ready = threading.Event()  # set after the first round with xapi's intent
        self.error: BaseException | None = None
        self._calls: queue.SimpleQueue = queue.SimpleQueue()  # `call_soon`'s, for this thread

    # ------------------------------------------------------------------ sources
    def submit_xapi(self, changes: Any, since: float | None = None) -> None:
        """A xapi change set (`netctl.sources.xapi.sync.ChangeSet`), from the sync's thread."""
        self._xapi.put((changes, since if since is not None else time.monotonic()))
        self._wake.set()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on this thread before the next round: a configuration reload
        (`netctl.service.reload`) changes the sink and the OVSDB side, which only this thread
        touches."""
        self._calls.put(fn)
        self._wake.set()

    # ------------------------------------------------------------------ the thread
    def start(self) -> ReconcileLoop:
        self._thread = threading.Thread(target=self._run, name="netctl-reconcile", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            try:
                self.round()
            except Exception as exc:  # noqa: BLE001 - one bad round must not stop netctl
                self.error = exc
                LOG.exception("reconcile round failed")

    def round(self) -> None:
        """Take what is queued, run the engine once, hand the results on."""
        started = time.monotonic()
        while not self._calls.empty():
            fn = self._calls.get_nowait()
            try:
                fn()
            except Exception:  # noqa: BLE001 - a failed call must not stop the round
                LOG.exception("%s failed", getattr(fn, "__name__", fn))
        since: float | None = None
        fed = 0
        while fed < MAX_BATCH:
            try:
                changes, seen = self._xapi.get_nowait()
            except queue.Empty:
                break
            since = seen if since is None else min(since, seen)
            objects = getattr(changes, "objects", {})
            self.engine.xapi((ref, before, after) for ref, (before, after) in objects.items())
            self.stats.xapi_objects += len(objects)
            fed += 1
        events = self.switches.drain(MAX_BATCH)
        for event in events:
            if self._switch_event(event) and since is None:
                since = time.monotonic()
        self.stats.switch_events += len(events)
        if fed or events or not self.stats.rounds:
            self._run_engine(cold=bool(fed) and not self.ready.is_set(), fed=bool(fed),
                             since=since)
        now = time.monotonic()
        if now - self._last_tick >= TICK_SECONDS:
            self._last_tick = now
            self.sink.tick(now)
        if fed or events:
            self.stats.rounds += 1
            self.stats.last_round_ms = (time.monotonic() - started) * 1000
            self.stats.busy_ms += self.stats.last_round_ms
            if self.on_round is not None:
                self.on_round(self)
        if fed >= MAX_BATCH or len(events) >= MAX_BATCH:
            self._wake.set()  # more is queued: another round at once

    def _switch_event(self, event: Event) -> bool:
        """Route one switch event: a session's topology to the sink and the engine, a reply
        to the sink. True for a port that came or went (a change worth timing)."""
        if isinstance(event, NoFlood):
            self.engine.switch(SwitchEvent("no_flood", event.dpid, ports=event.ports))
            return False
        sink, dpid = self.sink, event.dp.id
        if isinstance(event, Connected):
            sink.connected(event.dp, event.ports)
            self.engine.switch(SwitchEvent("connect", dpid,
                                           names={p.name: p.number for p in event.ports}))
        elif isinstance(event, PortChanged):
            sink.port(event.dp, event.port, event.deleted, fresh=not event.deleted)
            self.engine.switch(SwitchEvent("port", dpid, name=event.port.name,
                                           number=None if event.deleted else event.port.number))
            return True
        elif isinstance(event, PortState):
            sink.port(event.dp, event.port, False)
        elif isinstance(event, Gone):
            sink.gone(event.dp)
            self.engine.switch(SwitchEvent("gone", dpid))
        elif isinstance(event, FlowStats):
            sink.flow_stats(event.dp, event.body, event.more)
        elif isinstance(event, MeterConfig):
            sink.meter_config(event.dp, event.body, event.more)
        elif isinstance(event, Aggregate):
            sink.aggregate(event.dp, event.flow_count)
        elif isinstance(event, Barrier):
            sink.barrier(event.dp, event.xid)
        elif isinstance(event, Error):
            sink.error(event.dp, event.text, event.xid)
        elif isinstance(event, PacketIn):
            sink.packet_in(event.dp, event.in_port, event.data)
        elif isinstance(event, FlowChanged):
            sink.flow_changed(event.dp, event.updates, event.xid)
        elif isinstance(event, RoleReply):
            sink.role_reply(event.dp, event.xid)
        return False

    def _run_engine(self, cold: bool, fed: bool, since: float | None) -> None:
        if cold:
            gc.disable()  # the first read builds millions of long-lived objects at once
        try:
            self.engine.run()
        finally:
            if cold:
                gc.enable()
        out = self.engine.output()
        if out.hosts and self.on_hosts is not None:
            self.on_hosts(out.hosts)
        self.sink.flush(out.flows, since)
        if fed or not self.stats.rounds:
            self.problems = self.engine.problems()  # only xapi's intent changes them
        self.engine.clear()
        if cold:
            self.ready.set()
            # The pool as first read lives as long as the process: move it out of the
            # cyclic collector's way, or every full collection walks millions of objects
            # (seconds, in the middle of a boot storm).
            gc.collect()
            gc.freeze()
            release_free_memory()
