"""What `netctl status` shows, gathered from a running `netctl run` and served as JSON on /status
(`netctl.service.metrics`).

At 64 hosts x 1000 VIFs the whole status is some 70,000 rows and half a second of work, while a
person asks about one thing at a time: the pool at a glance, or one host, VM or network. So
/status answers in three ways (`snapshot`, from the query string; `view` in each answer says
which):

- `/status` — the summary (`view: summary`): `xapi` (URL, connected, full syncs, reconnects);
  `counts` (hosts, hosts_connected, vms, vifs, networks, pifs, bonds, vlans, tunnels, bridges,
  switches, switches_with_table, flows, problems); `hosts`, one row each (name, uuid, OVSDB
  endpoint, connected, error, bridges, applies, operations, resident `vms` and `vifs`
  counted); `bonds` with each member's link and LACP state; `tunnels` with their
  `tunnel.status`; `switches` (every OpenFlow switch, its ports and netctl flows); `flows` (the
  OpenFlow sink's counters); `engine` (nodes, rounds, hosts_rebuilt, bridges_rebuilt,
  vif_updates); `problems` (the first `PROBLEMS_SHOWN`) with `problems_total`; `export`, the
  flow export targets (NetFlow, IPFIX, sFlow) with their settings, bridges, hosts and
  networks (`netctl.service.export_view`; a query's: on its hosts); `mirrors`, the port
  mirrors with their source, ports, output and OVS statistics (`netctl.service.mirror_view`;
  a query's: on its hosts). While the pool
  holds at most `SUMMARY_VIFS` VIFs (a lab, a small pool: the demo and the lab tests read them
  there) `vifs` lists them too; above that it is absent and the queries below list them. All
  of it is sized by hosts and bridges (hundreds), never by VMs or VIFs (tens of thousands):
  those are counted with len().
- `/status?host=H&vm=V&network=N` (any of them; together, all must match) — `view: query`:
  `query` (the filters and the limit applied), `match` (what each name stood for: name, uuid,
  `applied` — False for an object xapi has but netctl rejected as bad intent, whose problems
  then say why), `vifs` (VM, vm_kind, device, uuid, host, network, port, MAC, locking mode,
  flows), at most `limit=` rows (default `DEFAULT_LIMIT`; a larger value is lowered to
  `MAX_LIMIT`) with `vifs_total` and `vifs_truncated`; the `hosts`, `bonds`, `tunnels` and
  `switches` on their path (a VM's: its host, and there the bond, tunnels and bridges carrying
  its networks; a host's: all of its own; a network's: those carrying it); `problems` about
  all of these with `problems_total`. H is a host's name_label or uuid, V a VM's name_label
  or uuid, N a network's name_label, bridge or uuid; names are not unique in xapi, so a name
  stands for every object that has it. A name nothing has: HTTP 404, `{"error": ...,
  "not_found": {"vm": "NAME"}}`; a malformed query (an unknown parameter, a repeated one,
  `limit=` without a filter, `full=1` with one): 400 with `error`. Rows are the first `limit`
  in the index's order (stable while the pool does not change), sorted by VM and device.
- `/status?full=1` — `view: full`: the whole document as it always was (xapi, hosts, bonds,
  tunnels, every VIF, switches, every problem, flows, engine): half a second at 64 x 1000, for
  tools, not for a person's terminal.

VIF rows are every VIF xapi has, a template's or a snapshot's too (`vm_kind`: guest, template,
snapshot, control domain): a count taken from an index cannot tell them apart, and walking
them to tell would cost what the index saves.

Costs: a filtered answer reads the live pool through its indexes — VIFs by VM, by network and by
(host, network), VMs by host, hosts, networks and VMs by name (`LivePool.named`) — copying
index buckets and counting them with len(), and builds only the rows it returns: at 64 x 1000
merely touching each of a network's 21,000 VIFs costs 25 ms. Problems are found through an
index by host, network and VM built once per list the reconcile loop publishes.
`bench/status_query.py` times every kind of answer.

Reading while the reconcile thread writes: the engine's view (a `LivePool`) is changed in place
by the reconcile thread while the HTTP thread reads it here. Under the GIL a C-level operation
is atomic: `dict.get`, `in`, `len`, and copying one dict or index bucket (`tuple(d.values())`,
the LivePool's lookups). So this module only ever walks such copies, never a live dict or set
(a walk could see it change size mid-way); an answer may straddle two rounds, never break.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flows.locking import locking_of
from flows.ports import vif_port_name
from flows.qos import vif_band, vif_kbps
from flows.rules import rules_of
from netctl.engine.pool import BUCKETS
from netctl.model import (
    NULL_REF,
    PIF,
    VIF,
    VLAN,
    VM,
    XAPI_CLASS,
    Bond,
    Host,
    Network,
    Problem,
    Tunnel,
)
from netctl.service import export_view, mirror_view, stats_view
from netctl.service.tunnel_status import describe_peers

SUMMARY_VIFS = 256  # the summary lists VIF rows while the pool holds at most this many VIFs
PROBLEMS_SHOWN = 200  # problems listed in one answer (all of them are counted)
DEFAULT_LIMIT = 500  # VIF rows in a filtered answer unless limit= says otherwise
MAX_LIMIT = 5000  # a larger limit= is lowered to this (the whole list is ?full=1)
FILTERS = ("host", "vm", "network")
_TRUE, _FALSE = ("1", "true", "yes", ""), ("0", "false", "no")
# A Problem's object class (xapi's name) -> the pool's collection of such objects.
_BUCKET_OF_CLASS = {XAPI_CLASS[cls]: name for cls, name in BUCKETS.items()}


class QueryError(Exception):
    """A query /status cannot answer: `status` is the HTTP code (400 malformed, 404 a name
    nobody has), `body` the JSON answer, which says what was wrong."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **details}


