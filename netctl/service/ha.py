"""Several `netctl run` instances on etcd: what one instance's process does with its
masterships (`netctl run --coordination`, config `coordination.*`).

Every instance follows xapi, runs the engine and keeps an OpenFlow session to every bridge
(each bridge's controller set is `coordination.controllers`, every instance's target, the
same on all). The coordinator (`netctl.service.coordination`) says which hosts this instance
masters now; this module turns that into who writes:

- the OpenFlow sink asks each switch for the role MASTER (with the mastership's generation,
  etcd's create revision of the key, which only grows) or SLAVE (`Roles`), and writes only as
  master: the switch itself refuses a stale master;
- a host's OVSDB worker applies only while this instance masters the host (`may_write`),
  asked again before each apply; on a takeover it compares the host's database with the
  desired configuration and sends the difference (nothing, with unchanged intent);
- tunnel.status is written back to xapi by one instance: the master of the pseudo-host
  `TUNNELS`, shared out like a host.

A takeover is timed (`takeovers`: when the coordinator gained the host, when its switches
acknowledged MASTER), shown by `netctl status` and measured by `bench/failover.py`.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from netctl.service.config import Config
from netctl.service.metrics import Metrics

with warnings.catch_warnings():
    # etcd3gw imports futurist, which imports eventlet only to warn it is deprecated
    warnings.simplefilter("ignore")
    from netctl.service.coordination import Coordinator

LOG = logging.getLogger("netctl.ha")
TUNNELS = "@tunnel-status"  # the pseudo-host whose master writes tunnel.status to xapi


@dataclass
class Takeover:
    """One mastership this instance gained: when (wall clock), and when each of the host's
    switches acknowledged MASTER."""

    host: str  # uuid
    generation: int
    gained: float
    acked: dict[int, float] = field(default_factory=dict)  # dpid -> wall time


class HostMasters:
    """One instance's masterships, as the sink, the OVSDB workers and /status ask for them.

    `on_changed(host_uuid)` is called from the coordinator's thread when a mastership was
    gained or lost (the run hands it on to the reconcile thread and the host's worker)."""

    def __init__(self, config: Config, metrics: Metrics,
                 on_changed: Callable[[str], None]) -> None:
        assert config.coordination_url
        self.metrics = metrics
        self.on_changed = on_changed
        self.coordinator = Coordinator(config.coordination_url, config.instance,
                                       config.coordination_ttl, on_gained=self._gained,
                                       on_lost=self._lost)
        self._lock = threading.Lock()
        self._uuid_of: dict[str, str] = {}  # host ref -> uuid (the etcd keys are uuids)
        self.takeovers: dict[str, Takeover] = {}  # host uuid -> the latest gained
        self.lost = 0

    @property
    def instance(self) -> str:
        return self.coordinator.instance_id

    def start(self) -> None:
        """Join in the background: until etcd answers this instance masters nothing."""
        self.coordinator.start(block=False)
        LOG.info("coordination on %s as instance %s (lease TTL %.1f s)",
                 self.coordinator.url, self.instance, self.coordinator.ttl)

    def close(self) -> None:
        """Stop writing and revoke the lease: the others take the hosts at once."""
        self.coordinator.close()

    # ------------------------------------------------------------------ the pool's hosts
    def hosts(self, hosts: Iterable[tuple[str, str]]) -> None:
        """The pool's hosts now, (ref, uuid): shared out among the instances."""
        with self._lock:
            self._uuid_of = dict(hosts)
            uuids = set(self._uuid_of.values())
        self.coordinator.set_hosts(uuids | {TUNNELS})

    # ------------------------------------------------------------------ who may write
    def role(self, host_ref: str) -> tuple[bool, int]:
        """The sink's `Roles`: (master now, generation to ask with)."""
        uuid = self._uuid_of.get(host_ref)
        if uuid is None:
            return False, 0
        generation = self.coordinator.generation(uuid)
        if generation is not None:
            return True, generation
        master = self.coordinator.master_of(uuid)
        return False, master.generation if master is not None else 0

    def may_write(self, host_uuid: str) -> bool:
        """Whether this instance may write the host's OVSDB now."""
        return self.coordinator.is_writer(host_uuid)

    def writes_tunnel_status(self) -> bool:
        return self.coordinator.is_writer(TUNNELS)

    def acked(self, host_ref: str, dpid: int, generation: int) -> None:
        """A switch of the host acknowledged this instance as MASTER (the sink's
        `on_master`, reconcile thread)."""
        uuid = self._uuid_of.get(host_ref)
        take = self.takeovers.get(uuid) if uuid else None
        if take is not None and take.generation == generation:
            take.acked.setdefault(dpid, time.time())

    # ------------------------------------------------------------------ the coordinator's news
    def _gained(self, host: str, generation: int) -> None:
        self.takeovers[host] = Takeover(host, generation, time.time())
        self.metrics.takeovers.inc()
        LOG.info("instance %s masters %s (generation %d)", self.instance, host, generation)
        self.on_changed(host)

    def _lost(self, host: str) -> None:
        self.lost += 1
        LOG.warning("instance %s no longer masters %s: writing nothing to it", self.instance,
                    host)
        self.on_changed(host)

    # ------------------------------------------------------------------ what status shows
    def status(self, names: dict[str, str]) -> dict[str, Any]:
        """For /status: this instance, the live instances, who masters which host (by name,
        `names`: uuid -> name_label), generations, takeovers (no request to etcd)."""
        snap = self.coordinator.snapshot()
        masters = {}
        for uuid, m in snap["masters"].items():
            masters[names.get(uuid, uuid)] = {**m, "uuid": uuid}
        takeovers = {}
        for uuid, t in sorted(self.takeovers.items()):
            takeovers[names.get(uuid, uuid)] = {
                "generation": t.generation, "gained": t.gained,
                "acked": max(t.acked.values()) if t.acked else None,
                "switches_acked": len(t.acked)}
        return {"url": snap["url"], "instance": snap["instance"], "ttl": snap["ttl"],
                "joined": snap["joined"], "writer": snap["writer"],
                "writer_for": snap["writer_for"], "instances": snap["instances"],
                "masters": masters, "mine": sorted(names.get(h, h) for h in snap["mine"]),
                "takeovers": takeovers, "gained": snap["takeovers"], "lost": self.lost,
                "polled": snap["polled"]}

    def gauges(self) -> None:
        snap = self.coordinator.snapshot()
        self.metrics.ha_instances.set(len(snap["instances"]))
        self.metrics.ha_writer.set(1 if snap["writer"] else 0)
        self.metrics.ha_mastered.set(sum(1 for h in snap["mine"] if h != TUNNELS))
