"""The reconcile thread: the engine's only driver, between its sources and its sinks.

    XapiSync thread ──change sets──┐
    os-ken handlers ──switch events┼─► one queue ─► round: feed inputs, run the engine,
    timer (0.25 s) ────────────────┘                hand host configs to the OVSDB side,
                                                    flow deltas to the OpenFlow sink

Everything that changes the engine or an OpenFlow session happens here, one round at a time,
so the sources never wait for a compile (an os-ken handler only enqueues), and events that
arrive together are applied together (a boot storm is a few large rounds, not thousands of
small ones). The engine and the sink are pure/IO-free in the sense that matters: this module
owns the thread; the callbacks it is given own their I/O.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from netctl.engine.core import NetctlEngine
from netctl.hostconfig import HostConfig
from netctl.model import Problem
from netctl.sinks.openflow import FlowController

LOG = logging.getLogger("netctl.service.loop")
TICK_SECONDS = 0.25
MAX_BATCH = 5000  # events taken into one round at most


@dataclass
class RoundStats:
    rounds: int = 0
    xapi_objects: int = 0  # xapi objects applied
    switch_events: int = 0
    last_round_ms: float = 0.0
    busy_ms: float = 0.0  # time spent in rounds, in all


class Reconciler:
    def __init__(self, engine: NetctlEngine, sink: FlowController,
                 on_hosts: Callable[[dict[str, HostConfig | None]], None] | None = None,
                 on_round: Callable[[Reconciler], None] | None = None) -> None:
        self.engine = engine
        self.sink = sink
        sink.engine = engine
        self.on_hosts = on_hosts
        self.on_round = on_round
        self.stats = RoundStats()
        self.problems: list[Problem] = []  # published after each round (replaced whole)
        self._xapi: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        sink.wake = self._wake.set
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_tick = 0.0
        self.ready = threading.Event()  # set after the first round with xapi's intent
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ sources
    def submit_xapi(self, changes, since: float | None = None) -> None:  # noqa: ANN001
        """A xapi change set (`netctl.sources.xapi.sync.ChangeSet`), from the sync's thread."""
        self._xapi.put((changes, since if since is not None else time.monotonic()))
        self._wake.set()

    # ------------------------------------------------------------------ the thread
    def start(self) -> Reconciler:
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
        events = 0
        while events < MAX_BATCH:
            try:
                event = self.sink.events.get_nowait()
            except queue.Empty:
                break
            self.sink.handle(event)
            events += 1
        self.stats.switch_events += events
        if fed or events or not self.stats.rounds:
            cold = fed and not self.ready.is_set()
            if cold:
                gc.disable()  # the first read builds millions of long-lived objects at once
            try:
                self.engine.run()
            finally:
                if cold:
                    gc.enable()
            hosts = self.engine.hosts.configs
            if hosts.changed and self.on_hosts is not None:
                self.on_hosts({ref: hosts.config(ref) for ref in sorted(hosts.changed)})
            self.sink.flush(self.engine.flows.tables.deltas, since)
            self.problems = self.engine.problems() + self.sink.problems()
            self.engine.clear()
            if fed and not self.ready.is_set():
                self.ready.set()
                # The pool as first read lives as long as the process: move it out of the
                # cyclic collector's way, or every full collection walks millions of objects
                # (seconds, in the middle of a boot storm).
                gc.collect()
                gc.freeze()
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
        if fed >= MAX_BATCH or events >= MAX_BATCH:
            self._wake.set()  # more is queued: another round at once