@dataclass(frozen=True)
class Query:
    """A parsed /status query (see the module docstring)."""

    host: str | None = None
    vm: str | None = None
    network: str | None = None
    limit: int = DEFAULT_LIMIT
    full: bool = False

    @property
    def filtered(self) -> bool:
        return any(getattr(self, name) is not None for name in FILTERS)

    def echo(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in FILTERS
                               if getattr(self, name) is not None}
        out["limit"] = self.limit
        return out


def parse_query(query: Mapping[str, str | Sequence[str]]) -> Query:
    """A query string's parameters (`urllib.parse.parse_qs` lists, or plain strings) as a
    Query; QueryError(400) for what /status does not take, so a typo (`?vms=`) is an error
    rather than the summary."""
    values: dict[str, str] = {}
    for key, raw in query.items():
        if key not in (*FILTERS, "limit", "full"):
            raise QueryError(400, f"unknown parameter {key!r}: /status takes host=, vm=, "
                             "network=, limit= or full=1", parameter=key)
        if isinstance(raw, str):
            raw = [raw]
        if len(raw) != 1:
            raise QueryError(400, f"give {key}= once", parameter=key)
        values[key] = raw[0]
    for name in FILTERS:
        if name in values and not values[name]:
            raise QueryError(400, f"{name}= needs a name", parameter=name)
    full = values.get("full", "0").lower()
    if full not in _TRUE + _FALSE:
        raise QueryError(400, f"full={full!r}: give full=1", parameter="full")
    limit = DEFAULT_LIMIT
    if "limit" in values:
        try:
            limit = int(values["limit"])
        except ValueError:
            limit = -1
        if limit < 0:
            raise QueryError(400, f"limit={values['limit']!r}: give a count of rows (0 or more)",
                             parameter="limit")
    q = Query(values.get("host"), values.get("vm"), values.get("network"),
              min(limit, MAX_LIMIT), full in _TRUE)
    if q.full and (q.filtered or "limit" in values):
        raise QueryError(400, "full=1 is the whole document: it takes no host=, vm=, network= "
                         "or limit=", parameter="full")
    if "limit" in values and not q.filtered:
        raise QueryError(400, "limit= caps the VIF rows of a host=, vm= or network= query",
                         parameter="limit")
    return q


def snapshot(run: Any, query: Mapping[str, str | Sequence[str]] | None = None) -> dict:
    """/status of a `netctl.service.run.Run` for a query (None or empty: the summary), as plain
    data; QueryError for a query it cannot answer. Safe from any thread (module docstring)."""
    q = parse_query(query or {})
    if q.full:
        return full(run)
    if q.filtered:
        return filtered(run, q)
    return summary(run)


