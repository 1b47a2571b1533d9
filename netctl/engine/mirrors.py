"""Port mirroring in the engine: the pool's mirror sources and their plan, kept per round.

A mirror reads more than one object — the VIF or network that asks for it, the monitoring
VIF (where it runs, its domain id), the VIFs of a mirrored network, the hosts' VLAN PIFs for
RSPAN — so `HostConfigs` cannot patch it in with a VIF's own port settings. Instead this node
keeps the sources (by ref) and, in a round where something a mirror reads changed, plans them
again (`vlan.mirror.plan_mirrors`, the same function `compile_host` calls from scratch) and
says which hosts' mirrors or flood VLANs differ; those hosts get a new `HostConfig` (no
rebuild: only the `mirrors`/`flood_vlans` fields change). A round that touches nothing a
mirror reads costs one membership test per changed VIF, and nothing at all while no object
asks for a mirror.
"""

from __future__ import annotations

from netctl.engine.pool import LivePool
from netctl.model import VIF, VM, Network, Problem, XapiObject
from netctl.model.keys import MIRROR_TO
from vlan.mirror import MirrorPlan, MirrorSource, plan_mirrors, relevant, source_of


class Mirrors:
    """The pool's mirror sources and the plan placing them on hosts."""

    def __init__(self) -> None:
        self.view: LivePool | None = None
        self.sources: dict[str, MirrorSource] = {}
        self.plan = MirrorPlan()

    def for_host(self, host_ref: str) -> dict[str, tuple]:
        return self.plan.for_host(host_ref)

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.plan.problems

    def recompute(self, view: LivePool) -> None:
        """Every source from the pool (a cold start, a whole recompute). `view`: the
        validated pool (the validator may replace it: it is given on every call)."""
        self.view = view
        self.sources = {}
        for obj in (*self.view.networks.values(), *self.view.vifs.values()):
            src = source_of(obj) if MIRROR_TO.name in obj.other_config else None
            if src is not None:
                self.sources[obj.ref] = src
        self.plan = plan_mirrors(self.view, self.sources.values()) if self.sources \
            else MirrorPlan()

    def apply(self, view: LivePool,
              changes: dict[str, tuple[XapiObject | None, XapiObject | None]]) -> set[str]:
        """The validated pool's changes of this round: the hosts whose mirrors changed."""
        self.view = view
        had = bool(self.sources)
        dirty = False
        for ref, (old, new) in changes.items():
            for obj in (old, new):
                if isinstance(obj, VIF | Network) and MIRROR_TO.name in obj.other_config:
                    dirty = True
            if isinstance(new, VIF | Network):
                src = source_of(new)
                if src is not None:
                    self.sources[ref] = src
                else:
                    self.sources.pop(ref, None)
            elif new is None and isinstance(old, VIF | Network):
                self.sources.pop(ref, None)
            if dirty or not (had or self.sources):
                continue
            if isinstance(old, VIF) or isinstance(new, VIF):
                dirty = any(relevant(self.view, self.sources, v) for v in (old, new))
            elif isinstance(old, VM) or isinstance(new, VM):
                dirty = any(relevant(self.view, self.sources, v)
                            for v in self.view.vm_vifs(ref))
            else:  # a network, PIF, VLAN, bond, host, the pool: bridges and VLANs may move
                dirty = True
        if not dirty:
            return set()
        old_plan = self.plan
        self.plan = plan_mirrors(self.view, self.sources.values()) if self.sources \
            else MirrorPlan()
        hosts = set(old_plan.mirrors) | set(self.plan.mirrors) | set(old_plan.flood_vlans) \
            | set(self.plan.flood_vlans)
        return {h for h in hosts if old_plan.for_host(h) != self.plan.for_host(h)}
