"""The pool as one consistent whole: `PoolState`, an immutable snapshot of every xapi object
(indexed by ref), and `PoolQueries`, the lookups that follow references between objects (a VIF's
host, a network's PIFs, a VM's VIFs, the locking mode netctl enforces, ...).

Its own module because the queries are the one contract between the pool and everything that
reads it: the compilers, validation and the flow rules ask these questions and nothing else, and
the engine's live pool (`netctl.engine.pool.LivePool`) answers the same `PoolQueries` from
indexes it keeps up to date, so a compiler cannot tell the two apart. Pure: standard library
and `netctl.model.types` only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, TypeVar

from netctl.model.keys import BAD_LOCKING_OVERRIDE, LOCKING_OVERRIDE, PIF_MTU, VIF_MTU
from netctl.model.types import (
    EMPTY,
    NULL_REF,
    PIF,
    VIF,
    VLAN,
    VM,
    Bond,
    FrozenMap,
    Host,
    Network,
    PifType,
    Pool,
    SDNController,
    Tunnel,
    XapiObject,
)

T = TypeVar("T")

# The collection (a `PoolQueries` attribute, a `PoolState` field) that holds each model class.
_BUCKET_OF: dict[type, str] = {
    Host: "hosts", Network: "networks", PIF: "pifs", Bond: "bonds", VLAN: "vlans",
    Tunnel: "tunnels", VIF: "vifs", VM: "vms", SDNController: "sdn_controllers",
}


class FrozenRefMap(Mapping[str, Any]):
    """An immutable ref -> object mapping (hashable, compares by content)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenRefMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenRefMap({len(self._data)} objects)"


