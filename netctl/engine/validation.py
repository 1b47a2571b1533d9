"""Validation, incrementally: recheck only the changed objects and those whose validity depends
on them, with exactly the rules (and the words) of `vlan.check_host_networking` +
`netctl.model.validate`, which stay the from-scratch definition (the property test holds the two
equal over random change sequences).

Dependency tiers, as `validate` orders them — a tier's result is what the next one checks
against:

    networks (bridge names unique pool-wide, first by uuid wins)
      -> PIFs, first pass (host, network, own fields)
        -> bonds, VLANs, tunnels (against first-pass PIFs; host-networking rules)
          -> PIFs, second pass (a PIF whose bond, VLAN or tunnel is invalid goes too)
    VMs (their host), SDN controllers
      -> VIFs (network, VM, own fields; trunks against the network's valid PIFs)
        -> duplicate MACs among active VIFs of a network (the incumbent keeps its MAC)

When an object's validity flips, its dependents in later tiers are rechecked; a few rules read
other objects' *fields* (a bond's members' hosts, a VLAN's tagged PIF type, a tunnel's transport
address, VIF trunks vs VLAN PIFs), so a change to those objects rechecks their referrers even
without a flip. The result is a `LivePool` of the valid objects (what the compilers read), the
Problems by object, and the refs whose valid form changed in this round (what the rest of the
engine reacts to).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from netctl.engine.pool import LivePool
from netctl.model import (
    PIF,
    VIF,
    VLAN,
    VM,
    XAPI_CLASS,
    Bond,
    Host,
    Network,
    Pool,
    Problem,
    SDNController,
    Tunnel,
    XapiObject,
    applied,
    blocks,
    check_bond,
    check_network,
    check_pif,
    check_pif_represents,
    check_pool,
    check_sdn,
    check_tunnel,
    check_vif,
    check_vlan,
    check_vm,
    describe,
    duplicate_macs,
)
from vlan.checks import (
    bond_host_problem,
    tunnel_transport_problem,
    vlan_problem,
)

Change = tuple[XapiObject | None, XapiObject | None]  # (before, after) in the valid view


@dataclass
class Validated:
    """The valid pool and what is wrong with the rest."""

    view: LivePool = field(default_factory=LivePool)
    problems: dict[tuple[str, str], list[Problem]] = field(default_factory=dict)  # (ref, stage)
    changes: dict[str, Change] = field(default_factory=dict)  # this round, by ref

    def all_problems(self) -> list[Problem]:
        return [p for ps in self.problems.values() for p in ps]


class IncrementalValidator:
    """Keeps `Validated` equal to validating the raw pool from scratch. `apply(refs)` after
    the raw `LivePool` changed those refs; `rebuild()` recomputes everything."""

    def __init__(self, raw: LivePool) -> None:
        self.raw = raw
        self.out = Validated()
        self._pre_pifs: set[str] = set()  # PIFs that passed the first pass
        # reverse references the rules follow (from the raw pool)
        self._bonds_of_pif: dict[str, set[str]] = {}
        self._vlans_of_pif: dict[str, set[str]] = {}
        self._tunnels_of_pif: dict[str, set[str]] = {}
        self._vlan_groups: dict[tuple[str, int], set[str]] = {}
        self._trunk_vifs: dict[str, set[str]] = {}  # network -> VIFs with trunks
        self._refs_of: dict[str, tuple] = {}  # ref -> the reverse keys it is filed under
        self._macs: dict[str, dict[str, set[str]]] = {}  # big network -> MAC -> valid VIFs
        self._winners: dict[tuple[str, str], str] = {}  # (network, MAC) -> VIF that holds it

    # ------------------------------------------------------------------ entry points
    def recompute(self) -> dict[str, Change]:
        """Validate everything again (the counted fallback) and report what changed in the
        valid view (`out.changes`). The incumbents of duplicate MACs keep their MACs."""
        before = {o.ref: o for o in self.out.view.objects()}
        quarantined = set(self.out.view.quarantined)
        winners = dict(self._winners)
        self.rebuild(winners)
        after = {o.ref: o for o in self.out.view.objects()}
        changes: dict[str, Change] = {}
        for ref in before.keys() | after.keys():
            old, new = before.get(ref), after.get(ref)
            if old != new or (ref in quarantined) != (ref in self.out.view.quarantined):
                changes[ref] = (old, new)
        self.out.changes = changes
        return changes

    def rebuild(self, winners: dict[tuple[str, str], str] | None = None) -> None:
        """Everything again (the counted fallback)."""
        self.out = Validated()
        self._pre_pifs.clear()
        for index in (self._bonds_of_pif, self._vlans_of_pif, self._tunnels_of_pif,
                      self._vlan_groups, self._trunk_vifs):
            index.clear()
        self._refs_of.clear()
        self._macs.clear()
        self._winners = dict(winners or {})
        work = _Work()
        for obj in self.raw.objects():
            self._refile(obj, obj)
            work.seed(obj)
            if isinstance(obj, VIF):
                work.t7.add((obj.network, obj.mac.lower()))
        self._run(work)

    def apply(self, refs: Iterable[str], previous: dict[str, XapiObject | None] | None = None
              ) -> dict[str, Change]:
        """Revalidate after the raw pool changed `refs`; `previous` holds their raw objects
        before the change (for what they referred to). Returns this round's view changes."""
        previous = previous or {}
        refs = list(refs)
        if any(isinstance(previous.get(r), Host) or isinstance(self.raw.get(r), Host)
               for r in refs):
            # A host's name is in the words of every Problem about its PIFs, bonds, VLANs and
            # tunnels, and hosts change rarely: recompute (counted) rather than track that.
            return self.recompute()
        self.out.changes = {}
        work = _Work()
        for ref in refs:
            old, new = previous.get(ref), self.raw.get(ref)
            for obj in (old, new):
                if obj is not None:
                    self._refile(obj, new)
                    work.seed(obj)
                    self._seed_referrers(obj, work)
            if new is None:
                work.gone.add(ref)
        self._run(work)
        return self.out.changes

    # ------------------------------------------------------------------ bookkeeping
    def _refile(self, obj: XapiObject, new: XapiObject | None) -> None:
        """Keep the reverse references of `obj.ref` equal to what the raw pool says now."""
        ref = obj.ref
        for index_name, key in self._refs_of.pop(ref, ()):
            bucket = getattr(self, index_name).get(key)
            if bucket is not None:
                bucket.discard(ref)
                if not bucket:
                    del getattr(self, index_name)[key]
        if new is None:
            return
        keys: list[tuple[str, object]] = []
        if isinstance(new, Bond):
            keys += [("_bonds_of_pif", p) for p in (new.master, *new.slaves)]
        elif isinstance(new, VLAN):
            keys += [("_vlans_of_pif", new.tagged_pif), ("_vlans_of_pif", new.untagged_pif),
                     ("_vlan_groups", (new.tagged_pif, new.tag))]
        elif isinstance(new, Tunnel):
            keys += [("_tunnels_of_pif", new.access_pif), ("_tunnels_of_pif", new.transport_pif)]
        elif isinstance(new, VIF) and new.trunks:
            keys += [("_trunk_vifs", new.network)]
        for index_name, key in keys:
            getattr(self, index_name).setdefault(key, set()).add(ref)
        self._refs_of[ref] = tuple(keys)

    def _seed_referrers(self, obj: XapiObject, work: _Work) -> None:
        """Objects whose rules read this object's fields (not only its validity)."""
        if isinstance(obj, PIF):
            work.t3 |= self._bonds_of_pif.get(obj.ref, set())
            self._seed_vlan_groups(obj.ref, work)
            work.t3 |= self._tunnels_of_pif.get(obj.ref, set())
            work.t4.add(obj.ref)
            work.t6 |= self._trunk_vifs.get(obj.network, set())
        elif isinstance(obj, Network):
            work.t1_bridges.add(obj.bridge)
            for pif in self.raw.network_pifs(obj.ref):  # a duplicate VLAN's words name it
                self._seed_vlan_groups(pif.ref, work)
        elif isinstance(obj, VLAN):
            work.t3 |= self._vlan_groups.get((obj.tagged_pif, obj.tag), set())
            work.t4.add(obj.untagged_pif)
        elif isinstance(obj, Bond):
            work.t4.add(obj.master)
        elif isinstance(obj, Tunnel):
            work.t4.add(obj.access_pif)
        elif isinstance(obj, Host):
            work.t2 |= {p.ref for p in self.raw.host_pifs(obj.ref)}
            work.t5 |= {v.ref for v in self.raw.resident_vms(obj.ref)}
        elif isinstance(obj, VM):
            work.t6 |= {v.ref for v in self.raw.vm_vifs(obj.ref)}
            for vif in self.raw.vm_vifs(obj.ref):
                work.t7.add((vif.network, vif.mac.lower()))
        elif isinstance(obj, VIF):
            work.t7.add((obj.network, obj.mac.lower()))

    def _seed_vlan_groups(self, pif_ref: str, work: _Work) -> None:
        """VLANs over or of this PIF, with every VLAN sharing their tag on their tagged PIF
        (a duplicate's Problem names the first one's network)."""
        for vref in self._vlans_of_pif.get(pif_ref, set()):
            vlan = self.raw.vlans.get(vref)
            work.t3.add(vref)
            if vlan is not None:
                work.t3 |= self._vlan_groups.get((vlan.tagged_pif, vlan.tag), set())

    # ------------------------------------------------------------------ the tiers
    def _run(self, work: _Work) -> None:
        raw, view = self.raw, self.out.view
        if raw.pool != view.pool:
            self._set(raw.pool.ref if raw.pool else (view.pool.ref if view.pool else ""),
                      raw.pool, view)
            if raw.pool is not None:
                self._report(raw.pool, "check", check_pool(raw, raw.pool))
        for ref in work.gone:
            self._forget(ref)
        # hosts are always kept (nothing to validate)
        for ref in list(work.hosts()):
            self._set(ref, raw.hosts.get(ref), view)
        # T1 networks, by bridge group
        for bridge in sorted(work.t1_bridges):
            self._networks(bridge, work)
        # T2 PIFs, first pass
        for ref in sorted(work.t2):
            pif = raw.pifs.get(ref)
            was = ref in self._pre_pifs
            errs = self._pif_first(pif) if pif is not None else None
            now = errs is not None and not blocks(errs)
            if now:
                self._pre_pifs.add(ref)
            else:
                self._pre_pifs.discard(ref)
            if was != now or pif is None:
                work.t3 |= self._bonds_of_pif.get(ref, set())
                work.t3 |= self._vlans_of_pif.get(ref, set())
                work.t3 |= self._tunnels_of_pif.get(ref, set())
            work.t4.add(ref)
        # T3 bonds, VLANs, tunnels
        for ref in sorted(work.t3):
            obj = raw.get(ref)
            before = view.get(ref) is not None
            masters = self._masters_of(ref)
            if obj is None:
                self._clear(ref)
                self._set(ref, None, view)
            else:
                errs = self._middle(obj)
                self._report(obj, "check", errs)
                self._set(ref, applied(view, obj) if not blocks(errs) else None, view)
            after = view.get(ref) is not None
            if before != after or obj is None:
                work.t4 |= masters | self._masters_of(ref)
        # T4 PIFs, second pass
        for ref in sorted(work.t4):
            self._pif_second(ref, work)
        # T5 VMs and SDN controllers
        for ref in sorted(work.t5):
            obj = raw.get(ref)
            before = view.get(ref) is not None
            if obj is None:
                self._clear(ref)
                self._set(ref, None, view)
            else:
                errs = check_vm(view, obj) if isinstance(obj, VM) else check_sdn(view, obj)
                self._report(obj, "check", errs)
                self._set(ref, applied(view, obj) if not blocks(errs) else None, view)
            if isinstance(obj, VM) or (obj is None and before):
                if before != (view.get(ref) is not None):
                    work.t6 |= {v.ref for v in raw.vm_vifs(ref)}
        # T6 VIFs
        for ref in sorted(work.t6):
            vif = raw.vifs.get(ref)
            old = view.vifs.get(ref)
            if vif is None:
                self._clear(ref)
                self._set(ref, None, view)
            else:
                errs = check_vif(view, vif)
                self._report(vif, "check", errs)
                self._set(ref, applied(view, vif) if not blocks(errs) else None, view)
            for v in (old, vif):
                if v is not None:
                    work.t7.add((v.network, v.mac.lower()))
        # T7 duplicate MACs
        for net, mac in sorted(work.t7):
            self._duplicates(net, mac)

    def _networks(self, bridge: str, work: _Work) -> None:
        """A bridge group: networks naming the same bridge, checked in (uuid, ref) order."""
        raw, view = self.raw, self.out.view
        group = {n.ref: n for n in raw.networks_on_bridge(bridge)}
        group.update({n.ref: n for n in view.networks_on_bridge(bridge)})  # those that left
        seen: dict[str, Network] = {}
        for ref in sorted(group, key=lambda r: (group[r].uuid, r)):
            net = raw.networks.get(ref)
            before = ref in view.networks
            if net is None or net.bridge != bridge:
                if net is None:
                    self._clear(ref)
                    self._set(ref, None, view)
                    if before:
                        self._network_dependents(ref, work)
                continue  # a renamed network is checked in its new group
            errs = check_network(view, net, seen)
            self._report(net, "check", errs)
            placed = not blocks(errs)
            if placed:
                seen[net.bridge] = net
            self._set(ref, applied(view, net) if placed else None, view)
            if before != placed:
                self._network_dependents(ref, work)

    def _network_dependents(self, ref: str, work: _Work) -> None:
        work.t2 |= {p.ref for p in self.raw.network_pifs(ref)}
        work.t6 |= {v.ref for v in self.raw.network_vifs(ref)}

    def _pif_first(self, pif: PIF) -> list:
        """The first pass: validate's (against valid networks)."""
        errs = check_pif(self.out.view, pif)
        self._report(pif, "check", errs)
        return errs

    def _middle(self, obj: XapiObject) -> list[tuple]:
        """A bond, VLAN or tunnel: host-networking rules on the raw pool, then validate's
        against the first-pass PIFs."""
        raw = self.raw
        first = _FirstPassPifs(self.out.view, raw, self._pre_pifs)
        if isinstance(obj, Bond):
            return bond_host_problem(raw, obj) or check_bond(first, obj)
        if isinstance(obj, VLAN):
            return vlan_problem(raw, obj, self._vlan_groups.get((obj.tagged_pif, obj.tag),
                                                                set())) or check_vlan(first, obj)
        if isinstance(obj, Tunnel):
            return tunnel_transport_problem(raw, obj) or check_tunnel(first, obj)
        raise TypeError(obj)

    def _masters_of(self, ref: str) -> set[str]:
        obj = self.raw.get(ref) or self.out.view.get(ref)
        if isinstance(obj, Bond):
            return {obj.master}
        if isinstance(obj, VLAN):
            return {obj.untagged_pif}
        if isinstance(obj, Tunnel):
            return {obj.access_pif}
        return set()

    def _pif_second(self, ref: str, work: _Work) -> None:
        raw, view = self.raw, self.out.view
        pif = raw.pifs.get(ref)
        before = view.pifs.get(ref)
        if pif is None or ref not in self._pre_pifs:
            self.out.problems.pop((ref, "post"), None)
            if pif is None:
                self._clear(ref)
            self._set(ref, None, view)
        else:
            errs = check_pif_represents(view, pif)
            self._report(pif, "post", errs)
            self._set(ref, pif if not blocks(errs) else None, view)
        after = view.pifs.get(ref)
        if (before is None) != (after is None) or (before is not None and after is not None
                                                   and before.vlan != after.vlan):
            for p in (before, after):
                if p is not None:
                    work.t6 |= self._trunk_vifs.get(p.network, set())

    def _duplicates(self, net: str, mac: str) -> None:
        """One (network, MAC) group: the VIF that held the MAC keeps it (`duplicate_macs`);
        quarantine flips are changes for the rest of the engine."""
        view = self.out.view
        group = self._by_mac(net, mac)
        for vif in group:
            self.out.problems.pop((vif.ref, "mac"), None)
        held = self._winners.get((net, mac))
        losers, problems = duplicate_macs(view, group, {held} if held else ())
        active = sorted((v for v in group if view.is_vif_active(v)),
                        key=lambda v: (v.ref != held, v.uuid))  # duplicate_macs' own order
        winner = active[0].ref if active else None
        if winner is None:
            self._winners.pop((net, mac), None)
        else:
            self._winners[(net, mac)] = winner
        for vif in group:
            was = vif.ref in view.quarantined
            if (vif.ref in losers) != was:
                if was:
                    view.quarantined.discard(vif.ref)
                else:
                    view.quarantined.add(vif.ref)
                self._note(vif.ref, vif, vif)
        for problem in problems:
            self.out.problems.setdefault((problem.ref, "mac"), []).append(problem)

    def winners(self) -> set[str]:
        """VIFs holding a MAC that another active VIF of their network also has."""
        return set(self._winners.values())

    def _by_mac(self, net: str, mac: str) -> list[VIF]:
        """The valid VIFs of `net` with this MAC (a per-network MAC index, built on first use
        and kept by `_set`)."""
        index = self._macs.get(net)
        if index is None:
            index = self._macs[net] = {}
            for v in self.out.view.network_vifs(net):
                index.setdefault(v.mac.lower(), set()).add(v.ref)
        vifs = self.out.view.vifs
        return [vifs[r] for r in sorted(index.get(mac, ())) if r in vifs]

    # ------------------------------------------------------------------ writing the view
    def _report(self, obj: XapiObject, stage: str, errs: list[tuple]) -> None:
        """Every finding is a Problem, blocking or not ((field, message[, blocking]))."""
        key = (obj.ref, stage)
        if not errs:
            self.out.problems.pop(key, None)
            return
        self.out.problems[key] = [Problem(XAPI_CLASS[type(obj)], obj.ref, obj.uuid,
                                          describe(self.raw, obj), f[0], f[1]) for f in errs]

    def _clear(self, ref: str) -> None:
        for stage in ("check", "post", "mac"):
            self.out.problems.pop((ref, stage), None)

    def _forget(self, ref: str) -> None:
        self._clear(ref)
        self._pre_pifs.discard(ref)

    def _set(self, ref: str, obj: XapiObject | None, view: LivePool) -> None:
        """Make the valid view hold `obj` under `ref` (None: not at all), noting a change."""
        if isinstance(obj, Pool) or (obj is None and view.pool is not None
                                     and view.pool.ref == ref):
            old = view.pool
            if old == obj:
                return
            if obj is None:
                view.remove(ref, Pool)
            else:
                view.upsert(obj)
            self._note(ref, old, obj)
            return
        old = view.get(ref)
        if old == obj and (old is None or type(old) is type(obj)):
            return
        if obj is None:
            view.remove(ref)
            if isinstance(old, VIF):
                view.quarantined.discard(ref)
                self.out.problems.pop((ref, "mac"), None)
                self._unmac(old)
        else:
            view.upsert(obj)
            if isinstance(old, VIF):
                self._unmac(old)
            if isinstance(obj, VIF):
                self._mac(obj)
        self._note(ref, old, obj)

    def _note(self, ref: str, old: XapiObject | None, new: XapiObject | None) -> None:
        first = self.out.changes.get(ref)
        self.out.changes[ref] = (first[0] if first is not None else old, new)

    def _mac(self, vif: VIF) -> None:
        index = self._macs.get(vif.network)
        if index is not None:
            index.setdefault(vif.mac.lower(), set()).add(vif.ref)

    def _unmac(self, vif: VIF) -> None:
        index = self._macs.get(vif.network)
        if index is not None:
            refs = index.get(vif.mac.lower())
            if refs is not None:
                refs.discard(vif.ref)
                if not refs:
                    del index[vif.mac.lower()]


