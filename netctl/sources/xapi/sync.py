"""Keep netctl's model of a xapi pool (real or simulated) in step with it.

Usage::

    sync = XapiSync("https://pool-master/", "root", "secret", ignore_ssl=True,
                    on_changes=handle)             # handle(changes): one ChangeSet per batch
    sync.start()                                   # background thread
    ...
    sync.write_tunnel_status(tunnel_uuid, active=True, key="42")
    sync.stop()

Or without a thread: `sync.connect()` then `sync.step()` (one `event.from` round, returning its
ChangeSet) in your loop. Each `ChangeSet` holds every changed object before and after, which is
all an incremental consumer (`netctl run`'s engine) needs. Consumers that want the whole pool
read `sync.state`, the latest `PoolState` (built when read, then kept until the next change),
or `sync.wait_for(predicate, timeout)`, which waits for a state satisfying `predicate`.
Nothing is kept per batch: a consumer that reads nothing holds the latest objects and no
history.

Wire: JSON-RPC on `/jsonrpc` (`netctl.sources.xapi.jsonrpc`) by default, because it measures several
times faster than XML-RPC for a full dump (bench/xapi_sync.py: a third of the bytes, decoded
in C instead of one Python callback per XML tag); `protocol="auto"` falls back
to XML-RPC through the official `XenAPI` client when the first call finds no JSON-RPC
endpoint (an older xapi), `protocol="jsonrpc"` / `"xmlrpc"` forces one. Both sessions behave
the same to the sync (same calls, `XenAPI.Failure`, SESSION_INVALID re-login, timeouts, TLS).

Why a full sync of a big pool is cheap: each `event.from` snapshot is cut to the fields the
model reads (`convert.project`, applied while the reply is decoded on either wire), and the
cyclic garbage collector is paused while the dump is decoded and converted (hundreds of
thousands of new containers would otherwise trigger collections that cost more than the work
itself).

How it stays right (spec §2.5): the first `event.from(classes, "", t)` is the full dump; then it
loops on the returned token. Every call has a socket timeout (`netctl.sources.xapi.transport`,
`netctl.sources.xapi.jsonrpc`): a half-open connection is noticed after event.from's own wait plus
`rpc_timeout`, and handled like a lost one. Both sessions re-log in by themselves on
`SESSION_INVALID` and the token stays valid, so a stale session costs nothing. When the server
goes away (connection refused/reset), it reconnects with exponential backoff and does a full
resync, because a restarted xapi may not know the old token. After every batch it compares
its object counts with `valid_ref_counts`: a difference means deletions were lost (more than
the tombstone cap since the token), and it resyncs from "". A resync yields a ChangeSet with
`full=True` holding the real difference to the previous state.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import XenAPI

from netctl.model import NULL_REF, FrozenRefMap, Pool, PoolState
from netctl.sources.xapi.convert import CONVERTERS, project, to_model
from netctl.sources.xapi.jsonrpc import JsonRpcSession, JsonRpcUnavailable
from netctl.sources.xapi.members import PoolMembers
from netctl.sources.xapi.transport import gc_paused, make_transport

log = logging.getLogger(__name__)

# xapi classes synced (host_metrics only feeds Host.live) and where each lands in PoolState.
SYNC_CLASSES = ("pool", "host", "host_metrics", "network", "PIF", "Bond", "VLAN", "tunnel",
                "VIF", "VM", "SDN_controller")
STATE_FIELD = {"host": "hosts", "network": "networks", "PIF": "pifs", "Bond": "bonds",
               "VLAN": "vlans", "tunnel": "tunnels", "VIF": "vifs", "VM": "vms",
               "SDN_controller": "sdn_controllers"}
_BY_LOWER = {c.lower(): c for c in SYNC_CLASSES}
CONNECTION_ERRORS = (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError,
                     xmlrpc.client.Fault)
PROTOCOLS = ("auto", "jsonrpc", "xmlrpc")
Session = XenAPI.Session | JsonRpcSession


def _shrink_event(obj: dict[str, Any]) -> dict[str, Any]:
    """Decoding hook (JSON object_hook, XML-RPC struct hook) of the reading session: an
    event's snapshot cut to the fields the model reads as soon as the event is decoded, so
    only one full record is alive at a time during a full dump."""
    snap = obj.get("snapshot")
    if type(snap) is dict:
        cls = obj.get("class")
        cls = _BY_LOWER.get(cls) if type(cls) is str else None
        if cls is not None:
            obj["snapshot"] = project(cls, snap)
    return obj


@dataclass(frozen=True)
class ChangeSet:
    """What one batch changed, by xapi class name ("VIF", "PIF", "network", ...) and ref."""

    added: Mapping[str, frozenset[str]] = field(default_factory=dict)
    modified: Mapping[str, frozenset[str]] = field(default_factory=dict)
    removed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    full: bool = False  # a full (re)sync: consumers may prefer a full recompute
    # ref -> (model object before, after) for every change: what an incremental consumer
    # (the engine) applies without ever looking at a whole-pool snapshot
    objects: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    def changed(self, cls: str) -> frozenset[str]:
        """Refs of `cls` added, modified or removed."""
        return (self.added.get(cls, frozenset()) | self.modified.get(cls, frozenset())
                | self.removed.get(cls, frozenset()))

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(c for part in (self.added, self.modified, self.removed)
                         for c, refs in part.items() if refs)

    def __bool__(self) -> bool:
        return bool(self.classes) or self.full

    def __len__(self) -> int:
        return sum(len(r) for part in (self.added, self.modified, self.removed)
                   for r in part.values())


class _Builder:
    """Collects the per-class changes of one batch."""

    def __init__(self) -> None:
        self.added: dict[str, set[str]] = {}
        self.modified: dict[str, set[str]] = {}
        self.removed: dict[str, set[str]] = {}
        self.objects: dict[str, tuple[Any, Any]] = {}

    def note(self, kind: str, cls: str, ref: str, before: Any = None, after: Any = None) -> None:
        getattr(self, kind).setdefault(cls, set()).add(ref)
        first = self.objects.get(ref)
        self.objects[ref] = (first[0] if first is not None else before, after)

    def build(self, full: bool = False) -> ChangeSet:
        def freeze(d: dict[str, set[str]]) -> dict[str, frozenset[str]]:
            return {k: frozenset(v) for k, v in d.items() if v}
        return ChangeSet(freeze(self.added), freeze(self.modified), freeze(self.removed), full,
                         dict(self.objects))


class XapiSync:
    """Synchronises intent from xapi: a ChangeSet per batch, the latest `PoolState` when asked
    for. See the module docstring."""

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 30.0,
                 ignore_ssl: bool = False, ca_file: str | None = None,
                 rpc_timeout: float = 30.0, dump_timeout: float = 600.0,
                 originator: str = "netctl",
                 backoff_initial: float = 0.1, backoff_max: float = 10.0,
                 on_changes: Callable[[ChangeSet], None] | None = None,
                 protocol: str = "auto", members: list[str] | None = None) -> None:
        """`timeout`: how long one `event.from` waits on the server for changes.
        `rpc_timeout`: how long any call may go without an answer beyond that (a silent,
        half-open connection is given up after `timeout + rpc_timeout`, then the sync logs in
        again and resyncs); `dump_timeout` for a full dump of a large pool. `ca_file` verifies
        an https pool master's certificate; `ignore_ssl` skips verification (explicitly).
        `protocol`: "auto" (JSON-RPC, XML-RPC if the server has none), "jsonrpc", "xmlrpc".
        `members`: more pool members' URLs to try when `url`'s is gone (the hosts' addresses
        are learnt from xapi too; `HOST_IS_SLAVE` is followed to the master: `PoolMembers`)."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        self.members = PoolMembers([url, *(members or [])])
        self.user, self.password = user, password
        self.protocol = protocol
        # the wire in use once a session exists ("jsonrpc" / "xmlrpc"); auto decides it on the
        # first login and keeps it
        self.wire: str | None = None if protocol == "auto" else protocol
        self.timeout = timeout
        self.rpc_timeout = rpc_timeout
        self.dump_timeout = dump_timeout
        self.ignore_ssl = ignore_ssl
        self.ca_file = ca_file
        self.originator = originator
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.on_changes = on_changes  # per batch, in the sync's thread; no snapshot is built
        self.token = ""
        self._pool: Pool | None = None
        self._snapshot: PoolState | None = PoolState()
        # the snapshot's map per class, kept until that class changes: a batch of VIF events
        # rebuilds the VIF map only, not every class's (3 ms -> ~1 ms per batch at 64 x 1000)
        self._maps: dict[str, FrozenRefMap] = {}
        # objects, maps and snapshot change together: `state` may be read from other threads
        self._state_lock = threading.RLock()
        self.full_syncs = 0  # how many times a full dump was read (first sync included)
        self.reconnects = 0
        self._records: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in SYNC_CLASSES}
        self._objects: dict[str, dict[str, Any]] = {c: {} for c in STATE_FIELD}
        # tunnel uuid -> ref, kept with the tunnel objects: write_tunnel_status is given uuids
        self._tunnel_refs: dict[str, str] = {}
        self._session: Session | None = None
        self._writer: Session | None = None
        self._writer_lock = threading.Lock()
        self._cond = threading.Condition()  # notified after every batch (wait_for)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The pool member the sync talks to (the master, once it has logged in)."""
        return self.members.current

    @property
    def state(self) -> PoolState:
        """The latest snapshot, built when asked for (the sync itself keeps objects per class
        and never copies the pool per batch: at 64 hosts x 1000 VIFs that copy would cost more
        than the batch)."""
        with self._state_lock:
            snap = self._snapshot
            if snap is None:
                maps = self._maps
                for c, objs in self._objects.items():
                    if c not in maps:
                        maps[c] = FrozenRefMap(objs)
                snap = self._snapshot = PoolState(
                    pool=self._pool, **{STATE_FIELD[c]: m for c, m in maps.items()})
            return snap

    # --- lifecycle ------------------------------------------------------------------------

    def _new_session(self, reader: bool = False) -> Session:
        """A logged-in session on the pool's master: a member that says `HOST_IS_SLAVE` is
        left for the master it names (at most once per member, so two slaves naming each
        other cannot loop)."""
        for _ in range(len(self.members.urls) + 1):
            try:
                session = self._login(reader)
            except XenAPI.Failure as exc:
                details = list(exc.details or [])
                if details[:1] != ["HOST_IS_SLAVE"] or len(details) < 2:
                    raise
                was = self.url
                now = self.members.follow(str(details[1]))
                if now is None:  # a stale slave names a master that failed this round
                    raise ConnectionError(f"xapi at {was} is a slave of {details[1]}, which "
                                          "did not answer") from None
                log.info("xapi at %s is a pool slave; the master is at %s: going there", was,
                         now)
                continue
            if reader:
                self.members.logged_in()
            return session
        raise XenAPI.Failure(["HOST_IS_SLAVE", "no member named a master that answers"])

    def _login(self, reader: bool) -> Session:
        """A logged-in session on the wire in use (deciding it on the first login in auto
        mode) at the member in use. `reader`: the session that reads event.from (its
        snapshots are projected while they are decoded)."""
        if self.wire != "xmlrpc":
            session = JsonRpcSession(self.url, timeout=self.rpc_timeout, ca_file=self.ca_file,
                                     ignore_ssl=self.ignore_ssl,
                                     object_hook=_shrink_event if reader else None)
            try:
                session.xenapi.login_with_password(self.user, self.password, "1.0",
                                                   self.originator)
            except JsonRpcUnavailable as exc:
                session.close()
                if self.wire == "jsonrpc":  # forced, or auto once JSON-RPC has worked
                    raise
                log.info("xapi at %s serves no JSON-RPC (%s %s): using XML-RPC", self.url,
                         exc.errcode, exc.errmsg)
                self.wire = "xmlrpc"
            except BaseException:
                session.close()
                raise
            else:
                self.wire = "jsonrpc"
                return session
        transport = make_transport(self.url, self.rpc_timeout, self.ca_file, self.ignore_ssl,
                                   struct_hook=_shrink_event if reader else None)
        xml = XenAPI.Session(self.url, transport=transport)
        xml.xenapi.login_with_password(self.user, self.password, "1.0", self.originator)
        return xml

    @staticmethod
    def _drop(session: Session | None) -> None:
        """Close a session's connection without logging out (the server may be gone)."""
        if session is not None and session.transport is not None:
            with contextlib.suppress(Exception):
                session.transport.close()

    def connect(self) -> None:
        """Log in and read everything (token "")."""
        self._close_session()
        self._session = self._new_session(reader=True)
        self._resync()
        self._learn_members()

    def _learn_members(self) -> None:
        """Every host's address is a member to try when the master is gone."""
        with self._state_lock:
            addresses = [h.address for h in self._objects["host"].values()]
        self.members.learn(addresses)

    def start(self) -> XapiSync:
        """Run the sync loop in a daemon thread (connects, retries with backoff)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="xapi-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake_server()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_session()
        with self._writer_lock:
            if self._writer is not None:
                try:
                    self._writer.xenapi.session.logout()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
                self._drop(self._writer)
                self._writer = None

    def _close_session(self) -> None:
        if self._session is not None:
            try:
                self._session.xenapi.session.logout()
            except Exception:  # noqa: BLE001 - the server may be gone
                pass
            self._drop(self._session)
            self._session = None

    def _wake_server(self) -> None:
        """Unblock our pending event.from: inject an event on the pool (xapi's barrier)."""
        pool = self._pool
        if pool is None:
            return
        try:
            self._call_writer(lambda s: s.xenapi.event.inject("pool", pool.ref))
        except Exception:  # noqa: BLE001 - nothing to wake if the server is gone
            pass

    def _run(self) -> None:
        delay = self.backoff_initial
        while not self._stop.is_set():
            try:
                if self._session is None:
                    self.connect()
                    delay = self.backoff_initial
                if "host" in self.step().classes:
                    self._learn_members()
            except XenAPI.Failure as exc:
                self._reset_after_error()
                details = list(exc.details or [])
                if details[:1] == ["HOST_IS_SLAVE"] and len(details) > 1:
                    # the master moved under a session we had (pool.designate_new_master)
                    was, now = self.url, self.members.follow(str(details[1]))
                    if now is not None:
                        log.info("xapi at %s is a pool slave now; the master is at %s", was,
                                 now)
                        continue
                    self.members.failed()
                log.warning("xapi refused the sync: %s; retrying in %.1fs", exc.details, delay)
            except CONNECTION_ERRORS as exc:
                was = self.url
                self._reset_after_error()
                if len(self.members.urls) > 1:
                    now = self.members.failed()
                    log.warning("xapi at %s unreachable (%s); trying the pool member at %s%s",
                                was, exc, now, "" if self.members.wrapped else " now")
                    if not self.members.wrapped:
                        continue  # one round over the members, then back off
                else:
                    log.info("xapi unreachable (%s); reconnecting in %.1fs", exc, delay)
            else:
                continue
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max)

    def _reset_after_error(self) -> None:
        self._drop(self._session)
        self._session = None
        self.reconnects += 1
        with self._writer_lock:
            self._drop(self._writer)
            self._writer = None

    # --- the protocol -----------------------------------------------------------------------

    def _event_from(self, token: str, timeout: float) -> dict[str, Any]:
        assert self._session is not None
        transport = self._session.transport
        # The server may rightly stay silent for `timeout` (and a full dump of a large pool
        # takes a while to build); past that, the connection is taken as dead.
        limit = self.dump_timeout if token == "" else timeout + self.rpc_timeout
        transport.set_timeout(limit)
        try:  # snapshots arrive projected: both readers decode with _shrink_event
            return self._session.xenapi.event_from(list(SYNC_CLASSES), token, float(timeout))
        finally:
            transport.set_timeout(self.rpc_timeout)

    def step(self) -> ChangeSet:
        """One event.from round from the current token; publishes and returns the changes."""
        result = self._event_from(self.token, self.timeout)
        builder = _Builder()
        self._apply(result["events"], builder)
        self.token = result["token"]
        counts = result.get("valid_ref_counts", {})
        lost = [c for c in SYNC_CLASSES
                if c.lower() in counts and int(counts[c.lower()]) != len(self._records[c])]
        if lost:
            log.info("object counts differ from xapi for %s (lost deletes): full resync",
                     ", ".join(lost))
            return self._resync(builder)
        changes = builder.build()
        if changes:
            self._publish(changes)
        return changes

    def _resync(self, builder: _Builder | None = None) -> ChangeSet:
        """Read everything again (token "") and publish the difference to what we had."""
        builder = builder or _Builder()
        result = self._event_from("", 0.0)  # decoded with the GC paused by the session
        self.full_syncs += 1
        with gc_paused():
            fresh: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in SYNC_CLASSES}
            for ev in result["events"]:
                cls = _BY_LOWER.get(ev["class"])
                if cls is not None:
                    fresh[cls][ev["ref"]] = ev["snapshot"]
            token = result["token"]
            del result
            # what differs from the records we had: gone, new, or another (projected) record
            touched: dict[str, set[str]] = {}
            for cls, new in fresh.items():
                old = self._records[cls]
                if old:
                    changed = old.keys() - new.keys()
                    changed.update(ref for ref, rec in new.items() if old.get(ref) != rec)
                else:
                    changed = set(new)
                if changed:
                    touched[cls] = changed
                self._records[cls] = new
            del fresh
            self._convert(touched, builder)
        self.token = token
        changes = builder.build(full=True)
        self._publish(changes)
        return changes

    def _apply(self, events: list[dict[str, Any]], builder: _Builder) -> None:
        """One batch of event.from events: update the records, then the model objects."""
        touched: dict[str, set[str]] = {}
        for ev in events:
            cls = _BY_LOWER.get(ev["class"])
            if cls is None:
                continue
            ref, op = ev["ref"], ev["operation"]
            records = self._records[cls]
            if op == "del":
                if records.pop(ref, None) is not None:
                    touched.setdefault(cls, set()).add(ref)
            else:
                records[ref] = ev["snapshot"]
                touched.setdefault(cls, set()).add(ref)
        self._convert(touched, builder)

    def _convert(self, touched: dict[str, set[str]], builder: _Builder) -> None:
        """Bring the model objects of the `touched` refs (by class) in line with their
        records, noting what was added, modified or removed."""
        with self._state_lock:
            self._convert_locked(touched, builder)

    def _convert_locked(self, touched: dict[str, set[str]], builder: _Builder) -> None:
        # host_metrics only feeds Host.live: re-convert the hosts that point at them
        metrics = touched.pop("host_metrics", set())
        if metrics:
            for href, rec in self._records["host"].items():
                if rec.get("metrics") in metrics:
                    touched.setdefault("host", set()).add(href)
        dirty: set[str] = set()
        note = builder.note
        host_metrics = self._records["host_metrics"]
        for cls, refs in touched.items():
            if cls == "pool":
                pools = self._records["pool"]
                pool: Pool | None = None
                if pools:
                    pref, prec = next(iter(pools.items()))
                    pool = to_model("pool", pref, prec)  # type: ignore[assignment]
                old_pool = self._pool
                for ref in refs:
                    kind = self._kind(old_pool, ref, pools)
                    note(kind, "pool", ref,
                         old_pool if old_pool is not None and old_pool.ref == ref else None,
                         pool if pool is not None and pool.ref == ref else None)
                self._pool = pool
                dirty.add(cls)
                continue
            objs = self._objects[cls]
            records = self._records[cls]
            convert = CONVERTERS.get(cls)  # None for host (it needs its metrics)
            for ref in refs:
                rec = records.get(ref)
                old = objs.get(ref)
                if rec is None:
                    if old is not None:
                        del objs[ref]
                        if cls == "tunnel":
                            self._forget_tunnel(old)
                        note("removed", cls, ref, old, None)
                        dirty.add(cls)
                    continue
                obj = (convert(ref, rec) if convert is not None
                       else to_model(cls, ref, rec, host_metrics))
                if old is None:
                    note("added", cls, ref, None, obj)
                elif old != obj:
                    note("modified", cls, ref, old, obj)
                else:
                    continue
                objs[ref] = obj
                if cls == "tunnel":
                    if old is not None:
                        self._forget_tunnel(old)
                    self._tunnel_refs[obj.uuid] = ref
                dirty.add(cls)
        if dirty:
            for cls in dirty:
                self._maps.pop(cls, None)
            self._snapshot = None

    def _forget_tunnel(self, tunnel: Any) -> None:
        if self._tunnel_refs.get(tunnel.uuid) == tunnel.ref:
            del self._tunnel_refs[tunnel.uuid]

    @staticmethod
    def _kind(old_pool: Pool | None, ref: str, pools: Mapping[str, Any]) -> str:
        if ref not in pools:
            return "removed"
        return "modified" if old_pool is not None and old_pool.ref == ref else "added"

    def _publish(self, changes: ChangeSet) -> None:
        """Hand a batch to the consumer's callback, then wake `wait_for`. Nothing is kept: the
        snapshot is built only when someone reads `state`)."""
        try:
            if self.on_changes is not None:
                self.on_changes(changes)
        finally:
            with self._cond:
                self._cond.notify_all()

    # --- consumers ------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[PoolState], bool], timeout: float = 10.0
                 ) -> PoolState:
        """The first state (current or future) satisfying `predicate`; TimeoutError if none."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(state := self.state):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the pool state did not reach the expected condition")
                self._cond.wait(remaining)
            return state  # the one that satisfied it (a later batch may have moved on)

    # --- writing back what the controller owns ----------------------------------------------

    def _call_writer(self, fn: Callable[[Session], Any]) -> Any:
        with self._writer_lock:
            if self._writer is None:
                self._writer = self._new_session()
            try:
                return fn(self._writer)
            except CONNECTION_ERRORS:
                self._drop(self._writer)
                self._writer = None
                raise

    @property
    def connected(self) -> bool:
        """Whether the sync holds a session with the pool master now."""
        return self._session is not None

    def write_tunnel_status(self, tunnel: str, *, active: bool, key: str | int | None = None,
                            error: str | None = None) -> bool:
        """Set tunnel.status (`active`, `key`, `error`) as the tunnelling design asks of a
        controller. `tunnel` is a ref or a uuid. Returns False when it already says that."""
        status = {"active": "true" if active else "false"}
        if key is not None:
            status["key"] = str(key)
        if error:
            status["error"] = error
        ref = tunnel
        if not tunnel.startswith("OpaqueRef:"):  # a uuid: ours if we know it, else xapi's
            known = self._tunnel_refs.get(tunnel)
            ref = known if known is not None else \
                self._call_writer(lambda s: s.xenapi.tunnel.get_by_uuid(tunnel))
        current = self._objects["tunnel"].get(ref)
        if current is not None and dict(current.status) == status:
            return False
        if ref == NULL_REF:
            raise ValueError("no tunnel given")
        self._call_writer(lambda s: s.xenapi.tunnel.set_status(ref, status))
        return True