class PoolQueries:
    """Lookups that follow references between a pool's objects, shared by the frozen
    `PoolState` (indexes built once per snapshot) and the engine's live, indexed pool
    (`netctl.engine.pool.LivePool`, indexes kept up to date change by change). A subclass
    provides the collections (`pool`, `hosts`, ..., `quarantined`) and the index lookups
    (`host_pifs`, `pif_of`, `network_pifs`, `network_vifs`, `vm_vifs`, `resident_vms`,
    `network_by_bridge`, `by_uuid`, `vlans_on`, `host_network_vifs`)."""

    pool: Pool | None
    hosts: Mapping[str, Host]
    networks: Mapping[str, Network]
    pifs: Mapping[str, PIF]
    bonds: Mapping[str, Bond]
    vlans: Mapping[str, VLAN]
    tunnels: Mapping[str, Tunnel]
    vifs: Mapping[str, VIF]
    vms: Mapping[str, VM]
    sdn_controllers: Mapping[str, SDNController]
    quarantined: frozenset[str] | set[str]

    def network_pifs(self, network: str) -> tuple[PIF, ...]:
        raise NotImplementedError

    def network_hosts(self, network: str) -> tuple[Host, ...]:
        """Hosts that have a PIF on the network."""
        return tuple(self.hosts[p.host] for p in self.network_pifs(network) if p.host in self.hosts)

    def get(self, ref: str) -> XapiObject | None:
        """Any object by ref, whatever its class."""
        if self.pool is not None and self.pool.ref == ref:
            return self.pool
        for name in _BUCKET_OF.values():
            obj = getattr(self, name).get(ref)
            if obj is not None:
                return obj
        return None

    def vif_host(self, vif: VIF) -> str | None:
        """The host ref a VIF lives on (its VM's resident_on), None when the VM is not resident."""
        vm = self.vms.get(vif.vm)
        if vm is None or vm.resident_on == NULL_REF:
            return None
        return vm.resident_on

    def vif_domid(self, vif: VIF) -> int:
        """The domain id its port is named for (`vif<domid>.<device>`), -1 without a domain."""
        vm = self.vms.get(vif.vm)
        return vm.domid if vm is not None else -1

    def is_vif_active(self, vif: VIF) -> bool:
        """True when the VIF has a backend: its VM is Running somewhere and it is attached."""
        vm = self.vms.get(vif.vm)
        return (vif.currently_attached and vm is not None and vm.power_state == "Running"
                and vm.resident_on != NULL_REF)

    def host_vifs(self, host: str, active_only: bool = True) -> tuple[VIF, ...]:
        """VIFs of the VMs resident on a host (by default only those with a backend)."""
        out: list[VIF] = []
        for vm in self.resident_vms(host):
            for vif in self.vm_vifs(vm.ref):
                if not active_only or self.is_vif_active(vif):
                    out.append(vif)
        return tuple(out)

    def resident_vms(self, host: str) -> tuple[VM, ...]:
        raise NotImplementedError

    def vm_vifs(self, vm: str) -> tuple[VIF, ...]:
        raise NotImplementedError

    def effective_locking_mode(self, vif: VIF) -> str:
        """`locked`, `unlocked` or `disabled`: network_default follows the network's default."""
        if vif.locking_mode != "network_default":
            return vif.locking_mode
        net = self.networks.get(vif.network)
        return net.default_locking_mode if net is not None else "unlocked"

    def enforced_locking_mode(self, vif: VIF) -> str:
        """The mode netctl enforces: `VIF.other_config:netctl-locking-mode` when present (the
        way to ask for `locked` while netctl is the pool's SDN controller, see
        `flows.locking`) — one netctl cannot read is enforced as `locked`, never as the VIF's
        own mode (`keys.BAD_LOCKING_OVERRIDE`) —, else `effective_locking_mode`; a quarantined
        VIF is `disabled`."""
        if vif.ref in self.quarantined:
            return "disabled"
        if LOCKING_OVERRIDE.raw(vif) is not None:
            return LOCKING_OVERRIDE.read(vif) or BAD_LOCKING_OVERRIDE
        return self.effective_locking_mode(vif)

    def vif_mtu(self, vif: VIF) -> int:
        """The backend MTU: VIF other_config:mtu, else the network's MTU (not VIF.MTU, as xapi)."""
        return self._mtu(VIF_MTU.read(vif), vif.network)

    def pif_mtu(self, pif: PIF) -> int:
        """The MTU networkd applies to a PIF: PIF other_config:mtu, else network.MTU."""
        return self._mtu(PIF_MTU.read(pif), pif.network)

    def _mtu(self, own: int | None, network: str) -> int:
        """An object's own MTU (a bad value reads as None: passed over), else its network's."""
        if own is not None:
            return own
        net = self.networks.get(network)
        return net.mtu if net is not None else 1500

    def pif_type(self, pif: PIF) -> PifType:
        return pif.type

    def bridge_other_config(self, pif: PIF) -> FrozenMap:
        """pool ⊕ network ⊕ PIF other_config, later wins (nm.ml determine_other_config)."""
        pool_oc = self.pool.other_config if self.pool is not None else EMPTY
        net = self.networks.get(pif.network)
        return pool_oc.merged(net.other_config if net else EMPTY, pif.other_config)

    def bond_of(self, master: PIF) -> Bond | None:
        """The Bond a bond-master PIF represents."""
        return next((self.bonds[b] for b in master.bond_master_of if b in self.bonds), None)

    def bond_slaves(self, bond: Bond) -> tuple[PIF, ...]:
        return tuple(self.pifs[s] for s in bond.slaves if s in self.pifs)

    def vlan_of(self, untagged: PIF) -> VLAN | None:
        """The VLAN object an untagged (VLAN) PIF belongs to."""
        return self.vlans.get(untagged.vlan_master_of)

    def tunnel_of(self, access: PIF) -> Tunnel | None:
        """The tunnel a tunnel access PIF gives access to."""
        return next((self.tunnels[t] for t in access.tunnel_access_pif_of if t in self.tunnels),
                    None)

    def network_tunnels(self, network: str) -> tuple[Tunnel, ...]:
        """The tunnels of a private network (one per host)."""
        out = []
        for pif in self.network_pifs(network):
            tun = self.tunnel_of(pif)
            if tun is not None:
                out.append(tun)
        return tuple(out)

    def vlan_parent_pif(self, untagged: PIF) -> PIF | None:
        """For a VLAN PIF, the tagged PIF whose bridge carries the tagged frames."""
        vlan = self.vlan_of(untagged)
        return self.pifs.get(vlan.tagged_pif) if vlan else None

    @property
    def sdn_controller(self) -> SDNController | None:
        return next(iter(self.sdn_controllers.values()), None)

    def master(self) -> Host | None:
        return self.hosts.get(self.pool.master) if self.pool else None