@dataclass
class _Work:
    """What to recheck in this round, per tier."""

    t1_bridges: set[str] = field(default_factory=set)
    t2: set[str] = field(default_factory=set)
    t3: set[str] = field(default_factory=set)
    t4: set[str] = field(default_factory=set)
    t5: set[str] = field(default_factory=set)
    t6: set[str] = field(default_factory=set)
    t7: set[tuple[str, str]] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    _hosts: set[str] = field(default_factory=set)

    def seed(self, obj: XapiObject) -> None:
        if isinstance(obj, Network):
            self.t1_bridges.add(obj.bridge)
        elif isinstance(obj, PIF):
            self.t2.add(obj.ref)
        elif isinstance(obj, Bond | VLAN | Tunnel):
            self.t3.add(obj.ref)
        elif isinstance(obj, VM | SDNController):
            self.t5.add(obj.ref)
        elif isinstance(obj, VIF):
            self.t6.add(obj.ref)
        elif isinstance(obj, Host):
            self._hosts.add(obj.ref)

    def hosts(self) -> set[str]:
        return self._hosts


class _FirstPassPifs:
    """The view as `validate` has it while checking bonds, VLANs and tunnels: networks and
    hosts valid, PIFs those of the first pass (the second pass has not run yet)."""

    def __init__(self, view: LivePool, raw: LivePool, pre: set[str]) -> None:
        self.view, self.raw, self.pre = view, raw, pre
        self.hosts, self.networks = view.hosts, view.networks
        self.pifs = _Subset(raw.pifs, pre)

    def __getattr__(self, name: str):  # noqa: ANN204 - delegate the rest of the queries
        return getattr(self.view, name)


class _Subset:
    """`raw.pifs` restricted to the refs in `keep` (a read-only mapping view)."""

    def __init__(self, data: dict, keep: set[str]) -> None:
        self.data, self.keep = data, keep

    def get(self, ref: str, default=None):  # noqa: ANN001, ANN201
        return self.data.get(ref, default) if ref in self.keep else default

    def __contains__(self, ref: object) -> bool:
        return ref in self.keep and ref in self.data

    def __getitem__(self, ref: str):  # noqa: ANN204
        if ref not in self.keep:
            raise KeyError(ref)
        return self.data[ref]