# ---------------------------------------------------------------------------- the three answers


def summary(run: Any) -> dict:
    """The pool at a glance (module docstring): sized by hosts and bridges, not by VIFs."""
    view = run.view
    hosts = _host_rows(run, view, None)
    switches = _switch_rows(run, view, None)
    problems = run.problems
    out: dict[str, Any] = {
        "view": "summary",
        "xapi": _xapi(run),
        "counts": {
            "hosts": len(view.hosts), "hosts_connected": sum(h["connected"] for h in hosts),
            "hosts_config_pending": sum(h["config"]["pending"] for h in hosts),
            "vms": len(view.vms), "vifs": len(view.vifs), "networks": len(view.networks),
            "pifs": len(view.pifs), "bonds": len(view.bonds), "vlans": len(view.vlans),
            "tunnels": len(view.tunnels), "bridges": sum(len(h["bridges"]) for h in hosts),
            "switches": len(switches),
            "switches_with_table": sum(s["flows"] is not None for s in switches),
            "flows": sum(s["flows"] or 0 for s in switches), "problems": len(problems)},
        "hosts": hosts,
        "bonds": _bond_rows(run, view, None),
        "tunnels": _tunnel_rows(view, None, run),
        "switches": switches,
        **_problem_list(problems),
        "flows": dict(vars(run.sink.stats)),
        "engine": _engine(run),
        "coordination": coordination(run),
        "stats": stats_view.summary(run),
        "export": export_view.rows(run),
        "mirrors": mirror_view.rows(run),
    }
    if len(view.vifs) <= SUMMARY_VIFS:
        out["vifs"] = _vif_rows(run, view, tuple(view.vifs.values())[:SUMMARY_VIFS])
    return out


def full(run: Any) -> dict:
    """Everything, every VIF included: O(pool) (half a second at 64 x 1000)."""
    view = run.view
    problems = run.problems
    vifs = _vif_rows(run, view, tuple(view.vifs.values()))
    return {
        "view": "full",
        "xapi": _xapi(run),
        "hosts": _host_rows(run, view, None),
        "bonds": _bond_rows(run, view, None),
        "tunnels": _tunnel_rows(view, None, run),
        "vifs": vifs,
        "switches": _switch_rows(run, view, None),
        "problems": [str(p) for p in problems],
        "flows": dict(vars(run.sink.stats)),
        "engine": _engine(run),
        "export": export_view.rows(run),
        "mirrors": mirror_view.rows(run),
    }


def filtered(run: Any, q: Query) -> dict:
    """The VIFs matching `q` (at most q.limit rows, all counted), and the hosts, bonds,
    tunnels, switches and problems on their path. Costs what the answer holds: index lookups
    only (at 64 x 1000 a network has ~21,000 VIFs: they are counted, 500 listed)."""
    view = run.view
    raw = run.engine.pool.raw  # every object as xapi says: names of invalid objects resolve
    hosts = _resolve(view, raw, Host, q.host, "host")
    vms = _resolve(view, raw, VM, q.vm, "vm")
    networks = _resolve(view, raw, Network, q.network, "network")
    host_refs = {h.ref for h, _ in hosts} if hosts else None
    net_refs = {n.ref for n, _ in networks} if networks else None
    vm_refs = {v.ref for v, _ in vms} if vms else None

    # The matching VIFs, from the narrowest index: copies of index buckets, never a walk (at
    # 64 x 1000 merely touching each of a network's 21,000 VIFs costs 25 ms), so they are
    # counted by len() and only the rows shown are built.
    matching: list[VIF] = []
    if vms:
        for vm, _ in vms:
            if host_refs is None or vm.resident_on in host_refs:
                matching += (v for v in view.vm_vifs(vm.ref)
                             if net_refs is None or v.network in net_refs)
    elif host_refs is not None:
        for h in host_refs:
            for n in (net_refs if net_refs is not None else _host_networks(view, h)):
                matching += view.host_network_vifs(h, n)
    else:
        for n in net_refs or ():
            matching += view.network_vifs(n)
    rows = _vif_rows(run, view, matching[:q.limit])

    # What lies on their path: a VM's (host, network) pairs, else the hosts and networks named.
    if vm_refs is not None:
        pairs = set()
        for vm, _ in vms:
            if vm.resident_on != NULL_REF and (host_refs is None or vm.resident_on in host_refs):
                pairs |= {(vm.resident_on, v.network) for v in raw.vm_vifs(vm.ref)
                          if net_refs is None or v.network in net_refs}
        scope = _Scope(None, None, frozenset(pairs), frozenset(vm_refs))
    else:
        scope = _Scope(frozenset(host_refs) if host_refs is not None else None,
                       frozenset(net_refs) if net_refs is not None else None)
    return {
        "view": "query",
        "query": q.echo(),
        "match": {name: [_matched(obj, applied) for obj, applied in found]
                  for name, found in (("host", hosts), ("vm", vms), ("network", networks))
                  if found},
        "xapi": _xapi(run),
        "hosts": _host_rows(run, view, scope.host_set(view)),
        "bonds": _bond_rows(run, view, scope),
        "tunnels": _tunnel_rows(view, scope, run),
        "switches": _switch_rows(run, view, scope),
        "export": export_view.rows(run, scope.host_set(view)),
        "mirrors": mirror_view.rows(run, scope.host_set(view)),
        "vifs": sorted(rows, key=lambda r: (r["vm"], r["device"])),
        "vifs_total": len(matching),
        "vifs_truncated": len(matching) > len(rows),
        **_problem_list(_problems_about(run, raw, scope)),
    }