@dataclass(frozen=True, eq=True)
class PoolState(PoolQueries):
    """An immutable snapshot of the pool's networking intent, indexed by ref.

    Construct it with `PoolState.build(objects)` or field by field (mappings are copied into
    immutable ones). Lookups that need an index build it once per snapshot (cached).
    """

    pool: Pool | None = None
    hosts: Mapping[str, Host] = field(default_factory=FrozenRefMap)
    networks: Mapping[str, Network] = field(default_factory=FrozenRefMap)
    pifs: Mapping[str, PIF] = field(default_factory=FrozenRefMap)
    bonds: Mapping[str, Bond] = field(default_factory=FrozenRefMap)
    vlans: Mapping[str, VLAN] = field(default_factory=FrozenRefMap)
    tunnels: Mapping[str, Tunnel] = field(default_factory=FrozenRefMap)
    vifs: Mapping[str, VIF] = field(default_factory=FrozenRefMap)
    vms: Mapping[str, VM] = field(default_factory=FrozenRefMap)
    sdn_controllers: Mapping[str, SDNController] = field(default_factory=FrozenRefMap)
    # VIFs netctl holds disabled although xapi says otherwise (a MAC already taken on their
    # network): set by `validate`, read by `enforced_locking_mode`.
    quarantined: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in ("pool", "quarantined"):
                if f.name == "quarantined" and not isinstance(self.quarantined, frozenset):
                    object.__setattr__(self, "quarantined", frozenset(self.quarantined))
                continue
            value = getattr(self, f.name)
            if not isinstance(value, FrozenRefMap):
                object.__setattr__(self, f.name, FrozenRefMap(value))

    @classmethod
    def build(cls, objects: Iterable[XapiObject]) -> PoolState:
        """A snapshot from a flat list of model objects (at most one Pool)."""
        buckets: dict[str, dict[str, Any]] = {name: {} for name in _BUCKET_OF.values()}
        pool = None
        for obj in objects:
            if isinstance(obj, Pool):
                pool = obj
                continue
            buckets[_BUCKET_OF[type(obj)]][obj.ref] = obj
        return cls(pool=pool, **buckets)

    def objects(self) -> Iterator[XapiObject]:
        """Every object of the snapshot (the pool first)."""
        if self.pool is not None:
            yield self.pool
        for name in _BUCKET_OF.values():
            yield from getattr(self, name).values()

    def collection(self, cls: type) -> Mapping[str, Any]:
        """The ref -> object mapping that holds objects of model class `cls`."""
        return getattr(self, _BUCKET_OF[cls])

    def replace(self, **changes: Any) -> PoolState:
        return replace(self, **changes)

    # --- indexes (built once per snapshot) --------------------------------------------------

    @cached_property
    def _by_uuid(self) -> dict[str, XapiObject]:
        return {o.uuid: o for o in self.objects()}

    @cached_property
    def _pifs_by_host(self) -> dict[str, tuple[PIF, ...]]:
        return _group(self.pifs.values(), lambda p: p.host)

    @cached_property
    def _pif_by_host_network(self) -> dict[tuple[str, str], PIF]:
        return {(p.host, p.network): p for p in self.pifs.values()}

    @cached_property
    def _pifs_by_network(self) -> dict[str, tuple[PIF, ...]]:
        return _group(self.pifs.values(), lambda p: p.network)

    @cached_property
    def _vifs_by_network(self) -> dict[str, tuple[VIF, ...]]:
        return _group(self.vifs.values(), lambda v: v.network)

    @cached_property
    def _vifs_by_vm(self) -> dict[str, tuple[VIF, ...]]:
        return _group(self.vifs.values(), lambda v: v.vm)

    @cached_property
    def _vms_by_host(self) -> dict[str, tuple[VM, ...]]:
        return _group(self.vms.values(), lambda v: v.resident_on)

    @cached_property
    def _network_by_bridge(self) -> dict[str, Network]:
        return {n.bridge: n for n in self.networks.values()}

    # --- lookups ------------------------------------------------------------------------------

    def by_uuid(self, uuid: str) -> XapiObject | None:
        return self._by_uuid.get(uuid)

    def host_pifs(self, host: str) -> tuple[PIF, ...]:
        """The PIFs of a host (by host ref)."""
        return self._pifs_by_host.get(host, ())

    def pif_of(self, network: str, host: str) -> PIF | None:
        """The PIF of a network on a host (xapi allows at most one), or None (internal network)."""
        return self._pif_by_host_network.get((host, network))

    def network_pifs(self, network: str) -> tuple[PIF, ...]:
        return self._pifs_by_network.get(network, ())

    def network_vifs(self, network: str) -> tuple[VIF, ...]:
        return self._vifs_by_network.get(network, ())

    def vm_vifs(self, vm: str) -> tuple[VIF, ...]:
        return self._vifs_by_vm.get(vm, ())

    def resident_vms(self, host: str) -> tuple[VM, ...]:
        return self._vms_by_host.get(host, ())

    def network_by_bridge(self, bridge: str) -> Network | None:
        return self._network_by_bridge.get(bridge)

    @cached_property
    def _vlans_by_tagged(self) -> dict[str, tuple[VLAN, ...]]:
        return _group(self.vlans.values(), lambda v: v.tagged_pif)

    def vlans_on(self, tagged_pif: str) -> tuple[VLAN, ...]:
        """The VLANs whose tagged frames a PIF carries."""
        return self._vlans_by_tagged.get(tagged_pif, ())

    @cached_property
    def _vifs_by_host_network(self) -> dict[tuple[str, str], tuple[VIF, ...]]:
        return _group(self.vifs.values(), lambda v: (self.vif_host(v) or NULL_REF, v.network))

    def host_network_vifs(self, host: str, network: str) -> tuple[VIF, ...]:
        """VIFs of `network` whose VM is resident on `host` (attached or not)."""
        return self._vifs_by_host_network.get((host, network), ())


def _group(objs: Iterable[T], key: Callable[[T], str]) -> dict[str, tuple[T, ...]]:
    out: dict[str, list[T]] = {}
    for obj in objs:
        out.setdefault(key(obj), []).append(obj)
    return {k: tuple(v) for k, v in out.items()}
