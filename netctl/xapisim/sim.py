"""The xapi simulator's API layer: sessions, dispatch, generated accessors, events, tasks.

`Simulator.call(method, params)` is the whole API, independent of the wire: the HTTP server
(`netctl.xapisim.server`) decodes XML-RPC or JSON-RPC into it and encodes what comes back.
Dispatch follows xapi's order (spec §1.4): name (`Class.message` or `Class_message`, or
`Async.Class.message`), then parameter count (`MESSAGE_PARAMETER_COUNT_MISMATCH`, session
excluded), then unmarshalling, then the session (`SESSION_INVALID`), then the implementation.
Every class of `netctl.xapisim.schema` gets its generated messages; the methods with side
effects live in `netctl.xapisim.methods` and override the generated ones of the same name.

`Async.<call>` (and `InternalAsync.`) runs the call on a thread of its own and returns a
`task` at once; the task is a row like any other, so it appears, changes and goes away
through `event.from` as in xapi: `pending` with progress 0, then `success` (progress 1,
`result` = the value as XML, what xapi stores) or `failure` (`error_info` = the error), kept
until the client calls `task.destroy`. Calls xapi has no async form of (getters, setters,
`session.*`, `event.*`, `task.*` but `cancel`) fail with `["Fault", "No async mode for this
operation (rpc: <name>)"]`.

Imports go one way: sim -> methods, seed -> store, schema; nothing below imports sim.

Test hooks: `invalidate_session(ref)`, `invalidate_all_sessions()`.

Pool roles (issue 19): every host may have an endpoint of its own (`netctl.xapisim.members`);
`call(..., on_host=ref)` says which host's endpoint a call came in on. The master is
`pool.master`; a slave answers only `SLAVE_CALLS` and fails everything else with
`["HOST_IS_SLAVE", <master address>]`, as xapi does for a client that is not on the master
(xapi's check is in `session.login_with_password` and the session check; here it is one check
at dispatch, because every session a client can hold is the master's or a slave-local one).
Sessions from `session.slave_local_login_with_password` on a member are valid on that member
only. `pool.designate_new_master`, `pool.emergency_transition_to_master`,
`pool.emergency_reset_master` and `pool.recover_slaves` move the master as xapi's
`xapi_pool.ml`/`xapi_pool_transition.ml` do, with the differences documented on each.
The plain endpoint of `serve()` (`on_host=None`) is no member: it is always the master's.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netctl.xapisim import methods
from netctl.xapisim.codec import DateTime, Int32, xml_value
from netctl.xapisim.errors import XapiError
from netctl.xapisim.schema import CLASSES, MANDATORY, NULL_REF, ClassDef, Field, coerce
from netctl.xapisim.seed import seed
from netctl.xapisim.store import TOMBSTONE_CAP, TOMBSTONE_KEEP, Store

DEFAULT_USERS = {"root": "netctl"}
Handler = Callable[..., Any]


@dataclass(frozen=True)
class Method:
    """One wire method: parameter types after the session, how many may be left out."""

    name: str
    params: tuple[str, ...]
    handler: Handler
    optional: int = 0  # trailing params with defaults
    session: bool = True  # first wire param is the session ref
    has_async: bool = False  # `Async.<name>` is served (xapi: custom calls, create, destroy)

    @property
    def max_params(self) -> int:
        return len(self.params)

    @property
    def min_params(self) -> int:
        return len(self.params) - self.optional


@dataclass
class SessionInfo:
    ref: str
    user: str
    originator: str
    valid: bool = True
    # slave-local session: the host whose xapi holds it (valid on that host's endpoint only);
    # None: a pool session, held by the master (it ends when the master moves)
    local_to: str | None = None


@dataclass(frozen=True)
class Caller:
    """Where the running call came in: the member host whose endpoint took it (None: the
    plain `serve()` endpoint, always the master's) and that endpoint's stop signal, which
    ends its blocked `event.from` calls without touching other endpoints'."""

    host: str | None = None
    closed: threading.Event | None = None


_PLAIN = Caller()

# What a slave answers itself (xapi's `Datamodel.whitelist` and emergency calls that the
# simulator serves, plus the session-less `system.listMethods`); anything else on a slave
# fails with HOST_IS_SLAVE. `pool.recover_slaves` is an emergency call in xapi too, but run on
# a slave it would point every host at a host that is not master: refused here.
SLAVE_CALLS = frozenset({
    "session.slave_local_login_with_password", "session.local_logout", "system.listMethods",
    "pool.emergency_transition_to_master", "pool.emergency_reset_master",
})


class Simulator:
    """A xapi pool master in memory. Thread-safe; one lock for the whole database."""

    def __init__(self, users: dict[str, str] | None = None, *,
                 tombstone_cap: int = TOMBSTONE_CAP, tombstone_keep: int = TOMBSTONE_KEEP,
                 event_delay: float = 0.05) -> None:
        self.store = Store(tombstone_cap, tombstone_keep)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.sessions: dict[str, SessionInfo] = {}
        self.event_delay = event_delay
        self.methods: dict[str, Method] = {}
        self.bridge_counter = 0
        self.next_domid: dict[str, int] = {}  # host -> next domain id (Xen counts up per host)
        self._closed = threading.Event()
        self._local = threading.local()  # .caller: the Caller of this thread's running call
        # member host -> its endpoint is running (absent: the host has no endpoint)
        self.endpoints: dict[str, bool] = {}
        # member host -> the master address it still believes in after an emergency
        # transition nobody told it about (absent: it knows the pool master)
        self.stale_master: dict[str, str] = {}
        # `simulator.*` test controls, served on the plain endpoint only (never on a member,
        # never in system.listMethods): see `netctl.xapisim.members.install_control`
        self.control: dict[str, Method] = {}
        for cdef in CLASSES.values():
            self._generate(cdef)
        self._register_core()
        methods.register(self)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def from_topology(cls, topology: Any, **kwargs: Any) -> Simulator:
        """A simulator holding the pool a `netctl.topology.Topology` describes."""
        sim = cls(**kwargs)
        seed(sim.store, topology)
        return sim

    def add(self, name: str, params: tuple[str, ...], handler: Handler, optional: int = 0,
            session: bool = True, has_async: bool = False) -> None:
        self.methods[name] = Method(name, params, handler, optional, session, has_async)

    # --- test hooks -------------------------------------------------------------------------

    def invalidate_session(self, ref: str) -> None:
        """Make a session stale (as if it expired): its next call gets SESSION_INVALID."""
        with self.store.lock:
            info = self.sessions.pop(ref, None)
            if info is not None:
                info.valid = False
            self.store.changed.notify_all()

    def invalidate_all_sessions(self) -> None:
        with self.store.lock:
            for ref in list(self.sessions):
                self.invalidate_session(ref)

    def close(self) -> None:
        """Wake every blocked event.from so server threads can finish."""
        self._closed.set()
        self.wake()

    def wake(self) -> None:
        """Wake blocked event.from calls to look at their endpoint's stop signal."""
        with self.store.lock:
            self.store.changed.notify_all()

    def reopen(self) -> None:
        self._closed.clear()

    # --- dispatch ---------------------------------------------------------------------------

    def resolve(self, name: str) -> Method | None:
        method = self.methods.get(name)
        if method is not None:
            return method
        # Alternative wire name Class_message (event_from, VIF_set_locking_mode...)
        for cls in CLASSES.keys() | {"session", "event", "system"}:
            if name.startswith(cls + "_"):
                method = self.methods.get(f"{cls}.{name[len(cls) + 1:]}")
                if method is not None:
                    return method
        return None

    def call(self, name: str, params: list[Any], on_host: str | None = None,
             closed: threading.Event | None = None) -> Any:
        """Run one API call; returns its value (a task ref for `Async.`) or raises XapiError.
        `on_host`: the member host whose endpoint took the call (None: the plain endpoint);
        `closed`: set when that endpoint stops (ends the call if it is a blocked event.from)."""
        self._local.caller = Caller(on_host, closed)
        try:
            return self._call(name, params, on_host)
        finally:
            self._local.caller = _PLAIN

    def caller(self) -> Caller:
        """Where this thread's running call came in (the plain endpoint outside a call)."""
        return getattr(self._local, "caller", _PLAIN)

    def _call(self, name: str, params: list[Any], on_host: str | None) -> Any:
        called, is_async = split_async(name)
        method = self.methods.get(called) if is_async else self.resolve(called)
        if on_host is None and not is_async and called in self.control:
            method = self.control[called]
        if on_host is not None:
            with self.store.lock:
                if on_host != self.master() and (
                        is_async or method is None or method.name not in SLAVE_CALLS):
                    raise XapiError("HOST_IS_SLAVE", self.master_address(on_host))
        if method is None:
            if params:
                self._session(params[0], on_host)
            raise XapiError("MESSAGE_METHOD_UNKNOWN", called)
        given = len(params) - (1 if method.session else 0)
        if not method.min_params <= given <= method.max_params:
            raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", called, method.max_params,
                            max(given, 0))
        args = params[1:] if method.session else list(params)
        values = [coerce(t, v) for t, v in zip(method.params, args, strict=False)]
        if not method.session:
            return method.handler(*values)
        session = self._session(params[0], on_host)
        if is_async:
            if not method.has_async:
                raise XapiError("Fault", f"No async mode for this operation (rpc: {called})")
            return self._run_as_task(name, session, method, values)
        return method.handler(session, *values)

    # --- tasks (Async.*) ----------------------------------------------------------------------

    def _run_as_task(self, label: str, session: SessionInfo, method: Method,
                     values: list[Any]) -> str:
        """Create the task, run the call on a thread, return the task ref at once."""
        store = self.store
        with store.lock:
            pools = store.refs("pool")
            master = store.get("pool", pools[0], "master") if pools else NULL_REF
            task = store.insert("task", {"name_label": label, "created": now(),
                                         "resident_on": master})

        def run() -> None:
            try:
                result = method.handler(session, *values)
            except XapiError as err:
                self.finish_task(task, error=err.description)
            except Exception as exc:  # noqa: BLE001 - xapi reports any failure on the task
                self.finish_task(task, error=["INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"])
            else:
                self.finish_task(task, result=result)

        threading.Thread(target=run, name=f"xapi-task:{label}", daemon=True).start()
        return task

    def finish_task(self, task: str, result: Any = None, error: list[str] | None = None
                    ) -> None:
        """Complete a task as xapi's TaskHelper does: status, progress 1, finished, and the
        result (as XML) or the error; a task whose destroy was asked for while it ran goes."""
        store = self.store
        with store.lock:
            if not store.exists("task", task):
                return
            if store.get("task", task, "status") != "pending":
                return
            done: dict[str, Any] = {"progress": 1.0, "finished": now(), "allowed_operations": []}
            if error is None:
                done.update(status="success", result=xml_value(result))
            else:
                done.update(status="failure", error_info=list(error))
            store.update("task", task, **done)
            if "destroy" in store.get("task", task, "current_operations").values():
                store.delete("task", task)

    def _session(self, ref: Any, on_host: str | None = None) -> SessionInfo:
        """The valid session `ref` on this endpoint: a slave-local session only on its own
        host's, a pool session only on the master's (on a slave, xapi's session check turns a
        session it does not hold into HOST_IS_SLAVE)."""
        info = self.sessions.get(ref) if isinstance(ref, str) else None
        if info is None or not info.valid or info.local_to not in (None, on_host):
            raise XapiError("SESSION_INVALID", ref)
        if info.local_to is None and on_host is not None:
            with self.store.lock:
                if on_host != self.master():
                    raise XapiError("HOST_IS_SLAVE", self.master_address(on_host))
        return info

    # --- generated messages (spec §1.5) -------------------------------------------------------

    def _generate(self, cdef: ClassDef) -> None:
        c = cdef.name
        store = self.store

        def locked(fn: Handler) -> Handler:
            def run(*args: Any) -> Any:
                with store.lock:
                    return fn(*args)
            return run

        self.add(f"{c}.get_record", ("r",), locked(lambda s, ref: store.record(c, ref)))
        self.add(f"{c}.get_all", (), locked(lambda s: store.refs(c)))
        self.add(f"{c}.get_all_records", (),
                 locked(lambda s: {r: store.record(c, r) for r in store.refs(c)}))
        self.add(f"{c}.get_all_where", ("s",),
                 locked(lambda s, expr: [r for r in store.refs(c)
                                         if where(expr, store.row(c, r).fields, cdef)]))
        self.add(f"{c}.get_all_records_where", ("s",),
                 locked(lambda s, expr: {r: store.record(c, r) for r in store.refs(c)
                                         if where(expr, store.row(c, r).fields, cdef)}))
        self.add(f"{c}.get_by_uuid", ("s",), locked(lambda s, u: store.ref_of_uuid(c, u)))
        if cdef.has_name_label:
            self.add(f"{c}.get_by_name_label", ("s",),
                     locked(lambda s, label: store.find(c, name_label=label)))
        for f in cdef.fields:
            self._field_messages(cdef, f, locked)
        if cdef.gen_constructor:
            self.add(f"{c}.create", ("m*",), locked(lambda s, rec: self.generic_create(c, rec)),
                     has_async=True)
            self.add(f"{c}.destroy", ("r",), locked(lambda s, ref: self.generic_destroy(c, ref)),
                     has_async=True)

    def _field_messages(self, cdef: ClassDef, f: Field, locked: Callable[[Handler], Handler]
                        ) -> None:
        c, store, name = cdef.name, self.store, f.name
        self.add(f"{c}.get_{name}", ("r",), locked(lambda s, ref: store.record(c, ref)[name]))
        if not f.rw:
            return

        def set_(s: SessionInfo, ref: str, value: Any) -> None:
            store.row(c, ref)
            store.update(c, ref, **{name: coerce(f.type, value)})

        self.add(f"{c}.set_{name}", ("r", "*"), locked(set_))
        if f.is_map:
            def add_to(s: SessionInfo, ref: str, key: str, value: str) -> None:
                current = store.get(c, ref, name)
                if not key:
                    raise XapiError("INVALID_VALUE", name, key)
                if key in current:
                    raise XapiError("MAP_DUPLICATE_KEY", c, name, ref, key)
                store.update(c, ref, **{name: {**current, key: value}})

            def remove_from(s: SessionInfo, ref: str, key: str) -> None:
                current = dict(store.get(c, ref, name))
                if key in current:
                    del current[key]
                    store.update(c, ref, **{name: current})

            self.add(f"{c}.add_to_{name}", ("r", "s", "s"), locked(add_to))
            self.add(f"{c}.remove_from_{name}", ("r", "s"), locked(remove_from))
        elif f.is_set:
            item = "i" if f.type == "I" else "s"

            def add_item(s: SessionInfo, ref: str, value: Any) -> None:
                current = store.get(c, ref, name)
                if value not in current:
                    store.update(c, ref, **{name: [*current, value]})

            def remove_item(s: SessionInfo, ref: str, value: Any) -> None:
                current = store.get(c, ref, name)
                if value in current:
                    store.update(c, ref, **{name: [v for v in current if v != value]})

            self.add(f"{c}.add_{name}", ("r", item), locked(add_item))
            self.add(f"{c}.remove_{name}", ("r", item), locked(remove_item))

    def generic_create(self, c: str, record: dict[str, Any]) -> str:
        """create(record): all RW and RO/constructor fields; a missing one without default
        fails as xapi's generated code does."""
        cdef = CLASSES[c]
        values: dict[str, Any] = {}
        for f in cdef.fields:
            if f.qualifier not in ("RW", "RO/c"):
                continue
            if f.name in record:
                values[f.name] = coerce(f.type, record[f.name])
            elif f.default is MANDATORY:
                raise XapiError("INTERNAL_ERROR",
                                f'Server_helpers.Dispatcher_FieldNotFound("{f.name}")')
        for fld in values:
            ref_cls = cdef.field(fld).ref_class if cdef.field(fld) else None
            if (ref_cls in CLASSES and cdef.field(fld).type.startswith("r:")
                    and values[fld] != NULL_REF):
                self.store.row(ref_cls, values[fld])
        return self.store.insert(c, values)

    def generic_destroy(self, c: str, ref: str) -> str:
        self.store.row(c, ref)
        self.store.delete(c, ref)
        return ""

    # --- session, system, event ---------------------------------------------------------------

    def _register_core(self) -> None:
        self.add("session.login_with_password", ("s", "s", "s", "s"), self._login, optional=2,
                 session=False)
        self.add("session.slave_local_login_with_password", ("s", "s"), self._local_login,
                 session=False)
        self.add("session.logout", (), self._logout)
        self.add("session.local_logout", (), self._logout)
        self.add("session.get_this_host", ("r",), self._this_host)
        self.add("session.get_this_user", ("r",), lambda s, ref: "")
        self.add("system.listMethods", (), lambda: sorted(self.methods), session=False)
        self.add("event.from", ("S", "s", "f"), self._event_from)
        self.add("event.inject", ("s", "s"), self._event_inject)
        self.add("event.get_current_id", (), lambda s: self.store.generation)
        self.add("pool.designate_new_master", ("r",), self._designate_new_master,
                 has_async=True)
        self.add("pool.emergency_transition_to_master", (),
                 self._emergency_transition_to_master)
        self.add("pool.emergency_reset_master", ("s",), self._emergency_reset_master)
        self.add("pool.recover_slaves", (), self._recover_slaves, has_async=True)

    def _login(self, user: str, password: str, version: str = "1.1", originator: str = "",
               local_to: str | None = None) -> str:
        if self.users.get(user) != password:
            raise XapiError("SESSION_AUTHENTICATION_FAILED", user,
                            "Authentication failure")
        ref = f"OpaqueRef:{uuidlib.uuid4()}"
        with self.store.lock:
            self.sessions[ref] = SessionInfo(ref, user, originator, local_to=local_to)
        return ref

    def _local_login(self, user: str, password: str) -> str:
        """A session of the host whose endpoint took the call (on the plain endpoint: a pool
        session, as before members existed)."""
        return self._login(user, password, local_to=self.caller().host)

    def _logout(self, session: SessionInfo) -> str:
        self.invalidate_session(session.ref)
        return ""

    def _this_host(self, session: SessionInfo, ref: str) -> str:
        if ref != session.ref:
            raise XapiError("HANDLE_INVALID", "session", ref)
        return session.local_to or self.master()

    def _event_from(self, session: SessionInfo, classes: list[str], token: str,
                    timeout: float) -> dict[str, Any]:
        since = parse_token(token)
        subs = subscriptions(classes)
        if math.isnan(timeout) or timeout < 0 or timeout > 86400:
            timeout = 86400.0
        deadline = time.monotonic() + timeout
        store = self.store
        endpoint = self.caller().closed or threading.Event()

        def closed() -> bool:
            return self._closed.is_set() or endpoint.is_set()

        while True:
            if self.event_delay:  # xapi batches: it waits before scanning (event_from_delay)
                time.sleep(self.event_delay)
            with store.lock:
                if not session.valid:
                    raise XapiError("SESSION_INVALID", session.ref)
                events, last = store.scan(subs, since)
                now = time.monotonic()
                if events or now >= deadline or closed():
                    counts = {k: Int32(v) for k, v in store.counts().items()}
                    return {"events": events, "valid_ref_counts": counts,
                            "token": f"{last:020d},{0:020d}"}
                seen = store.generation
                while (store.generation == seen and session.valid and now < deadline
                       and not closed()):
                    store.changed.wait(deadline - now)
                    now = time.monotonic()

    def _event_inject(self, session: SessionInfo, cls: str, ref: str) -> str:
        if cls not in CLASSES or not self.store.exists(cls, ref):
            raise XapiError("HANDLE_INVALID", cls, ref)
        gen = self.store.touch(cls, ref)
        return f"{gen - 1:020d},{0:020d}"

    # --- pool roles: which host is master ------------------------------------------------------

    def master(self) -> str:
        """The pool master's host ref (`pool.master`)."""
        with self.store.lock:
            pools = self.store.refs("pool")
            return self.store.get("pool", pools[0], "master") if pools else NULL_REF

    def master_address(self, host: str | None = None) -> str:
        """The master address `host` answers HOST_IS_SLAVE with: the one it still believes
        in after an emergency transition it was not told of, else the pool master's."""
        with self.store.lock:
            if host is not None and host in self.stale_master:
                return self.stale_master[host]
            master = self.master()
            return self.store.get("host", master, "address") if master != NULL_REF else ""

    def member_running(self, host: str, running: bool) -> None:
        """A member endpoint started or stopped (called by its server). A host whose xapi
        starts again knows the current master: in xapi it would read a possibly stale
        pool.conf; the simulator has one database, so a second master cannot be modelled."""
        with self.store.lock:
            self.endpoints[host] = running
            if running:
                self.stale_master.pop(host, None)

    def _restart_hosts(self, hosts: set[str], pool_sessions: bool) -> None:
        """The sessions xapi loses when it restarts on `hosts` (their slave-local ones) and,
        with `pool_sessions`, when the master moves (the pool sessions it held)."""
        for ref, info in list(self.sessions.items()):
            if info.local_to in hosts or (pool_sessions and info.local_to is None):
                self.invalidate_session(ref)

    def _move_master(self, new: str, emergency: bool) -> None:
        """`pool.master` = new (an event on `pool`); every pool session ends (xapi restarts
        on both ends). After a designation every host knows the new master; after an
        emergency transition the other slaves still believe in the old one until
        `pool.recover_slaves` or `pool.emergency_reset_master` tells them."""
        store = self.store
        pool = store.refs("pool")[0]
        old = store.get("pool", pool, "master")
        old_address = store.get("host", old, "address")
        store.update("pool", pool, master=new)
        if emergency:
            for host in store.refs("host"):
                if host not in (new, old):
                    self.stale_master.setdefault(host, old_address)
            self.stale_master.pop(new, None)
            self.stale_master.pop(old, None)
        else:
            self.stale_master.clear()
        self._restart_hosts({old, new}, pool_sessions=True)

    def _assert_ha_disabled(self) -> None:
        pool = self.store.refs("pool")[0]
        if self.store.get("pool", pool, "ha_enabled"):
            raise XapiError("HA_IS_ENABLED")

    def _designate_new_master(self, session: SessionInfo, host: str) -> str:
        """xapi: a no-op when `host` is the master already; HA_IS_ENABLED with HA on; its
        two-phase commit proposes to every host first and gives up if one cannot be reached
        (here: a member whose endpoint is stopped, reported as CANNOT_CONTACT_HOST [host])."""
        store = self.store
        with store.lock:
            store.row("host", host)
            if host == self.master():
                return ""
            self._assert_ha_disabled()
            for other in store.refs("host"):
                if self.endpoints.get(other) is False:
                    raise XapiError("CANNOT_CONTACT_HOST", other)
            self._move_master(host, emergency=False)
        return ""

    def _emergency_transition_to_master(self, session: SessionInfo) -> str:
        """The slave this call came in on becomes the master. xapi checks nothing but HA and
        would let two masters run; the simulator has one database, so it refuses while the
        master's endpoint runs: OPERATION_NOT_ALLOWED (a choice, not xapi's). On the master
        (or the plain endpoint) there is nothing to do."""
        me = self.caller().host
        with self.store.lock:
            master = self.master()
            if me is None or me == master:
                return ""
            self._assert_ha_disabled()
            if self.endpoints.get(master):
                raise XapiError("OPERATION_NOT_ALLOWED",
                                f"the pool master {self.master_address()} is reachable: "
                                "use pool.designate_new_master")
            self._move_master(me, emergency=True)
        return ""

    def _emergency_reset_master(self, session: SessionInfo, master_address: str) -> str:
        """A slave takes `master_address` as its master (xapi restarts it if that changes
        its pool.conf, ending its slave-local sessions). On the master it would demote the
        only master of the simulator's single database: refused, OPERATION_NOT_ALLOWED."""
        me = self.caller().host
        with self.store.lock:
            self._assert_ha_disabled()
            master = self.master()
            if me is None or me == master:
                if master_address == self.store.get("host", master, "address"):
                    return ""
                raise XapiError("OPERATION_NOT_ALLOWED",
                                "the simulator cannot demote the pool master this way: "
                                "use pool.designate_new_master")
            if self.master_address(me) == master_address:
                return ""
            if master_address == self.master_address():
                self.stale_master.pop(me, None)
            else:
                self.stale_master[me] = master_address
            self._restart_hosts({me}, pool_sessions=False)
        return ""

    def _recover_slaves(self, session: SessionInfo) -> list[str]:
        """xapi: the master calls `pool.emergency_reset_master(<its address>)` on every other
        host and returns those it reached (built by prepending, so in reverse host order);
        here a host is reached when its member endpoint runs."""
        with self.store.lock:
            me = self.master()
            told = [h for h in reversed(self.store.refs("host"))
                    if h != me and self.endpoints.get(h)]
            for host in told:
                if self.stale_master.pop(host, None) is not None:
                    self._restart_hosts({host}, pool_sessions=False)
            return told


