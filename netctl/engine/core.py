"""netctl's reconcile engine: xapi changes and switch events in, host configurations and flow
table deltas out, each change costing what it changes (issue 9).

    pool (input: xapi objects)      switches (input: connects, ports)
      |                                |
    intent (validated pool, Problems)  |
      |            \\                  |
    hosts           flows <------------+
    (HostConfig     (per switch: desired table, deltas)
     per host)

Pure: no sockets, no threads. The reconcile loop (`netctl.service.loop`) feeds the inputs, runs
a round and hands `output()` on: the changed hosts' configurations to the OVSDB side, the flow
tables' changes to the OpenFlow sink.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from netctl.engine.flows import FlowOutput, FlowTables
from netctl.engine.graph import Engine, InputNode, Node
from netctl.engine.hosts import HostConfigs, HostSettings
from netctl.engine.pool import LivePool
from netctl.engine.validation import IncrementalValidator
from netctl.hostconfig import HostConfig
from netctl.model import PIF, Host, Problem, XapiObject

Change = tuple[str, XapiObject | None, XapiObject | None]  # (ref, before, after)
# A change set this large (against the pool's size) is cheaper recomputed than handled.
RECOMPUTE_FRACTION = 0.5


class PoolInput(InputNode):
    """The raw pool (as xapi says), fed change by change; `changes` are this round's."""

    def __init__(self) -> None:
        super().__init__("pool")
        self.raw = LivePool()
        self.previous: dict[str, XapiObject | None] = {}  # ref -> raw object before the round

    def feed(self, changes: Iterable[Change]) -> None:
        for ref, _before, after in changes:
            if ref not in self.previous:
                self.previous[ref] = self.raw.get(ref)
            if after is None:
                self.raw.remove(ref)
            else:
                self.raw.upsert(after)
            self.changed = True

    def clear(self) -> None:
        super().clear()
        self.previous = {}


@dataclass
class SwitchEvent:
    kind: str  # connect | port | gone | no_flood
    dpid: int
    names: dict[str, int] = field(default_factory=dict)  # connect: every port
    name: str = ""  # port
    number: int | None = None  # port: its number, None when it went
    ports: frozenset[int] = frozenset()  # no_flood: every port the switch reports NO_FLOOD


class SwitchInput(InputNode):
    def __init__(self) -> None:
        super().__init__("switches")
        self.events: list[SwitchEvent] = []

    def feed(self, event: SwitchEvent) -> None:
        self.events.append(event)
        self.changed = True

    def clear(self) -> None:
        super().clear()
        self.events = []


class IntentNode(Node):
    """The validated pool and its Problems (`IncrementalValidator`)."""

    def __init__(self, pool: PoolInput) -> None:
        super().__init__("intent", [pool])
        self.pool = pool
        self.validator = IncrementalValidator(pool.raw)
        self.on(pool, self._pool_changed)

    @property
    def view(self) -> LivePool:
        return self.validator.out.view

    @property
    def changes(self) -> dict:
        return self.validator.out.changes

    def _pool_changed(self) -> bool:
        """Validate the changed objects; give up (a counted recompute) for a change set about
        as large as the pool, or one that touches a host (its name is in the words of every
        Problem about its PIFs, bonds, VLANs and tunnels: `IncrementalValidator.apply`)."""
        previous, raw = self.pool.previous, self.pool.raw
        size = sum(len(getattr(raw, n)) for n in ("vifs", "vms", "pifs")) + 1
        if len(previous) > RECOMPUTE_FRACTION * size and size > 100:
            return False
        if any(isinstance(previous[r], Host) or isinstance(raw.get(r), Host) for r in previous):
            return False
        self.validator.apply(list(previous), previous)
        return True

    def recompute(self) -> None:
        self.validator.recompute()

    def has_changed(self) -> bool:
        return bool(self.changes)

    def clear(self) -> None:
        super().clear()
        self.validator.out.changes = {}


class HostsNode(Node):
    """Each host's HostConfig (`HostConfigs`). Reads the validated pool, and the raw one for
    one rule: a network whose PIF on a host was rejected gets no internal bridge there."""

    def __init__(self, intent: IntentNode, settings: HostSettings) -> None:
        super().__init__("hosts", [intent, intent.pool])
        self.intent = intent
        self.configs = HostConfigs(intent.view, intent.pool.raw, settings)
        self.on(intent, self._intent_changed)
        self.on(intent.pool, self._raw_changed)

    def _intent_changed(self) -> bool:
        self.configs.view = self.intent.view  # the validator may have rebuilt its view
        self.configs.apply(self.intent.changes)
        return True

    def _raw_changed(self) -> bool:
        """A raw PIF may decide an internal bridge even while invalid: rebuild its host (once
        a round: those the intent handler rebuilt already are skipped)."""
        pool = self.intent.pool
        pifs = {obj.host for ref, before in pool.previous.items()
                for obj in (before, pool.raw.pifs.get(ref)) if isinstance(obj, PIF)}
        self.configs.rebuild(pifs)
        return True

    def recompute(self) -> None:
        self.configs.view = self.intent.view
        self.configs.recompute()

    def has_changed(self) -> bool:
        return bool(self.configs.changed)

    def clear(self) -> None:
        super().clear()
        self.configs.end_round()


