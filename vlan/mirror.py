"""Port mirroring placed on hosts: which OVSDB `Mirror` rows each host's bridges hold. Pure.

The intent (`netctl.model.mirror`: `other_config:netctl-mirror-to` and
`netctl-mirror-direction` on a VIF or a network) is *sources*; `plan_mirrors` turns the
pool's sources into, per host, `MirrorConfig`s (only on the bridges that need one: the bridge
the mirrored VIFs' ports sit on) and the RSPAN VLANs each bridge floods without MAC learning
(`Bridge.flood_vlans`), plus a Problem for every source that cannot be placed, naming the
object, the key and why. A source that cannot be placed mirrors nothing; everything else
(the VM's own network above all) is untouched.

Why these rules (OVS, ovs-vswitchd.conf.db(5) and `ofproto-dpif-xlate.c`):
- a Mirror belongs to one Bridge and its ports are that bridge's, so a monitoring VIF must sit
  on the mirrored VIFs' bridge: a VLAN network's VIFs are ports of its parent's bridge (the
  fake bridge is only a tag), so a monitoring VM on a VLAN network of the same NIC or bond
  can watch the untagged network and the other VLANs;
- OVS mirrors in its translation of every packet, for NORMAL and explicit `output:` alike
  (select_src on input, select_dst in each output), so netctl's own flow tables need no
  change;
- an RSPAN copy (`output_vlan`) is output to every port of the bridge that carries the VLAN
  (through each port's OVSDB VLAN configuration: the uplink or bond is a trunk, a monitoring
  VM's VIF on a VLAN-N network an access port), and never for a frame already on that VLAN
  (OVS's loop guard): a VIF of the RSPAN VLAN's own network cannot be mirrored to it. It needs
  an uplink: on a private or internal bridge (no NIC) the copies would only reach local
  trunk ports, so the mirror is refused there with a Problem.
- on the receiving side the copies arrive on the uplink tagged N with other VMs' MACs; the
  bridge forwards frames it has no VIF MAC for with NORMAL, whose MAC learning would place
  those MACs on the uplink and drop the next copy. `flood_vlans` turns learning off for the
  RSPAN VLANs on every bridge that carries them (as ovs-vswitchd.conf.db(5) advises), so the
  copies flood within VLAN N to the monitoring VM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netctl.hostconfig import MirrorConfig
from netctl.model import VIF, Network, PifType, PoolQueries, Problem, describe, vif_port
from netctl.model.keys import MIRROR_DIRECTION, MIRROR_TO
from netctl.model.mirror import MirrorTarget, selects


@dataclass(frozen=True)
class MirrorSource:
    """One object asking for a mirror: a VIF (itself) or a network (each of its VIFs)."""

    object_class: str  # "VIF" or "network"
    ref: str
    uuid: str
    target: MirrorTarget
    direction: str = "both"

    @property
    def name(self) -> str:
        """The Mirror row's name (the same on every host for a network's)."""
        return f"netctl-mirror-{self.uuid}"


def source_of(obj: VIF | Network | None) -> MirrorSource | None:
    """The mirror an object asks for, or None (no key, or a value validation reports)."""
    if obj is None:
        return None
    target = MIRROR_TO.read(obj)
    if target is None:
        return None
    direction = MIRROR_DIRECTION.read(obj) or "both"
    return MirrorSource("VIF" if isinstance(obj, VIF) else "network", obj.ref, obj.uuid,
                        target, direction)


def all_sources(view: PoolQueries) -> list[MirrorSource]:
    """Every source in the pool (from scratch: one pass over VIFs and networks)."""
    out = [source_of(n) for n in view.networks.values()]
    out += [source_of(v) for v in view.vifs.values() if MIRROR_TO.name in v.other_config]
    return [s for s in out if s is not None]


@dataclass(frozen=True)
class Place:
    """Where a running VIF's port is: host, OVS bridge, VLAN of its network on that bridge."""

    host: str
    bridge: str
    vlan: int
    port: str


def vif_place(view: PoolQueries, vif: VIF) -> Place | None:
    """The running VIF's port and the bridge it is a port of (a VLAN network's fake bridge
    is a port of its parent's bridge, with the VLAN as its tag); None when it does not run."""
    if not view.is_vif_active(vif):
        return None
    host = view.vif_host(vif)
    net = view.networks.get(vif.network)
    vm = view.vms.get(vif.vm)
    if host is None or net is None or vm is None:
        return None
    bridge, vlan = network_bridge(view, net, host)
    return Place(host, bridge, vlan, vif_port(vm.domid, vif.device))