# ---------------------------------------------------------------------------- names and scope


def _resolve(view: Any, raw: Any, cls: type, name: str | None, what: str
             ) -> list[tuple[Any, bool]]:
    """The objects a person's name for a host, VM or network stands for, each with whether
    netctl applies it (False: in xapi, but invalid intent, so only its problems can show).
    By uuid, name_label (names are not unique: all of them), and for a network its bridge.
    QueryError(404) when nothing has that name."""
    if name is None:
        return []
    found: dict[str, tuple[Any, bool]] = {}
    for pool, applied in ((raw, False), (view, True)):  # the view's object wins
        obj = pool.by_uuid(name)
        named = [obj] if isinstance(obj, cls) else []
        named += pool.named(cls, name)
        if cls is Network:
            named += pool.networks_on_bridge(name)
        for obj in named:
            found[obj.ref] = (obj, applied)
    if not found:
        kind, by = {"host": ("host", "name_label or uuid"), "vm": ("VM", "name_label or uuid"),
                    "network": ("network", "name_label, bridge or uuid")}[what]
        raise QueryError(404, f"no {kind} {name!r} (by {by})", not_found={what: name})
    return sorted(found.values(), key=lambda f: (f[0].name_label, f[0].uuid))


def _matched(obj: Any, applied: bool) -> dict[str, Any]:
    out = {"name": obj.name_label, "uuid": obj.uuid, "applied": applied}
    if isinstance(obj, Network):
        out["bridge"] = obj.bridge
    elif isinstance(obj, VM):
        out["power_state"] = obj.power_state
    return out


@dataclass(frozen=True)
class _Scope:
    """Which hosts and networks a filtered answer is about: `hosts` and `networks` (None: any),
    or, for a VM query, exactly the (host, network) pairs its VIFs use and its VMs."""

    hosts: frozenset[str] | None
    networks: frozenset[str] | None
    pairs: frozenset[tuple[str, str]] | None = None
    vms: frozenset[str] | None = None

    def wants(self, host: str, networks: Iterable[str]) -> bool:
        """Whether something on `host` carrying `networks` (empty: unknown) is in scope."""
        if self.pairs is not None:
            return any((host, n) in self.pairs for n in networks)
        if self.hosts is not None and host not in self.hosts:
            return False
        return self.networks is None or any(n in self.networks for n in networks)

    def host_set(self, view: Any) -> set[str]:
        if self.pairs is not None:
            return {h for h, _ in self.pairs}
        if self.hosts is not None:
            return set(self.hosts)
        return {p.host for n in self.networks or () for p in view.network_pifs(n)}

    def networks_named(self) -> frozenset[str]:
        if self.pairs is not None:
            return frozenset(n for _, n in self.pairs)
        return self.networks or frozenset()