def now() -> DateTime:
    """The current time as xapi writes datetimes (`YYYYMMDDTHH:MM:SSZ`, UTC)."""
    return DateTime(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime()))


def split_async(name: str) -> tuple[str, bool]:
    """`Async.VM.start` -> (`VM.start`, True); xapi strips `Async.`/`InternalAsync.` first."""
    for prefix in ("Async.", "InternalAsync."):
        if name.startswith(prefix):
            return name[len(prefix):], True
    return name, False


_TOKEN_RE = re.compile(r"^(-?\d+),(-?\d+)$")


def parse_token(token: str) -> int:
    if token == "":
        return 0
    m = _TOKEN_RE.match(token)
    if not m:
        raise XapiError("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
    return int(m.group(1))


_LOWER = {name.lower(): name for name in CLASSES}


def subscriptions(classes: list[str]) -> dict[str, set[str] | None]:
    """Table -> subscribed refs (None = all) from `*`, `class`, `class/ref` (case-insensitive)."""
    out: dict[str, set[str] | None] = {}
    for sub in classes:
        if sub == "*":
            return dict.fromkeys(CLASSES)
        cls, _, ref = sub.partition("/")
        table = _LOWER.get(cls.lower())
        if table is None:
            continue
        if not ref:
            out[table] = None
        elif out.get(table, set()) is not None:
            out.setdefault(table, set()).add(ref)  # type: ignore[union-attr]
    return out


# --- get_all_records_where (spec §1.10) ------------------------------------------------------

_TOKENS = re.compile(r'\s*(?:(\()|(\))|(=)|"((?:[^"\\]|\\.)*)"|([A-Za-z_]+))')


def _db_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "(" + " ".join(f"'{v}'" for v in value) + ")"
    if isinstance(value, dict):
        return "(" + " ".join(f"('{k}' '{v}')" for k, v in value.items()) + ")"
    return str(value)


def where(expr: str, fields: dict[str, Any], cdef: ClassDef) -> bool:
    """Evaluate a db_filter expression against one row."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr.rstrip()):
        m = _TOKENS.match(expr, pos)
        if not m or m.end() == pos:
            raise XapiError("INTERNAL_ERROR", f"Parsing.Parse_error in {expr!r}")
        pos = m.end()
        if m.group(1):
            tokens.append(("(", "("))
        elif m.group(2):
            tokens.append((")", ")"))
        elif m.group(3):
            tokens.append(("=", "="))
        elif m.group(4) is not None:
            tokens.append(("str", m.group(4)))
        else:
            tokens.append(("word", m.group(5).lower()))
    i = 0

    def peek() -> tuple[str, str] | None:
        return tokens[i] if i < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(tokens):
            raise XapiError("INTERNAL_ERROR", f"Parsing.Parse_error in {expr!r}")
        i += 1
        return tokens[i - 1]

    def value() -> str:
        kind, text = take()
        if kind == "word" and text == "field":
            kind, col = take()
            name = col.replace("__", "_")
            if kind != "str" or name not in fields:
                raise XapiError("INVALID_VALUE", expr, f"Db_filter.Expression_error({col})")
            return _db_string(fields[name])
        if kind == "str":
            return text
        raise XapiError("INTERNAL_ERROR", f"Parsing.Parse_error in {expr!r}")

    def atom() -> bool:
        tok = peek()
        if tok == ("word", "not"):
            take()
            return not atom()
        if tok == ("word", "true"):
            take()
            return True
        if tok == ("word", "false"):
            take()
            return False
        if tok == ("(", "("):
            take()
            result = disj()
            if take() != (")", ")"):
                raise XapiError("INTERNAL_ERROR", f"Parsing.Parse_error in {expr!r}")
            return result
        left = value()
        if take() != ("=", "="):
            raise XapiError("INTERNAL_ERROR", f"Parsing.Parse_error in {expr!r}")
        return left == value()

    def conj() -> bool:
        result = atom()
        while peek() == ("word", "and"):
            take()
            result = atom() and result
        return result

    def disj() -> bool:
        result = conj()
        while peek() == ("word", "or"):
            take()
            result = conj() or result
        return result

    result = disj()
    if i != len(tokens):
        raise XapiError("INTERNAL_ERROR", f"Parsing.Parse_error in {expr!r}")
    return result