def network_bridge(view: PoolQueries, net: Network, host: str) -> tuple[str, int]:
    """(the OVS bridge the network's VIF ports are on on this host, its VLAN there)."""
    pif = view.pif_of(net.ref, host)
    if pif is not None and pif.vlan >= 0:
        tagged = view.vlan_parent_pif(pif)
        parent = view.networks.get(tagged.network) if tagged is not None else None
        if parent is not None:
            return parent.bridge, pif.vlan
    return net.bridge, 0


def has_uplink(view: PoolQueries, bridge: str, host: str) -> bool:
    """Whether the bridge has a NIC or bond on this host (RSPAN copies leave through it)."""
    base = view.network_by_bridge(bridge)
    pif = view.pif_of(base.ref, host) if base is not None else None
    return pif is not None and pif.type in (PifType.PHYSICAL, PifType.BOND_MASTER)


@dataclass
class MirrorPlan:
    """Every host's Mirror rows and flood VLANs, and the Problems of sources not placed."""

    mirrors: dict[str, tuple[MirrorConfig, ...]] = field(default_factory=dict)
    flood_vlans: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = field(
        default_factory=dict)
    problems: tuple[Problem, ...] = ()

    def for_host(self, host: str) -> dict[str, tuple]:
        """The HostConfig fields of one host (`dataclasses.replace(config, **...)`)."""
        return {"mirrors": self.mirrors.get(host, ()),
                "flood_vlans": self.flood_vlans.get(host, ())}


def plan_mirrors(view: PoolQueries, sources: Iterable[MirrorSource]) -> MirrorPlan:
    """Place every source on its hosts' bridges. Reads each source's VIFs (a network's: all
    its VIFs for RSPAN, the monitoring VIF's host's for a VIF target) and the hosts' VLAN
    PIFs for the RSPAN VLANs: the cost follows the mirrors, not the pool."""
    by_host: dict[str, list[MirrorConfig]] = {}
    problems: list[Problem] = []
    rspan: set[int] = set()
    for src in sorted(sources, key=lambda s: s.uuid):
        obj = view.vifs.get(src.ref) if src.object_class == "VIF" else view.networks.get(src.ref)
        if obj is None:
            continue

        def refuse(why: str, obj: VIF | Network = obj, cls: str = src.object_class) -> None:
            problems.append(Problem(cls, obj.ref, obj.uuid, describe(view, obj),
                                    MIRROR_TO.field, f"{why}; nothing is mirrored"))

        if src.target.rspan:
            rspan.add(src.target.vlan)
            for m in _rspan(view, src, obj, refuse):
                by_host.setdefault(m[0], []).append(m[1])
            continue
        target = _vif_by_uuid(view, src.target.vif_uuid)
        if target is None:
            refuse(f"no VIF has uuid {src.target.vif_uuid}")
            continue
        out = vif_place(view, target)
        if out is None:
            refuse(f"the monitoring VIF {describe(view, target)} is not running")
            continue
        if target.ref == obj.ref:
            refuse("a VIF cannot be mirrored to itself")
            continue
        placed = _to_vif(view, src, obj, target, out, refuse)
        if placed is not None:
            by_host.setdefault(out.host, []).append(placed)
    return MirrorPlan(
        mirrors={h: tuple(sorted(ms, key=lambda m: (m.bridge, m.name)))
                 for h, ms in by_host.items()},
        flood_vlans=_flood_vlans(view, rspan), problems=tuple(problems))


def _vif_by_uuid(view: PoolQueries, uuid: str) -> VIF | None:
    obj = view.by_uuid(uuid)  # type: ignore[attr-defined] - both pools index by uuid
    return obj if isinstance(obj, VIF) else None


def _mirror(src: MirrorSource, bridge: str, ports: Iterable[str], *, output_port: str = "",
            output_vlan: int = 0) -> MirrorConfig | None:
    ports = tuple(sorted(set(ports)))
    if not ports:
        return None
    from_vm, to_vm = selects(src.direction)
    return MirrorConfig(src.name, bridge, f"{src.object_class} {src.uuid}",
                        select_src=ports if from_vm else (), select_dst=ports if to_vm else (),
                        output_port=output_port, output_vlan=output_vlan)