@dataclass(slots=True)
class _Where:
    """Where a problem is: its place in the published list, what kind of object it names, and
    that object's host, networks and VM (as xapi has them: invalid objects are only in the
    raw pool)."""

    order: int
    problem: Problem
    kind: str  # "vif", "vm", "host", "network", "infra" (PIF, bond, VLAN, tunnel, bridge), "other"
    host: str | None = None
    networks: tuple[str, ...] = ()
    vm: str | None = None

    def within(self, scope: _Scope, view: Any) -> bool:
        if self.kind in ("vif", "vm"):
            if scope.vms is not None:
                return self.vm in scope.vms
            return scope.wants(self.host or NULL_REF, self.networks)  # a halted VM's: no host
        if self.kind == "host":
            return self.host in scope.host_set(view)
        if self.kind == "network":
            return bool(set(self.networks) & scope.networks_named())
        if self.kind == "infra":
            return self.host is not None and scope.wants(self.host, self.networks)
        return False


class _ProblemIndex:
    """The engine's problems by host, network and VM, so that a filtered answer reads the
    problems about it instead of judging every one (a network gone bad can make 20,000 VIF
    problems: judging them all costs more than the answer may, per query). Built once per
    list the reconcile loop publishes (it publishes a new list whenever xapi's intent
    changed), on the first query that needs it."""

    def __init__(self, problems: list[Problem], raw: Any) -> None:
        self.source = problems  # held, so its identity stays its own
        self.by_host: dict[str, list[_Where]] = {}
        self.by_network: dict[str, list[_Where]] = {}
        self.by_vm: dict[str, list[_Where]] = {}
        for i, problem in enumerate(problems):
            self.add(_where(raw, problem, i))

    def add(self, w: _Where) -> None:
        if w.host is not None:
            self.by_host.setdefault(w.host, []).append(w)
        for n in w.networks:
            self.by_network.setdefault(n, []).append(w)
        if w.vm is not None:
            self.by_vm.setdefault(w.vm, []).append(w)

    def about(self, scope: _Scope, view: Any) -> list[_Where]:
        """The problems within `scope`, in their published order."""
        found: dict[int, _Where] = {}
        buckets: list[list[_Where]] = []
        if scope.vms is not None:
            buckets += (self.by_vm.get(v, []) for v in scope.vms)
            buckets += (self.by_host.get(h, []) for h in scope.host_set(view))
        elif scope.hosts is not None:
            buckets += (self.by_host.get(h, []) for h in scope.hosts)
        else:
            buckets += (self.by_network.get(n, []) for n in scope.networks or ())
        for bucket in buckets:
            for w in bucket:
                if w.order not in found and w.within(scope, view):
                    found[w.order] = w
        return [found[i] for i in sorted(found)]


_index_cache: list[_ProblemIndex] = []  # the index of the latest published problem list


def _problems_about(run: Any, raw: Any, scope: _Scope) -> list[Problem]:
    """The engine's problems about a filtered answer's scope (through `_ProblemIndex`) and the
    OpenFlow sink's about its switches (a few, judged one by one)."""
    published = run.loop.problems
    index = _index_cache[0] if _index_cache else None
    if index is None or index.source is not published:
        index = _ProblemIndex(published, raw)
        _index_cache[:] = [index]
    view = run.view
    out = [w.problem for w in index.about(scope, view)]
    for i, problem in enumerate(run.sink.problems()):
        if _where(raw, problem, i).within(scope, view):
            out.append(problem)
    return out


def _where(raw: Any, problem: Problem, order: int) -> _Where:
    """Where the object a problem names is (see `_Where`)."""
    ref = problem.ref
    if "/" in ref:  # the OpenFlow sink's: "host ref/bridge" of a switch's refused flow
        host, _, bridge = ref.partition("/")
        net = raw.network_by_bridge(bridge)
        return _Where(order, problem, "infra", host,
                      tuple(_carried(raw, host, net)) if net is not None else ())
    bucket = _BUCKET_OF_CLASS.get(problem.object_class)
    obj = getattr(raw, bucket).get(ref) if bucket is not None else raw.get(ref)
    if isinstance(obj, VIF):
        vm = raw.vms.get(obj.vm)
        host = vm.resident_on if vm is not None and vm.resident_on != NULL_REF else None
        return _Where(order, problem, "vif", host, (obj.network,), obj.vm)
    if isinstance(obj, VM):
        host = obj.resident_on if obj.resident_on != NULL_REF else None
        return _Where(order, problem, "vm", host, (), obj.ref)
    if isinstance(obj, Host):
        return _Where(order, problem, "host", obj.ref)
    if isinstance(obj, Network):
        return _Where(order, problem, "network", None, (obj.ref,))
    pif = _pif_of(raw, obj)
    if pif is not None:
        return _Where(order, problem, "infra", pif.host, tuple(_carried_by(raw, pif)))
    return _Where(order, problem, "other")


