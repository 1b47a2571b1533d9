"""Each connected bridge's desired flow table, kept up to date per change (the engine's `flows`
node), as canonical (key, body) pairs — the form the OpenFlow sink diffs and sends.

A table is the union of parts that change for different reasons (`flows.compile` defines the
same union from scratch, and the property test holds the two equal):
- the bridge's own flows (`base_flows`): its shape (external/private/internal, its VLANs) and
  its non-VIF ports (uplink, tunnels, internal ports). Rebuilt when those change;
- one part per local VIF (`local_vif_flows`): its classification, locking and forwarding.
  A VIF event, or its port appearing, replaces that part only;
- the flooding of a private or internal bridge (`flood_flows`): the list of local VIF ports;
- the flows about VIFs on *other* hosts (`remote_vif_flows`): into the tunnel to their host,
  or to a single-NIC uplink. These are not stored per switch: at 64 hosts x 1000 VIFs on one
  network that would be millions of entries. They are generated from the network's placement
  index (which VIF runs where, kept once for the pool) and the switch's port numbers, when a
  switch must be diffed whole; a VIF that comes, goes or moves yields exactly its own remote
  flows' changes on each other switch of its network (`Delta`).

Changes are handed on as per-switch `Delta`s: key -> (new body or None, existed before), so the
sink needs no copy of the installed table to know an add from a modify. What the OpenFlow sink
gets of a round is `FlowOutput` (`output()`): the deltas, the VIF ports whose disabled state
changed, and the VIF ports that arrived on external bridges; what it may read between rounds
(the whole desired table of a switch it must diff, a port's classification, a switch's name
and a flow's note for a Problem) are the public reading methods below.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field, replace
from itertools import chain

from flows.compile import (
    BridgeIntent,
    BridgePorts,
    base_flows,
    bridge_shape,
    flood_flows,
    keeps_out_of_normal,
    local_vif_flows,
    vif_meters,
    vif_ports,
)
from flows.handover import Held, HeldPool, port_names
from flows.pipeline import OFPP_LOCAL, Flow
from flows.ports import datapath_id, tap_port_name, tunnel_peers, uplink_devices, vif_port_name
from flows.qos import MeterBand
from flows.templates import local_vif_canon
from flows.wire import Body, Key, canon_flow, remote_canon
from netctl.engine.hosts import status_only
from netctl.engine.pool import LivePool
from netctl.model import PIF, VIF, VLAN, VM, Bond, Network, Tunnel, XapiObject

Entries = dict[Key, Body]


@dataclass(frozen=True)
class Placement:
    """Where a VIF that other hosts forward to lives (active, not quarantined)."""

    network: str
    host: str
    host_uuid: str
    mac: str


@dataclass
class Delta:
    """One switch's changes in a round: key -> (body, or None to delete; existed before)."""

    ops: dict[Key, tuple[Body | None, bool]] = field(default_factory=dict)
    full: bool = False  # the table was (re)built: the sink should diff it whole

    def put(self, key: Key, body: Body | None, existed: bool) -> None:
        prior = self.ops.get(key)
        if prior is not None:
            existed = prior[1]  # what the switch had before this round
        if body is None and not existed:
            self.ops.pop(key, None)
        else:
            self.ops[key] = (body, existed)


@dataclass(frozen=True)
class FlowOutput:
    """What the OpenFlow sink sends after a round, per switch (dpid): exactly what changed."""

    deltas: Mapping[int, Delta]
    port_modes: Mapping[int, Mapping[int, bool]]  # VIF port -> disabled (changed ones only)
    arrivals: Mapping[int, list[tuple[int, str]]]  # VIF ports to announce: (port, MAC)
    meters: Set[int] = frozenset()  # switches whose meters (`flows.qos`) changed


@dataclass
class SwitchTable:
    dpid: int
    host_ref: str
    bridge: str
    host_uuid: str
    names: dict[str, int]  # port name -> ofport, as the switch reports them
    shape: BridgeIntent = field(default_factory=lambda: BridgeIntent("none", False, {}, (), ()))
    ports: BridgePorts = field(default_factory=BridgePorts)
    base: Entries = field(default_factory=dict)
    local: dict[str, Entries] = field(default_factory=dict)  # VIF ref -> its entries
    # VIF ref -> (its VLAN on the bridge, its ports that take traffic)
    taking: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    disabled: dict[str, tuple[int, ...]] = field(default_factory=dict)  # VIF ref -> ports
    ruled: dict[str, tuple[int, ...]] = field(default_factory=dict)  # VIF ref -> ports (rules)
    owners: dict[str, str] = field(default_factory=dict)  # port name -> local VIF ref
    names_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # VIF ref -> its names
    flood: Entries = field(default_factory=dict)
    remote_port: dict[str, int] = field(default_factory=dict)  # peer host uuid -> tunnel port
    remote_nets: dict[str, int] = field(default_factory=dict)  # network -> VLAN (remote flows)
    meters: dict[str, dict[int, MeterBand]] = field(default_factory=dict)  # VIF ref -> its own

    def remote_entries(self, placements: dict[str, dict[str, Placement]]) -> Iterator[
            tuple[Key, Body]]:
        """The flows this switch holds for VIFs on other hosts (generated, not stored; a
        chain of the per-VIF lists `remote_canon` shares between switches: a cold start at
        64 x 1000 yields ~2.7 million of these)."""
        host = self.host_ref
        return chain.from_iterable(self._remote(p, vlan)
                                   for net, vlan in self.remote_nets.items()
                                   for p in placements.get(net, {}).values() if p.host != host)

    def _remote(self, p: Placement, vlan: int) -> list[tuple[Key, Body]]:
        kind = self.shape.kind
        if kind == "private":
            port = self.remote_port.get(p.host_uuid)
        else:
            port = self.ports.uplinks[0] if len(self.ports.uplinks) == 1 else None
        if port is None:
            return []
        return remote_canon(kind, vlan, p.mac, port)

    def stored(self) -> Iterator[tuple[Key, Body]]:
        return chain(self.base.items(),
                     chain.from_iterable(e.items() for e in self.local.values()),
                     self.flood.items())

    def vif_ports(self) -> set[int]:
        out: set[int] = set()
        for name, _ref in self.owners.items():
            no = self.names.get(name)
            if no is not None:
                out.add(no)
        return out

    def classified(self) -> set[int]:
        """Ports whose frames the table knows what to do with (the rest go to the
        controller, which holds them until their rules are in)."""
        return self.vif_ports() | {*self.ports.uplinks, *self.ports.tunnels.values(),
                                   *self.ports.internal,
                                   *((OFPP_LOCAL,) if self.shape.kind != "external" else ())}

    def disabled_ports(self) -> set[int]:
        return {p for ports in self.disabled.values() for p in ports}


