"""Each host's `HostConfig`, kept up to date per change (the engine's `hosts` node).

What decides a host's configuration, and what a change costs here:
- its PIFs, bonds, VLANs, networks' settings, the pool's settings: the host is rebuilt
  (`vlan.build_host`, which reads only that host's objects);
- the tunnels of a private network: every host of that network is rebuilt (its mesh), and the
  pool's tunnel keys are reallocated (a pure function of the tunnels, cheap);
- its VIFs: never a rebuild. A VIF only adds its port's settings (`trunks`) and, when it is the
  first running VIF of a network the host has no PIF for, an internal bridge — then, and only
  then, the host is rebuilt. A locking change costs nothing here.
Problems of building (and of fail modes, which read the host's VIFs' locking) are kept per host.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from flows.ports import datapath_id_text
from netctl.engine.mirrors import Mirrors
from netctl.engine.pool import LivePool
from netctl.hostconfig import HostConfig, VifPortConfig
from netctl.model import (
    NULL_REF,
    PIF,
    VIF,
    VLAN,
    VM,
    Bond,
    Host,
    Network,
    Pool,
    Problem,
    Tunnel,
    XapiObject,
)
from vlan.host import build_host, fail_mode_problems, vif_port_config
from vlan.tunnels import allocate_tunnel_keys


def with_datapath_ids(cfg: HostConfig) -> HostConfig:
    """Give every bridge the datapath id the OpenFlow side derives from (host, bridge), so a
    connecting switch is known without asking OVSDB (`flows.ports.datapath_id`)."""
    bridges = tuple(
        replace(b, other_config=b.other_config.merged(
            {"datapath-id": datapath_id_text(cfg.host_uuid, b.name)}))
        for b in cfg.bridges)
    return replace(cfg, bridges=bridges)


@dataclass
class HostSettings:
    """How every host's bridges are built (from netctl's configuration)."""

    controllers: Sequence[str] = ()
    datapath_type: str = "system"
    protocols: Sequence[str] = ("OpenFlow13",)
    port_config: Sequence[str] = ()  # external bridges' OpenFlow 1.0 targets (NO_FLOOD)


@dataclass
class _Host:
    base: HostConfig | None = None  # without vif_ports
    config: HostConfig | None = None  # what the OVSDB side gets
    vif_ports: dict[str, VifPortConfig] = field(default_factory=dict)  # VIF ref -> settings
    # (VM ref, device, VIF ref) of its VIF ports, kept in order (a VIF's port settings join or
    # leave a host's configuration without sorting all of them again)
    order: list[tuple[str, str, str]] = field(default_factory=list)
    key_of: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # VIF ref -> key
    vif_networks: Counter = field(default_factory=Counter)  # network -> running VIFs
    problems: tuple[Problem, ...] = ()
    fail_problems: tuple[Problem, ...] = ()


class HostConfigs:
    """host ref -> HostConfig, from the validated pool. `changed` after each round: the hosts
    whose configuration (or existence) changed."""

    def __init__(self, view: LivePool, raw: LivePool, settings: HostSettings) -> None:
        self.view, self.raw, self.settings = view, raw, settings
        self.hosts: dict[str, _Host] = {}
        self.keys: dict[str, int] = {}
        self._home: dict[str, str] = {}  # VIF ref -> host it is counted on (running VIFs)
        self._vif_net: dict[str, str] = {}  # VIF ref -> network it is counted in
        self._need_rebuild: set[str] = set()  # hosts whose VIF networks changed
        self._built: set[str] = set()  # hosts rebuilt in this round
        self.changed: set[str] = set()
        self.rebuilds = 0  # hosts built (structural changes)
        self.mirrors = Mirrors()  # port mirroring: read by _refresh_vifs

    # ------------------------------------------------------------------ entry points
    def recompute(self) -> None:
        """Every host from scratch."""
        self.hosts = {}
        self._home = {}
        self._vif_net = {}
        self._need_rebuild = set()
        self.keys = allocate_tunnel_keys(self.view)
        self.mirrors.recompute(self.view)
        for vif in self.view.vifs.values():
            self._place(vif.ref)
        for ref in self.view.hosts:
            self._build(ref)
            self._refresh_fail_problems(ref, force=True)
        self.changed = set(self.view.hosts)

    def apply(self, changes: dict[str, tuple[XapiObject | None, XapiObject | None]]) -> None:
        """React to the validated pool's changes of this round."""
        mirrored = self.mirrors.apply(self.view, changes)  # hosts whose mirrors changed
        rebuild: set[str] = set()
        vif_dirty: set[str] = set()
        keys_dirty = False
        for old, new in changes.values():
            for obj in (old, new):
                if obj is None:
                    continue
                if isinstance(obj, Pool):
                    rebuild |= set(self.view.hosts) | set(self.hosts)
                elif isinstance(obj, Host):
                    rebuild.add(obj.ref)
                elif isinstance(obj, PIF):
                    rebuild.add(obj.host)
                    if _mesh_view(old) == _mesh_view(new):
                        continue  # nothing another host's mesh reads of this PIF changed
                    if obj.tunnel_access_pif_of:
                        keys_dirty = True
                        rebuild |= self._mesh_hosts(obj.network)
                    if obj.tunnel_transport_pif_of:
                        keys_dirty = True
                        for tref in obj.tunnel_transport_pif_of:
                            rebuild |= self._tunnel_hosts(tref)
                elif isinstance(obj, Bond):
                    rebuild |= self._pif_hosts((obj.master, *obj.slaves))
                elif isinstance(obj, VLAN):
                    rebuild |= self._pif_hosts((obj.tagged_pif, obj.untagged_pif))
                elif isinstance(obj, Tunnel):
                    if status_only(old, new):
                        # netctl's own tunnel.status write-back: a key written there is read by
                        # the key allocation, which rebuilds hosts only if keys moved
                        keys_dirty |= old.status.get("key") != new.status.get("key")
                        continue
                    keys_dirty = True
                    rebuild |= self._tunnel_hosts(obj.ref)
                elif isinstance(obj, Network):
                    rebuild |= {p.host for p in self.raw.network_pifs(obj.ref)}
                    rebuild |= {h for h, st in self.hosts.items() if st.vif_networks[obj.ref]}
                    keys_dirty = True
        homes: set[str] = set()  # hosts whose VIFs changed (their locking, say)
        for ref, (old, new) in changes.items():
            if isinstance(old, VIF) or isinstance(new, VIF):
                vifs = [ref]
            elif isinstance(old, VM) or isinstance(new, VM):
                vifs = sorted({v.ref for v in (*self.raw.vm_vifs(ref), *self.view.vm_vifs(ref))})
            else:
                continue
            for vref in vifs:
                homes.add(self._home.get(vref, NULL_REF))
                vif_dirty |= self._place(vref)
                homes.add(self._home.get(vref, NULL_REF))
        if keys_dirty:
            keys = allocate_tunnel_keys(self.view)
            if keys != self.keys:
                moved = {n for n in keys.keys() | self.keys.keys()
                         if keys.get(n) != self.keys.get(n)}
                self.keys = keys
                for net in moved:
                    rebuild |= self._mesh_hosts(net)
                # every host lists the pool's keys (HostConfig.tunnel_keys), also one that
                # listed none: the pool's first key is news to every host
                rebuild |= {h for h, st in self.hosts.items() if st.base is not None}
        for ref in sorted(rebuild - {NULL_REF}):
            self._build(ref)
        for ref in sorted(vif_dirty - rebuild):
            self._refresh_vifs(ref)
        for ref in sorted(mirrored - rebuild - vif_dirty):
            self._refresh_vifs(ref)
        for ref in sorted(rebuild | vif_dirty | (homes - {NULL_REF})):
            self._refresh_fail_problems(ref, force=ref in rebuild)

    def rebuild(self, hosts: Iterable[str]) -> None:
        """Rebuild these hosts (a raw PIF of theirs changed: it may decide an internal
        bridge even while invalid) — those not already rebuilt in this round."""
        for ref in sorted(set(hosts) - {NULL_REF} - self._built):
            old = self.config(ref)
            self._build(ref)
            self._refresh_fail_problems(ref, force=True)
            if self.config(ref) != old:
                self.changed.add(ref)

    def end_round(self) -> None:
        """Forget this round's changes (after they were handed on)."""
        self.changed = set()
        self._built = set()

    def config(self, host_ref: str) -> HostConfig | None:
        st = self.hosts.get(host_ref)
        return st.config if st is not None else None

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for st in self.hosts.values():
            out += st.problems
            out += st.fail_problems
        out += self.mirrors.problems
        return out

    # ------------------------------------------------------------------ internals
    def _place(self, vif_ref: str) -> set[str]:
        """Count a VIF on the host it runs on (or on none); returns the hosts whose VIF
        settings changed, and rebuilds a host whose internal bridges must change."""
        view = self.view
        vif = view.vifs.get(vif_ref)
        home = view.vif_host(vif) if vif is not None and view.is_vif_active(vif) else None
        if home is not None and home not in view.hosts:
            home = None
        old_home = self._home.get(vif_ref)
        if home is not None and home == old_home and vif is not None:
            st = self.hosts.get(home)
            same = (st is not None and self._vif_net.get(vif_ref) == vif.network
                    and st.vif_ports.get(vif_ref) == vif_port_config(view, vif))
            if same:
                return set()  # a locking change, say: nothing a host's OVSDB holds
        touched: set[str] = set()
        if old_home is not None:
            st = self.hosts.setdefault(old_home, _Host())
            st.vif_ports.pop(vif_ref, None)
            key = st.key_of.pop(vif_ref, None)
            if key is not None:
                del st.order[bisect.bisect_left(st.order, key)]
            old_net = self._vif_net.pop(vif_ref, None)
            if old_net is not None:
                st.vif_networks[old_net] -= 1
                if st.vif_networks[old_net] <= 0:
                    del st.vif_networks[old_net]
                    if self._internal(old_net, old_home):
                        self._need_rebuild.add(old_home)
            touched.add(old_home)
            del self._home[vif_ref]
        if home is not None and vif is not None:
            st = self.hosts.setdefault(home, _Host())
            st.vif_ports[vif_ref] = vif_port_config(view, vif)
            st.key_of[vif_ref] = key = (vif.vm, vif.device, vif_ref)
            bisect.insort(st.order, key)
            if st.vif_networks[vif.network] == 0 and self._internal(vif.network, home):
                self._need_rebuild.add(home)
            st.vif_networks[vif.network] += 1
            self._vif_net[vif_ref] = vif.network
            self._home[vif_ref] = home
            touched.add(home)
        return touched

    def _internal(self, network: str, host: str) -> bool:
        """Whether running VIFs decide a bridge for this network on this host: only when it
        has no PIF there (`vlan.build_host`'s internal bridges)."""
        return self.raw.pif_of(network, host) is None

    def _pif_hosts(self, refs: Iterable[str]) -> set[str]:
        out = set()
        for ref in refs:
            for pool in (self.view, self.raw):
                pif = pool.pifs.get(ref)
                if pif is not None:
                    out.add(pif.host)
        return out

    def _tunnel_hosts(self, tunnel_ref: str) -> set[str]:
        out: set[str] = set()
        for pool in (self.view, self.raw):
            tun = pool.tunnels.get(tunnel_ref)
            if tun is None:
                continue
            for pif_ref in (tun.access_pif, tun.transport_pif):
                pif = pool.pifs.get(pif_ref)
                if pif is not None:
                    out.add(pif.host)
                    if pif_ref == tun.access_pif:
                        out |= self._mesh_hosts(pif.network)
        return out

    def _mesh_hosts(self, network: str) -> set[str]:
        """Hosts with a PIF on the network (its tunnel mesh)."""
        return {p.host for pool in (self.view, self.raw) for p in pool.network_pifs(network)}

    def _build(self, host_ref: str) -> None:
        view = self.view
        st = self.hosts.setdefault(host_ref, _Host())
        if host_ref not in view.hosts:
            if st.config is not None:
                self.changed.add(host_ref)
            self.hosts.pop(host_ref, None)
            return
        self.rebuilds += 1
        self._built.add(host_ref)
        s = self.settings
        base = build_host(view, self.raw, host_ref, self.keys, vif_ports=(),
                          vif_networks=list(st.vif_networks), controllers=s.controllers,
                          datapath_type=s.datapath_type, protocols=s.protocols,
                          port_config=s.port_config)
        st.base = with_datapath_ids(base)
        st.problems = base.problems
        self._need_rebuild.discard(host_ref)
        self._refresh_vifs(host_ref, force=True)

    def _refresh_vifs(self, host_ref: str, force: bool = False) -> None:
        st = self.hosts.get(host_ref)
        if st is None:
            return
        if host_ref in self._need_rebuild:
            self._build(host_ref)
            return
        if st.base is None:
            return
        ports = tuple(st.vif_ports[ref] for _vm, _device, ref in st.order)
        config = replace(st.base, vif_ports=ports, **self.mirrors.for_host(host_ref))
        if force or config != st.config:
            if config != st.config:
                self.changed.add(host_ref)
            st.config = config

    def _refresh_fail_problems(self, host_ref: str, force: bool = False) -> None:
        """Fail-mode Problems read the host's VIFs' locking: recheck them when the host was
        rebuilt, or when its VIFs changed and one of its bridges is standalone."""
        st = self.hosts.get(host_ref)
        if st is None or st.base is None:
            return
        if force or any(b.fail_mode == "standalone" for b in st.base.bridges):
            st.fail_problems = tuple(fail_mode_problems(self.view, host_ref, st.base.bridges))


def _mesh_view(obj: XapiObject | None) -> tuple | None:
    """What other hosts' tunnel meshes read of a PIF (`vlan.tunnels.endpoint`)."""
    if not isinstance(obj, PIF):
        return None
    return (obj.host, obj.network, obj.currently_attached, obj.ip,
            obj.ip_configuration_mode, obj.ipv6, obj.ipv6_configuration_mode,
            obj.primary_address_type, obj.tunnel_access_pif_of, obj.tunnel_transport_pif_of)


def status_only(old: XapiObject | None, new: XapiObject | None) -> bool:
    """A tunnel whose change is only in `status` (netctl's own write-back: `active`, `error`,
    and the `key` it allocated, which the key allocation reads back)."""
    if not isinstance(old, Tunnel) or not isinstance(new, Tunnel):
        return False
    return replace(old, status=new.status) == new