def _pif_of(pool: Any, obj: Any) -> PIF | None:
    """The PIF a PIF, bond, VLAN or tunnel lives on (its host, the networks it carries)."""
    if isinstance(obj, PIF):
        return obj
    if isinstance(obj, Bond):
        return pool.pifs.get(obj.master)
    if isinstance(obj, VLAN):
        return pool.pifs.get(obj.untagged_pif)
    if isinstance(obj, Tunnel):
        return pool.pifs.get(obj.access_pif)
    return None


def _carried_by(pool: Any, pif: PIF) -> list[str]:
    """The networks a PIF carries: its own, and those of the VLANs tagged on it."""
    nets = [pif.network]
    for vlan in pool.vlans_on(pif.ref):
        untagged = pool.pifs.get(vlan.untagged_pif)
        if untagged is not None:
            nets.append(untagged.network)
    return nets


def _carried(pool: Any, host: str, net: Network) -> list[str]:
    """The networks the bridge of `net` carries on a host (a VLAN's fake bridge rides its
    parent's datapath, so the parent's switch carries it too)."""
    pif = pool.pif_of(net.ref, host)
    return _carried_by(pool, pif) if pif is not None else [net.ref]


# ---------------------------------------------------------------------------- rows


def _xapi(run: Any) -> dict[str, Any]:
    """The sync, and the pool member it follows as master (`sources.xapi.members`)."""
    view = run.engine.view
    master = view.hosts.get(view.pool.master) if view.pool is not None else None
    since = run.sync.members.master_since
    return {"url": run.sync.url, "connected": run.sync.connected,
            "full_syncs": run.sync.full_syncs, "reconnects": run.sync.reconnects,
            "master": master.name_label if master else None,
            "master_address": master.address if master else None,
            "master_since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
            if since else None,
            "members": len(run.sync.members.urls)}


def _engine(run: Any) -> dict[str, Any]:
    return {**run.engine.counters(), "rounds": dict(vars(run.loop.stats))}


def _problem_list(problems: Sequence[Problem]) -> dict[str, Any]:
    """The first PROBLEMS_SHOWN problems (only those are turned into text) and the count."""
    return {"problems": [str(p) for p in problems[:PROBLEMS_SHOWN]],
            "problems_total": len(problems)}


def coordination(run: Any) -> dict[str, Any] | None:
    """Several instances (`netctl.service.ha`): this one, the live ones, who masters which
    host and with which generation, takeovers. None when this instance runs alone."""
    ha = getattr(run, "ha", None)
    if ha is None:
        return None
    names = {h.uuid: h.name_label for h in tuple(run.view.hosts.values())}
    return ha.status(names)


def _host_rows(run: Any, view: Any, refs: set[str] | None) -> list[dict[str, Any]]:
    """Per host with an OVSDB worker (all, or `refs`): its session and what was applied, and
    how many VMs and VIFs it runs (counted from index buckets, never walked); `config`: this
    instance's last write to the host and whether ovs-vswitchd has applied it (written vs in
    effect, `netctl.sinks.ovsdb_cfg.CfgState.as_dict`)."""
    workers = list(run.workers.items())
    if refs is not None:
        workers = [(r, w) for r, w in workers if r in refs]
    if not workers:
        return []
    pifless = _pifless(view)
    out = []
    for ref, worker in workers:
        st = worker.status
        out.append({"name": st.name, "uuid": st.uuid, "endpoint": st.endpoint,
                    "connected": st.connected, "error": st.last_error,
                    "bridges": list(st.bridges), "applies": st.applies,
                    "operations": st.operations, "master": st.master,
                    "config": st.cfg.state().as_dict(st.cfg.now()),
                    "vms": len(view.resident_vms(ref)),
                    "vifs": sum(len(view.host_network_vifs(ref, n))
                                for n in _host_networks(view, ref, pifless))})
    return out