class FlowTables:
    """Desired tables of the connected switches, from the validated pool and their ports."""

    def __init__(self, view: LivePool) -> None:
        self.view = view
        self.tables: dict[int, SwitchTable] = {}
        self.identities: dict[int, tuple[str, str]] = {}  # dpid -> (host ref, bridge)
        self.placements: dict[str, dict[str, Placement]] = {}  # network -> VIF ref -> place
        self._placed: dict[str, Placement] = {}  # VIF ref -> placement
        self._local_of: dict[str, int] = {}  # VIF ref -> dpid holding its local part
        self._carrying: dict[str, set[int]] = {}  # network -> dpids with it in their shape
        self._uuids: dict[str, set[str]] = {}  # VIF ref -> uuid its ports are filed under
        self._host_dpids: dict[str, set[int]] = {}  # host ref -> dpids of its bridges
        self._connected_of: dict[str, set[int]] = {}  # host ref -> its tables' dpids
        self._part_net: dict[str, str] = {}  # VIF ref -> network of its local part
        self._domid_of: dict[str, int] = {}  # VIF ref -> domain id its local part's ports have
        self.holds: dict[str, Held] = {}  # migrating VIFs kept where their port still is
        self._awaited: dict[tuple[str, str], str] = {}  # (host ref, new port name) -> held VIF
        self._waiting: dict[int, dict[str, int]] = {}  # connected, not (yet) the pool's
        self.deltas: dict[int, Delta] = {}
        # VIF ports that appeared on an external bridge this round, to announce upstream:
        # dpid -> [(ofport, MAC)] (the OpenFlow sink sends them: `FlowSink._announce`)
        self.arrivals: dict[int, list[tuple[int, str]]] = {}
        # VIF ports whose disabled state may have changed this round: dpid -> port -> disabled
        self.port_changes: dict[int, dict[int, bool]] = {}
        self.meter_changes: set[int] = set()  # switches whose meters changed this round
        self._no_flood_of: dict[int, set[int]] = {}  # dpid -> ports it reports NO_FLOOD
        self.rebuilds = 0  # switch tables rebuilt whole
        self.vif_updates = 0  # VIF parts replaced (the fast path)

    @property
    def where(self) -> HeldPool:
        """The pool as the flows read it: held VIFs where their old port is (`flows.handover`)."""
        return HeldPool(self.view, self.holds)

    # ------------------------------------------------------------------ identities
    def set_host_bridges(self, host_ref: str, host_uuid: str, bridges: Iterable[str],
                         build: bool = True) -> None:
        """The bridges netctl builds on a host (from its HostConfig): the switches that may
        connect as that host's, by datapath id (`flows.ports.datapath_id`). A connected switch
        whose identity changes is rebuilt from its ports (`build`; a recompute builds every
        table once, after every identity is known)."""
        for dpid in self._host_dpids.pop(host_ref, set()):
            if self.identities.get(dpid, (None,))[0] == host_ref:  # not taken over meanwhile
                del self.identities[dpid]
        dpids = set()
        for bridge in bridges:
            dpid = datapath_id(host_uuid, bridge)
            self.identities[dpid] = (host_ref, bridge)
            dpids.add(dpid)
        if dpids:
            self._host_dpids[host_ref] = dpids
        if not build:
            return
        for dpid in sorted(self._connected_of.get(host_ref, set()) | (dpids & self.tables.keys())):
            table = self.tables[dpid]
            if self.identities.get(dpid) != (table.host_ref, table.bridge) or \
                    table.host_uuid != host_uuid:
                names = table.names
                self.disconnect(dpid, recheck=False)
                self.connect(dpid, names, recheck=False)
        for dpid in dpids - set(self.tables):
            if dpid in self._waiting:
                self.connect(dpid, self._waiting.pop(dpid), recheck=False)
        self._recheck(None)

    # ------------------------------------------------------------------ switch events
    def connect(self, dpid: int, names: dict[str, int], recheck: bool = True
                ) -> SwitchTable | None:
        ident = self.identities.get(dpid)
        if ident is None:
            self.tables.pop(dpid, None)
            self._waiting[dpid] = dict(names)  # not (yet) one of the pool's bridges
            return None
        self._waiting.pop(dpid, None)
        host_ref, bridge = ident
        host = self.view.hosts.get(host_ref)
        table = SwitchTable(dpid, host_ref, bridge, host.uuid if host else "", dict(names))
        old = self.tables.get(dpid)
        if old is not None:
            self._unregister(old)
            self._forget_table(old)
        self.tables[dpid] = table
        self._connected_of.setdefault(host_ref, set()).add(dpid)
        self._build(table)
        self.deltas[dpid] = Delta(full=True)
        if recheck:  # a held VIF's old or new port may be (or no longer be) here
            self._recheck(host_ref)
        return table

    def disconnect(self, dpid: int, recheck: bool = True) -> None:
        self._waiting.pop(dpid, None)
        table = self.tables.pop(dpid, None)
        if table is not None:
            self._unregister(table)
            self._forget_table(table)
        self.deltas.pop(dpid, None)
        self.port_changes.pop(dpid, None)
        if table is not None and recheck:
            self._recheck(table.host_ref)

    def _recheck(self, host_ref: str | None) -> None:
        """Re-judge the holds that involve a host's switches (None: every hold)."""
        for ref, held in list(self.holds.items()):
            vif = self.view.vifs.get(ref)
            if host_ref is None or held.host == host_ref or vif is None \
                    or self.view.vif_host(vif) == host_ref:
                self._vif(ref)

    def port(self, dpid: int, name: str, number: int | None) -> None:
        """A port appeared (number) or went (None)."""
        table = self.tables.get(dpid)
        if table is None:
            waiting = self._waiting.get(dpid)
            if waiting is not None:
                if number is None:
                    waiting.pop(name, None)
                else:
                    waiting[name] = number
            return
        before = table.names.pop(name, None) if number is None else table.names.get(name)
        if number is not None:
            table.names[name] = number
        held = table.ports.no_flood
        if before != number and held & {before, number}:
            # a port that went or came has the switch's default config: NO_FLOOD is off
            self._set_no_flood(table, held - {before, number})
        vif_ref = table.owners.get(name)
        if vif_ref is None and number is not None:
            vif_ref = self._awaited.get((table.host_ref, name))  # a held VIF's new port
        if vif_ref is not None and vif_ref in self.holds:
            self._vif(vif_ref)  # its old port went or its new one came: the hold may end
            self._arrived(table, name, number)
            return
        if vif_ref is not None:
            self._local(table, vif_ref)
            self._refresh_flood(table)
            self._arrived(table, name, number)
            return
        old, new = table.ports, self._roles(table)
        if (new.uplinks, new.tunnels, new.internal) != (old.uplinks, old.tunnels, old.internal):
            self._rebuild(table)  # reads the old roles first, for the difference

    def _arrived(self, table: SwitchTable, name: str, number: int | None) -> None:
        """A VIF's port appeared on an external bridge: note it for an announcement (a RARP
        from its MAC, as QEMU sends after a migration), so the physical switches learn where
        the VIF now is before the guest speaks. Not for a VIF that may not send (disabled or
        quarantined), nor on a switch's (re)connect: only a port that came while connected."""
        vif_ref = table.owners.get(name)
        vif = self.view.vifs.get(vif_ref) if vif_ref is not None else None
        if number is None or vif is None or table.shape.kind != "external" \
                or self._local_of.get(vif_ref) != table.dpid or vif_ref in table.disabled:
            return
        self.arrivals.setdefault(table.dpid, []).append((number, vif.mac.lower()))

    # ------------------------------------------------------------------ intent changes
    def apply(self, changes: dict[str, tuple[XapiObject | None, XapiObject | None]]) -> None:
        """React to the validated pool's changes of this round."""
        view = self.view
        rebuild: set[int] = set()
        vifs: set[str] = set()
        for ref, (old, new) in changes.items():
            for obj in (old, new):
                if obj is None:
                    continue
                if isinstance(obj, VIF):
                    vifs.add(ref)
                elif isinstance(obj, VM):
                    vifs |= {v.ref for v in view.vm_vifs(ref)}
                elif isinstance(obj, Network):
                    rebuild |= self._carrying.get(obj.ref, set())
                    rebuild |= {d for d, t in self.tables.items() if t.bridge == obj.bridge}
                    vifs |= {v.ref for v in view.network_vifs(obj.ref)}
                elif isinstance(obj, PIF):
                    if _shaping(old) != _shaping(new):  # not its IP, say: nothing here
                        rebuild |= self._pif_switches(obj)
                elif isinstance(obj, Bond | VLAN):
                    rebuild |= self._host_switches(self._hosts_of(obj))
                elif isinstance(obj, Tunnel):  # the mesh of its network, nothing else
                    if status_only(old, new):
                        continue  # tunnel.status: no flow reads it (keys are OVSDB's)
                    access = view.pifs.get(obj.access_pif)  # gone: its ports' events do it
                    if access is not None:
                        rebuild |= self._carrying.get(access.network, set())
        for dpid in sorted(rebuild):
            table = self.tables.get(dpid)
            if table is not None:
                self._rebuild(table)
        moves = [m for ref in sorted(vifs) if (m := self._vif(ref, remote=False)) is not None]
        self._remote_moves(moves)

    def recompute(self) -> None:
        """Every table again (the fallback, counted as the node's recompute): each connected
        switch that is one of the pool's — those connected before they were known too — is
        built once."""
        self.placements, self._placed = {}, {}
        for vif in self.view.vifs.values():
            self._place(vif.ref)
        switches = {dpid: table.names for dpid, table in self.tables.items()}
        for dpid in list(self.tables):
            self.disconnect(dpid, recheck=False)
        waiting, self._waiting = self._waiting, {}
        for dpid, names in sorted({**waiting, **switches}.items()):
            self.connect(dpid, names, recheck=False)  # not the pool's: it waits again
        self._recheck(None)

    def known_hosts(self) -> set[str]:
        """Hosts whose bridges this node was told of (`set_host_bridges`)."""
        return set(self._host_dpids)

    # ------------------------------------------------------------------ the round's output
    def output(self) -> FlowOutput:
        return FlowOutput(self.deltas, self.port_changes, self.arrivals,
                          frozenset(self.meter_changes))

    def clear_round(self) -> None:
        self.deltas, self.arrivals, self.port_changes = {}, {}, {}
        self.meter_changes = set()

    # ------------------------------------------------------------------ reading (the sink)
    def entries(self, dpid: int) -> Iterator[tuple[Key, Body]]:
        """The switch's whole desired table (stored parts, then the generated remote ones)."""
        table = self.tables[dpid]
        return chain(table.stored(), table.remote_entries(self.placements))

    def desired(self, dpid: int) -> Iterator[tuple[Key, Body]] | None:
        """The whole desired table of a switch, or None when it is not one of the pool's
        bridges (such a switch is read, never written)."""
        return self.entries(dpid) if dpid in self.tables else None

    def meters(self, dpid: int) -> dict[int, MeterBand]:
        """Every meter a switch's desired table uses: meter id -> band (`flows.qos`)."""
        table = self.tables.get(dpid)
        if table is None:
            return {}
        return {meter: band for own in table.meters.values() for meter, band in own.items()}

    def port_modes(self, dpid: int) -> dict[int, bool]:
        """Every VIF port of a switch -> whether its VIF is disabled."""
        table = self.tables.get(dpid)
        if table is None:
            return {}
        disabled = table.disabled_ports()
        return {port: port in disabled for port in table.vif_ports() | disabled}

    def classifies(self, dpid: int, port: int) -> bool:
        """Whether the switch's table knows what to do with frames from this port."""
        table = self.tables.get(dpid)
        return table is not None and port in table.classified()

    def local_flows(self, vif_ref: str) -> int:
        """How many flows a VIF's own part of its switch's table holds (0: none here)."""
        table = self.tables.get(self._local_of.get(vif_ref, -1))
        return len(table.local.get(vif_ref, ())) if table is not None else 0

    def floods_through_rules(self, vif_ref: str) -> bool | None:
        """Whether the broadcasts and multicasts a VIF with traffic rules gets pass its to-VM
        rules: always on private and internal bridges; on an external one once the switch
        reports all its ports NO_FLOOD. None: no rules (or not on a switch here)."""
        table = self.tables.get(self._local_of.get(vif_ref, -1))
        if table is None or vif_ref not in table.ruled:
            return None
        if table.shape.kind != "external":
            return True
        vif = self.view.vifs.get(vif_ref)
        return vif is not None and keeps_out_of_normal("external", vif) \
            and table.ports.no_flood.issuperset(table.ruled[vif_ref])

    def identity(self, dpid: int) -> tuple[str, str] | None:
        """(host ref, bridge) of one of the pool's switches."""
        return self.identities.get(dpid)

    def describe(self, dpid: int) -> str:
        """A switch as a person names it: "host1 xenbr0" (or "not the pool's")."""
        ident = self.identities.get(dpid)
        if ident is None:
            return "not the pool's"
        host = self.view.hosts.get(ident[0])
        return f"{host.name_label if host else ident[0]} {ident[1]}"

    def note(self, dpid: int, key: Key) -> str:
        """What a flow of the desired table is for (its compiled note), for a Problem."""
        found = self.flows_of(dpid, key)
        return found.note if found is not None else f"table {key[0]}"

    def flows_of(self, dpid: int, key: Key) -> Flow | None:
        """The compiled Flow behind a key (its note, for a Problem): recomputed, rarely."""
        table = self.tables.get(dpid)
        if table is None:
            return None
        candidates = list(base_flows(table.shape, table.ports))
        for vref, entries in table.local.items():
            if key in entries and vref in self.view.vifs:
                candidates += local_vif_flows(self.where, table.shape, table.ports,
                                              self.view.vifs[vref])
        candidates += flood_flows(table.shape, table.ports, self._taking(table),
                                  self._ruled(table))
        for f in candidates:
            if canon_flow(f)[0] == key:
                return f
        return None

    # ------------------------------------------------------------------ building
    def _build(self, table: SwitchTable) -> None:
        """The whole table of one switch from the validated pool (stored parts)."""
        self.rebuilds += 1
        view = self.view
        self._unregister(table)
        kind, bond, vlans = bridge_shape(view, table.host_ref, table.bridge)
        table.shape = BridgeIntent(kind, bond, vlans, (), ())
        self._refresh_ports(table)
        table.base = _canon(base_flows(table.shape, table.ports))
        changes = self.port_changes.setdefault(table.dpid, {})
        for ref in table.names_of:  # every VIF part goes: its ports' modes may change
            changes.update(dict.fromkeys(self._numbers(table, ref), False))
        table.local, table.taking, table.disabled, table.owners = {}, {}, {}, {}
        table.ruled = {}
        table.names_of, table.meters = {}, {}
        for net in vlans:
            self._carrying.setdefault(net, set()).add(table.dpid)
        if kind != "none":
            for net in vlans:
                for vif in self._vifs_here(table.host_ref, net):
                    self._local(table, vif.ref, delta=False)
        table.flood = _canon(flood_flows(table.shape, table.ports, self._taking(table),
                                         self._ruled(table)))
        table.remote_nets = {}
        if kind == "private" or (kind == "external" and not bond
                                 and len(table.ports.uplinks) == 1):
            table.remote_nets = dict(vlans)

    def _rebuild(self, table: SwitchTable) -> None:
        """A switch's shape or non-VIF ports changed: rebuild what depends on them and hand on
        the difference. Same kind of bridge: the bridge's own flows and the flooding are
        recomputed; a local VIF's part only when its network's VLAN on the bridge changed;
        remote flows only for the networks and peer hosts whose mapping changed. Another
        kind: everything (a counted whole rebuild)."""
        view = self.view
        kind, bond, vlans = bridge_shape(view, table.host_ref, table.bridge)
        old = table.shape
        if (kind, bond) != (old.kind, old.bond) or kind == "none":
            self._rebuild_whole(table)
            return
        delta = self.deltas.setdefault(table.dpid, Delta())
        old_remote_nets, old_remote_port = dict(table.remote_nets), dict(table.remote_port)
        old_uplinks = table.ports.uplinks
        moved = {n for n in old.vlans.keys() | vlans.keys() if old.vlans.get(n) != vlans.get(n)}
        # the VIF parts of networks whose VLAN changed go, with the old shape
        leaving = [r for r in table.local if (v := view.vifs.get(r)) is None
                   or v.network in moved or self._part_net.get(r) in moved]
        for net in moved - vlans.keys():
            self._carrying.get(net, set()).discard(table.dpid)
        table.shape = BridgeIntent(kind, bond, dict(vlans), (), ())
        for net in vlans:
            self._carrying.setdefault(net, set()).add(table.dpid)
        ports = self._roles(table)
        ports.vifs.update(table.ports.vifs)  # type: ignore[attr-defined]
        ports.taps.update(table.ports.taps)  # type: ignore[attr-defined]
        table.ports = ports
        table.remote_port = dict(ports.tunnels)
        self._diff_into(delta, table.base, _canon(base_flows(table.shape, table.ports)))
        table.base = _canon(base_flows(table.shape, table.ports))
        for ref in leaving:
            self._local(table, ref)
        for net in sorted(moved & vlans.keys()):
            for vif in self._vifs_here(table.host_ref, net):
                self._local(table, vif.ref)
        self._refresh_flood(table)
        table.remote_nets = {}
        if kind == "private" or (kind == "external" and not bond and len(ports.uplinks) == 1):
            table.remote_nets = dict(vlans)
        # remote flows: whole networks whose mapping changed; else only the peers whose
        # tunnel port changed (or every peer when the uplink changed)
        nets = old_remote_nets.keys() | table.remote_nets.keys()
        for net in sorted(nets):
            before_vlan, after_vlan = old_remote_nets.get(net), table.remote_nets.get(net)
            if before_vlan != after_vlan or old_uplinks != ports.uplinks:
                peers = None  # all
            else:
                peers = {h for h in old_remote_port.keys() | table.remote_port.keys()
                         if old_remote_port.get(h) != table.remote_port.get(h)}
                if not peers:
                    continue
            before, after = {}, {}
            for p in self._placements_of(net, peers):
                if p.host == table.host_ref:
                    continue
                if before_vlan is not None:
                    before.update(self._remote_with(table, p, before_vlan, old_remote_port,
                                                    old_uplinks))
                if after_vlan is not None:
                    after.update(table._remote(p, after_vlan))
            self._diff_into(delta, before, after)

    def _vifs_here(self, host_ref: str, net: str) -> list[VIF]:
        """The active VIFs of a network that xapi puts on a host, and those held there (the
        ones xapi puts here but are held elsewhere are left out by `_local`)."""
        view = self.view
        out = [v for v in view.host_network_vifs(host_ref, net) if view.is_vif_active(v)]
        for ref, held in self.holds.items():
            vif = view.vifs.get(ref)
            if held.host == host_ref and vif is not None and vif.network == net:
                out.append(vif)
        return out

    def _placements_of(self, net: str, peers: set[str] | None) -> list[Placement]:
        bucket = self.placements.get(net, {})
        if peers is None:
            return list(bucket.values())
        return [p for p in bucket.values() if p.host_uuid in peers]

    @staticmethod
    def _remote_with(table: SwitchTable, p: Placement, vlan: int, ports: dict[str, int],
                     uplinks: tuple[int, ...]) -> list[tuple[Key, Body]]:
        """Remote flows as they were with the old port numbers."""
        if table.shape.kind == "private":
            port = ports.get(p.host_uuid)
        else:
            port = uplinks[0] if len(uplinks) == 1 else None
        return [] if port is None else remote_canon(table.shape.kind, vlan, p.mac, port)

    @staticmethod
    def _diff_into(delta: Delta, before: Entries, after: Entries) -> None:
        for key, body in after.items():
            if before.get(key) != body:
                delta.put(key, body, key in before)
        for key in before:
            if key not in after:
                delta.put(key, None, True)

    def _rebuild_whole(self, table: SwitchTable) -> None:
        """Rebuild one switch whole and hand on the difference (stored and generated)."""
        before = dict(table.stored())
        remote_before = (dict(table.remote_nets), dict(table.remote_port),
                         table.ports.uplinks, table.shape.kind)
        old_remote = dict(table.remote_entries(self.placements))
        self._build(table)
        after = dict(table.stored())
        remote_after = (dict(table.remote_nets), dict(table.remote_port),
                        table.ports.uplinks, table.shape.kind)
        if remote_before != remote_after:
            before.update(old_remote)
            after.update(table.remote_entries(self.placements))
        self._diff_into(self.deltas.setdefault(table.dpid, Delta()), before, after)

    def _refresh_ports(self, table: SwitchTable) -> None:
        table.ports = self._roles(table)
        table.remote_port = dict(table.ports.tunnels)

    def _roles(self, table: SwitchTable) -> BridgePorts:
        """Port roles from the names the switch reports and what xapi intends."""
        view = self.view
        host, bridge, names = table.host_ref, table.bridge, table.names
        uplinks = tuple(names[d] for d in uplink_devices(view, host, bridge) if d in names)
        peers = tunnel_peers(view, host, bridge) if table.shape.kind == "private" else {}
        tunnels = {peer: names[name] for name, peer in peers.items() if name in names}
        internal: dict[int, int] = {}
        if table.shape.kind == "external":
            internal[OFPP_LOCAL] = 0
            for net_ref, vlan in table.shape.vlans.items():
                net = view.networks.get(net_ref)
                if vlan and net is not None and net.bridge in names:
                    internal[names[net.bridge]] = vlan  # a fake bridge's internal port
        vifs, taps = {}, {}
        for name, vref in table.owners.items():
            vif = view.vifs.get(vref)
            if vif is None or name not in names:
                continue
            if name.startswith("tap"):
                taps[vif.uuid] = names[name]
            else:
                vifs[vif.uuid] = names[name]
        return BridgePorts(vifs=vifs, taps=taps, uplinks=uplinks, tunnels=tunnels,
                           internal=internal,
                           no_flood=frozenset(self._no_flood_of.get(table.dpid, ())))

    def _local(self, table: SwitchTable, vif_ref: str, delta: bool = True) -> None:
        """Replace one VIF's part of a switch's table (its names, ports, entries)."""
        view = self.view
        vif = view.vifs.get(vif_ref)
        ports_before = self._numbers(table, vif_ref)
        old = table.local.pop(vif_ref, {})
        for name in table.names_of.pop(vif_ref, ()):
            if table.owners.get(name) == vif_ref:
                del table.owners[name]
        for uuid in {v.uuid for v in (vif,) if v is not None} | self._uuids.pop(vif_ref, set()):
            table.ports.vifs.pop(uuid, None)  # type: ignore[attr-defined]
            table.ports.taps.pop(uuid, None)  # type: ignore[attr-defined]
        table.taking.pop(vif_ref, None)
        table.disabled.pop(vif_ref, None)
        table.ruled.pop(vif_ref, None)
        old_meters = table.meters.pop(vif_ref, {})
        if self._local_of.get(vif_ref) == table.dpid:
            del self._local_of[vif_ref]
        where = self.where
        new: Entries = {}
        if vif is not None and view.is_vif_active(vif) and where.vif_host(vif) == table.host_ref \
                and vif.network in table.shape.vlans and table.shape.kind != "none":
            ports = table.ports
            names = []
            for name, role in ((vif_port_name(where, vif), ports.vifs),
                               (tap_port_name(where, vif), ports.taps)):
                if name is not None:
                    table.owners[name] = vif_ref
                    names.append(name)
                    if name in table.names:
                        role[vif.uuid] = table.names[name]  # type: ignore[index]
            self._uuids[vif_ref] = {vif.uuid}
            table.names_of[vif_ref] = tuple(names)
            taking: dict[int, list[int]] = {}
            ruled: set[int] = set()
            new = local_vif_canon(view, table.shape, ports, vif, taking, ruled)
            table.local[vif_ref] = new
            table.taking[vif_ref] = (table.shape.vlans[vif.network],
                                     tuple(p for ps in taking.values() for p in ps))
            if ruled:
                table.ruled[vif_ref] = tuple(sorted(ruled))
            if view.enforced_locking_mode(vif) == "disabled":
                table.disabled[vif_ref] = vif_ports(ports, vif)
            if meters := vif_meters(ports, vif):
                table.meters[vif_ref] = meters
            self._local_of[vif_ref] = table.dpid
            self._part_net[vif_ref] = vif.network
            self._domid_of[vif_ref] = where.vif_domid(vif)
            self.vif_updates += 1
        disabled = table.disabled.get(vif_ref, ())
        changes = self.port_changes.setdefault(table.dpid, {})
        for port in ports_before | self._numbers(table, vif_ref):
            changes[port] = port in disabled
        if table.meters.get(vif_ref, {}) != old_meters:
            self.meter_changes.add(table.dpid)
        if delta:
            self._diff_into(self.deltas.setdefault(table.dpid, Delta()), old, new)

    # ------------------------------------------------------------------ NO_FLOOD (external)
    def flood_wants(self, dpid: int, ports: Iterable[int] | None = None) -> dict[int, bool]:
        """VIF ports of a switch (these, or None: every one, and every port it reports
        NO_FLOOD) -> whether each should be set NO_FLOOD (a VIF with traffic rules on an
        external bridge: `keeps_out_of_normal`), for the sink's OpenFlow 1.0 session
        (`netctl.sinks.portconfig`). Costs the switch's ruled VIFs, plus `ports`."""
        table = self.tables.get(dpid)
        if table is None:
            return {}
        vifs = self.view.vifs
        kept = {p for ref, own in table.ruled.items()
                if (vif := vifs.get(ref)) is not None
                and keeps_out_of_normal(table.shape.kind, vif) for p in own}
        if ports is None:
            ports = table.vif_ports() | kept | table.ports.no_flood
        return {port: port in kept for port in ports}

    def no_flood(self, dpid: int, ports: Set[int]) -> None:
        """The ports the switch reports NO_FLOOD (its OpenFlow 1.0 session, whenever that
        changes): the explicit flooding (`flood_flows`) follows, so a port gets a flood once
        — by NORMAL, or through netctl's flow — never twice and never not at all. Kept across
        the switch's OpenFlow 1.3 reconnects (the ports keep their config)."""
        self._no_flood_of[dpid] = set(ports)
        table = self.tables.get(dpid)
        if table is not None and table.ports.no_flood != ports:
            self._set_no_flood(table, ports)

    def _set_no_flood(self, table: SwitchTable, ports: Set[int]) -> None:
        """(`_no_flood_of` is the switch's word, kept across reconnects; `table.ports` the
        table's reading of it, which `_roles` takes from there)"""
        self._no_flood_of[table.dpid] = set(ports)
        table.ports = replace(table.ports, no_flood=frozenset(ports))
        self._refresh_flood(table)

    @staticmethod
    def _taking(table: SwitchTable) -> dict[int, list[int]]:
        """VLAN -> the local VIF ports that take traffic."""
        out: dict[int, list[int]] = {}
        for vlan, ports in table.taking.values():
            out.setdefault(vlan, []).extend(ports)
        return out

    @staticmethod
    def _ruled(table: SwitchTable) -> set[int]:
        return {p for ports in table.ruled.values() for p in ports}

    def _refresh_flood(self, table: SwitchTable) -> None:
        new = _canon(flood_flows(table.shape, table.ports, self._taking(table),
                                 self._ruled(table)))
        if new == table.flood:
            return
        self._diff_into(self.deltas.setdefault(table.dpid, Delta()), table.flood, new)
        table.flood = new

    def _vif(self, vif_ref: str, remote: bool = True) -> tuple[Placement | None,
                                                                 Placement | None] | None:
        """A VIF changed: its local part where it runs (and where it ran), and its remote
        flows on every other switch of its network (old placement out, new one in). With
        `remote=False` the placement change is returned instead, for `_remote_moves` to hand
        on with the other VIFs' of the round."""
        view = self.view
        vif = view.vifs.get(vif_ref)
        old_dpid = self._local_of.get(vif_ref)
        self._hold(vif_ref)
        new_dpid = None
        if vif is not None and view.is_vif_active(vif):
            new_dpid = self._switch_of(self.where.vif_host(vif), vif.network)
        for dpid in {old_dpid, new_dpid} - {None}:
            table = self.tables.get(dpid)
            if table is not None:
                self._local(table, vif_ref)
                self._refresh_flood(table)
        if vif is None and vif_ref not in self._local_of:  # gone from xapi: forget it all
            self._part_net.pop(vif_ref, None)
            self._domid_of.pop(vif_ref, None)
        old_p = self._placed.get(vif_ref)
        new_p = self._place(vif_ref)
        if old_p == new_p:
            return None
        if not remote:
            return old_p, new_p
        self._remote_moves([(old_p, new_p)])
        return None

    def _remote_moves(self, moves: list[tuple[Placement | None, Placement | None]]) -> None:
        """VIFs' placements that changed, as remote flows on every other switch of their
        networks: every old flow that goes first, then every new or changed one. Two VIFs may
        share a remote flow's key (a MAC on a network: the one that keeps it and the one
        quarantined for it); when the MAC passes from one to the other in a round, the flow
        is then one modify, whichever VIF came first (in the other order the second VIF's
        delete would cancel the first one's add)."""
        pairs: dict[int, list[tuple[Entries, Entries]]] = {}
        for old_p, new_p in moves:
            dpids = set()
            for p in (old_p, new_p):
                if p is not None:
                    dpids |= self._carrying.get(p.network, set())
            for dpid in dpids:
                table = self.tables[dpid]
                before = dict(self._remote_of(table, old_p))
                after = dict(self._remote_of(table, new_p))
                if before != after:
                    pairs.setdefault(dpid, []).append((before, after))
        for dpid in sorted(pairs):
            delta = self.deltas.setdefault(dpid, Delta())
            for before, after in pairs[dpid]:
                for key in before:
                    if key not in after:
                        delta.put(key, None, True)
            for before, after in pairs[dpid]:
                for key, body in after.items():
                    if before.get(key) != body:
                        delta.put(key, body, key in before)

    def _switch_of(self, host_ref: str | None, net: str) -> int | None:
        """The switch of a host that carries a network (its bridge, or a VLAN's parent)."""
        carrying = self._carrying.get(net, ())
        return next((d for d in sorted(self._connected_of.get(host_ref or "", ()))
                     if d in carrying), None)

    @staticmethod
    def _numbers(table: SwitchTable, vif_ref: str) -> set[int]:
        """The port numbers a VIF's part of a switch names (those the switch has)."""
        return {table.names[n] for n in table.names_of.get(vif_ref, ()) if n in table.names}

    def _hold(self, vif_ref: str) -> None:
        """Start, keep or end a VIF's hold (`flows.handover`): held while xapi puts the running
        VIF on another host than its local part's, its old port is still on the old host's
        switch and none of its new ports is on the new host's yet."""
        view = self.view
        vif = view.vifs.get(vif_ref)
        held = self.holds.pop(vif_ref, None)
        for key in [k for k, r in self._awaited.items() if r == vif_ref] if held else ():
            del self._awaited[key]
        if vif is None or not view.is_vif_active(vif):
            return
        was: Held | None = held
        if was is None:
            dpid = self._local_of.get(vif_ref)
            table = self.tables.get(dpid) if dpid is not None else None
            if table is None or self._part_net.get(vif_ref) != vif.network:
                return
            was = Held(table.host_ref, self._domid_of.get(vif_ref, -1))
        host = view.vif_host(vif)
        if host == was.host or was.domid < 0:
            return
        old_dpid, new_dpid = self._switch_of(was.host, vif.network), self._switch_of(host,
                                                                                    vif.network)
        new_names = port_names(view.vif_domid(vif), vif.device)
        if old_dpid is None or not any(n in self.tables[old_dpid].names
                                       for n in port_names(was.domid, vif.device)):
            return  # the old port is gone: nothing to wait for
        if new_dpid is not None and any(n in self.tables[new_dpid].names for n in new_names):
            return  # the new port is there: move now
        self.holds[vif_ref] = was
        for name in new_names:
            self._awaited[(host, name)] = vif_ref

    @staticmethod
    def _remote_of(table: SwitchTable, p: Placement | None) -> list[tuple[Key, Body]]:
        if p is None or p.host == table.host_ref or p.network not in table.remote_nets:
            return []
        return table._remote(p, table.remote_nets[p.network])

    def _place(self, vif_ref: str) -> Placement | None:
        view = self.view
        old = self._placed.pop(vif_ref, None)
        if old is not None:
            bucket = self.placements.get(old.network)
            if bucket is not None:
                bucket.pop(vif_ref, None)
        vif = view.vifs.get(vif_ref)
        if vif is None or not view.is_vif_active(vif) or vif_ref in view.quarantined:
            return None
        host_ref = self.where.vif_host(vif)
        host = view.hosts.get(host_ref) if host_ref else None
        if host is None:
            return None
        p = Placement(vif.network, host_ref, host.uuid, vif.mac.lower())
        self._placed[vif_ref] = p
        self.placements.setdefault(vif.network, {})[vif_ref] = p
        return p

    # ------------------------------------------------------------------ small helpers
    def _forget_table(self, table: SwitchTable) -> None:
        tables = self._connected_of.get(table.host_ref)
        if tables is not None:
            tables.discard(table.dpid)
            if not tables:
                del self._connected_of[table.host_ref]

    def _unregister(self, table: SwitchTable) -> None:
        for dpids in self._carrying.values():
            dpids.discard(table.dpid)
        for vref in list(table.local):
            if self._local_of.get(vref) == table.dpid:
                del self._local_of[vref]

    def _pif_switches(self, pif: PIF) -> set[int]:
        """The switches a PIF can shape: its host's bridge of its network, or the bridge that
        carries that network (a VLAN's parent), and, for a bond member, its bond's bridge."""
        nets = {pif.network}
        for pool in (self.view,):
            for bond_ref in (pif.bond_slave_of,):
                bond = pool.bonds.get(bond_ref)
                master = pool.pifs.get(bond.master) if bond is not None else None
                if master is not None:
                    nets.add(master.network)
            vlan = pool.vlans.get(pif.vlan_master_of)
            tagged = pool.pifs.get(vlan.tagged_pif) if vlan is not None else None
            if tagged is not None:
                nets.add(tagged.network)
        bridges = {n.bridge for ref in nets if (n := self.view.networks.get(ref)) is not None}
        return {d for d in self._host_switches({pif.host})
                if (t := self.tables[d]).bridge in bridges or nets & t.shape.vlans.keys()}

    def _host_switches(self, hosts: set[str]) -> set[int]:
        return {d for h in hosts for d in self._connected_of.get(h, ())}

    def _hosts_of(self, obj: XapiObject) -> set[str]:
        view = self.view
        refs: tuple[str, ...] = ()
        if isinstance(obj, Bond):
            refs = (obj.master, *obj.slaves)
        elif isinstance(obj, VLAN):
            refs = (obj.tagged_pif, obj.untagged_pif)
        return {view.pifs[r].host for r in refs if r in view.pifs}


def _shaping(obj: XapiObject | None) -> tuple | None:
    """What of a PIF a bridge's flows depend on (its shape, uplink and mesh ports): not its
    addresses, nor the tunnels it carries as a transport."""
    if not isinstance(obj, PIF):
        return None
    return (obj.host, obj.network, obj.device, obj.type, obj.bond_slave_of, obj.vlan_master_of,
            obj.tunnel_access_pif_of, obj.currently_attached)


def _canon(flows: list[Flow]) -> Entries:
    return dict(canon_flow(f) for f in flows)