class FlowsNode(Node):
    """Every connected switch's desired table (`FlowTables`). A switch is one of the pool's
    when its datapath id is that of a bridge some host's configuration holds (`hosts`)."""

    def __init__(self, intent: IntentNode, hosts: HostsNode, switches: SwitchInput) -> None:
        super().__init__("flows", [intent, hosts, switches])
        self.intent, self.hosts, self.switches = intent, hosts, switches
        self.tables = FlowTables(intent.view)
        self.on(intent, self._intent_changed)
        self.on(hosts, self._hosts_changed)
        self.on(switches, self._switch_events)

    def _same_view(self) -> bool:
        """Is `tables` reading the validator's current view? A view rebuilt with no change
        (a host event that changed nothing, say) is adopted as it is; one rebuilt with
        changes is not (the caller gives up: a counted recompute)."""
        if self.tables.view is not self.intent.view and not self.intent.changes:
            self.tables.view = self.intent.view
        return self.tables.view is self.intent.view

    def _hosts_changed(self) -> bool:
        self._same_view()
        for host_ref in sorted(self.hosts.configs.changed):
            self._identify(host_ref)
        return True

    def _identify(self, host_ref: str, build: bool = True) -> None:
        cfg = self.hosts.configs.config(host_ref)
        bridges = cfg.bridge_names() if cfg is not None else ()
        self.tables.set_host_bridges(host_ref, cfg.host_uuid if cfg else "", bridges, build)

    def _intent_changed(self) -> bool:
        if not self._same_view():
            return False  # the validator rebuilt its view: start again from it
        self.tables.apply(self.intent.changes)
        return True

    def _switch_events(self) -> bool:
        self._same_view()
        for ev in self.switches.events:
            if ev.kind == "connect":
                self.tables.connect(ev.dpid, ev.names)
            elif ev.kind == "gone":
                self.tables.disconnect(ev.dpid)
            elif ev.kind == "no_flood":
                self.tables.no_flood(ev.dpid, ev.ports)
            else:
                self.tables.port(ev.dpid, ev.name, ev.number)
        return True

    def recompute(self) -> None:
        self.tables.view = self.intent.view
        for host_ref in sorted(set(self.hosts.configs.hosts) | self.tables.known_hosts()):
            self._identify(host_ref, build=False)
        self.tables.recompute()
        self._switch_events()

    def has_changed(self) -> bool:
        return bool(self.tables.deltas)

    def clear(self) -> None:
        super().clear()
        self.tables.clear_round()


@dataclass(frozen=True)
class RoundOutput:
    """What a round hands on: the changed hosts' configurations (None: the host is gone) for
    the OVSDB side, and the flow tables' changes for the OpenFlow sink."""

    hosts: dict[str, HostConfig | None]
    flows: FlowOutput


class NetctlEngine:
    """The assembled engine. Feed `xapi()` and `switch()`, then `run()`; hand on `output()`
    and `problems()`; then `clear()`. Between rounds a sink reads the desired tables through
    `desired` (the whole table of a switch it must diff, a flow's note)."""

    def __init__(self, settings: HostSettings | None = None) -> None:
        self.pool = PoolInput()
        self.switches = SwitchInput()
        self.intent = IntentNode(self.pool)
        self.hosts = HostsNode(self.intent, settings or HostSettings())
        self.flows = FlowsNode(self.intent, self.hosts, self.switches)
        self.graph = Engine([self.pool, self.switches, self.intent, self.hosts, self.flows])
        self._started = False

    @property
    def view(self) -> LivePool:
        """The valid pool (what the compilers read)."""
        return self.intent.view

    @property
    def desired(self) -> FlowTables:
        """Every connected switch's desired table, for the OpenFlow sink to read."""
        return self.flows.tables

    def output(self) -> RoundOutput:
        configs = self.hosts.configs
        return RoundOutput({ref: configs.config(ref) for ref in sorted(configs.changed)},
                           self.flows.tables.output())

    def counters(self) -> dict:
        """What each node did, for `netctl status` and the metrics."""
        return {"nodes": {name: dict(vars(st)) for name, st in self.graph.stats().items()},
                "hosts_rebuilt": self.hosts.configs.rebuilds,
                "bridges_rebuilt": self.flows.tables.rebuilds,
                "vif_updates": self.flows.tables.vif_updates}

    def xapi(self, changes: Iterable[Change]) -> None:
        self.pool.feed(changes)

    def switch(self, event: SwitchEvent) -> None:
        self.switches.feed(event)

    def run(self) -> None:
        if not self._started:
            self._started = True
            self.graph.run(force=True)
        else:
            self.graph.run()

    def clear(self) -> None:
        self.graph.clear()

    def problems(self) -> list[Problem]:
        seen: set[Problem] = set()
        out: list[Problem] = []
        for p in (*self.intent.validator.out.all_problems(), *self.hosts.configs.problems()):
            if p not in seen:
                seen.add(p)
                out.append(p)
        return out