def _pifless(view: Any) -> list[str]:
    """Networks with no PIF on any host (internal networks): any host may run their VIFs."""
    return [n for n in tuple(view.networks) if not view.network_pifs(n)]


def _host_networks(view: Any, host: str, pifless: list[str] | None = None) -> set[str]:
    """The networks a host's VIFs can be on — those it has a PIF on, and the internal ones —
    so its VIFs are the index's (host, network) buckets of these (a handful, not a walk)."""
    return {p.network for p in view.host_pifs(host)}.union(
        _pifless(view) if pifless is None else pifless)


def _host_name(view: Any, ref: str | None, default: str = "?") -> str:
    host = view.hosts.get(ref) if ref is not None else None
    return host.name_label if host is not None else default


def _bond_rows(run: Any, view: Any, scope: _Scope | None) -> list[dict[str, Any]]:
    """Bonds (all, or those carrying a network in scope), each member's link and LACP state
    read from its host's OVSDB."""
    rows, wanted = [], {}
    for bond in tuple(view.bonds.values()):
        master = view.pifs.get(bond.master)
        if master is None:
            continue
        carried = _carried_by(view, master)
        if scope is not None and not scope.wants(master.host, carried):
            continue
        host = _host_name(view, master.host)
        slaves = [s for s in (view.pifs.get(r) for r in bond.slaves) if s is not None]
        net = view.networks.get(master.network)
        rows.append((host, slaves, {"host": host, "bond": master.device, "mode": bond.mode,
                                    "network": net.name_label if net else "?"}))
        wanted.setdefault(host, set()).update(s.device for s in slaves)
    states = member_states(run, wanted)
    for host, slaves, row in rows:
        row["members"] = {s.device: states.get((host, s.device), "unknown") for s in slaves}
    return [row for _, _, row in rows]


def _tunnel_rows(view: Any, scope: _Scope | None, run: Any = None) -> list[dict[str, Any]]:
    """Each tunnel with its tunnel.status and, under `netctl run`, `peers`: per peer host, the
    pair's BFD verdict, since when, and both ends' BFD states (`tunnel_status.describe_peers`;
    sized by the tunnel's peers, read from the liveness store without a lock)."""
    liveness = getattr(run, "liveness", None)
    out = []
    for tun in tuple(view.tunnels.values()):
        access = view.pifs.get(tun.access_pif)
        if scope is not None and (access is None or not scope.wants(access.host,
                                                                    [access.network])):
            continue
        net = view.networks.get(access.network) if access else None
        out.append({"host": _host_name(view, access.host) if access else "?",
                    "network": net.name_label if net else "?",
                    "protocol": tun.protocol, "status": dict(tun.status)})
        if liveness is not None:
            out[-1]["peers"] = describe_peers(view, run.tunnels.peers(tun.uuid, liveness))
    return out


def _switch_rows(run: Any, view: Any, scope: _Scope | None) -> list[dict[str, Any]]:
    out = []
    server = run.sink.portconfig
    port_config = set(server.connected()) if server is not None else set()
    for sw in run.sink.summary():
        host_ref, bridge = sw["host"], sw["bridge"]
        if scope is not None:
            net = view.network_by_bridge(bridge) if bridge else None
            carried = _carried(view, host_ref, net) if net is not None and host_ref else []
            if host_ref is None or not scope.wants(host_ref, carried):
                continue
        out.append({"dpid": f"{sw['dpid']:016x}", "host": _host_name(view, host_ref),
                    "bridge": bridge, "ports": sw["ports"], "flows": sw["flows"],
                    "role": sw.get("role"),
                    # the OpenFlow 1.0 session for NO_FLOOD (external bridges), if any
                    "port_config": sw["dpid"] in port_config})
    return out