def _to_vif(view: PoolQueries, src: MirrorSource, obj: VIF | Network, target: VIF,
            out: Place, refuse) -> MirrorConfig | None:  # noqa: ANN001 - the closure above
    """A mirror to a monitoring VIF: on the monitoring VIF's host only (a network's VIFs on
    other hosts are not seen there: RSPAN is for that)."""
    if isinstance(obj, VIF):
        place = vif_place(view, obj)
        if place is None:
            return None  # not running: nothing to mirror, nothing wrong
        if place.host != out.host:
            refuse(f"the monitoring VIF {describe(view, target)} runs on another host "
                   f"({_host_name(view, out.host)}, this VIF on "
                   f"{_host_name(view, place.host)}): use vlan:N (RSPAN) across hosts")
            return None
        if place.bridge != out.bridge:
            refuse(f"the monitoring VIF {describe(view, target)} is on bridge {out.bridge}, "
                   f"this VIF on {place.bridge}: OVS mirrors within one bridge")
            return None
        return _mirror(src, out.bridge, (place.port,), output_port=out.port)
    bridge, _vlan = network_bridge(view, obj, out.host)
    ports = [p.port for v in view.host_network_vifs(out.host, obj.ref)
             if v.ref != target.ref and (p := vif_place(view, v)) is not None]
    if ports and bridge != out.bridge:
        refuse(f"the monitoring VIF {describe(view, target)} is on bridge {out.bridge}, this "
               f"network's VIFs on {_host_name(view, out.host)} on {bridge}: OVS mirrors "
               "within one bridge")
        return None
    return _mirror(src, out.bridge, ports, output_port=out.port)


def _rspan(view: PoolQueries, src: MirrorSource, obj: VIF | Network, refuse
           ) -> list[tuple[str, MirrorConfig]]:  # noqa: ANN001 - the closure above
    """RSPAN: a mirror on each host where a mirrored VIF runs, copies out tagged N."""
    vlan = src.target.vlan
    if isinstance(obj, VIF):
        vifs: Iterable[VIF] = (obj,)
    else:
        vifs = view.network_vifs(obj.ref)
    ports: dict[tuple[str, str], list[str]] = {}
    for vif in vifs:
        place = vif_place(view, vif)
        if place is not None:
            ports.setdefault((place.host, place.bridge), []).append(place.port)
            if place.vlan == vlan:
                refuse(f"VLAN {vlan} is this {'VIF' if isinstance(obj, VIF) else 'network'}'s "
                       "own VLAN: OVS does not mirror a frame to the VLAN it is on")
                return []
    out = []
    for (host, bridge), names in sorted(ports.items()):
        if not has_uplink(view, bridge, host):
            refuse(f"bridge {bridge} on {_host_name(view, host)} has no NIC or bond: RSPAN "
                   "copies leave through the uplink")
            continue
        m = _mirror(src, bridge, names, output_vlan=vlan)
        if m is not None:
            out.append((host, m))
    return out


def _flood_vlans(view: PoolQueries, vlans: set[int]
                 ) -> dict[str, tuple[tuple[str, tuple[int, ...]], ...]]:
    """Per host, the bridges carrying an RSPAN VLAN (a VLAN network's fake bridge with that
    tag on it) and those VLANs: learning off there (the module docstring)."""
    if not vlans:
        return {}
    out: dict[str, dict[str, set[int]]] = {}
    for host in view.hosts:
        for pif in view.host_pifs(host):
            if pif.vlan in vlans and pif.currently_attached:
                tagged = view.vlan_parent_pif(pif)
                parent = view.networks.get(tagged.network) if tagged is not None else None
                if parent is not None:
                    out.setdefault(host, {}).setdefault(parent.bridge, set()).add(pif.vlan)
    return {h: tuple((b, tuple(sorted(v))) for b, v in sorted(bridges.items()))
            for h, bridges in out.items()}


def _host_name(view: PoolQueries, host: str) -> str:
    h = view.hosts.get(host)
    return (h.name_label or h.uuid) if h is not None else host


def relevant(view: PoolQueries, sources: Mapping[str, MirrorSource], obj: object) -> bool:
    """Whether a changed VIF could change a mirror: one that asks for one, a monitoring VIF,
    or a VIF of a mirrored network. (Networks, PIFs, VLANs, bonds, hosts and the pool are
    relevant whenever any source exists: the engine decides that.)"""
    if not isinstance(obj, VIF):
        return False
    if obj.ref in sources or MIRROR_TO.name in obj.other_config:
        return True
    return any(s.target.vif_uuid == obj.uuid or s.ref == obj.network for s in sources.values())