def _vif_rows(run: Any, view: Any, vifs: Iterable[VIF]) -> list[dict[str, Any]]:
    """A row per VIF: every VIF xapi has, `vm_kind` saying whose (a guest's, or a template's,
    snapshot's or control domain's: xapi lists those too, and a count by index cannot tell
    them apart). Every lookup is a dict.get on the live view (`vif_port_name`,
    `is_vif_active` and the locking mode read no more)."""
    rows: list[dict[str, Any]] = []
    vms_get, hosts_get, nets_get = view.vms.get, view.hosts.get, view.networks.get
    local_flows: Callable[[str], int] = run.engine.desired.local_flows
    vifs = tuple(vifs)
    traffic = stats_view.readings(run, {vm.resident_on for vm in (
        vms_get(v.vm) for v in vifs) if vm is not None})
    hits: dict | None = None  # traffic rules' counters, read when a VIF has rules
    for vif in vifs:
        vm = vms_get(vif.vm)
        host = hosts_get(vm.resident_on) if vm is not None else None
        net = nets_get(vif.network)
        port = vif_port_name(view, vif) if view.is_vif_active(vif) else None
        rows.append({"vm": vm.name_label if vm else "?", "vm_kind": _kind(vm),
                     "device": vif.device, "uuid": vif.uuid,
                     "host": host.name_label if host else "",
                     "network": net.name_label if net else "?", "port": port, "mac": vif.mac,
                     "locking": (locking := locking_of(view, vif)).mode,
                     "ipv4_allowed": list(locking.ipv4), "ipv6_allowed": list(locking.ipv6),
                     "flows": local_flows(vif.ref) if port else 0,
                     "qos": _qos(vif)})
        reading = traffic.get((vm.resident_on, port)) if port and vm is not None else None
        if reading is not None:
            rows[-1]["traffic"] = reading.as_dict()
        rules = rules_of(view, vif)
        if rules:  # traffic rules (`flows.rules`), with their hit counters
            if hits is None:
                hits = stats_view.rule_hits(run, {vm.resident_on for vm in (
                    vms_get(v.vm) for v in vifs) if vm is not None})
            counted = hits.get((vm.resident_on, port)) if port and vm is not None else None
            shown = stats_view.rule_rows(rules, counted)
            rows[-1]["rules"] = shown["rules"]  # each rule, in order, with its packets
            rows[-1]["rules_passed"] = {"replies": shown["replies"],
                                        "unmatched": shown["unmatched"]}
            # broadcasts and multicasts: through the rules, or by NORMAL past them (an
            # external bridge's port not (yet) NO_FLOOD: `netctl.sinks.portconfig`)
            rows[-1]["floods_through_rules"] = run.engine.desired.floods_through_rules(vif.ref)
    return rows


def _qos(vif: VIF) -> dict[str, int] | None:
    """A VIF's rate limit: xapi's figure (KiB/s) and the meter that enforces it (`flows.qos`)."""
    band = vif_band(vif)
    if band is None:
        return None
    return {"kbps": vif_kbps(vif) or 0, "rate_kbit": band.rate_kbit,
            "burst_kbit": band.burst_kbit}


def _kind(vm: VM | None) -> str:
    if vm is None:
        return "?"
    if vm.is_control_domain:
        return "control domain"
    if vm.is_a_snapshot:
        return "snapshot"
    return "template" if vm.is_a_template else "guest"


def member_states(run: Any, wanted: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """(host, NIC) -> link/LACP state of the bond members named in `wanted` (host name -> NIC
    names), read from each host's OVSDB mirror by the Interface name index ovsdbapp keeps (a
    host has an Interface per VIF: walking them all cost more than the rest of the summary).
    Best effort: the mirror changes under us on ovsdbapp's thread; what fails is "unknown"."""
    out: dict[tuple[str, str], str] = {}
    for worker in list(getattr(run, "workers", {}).values()):
        names = wanted.get(worker.status.name)
        db = worker.db
        if not names or db is None or db.api is None:
            continue
        try:
            table = db.api.tables["Interface"]
            index = table.rows.indexes.get("name")
            if index is not None:
                rows = [r for name in sorted(names) for r in
                        index.irange(table.rows.IndexEntry(name=name),
                                     table.rows.IndexEntry(name=name))]
            else:
                rows = [r for r in list(table.rows.values()) if r.name in names]
            for row in rows:
                link = (row.link_state or ["?"])[0]
                lacp = row.lacp_current
                lacp_text = "" if not lacp else (" lacp current" if lacp[0] else " lacp expired")
                out[(worker.status.name, row.name)] = f"link {link}{lacp_text}"
        except Exception:  # noqa: BLE001 - status is best effort
            continue
    return out
