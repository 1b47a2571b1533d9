"""The pool as netctl sees it: frozen dataclasses mirroring xapi's networking objects.

Everything downstream (the OVSDB compilers for bridges, bonds, VLANs and tunnels, the OpenFlow
compiler) reads intent from a `PoolState` and nothing else, so this module is pure: no I/O, no
wire format. `netctl.sources.xapi.convert` turns xapi records (XML-RPC or JSON-RPC) into these
objects.

Naming rule: every field carries xapi's field name, lower-cased (`PIF.MAC` -> `PIF.mac`,
`PIF.VLAN_master_of` -> `PIF.vlan_master_of`, `VIF.VM` -> `VIF.vm`, `network.MTU` -> `mtu`), so
`reference/xapi-spec.md` Appendix A documents this model too. Unset references are
`NULL_REF` ("OpaqueRef:NULL") exactly as xapi sends them; sets are tuples in xapi's order; maps
are `FrozenMap`s (immutable, hashable).

`validate(state)` turns bad intent into `Problem`s and returns a `PoolState` without the invalid
objects (and without the objects that depend on them), so bad intent never blocks good intent.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, TypeVar

NULL_REF = "OpaqueRef:NULL"
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
BRIDGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")

BOND_MODES = ("balance-slb", "active-backup", "lacp")
VIF_LOCKING_MODES = ("network_default", "locked", "unlocked", "disabled")
NETWORK_DEFAULT_LOCKING_MODES = ("unlocked", "disabled")
ENFORCED_LOCKING_MODES = ("locked", "unlocked", "disabled")
# VIF.other_config key that states the locking mode when xapi refuses to (flows/locking.py).
LOCKING_OVERRIDE_KEY = "netctl-locking-mode"
TUNNEL_PROTOCOLS = ("gre", "vxlan")
VM_POWER_STATES = ("Halted", "Paused", "Running", "Suspended")
SDN_PROTOCOLS = ("ssl", "pssl")
IP_CONFIGURATION_MODES = ("None", "DHCP", "Static")
IPV6_CONFIGURATION_MODES = ("None", "DHCP", "Static", "Autoconf")
# Bond.properties xapi accepts, per mode (xapi_bond.ml requirements_of_mode): only lacp has any.
LACP_PROPERTIES: dict[str, tuple[str, ...] | None] = {
    "hashing_algorithm": ("src_mac", "tcpudp_ports"),
    "lacp-time": ("fast", "slow"),
    "lacp-aggregation-key": None,  # any integer
    "lacp-fallback-ab": ("true", "false"),
}


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable str->str map: xapi's `(string -> string) map` fields."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._data: dict[str, str] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def merged(self, *others: Mapping[str, str]) -> FrozenMap:
        """This map overlaid by `others`, later wins (xapi's pool ⊕ network ⊕ PIF merge)."""
        out = dict(self._data)
        for other in others:
            out.update(other)
        return FrozenMap(out)


EMPTY = FrozenMap()


def _fm(value: Mapping[str, str] | None) -> FrozenMap:
    if isinstance(value, FrozenMap):
        return value
    return FrozenMap(value or {})


class PifType(enum.Enum):
    """What a PIF is, decided in xapi's order (xapi_pif_helpers.ml get_pif_type, spec §3.0)."""

    TUNNEL_ACCESS = "tunnel_access"
    VLAN_UNTAGGED = "vlan_untagged"
    SRIOV_LOGICAL = "sriov_logical"
    BOND_MASTER = "bond_master"
    PHYSICAL = "physical"
    OTHER = "other"  # none of the above (e.g. a PIF introduced by hand with physical=false)


# ---------------------------------------------------------------------------------------------
# The objects


@dataclass(frozen=True)
class Pool:
    ref: str
    uuid: str
    name_label: str = ""
    master: str = NULL_REF
    other_config: FrozenMap = EMPTY
    vswitch_controller: str = ""
    igmp_snooping_enabled: bool = False


@dataclass(frozen=True)
class Host:
    ref: str
    uuid: str
    name_label: str = ""
    hostname: str = ""
    address: str = ""
    enabled: bool = True
    live: bool = True  # host_metrics.live, folded in because a controller only needs this bit
    control_domain: str = NULL_REF
    software_version: FrozenMap = EMPTY
    other_config: FrozenMap = EMPTY

    @property
    def network_backend(self) -> str:
        """`openvswitch` or `bridge` (software_version:network_backend)."""
        return self.software_version.get("network_backend", "")


@dataclass(frozen=True)
class Network:
    ref: str
    uuid: str
    name_label: str = ""
    bridge: str = ""
    mtu: int = 1500
    managed: bool = True
    default_locking_mode: str = "unlocked"
    other_config: FrozenMap = EMPTY
    purpose: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class PIF:
    ref: str
    uuid: str
    device: str = ""
    host: str = NULL_REF
    network: str = NULL_REF
    mac: str = ""
    mtu: int = 1500
    vlan: int = -1  # -1 = untagged
    physical: bool = False
    currently_attached: bool = False
    management: bool = False
    managed: bool = True
    disallow_unplug: bool = False
    ip_configuration_mode: str = "None"
    ip: str = ""
    netmask: str = ""
    gateway: str = ""
    dns: str = ""
    ipv6_configuration_mode: str = "None"
    ipv6: tuple[str, ...] = ()  # "addr/prefix"; xapi puts a lone "" in VLAN/bond/tunnel PIFs
    ipv6_gateway: str = ""
    primary_address_type: str = "IPv4"
    bond_master_of: tuple[str, ...] = ()
    bond_slave_of: str = NULL_REF
    vlan_master_of: str = NULL_REF
    vlan_slave_of: tuple[str, ...] = ()
    tunnel_access_pif_of: tuple[str, ...] = ()
    tunnel_transport_pif_of: tuple[str, ...] = ()
    sriov_physical_pif_of: tuple[str, ...] = ()
    sriov_logical_pif_of: tuple[str, ...] = ()
    properties: FrozenMap = EMPTY
    other_config: FrozenMap = EMPTY

    @property
    def type(self) -> PifType:
        """The PIF type as xapi decides it (tunnel access > VLAN > SR-IOV > bond > physical)."""
        if self.tunnel_access_pif_of:
            return PifType.TUNNEL_ACCESS
        if self.vlan_master_of != NULL_REF:
            return PifType.VLAN_UNTAGGED
        if self.sriov_logical_pif_of:
            return PifType.SRIOV_LOGICAL
        if self.bond_master_of:
            return PifType.BOND_MASTER
        if self.physical:
            return PifType.PHYSICAL
        return PifType.OTHER

    @property
    def has_ipv4(self) -> bool:
        return self.ip_configuration_mode != "None"

    @property
    def ipv6_addresses(self) -> tuple[str, ...]:
        """IPv6 without xapi's lone-empty-string quirk."""
        return tuple(a for a in self.ipv6 if a)

    @property
    def is_bond_slave(self) -> bool:
        return self.bond_slave_of != NULL_REF


@dataclass(frozen=True)
class Bond:
    ref: str
    uuid: str
    master: str = NULL_REF
    slaves: tuple[str, ...] = ()
    mode: str = "balance-slb"
    properties: FrozenMap = EMPTY
    primary_slave: str = NULL_REF
    links_up: int = 0
    auto_update_mac: bool = True
    other_config: FrozenMap = EMPTY


@dataclass(frozen=True)
class VLAN:
    ref: str
    uuid: str
    tagged_pif: str = NULL_REF
    untagged_pif: str = NULL_REF
    tag: int = -1
    other_config: FrozenMap = EMPTY


@dataclass(frozen=True)
class Tunnel:
    ref: str
    uuid: str
    access_pif: str = NULL_REF
    transport_pif: str = NULL_REF
    protocol: str = "gre"
    status: FrozenMap = EMPTY  # owned by the controller: active, key, error
    other_config: FrozenMap = EMPTY


@dataclass(frozen=True)
class VIF:
    ref: str
    uuid: str
    device: str = "0"
    network: str = NULL_REF
    vm: str = NULL_REF
    mac: str = ""
    mtu: int = 1500
    currently_attached: bool = False
    locking_mode: str = "network_default"
    ipv4_allowed: tuple[str, ...] = ()
    ipv6_allowed: tuple[str, ...] = ()
    trunks: tuple[int, ...] = ()  # empty = all VLANs
    qos_algorithm_type: str = ""
    qos_algorithm_params: FrozenMap = EMPTY
    other_config: FrozenMap = EMPTY


@dataclass(frozen=True)
class VM:
    ref: str
    uuid: str
    name_label: str = ""
    power_state: str = "Halted"
    resident_on: str = NULL_REF
    domid: int = -1
    is_control_domain: bool = False
    is_a_template: bool = False
    is_a_snapshot: bool = False
    other_config: FrozenMap = EMPTY

    @property
    def is_guest(self) -> bool:
        """A real guest: not a template, snapshot or control domain."""
        return not (self.is_a_template or self.is_a_snapshot or self.is_control_domain)


@dataclass(frozen=True)
class SDNController:
    ref: str
    uuid: str
    protocol: str = "ssl"
    address: str = ""
    port: int = 0


XapiObject = Pool | Host | Network | PIF | Bond | VLAN | Tunnel | VIF | VM | SDNController

# xapi class name (as on the wire, for messages) of each model class.
XAPI_CLASS: dict[type, str] = {
    Pool: "pool", Host: "host", Network: "network", PIF: "PIF", Bond: "Bond", VLAN: "VLAN",
    Tunnel: "tunnel", VIF: "VIF", VM: "VM", SDNController: "SDN_controller",
}


# ---------------------------------------------------------------------------------------------
# The snapshot

T = TypeVar("T")


def _frozen_index(objs: Iterable[Any]) -> FrozenRefMap:
    return FrozenRefMap({o.ref: o for o in objs})


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
        `flows.locking`), else `effective_locking_mode`; a quarantined VIF is `disabled`."""
        if vif.ref in self.quarantined:
            return "disabled"
        override = vif.other_config.get(LOCKING_OVERRIDE_KEY)
        if override in ENFORCED_LOCKING_MODES:
            return override
        return self.effective_locking_mode(vif)

    def vif_mtu(self, vif: VIF) -> int:
        """The backend MTU: VIF other_config:mtu, else the network's MTU (not VIF.MTU, as xapi)."""
        raw = vif.other_config.get("mtu")
        if raw is not None and raw.isdigit():
            return int(raw)
        net = self.networks.get(vif.network)
        return net.mtu if net is not None else 1500

    def pif_mtu(self, pif: PIF) -> int:
        """The MTU networkd applies to a PIF: PIF other_config:mtu, else network.MTU."""
        raw = pif.other_config.get("mtu")
        if raw is not None and raw.isdigit():
            return int(raw)
        net = self.networks.get(pif.network)
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

_BUCKET_OF: dict[type, str] = {
    Host: "hosts", Network: "networks", PIF: "pifs", Bond: "bonds", VLAN: "vlans",
    Tunnel: "tunnels", VIF: "vifs", VM: "vms", SDNController: "sdn_controllers",
}


def _group(objs: Iterable[T], key: Callable[[T], str]) -> dict[str, tuple[T, ...]]:
    out: dict[str, list[T]] = {}
    for obj in objs:
        out.setdefault(key(obj), []).append(obj)
    return {k: tuple(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Problem:
    """Bad intent in one xapi object, said so an operator can find and fix it."""

    object_class: str  # xapi class name: "VIF", "PIF", "network", ...
    ref: str
    uuid: str
    name_label: str  # a name a person recognises ("vm1 VIF 0", "host1 eth0", network name)
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.object_class} {self.name_label or self.uuid} ({self.uuid}): {self.field}: " \
               f"{self.message}"


def describe(state: PoolState, obj: XapiObject) -> str:
    """A human name for an object: what an operator would call it."""
    if isinstance(obj, Pool | Host | Network | VM):
        return obj.name_label or obj.uuid
    if isinstance(obj, PIF):
        host = state.hosts.get(obj.host)
        return f"{host.name_label if host else '?'} {obj.device}"
    if isinstance(obj, VIF):
        vm = state.vms.get(obj.vm)
        return f"{vm.name_label if vm else '?'} VIF {obj.device}"
    if isinstance(obj, Bond):
        master = state.pifs.get(obj.master)
        return f"bond {describe(state, master)}" if master else "bond"
    if isinstance(obj, VLAN):
        tagged = state.pifs.get(obj.tagged_pif)
        return f"VLAN {obj.tag} on {describe(state, tagged) if tagged else '?'}"
    if isinstance(obj, Tunnel):
        access = state.pifs.get(obj.access_pif)
        return f"tunnel {describe(state, access) if access else '?'}"
    if isinstance(obj, SDNController):
        return f"SDN controller {obj.protocol}:{obj.address}:{obj.port}"
    return ""


def _is_ipv4(text: str, allow_prefix: bool) -> bool:
    try:
        if allow_prefix and "/" in text:
            return ipaddress.ip_network(text, strict=False).version == 4
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def _is_ipv6(text: str, allow_prefix: bool) -> bool:
    try:
        if allow_prefix and "/" in text:
            return ipaddress.ip_network(text, strict=False).version == 6
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _check_network(state: PoolState, n: Network, seen_bridges: dict[str, Network]
                   ) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if not n.bridge:
        errs.append(("bridge", "the network has no bridge name, so no OVS bridge can be built"))
    elif not BRIDGE_RE.match(n.bridge):
        errs.append(("bridge", f"'{n.bridge}' is not a usable bridge name (1-15 letters, digits, "
                               "'_', '-', '.')"))
    elif n.bridge in seen_bridges:
        other = seen_bridges[n.bridge]
        errs.append(("bridge", f"bridge '{n.bridge}' is already used by network "
                               f"'{other.name_label or other.uuid}'"))
    if not 68 <= n.mtu <= 65535:
        errs.append(("MTU", f"{n.mtu} is not a valid MTU (68-65535)"))
    if n.default_locking_mode not in NETWORK_DEFAULT_LOCKING_MODES:
        errs.append(("default_locking_mode", f"'{n.default_locking_mode}' is not one of "
                                             "unlocked, disabled"))
    return errs


def _check_pif(state: PoolState, p: PIF) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if p.host not in state.hosts:
        errs.append(("host", "the PIF's host is unknown or invalid"))
    if p.network not in state.networks and not (p.is_bond_slave and p.network == NULL_REF):
        # a bond member's own network plays no part while it is bonded
        errs.append(("network", "the PIF's network is unknown or invalid"))
    if not p.device:
        errs.append(("device", "the PIF has no device name"))
    if p.mac and not MAC_RE.match(p.mac):
        errs.append(("MAC", f"'{p.mac}' is not a MAC address"))
    if not (p.vlan == -1 or 0 <= p.vlan <= 4094):
        errs.append(("VLAN", f"VLAN tag {p.vlan} is outside 0-4094"))
    if p.ip_configuration_mode == "Static":
        if not _is_ipv4(p.ip, allow_prefix=False):
            errs.append(("IP", f"'{p.ip}' is not an IPv4 address, yet the PIF is Static"))
        elif p.netmask and not _is_ipv4(p.netmask, allow_prefix=False):
            errs.append(("netmask", f"'{p.netmask}' is not an IPv4 netmask"))
    for addr in p.ipv6_addresses:
        if not _is_ipv6(addr, allow_prefix=True):
            errs.append(("IPv6", f"'{addr}' is not an IPv6 address/prefix"))
    mtu = p.other_config.get("mtu")
    if mtu is not None and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
        errs.append(("other_config:mtu", f"'{mtu}' is not a valid MTU (68-65535)"))
    return errs


def _check_bond(state: PoolState, b: Bond) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if b.master not in state.pifs:
        errs.append(("master", "the bond's master PIF is unknown or invalid"))
    slaves = [s for s in b.slaves if s in state.pifs]
    if len(slaves) < 2:
        errs.append(("slaves", f"a bond needs at least two valid member PIFs, "
                               f"it has {len(slaves)}"))
    if b.mode not in BOND_MODES:
        errs.append(("mode", f"'{b.mode}' is not one of {', '.join(BOND_MODES)}"))
    for key, value in b.properties.items():
        if b.mode != "lacp":
            errs.append(("properties", f"'{key} = {value}' is not valid for mode {b.mode}"))
            continue
        allowed = LACP_PROPERTIES.get(key, ())
        if allowed is None:
            if not value.lstrip("-").isdigit():
                errs.append(("properties", f"'{key} = {value}': {key} must be an integer"))
        elif value not in allowed:
            errs.append(("properties", f"'{key} = {value}' is not valid for mode lacp"))
    return errs


def _check_vlan(state: PoolState, v: VLAN) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if not 0 <= v.tag <= 4094:
        errs.append(("tag", f"VLAN tag {v.tag} is outside 0-4094"))
    if v.tagged_pif not in state.pifs:
        errs.append(("tagged_PIF", "the PIF carrying the tagged frames is unknown or invalid"))
    if v.untagged_pif not in state.pifs:
        errs.append(("untagged_PIF", "the VLAN's own PIF is unknown or invalid"))
    return errs


def _check_tunnel(state: PoolState, t: Tunnel) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if t.protocol not in TUNNEL_PROTOCOLS:
        errs.append(("protocol", f"'{t.protocol}' is not one of gre, vxlan"))
    if t.access_pif not in state.pifs:
        errs.append(("access_PIF", "the tunnel's access PIF is unknown or invalid"))
    transport = state.pifs.get(t.transport_pif)
    if transport is None:
        errs.append(("transport_PIF", "the tunnel's transport PIF is unknown or invalid"))
    elif not transport.has_ipv4:
        errs.append(("transport_PIF", f"the transport PIF {describe(state, transport)} has no IP "
                                      "address, so the tunnel has no endpoint"))
    return errs


def _check_vm(state: PoolState, vm: VM) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if vm.power_state not in VM_POWER_STATES:
        errs.append(("power_state", f"'{vm.power_state}' is not a VM power state"))
    if vm.power_state == "Running":
        if vm.resident_on not in state.hosts:
            errs.append(("resident_on", "the VM is Running but its host is unknown or invalid"))
        if vm.domid < 0:
            errs.append(("domid", f"the VM is Running but has no domain id ({vm.domid})"))
    return errs


def _check_vif(state: PoolState, v: VIF) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if v.network not in state.networks:
        errs.append(("network", "the VIF's network is unknown or invalid"))
    if v.vm not in state.vms:
        errs.append(("VM", "the VIF's VM is unknown or invalid"))
    if not v.device.isdigit():
        errs.append(("device", f"'{v.device}' is not a device number"))
    if not MAC_RE.match(v.mac):
        errs.append(("MAC", f"'{v.mac}' is not a MAC address"))
    elif int(v.mac[:2], 16) & 1:
        errs.append(("MAC", f"{v.mac} is a multicast MAC"))
    if v.locking_mode not in VIF_LOCKING_MODES:
        errs.append(("locking_mode", f"'{v.locking_mode}' is not one of "
                                     f"{', '.join(VIF_LOCKING_MODES)}"))
    for addr in v.ipv4_allowed:
        if not _is_ipv4(addr, allow_prefix=True):
            errs.append(("ipv4_allowed", f"'{addr}' is not an IPv4 address"))
    for addr in v.ipv6_allowed:
        if not _is_ipv6(addr, allow_prefix=True):
            errs.append(("ipv6_allowed", f"'{addr}' is not an IPv6 address"))
    for tag in v.trunks:
        if not 0 <= tag <= 4094:
            errs.append(("trunks", f"VLAN {tag} is outside 0-4094"))
    if v.trunks and v.network in state.networks:
        if any(p.vlan != -1 for p in state.network_pifs(v.network)):
            errs.append(("trunks", "a VIF on a VLAN network cannot trunk VLANs"))
    mtu = v.other_config.get("mtu")
    if mtu is not None and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
        errs.append(("other_config:mtu", f"'{mtu}' is not a valid MTU (68-65535)"))
    if v.qos_algorithm_type == "ratelimit":
        kbps = v.qos_algorithm_params.get("kbps", "")
        if not kbps.isdigit():
            errs.append(("qos_algorithm_params:kbps", f"'{kbps}' is not a rate in KiB/s"))
    elif v.qos_algorithm_type:
        errs.append(("qos_algorithm_type", f"'{v.qos_algorithm_type}' is not a QoS algorithm "
                                           "(only ratelimit exists)"))
    return errs


def _check_sdn(state: PoolState, c: SDNController) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    if c.protocol not in SDN_PROTOCOLS:
        errs.append(("protocol", f"'{c.protocol}' is not one of ssl, pssl"))
    if c.protocol == "ssl" and not _is_ipv4(c.address, allow_prefix=False):
        errs.append(("address", f"'{c.address}' is not an IPv4 address"))
    if not 0 <= c.port <= 65535:
        errs.append(("port", f"{c.port} is not a TCP port"))
    return errs


def duplicate_macs(state: PoolState, vifs: Iterable[VIF], incumbents: Collection[str] = ()
                   ) -> tuple[set[str], list[Problem]]:
    """Active VIFs of one network that share a MAC: xapi allows it, a switch cannot forward to
    two owners of one address. The first keeps working — the incumbent (a VIF that held the
    MAC before, `incumbents`), else the lowest uuid (after a restart netctl has no history) —
    and the others are quarantined (held disabled) with a Problem naming both VIFs."""
    groups: dict[tuple[str, str], list[VIF]] = {}
    for vif in vifs:
        if state.is_vif_active(vif):
            groups.setdefault((vif.network, vif.mac.lower()), []).append(vif)
    losers: set[str] = set()
    problems: list[Problem] = []
    for (net_ref, mac), group in groups.items():
        if len(group) < 2:
            continue
        group.sort(key=lambda v: (v.ref not in incumbents, v.uuid))
        first = group[0]
        net = state.networks.get(net_ref)
        where = f"network '{net.name_label or net.uuid}'" if net else "its network"
        for vif in group[1:]:
            losers.add(vif.ref)
            problems.append(Problem(
                "VIF", vif.ref, vif.uuid, describe(state, vif), "MAC",
                f"{mac} is already used on {where} by {describe(state, first)} ({first.uuid}); "
                "one address cannot have two ports, so this VIF is held disabled (no traffic) "
                "until one of the two changes its MAC or network"))
    return losers, problems


def validate(state: PoolState, incumbents: Collection[str] = ()
             ) -> tuple[PoolState, list[Problem]]:
    """Check intent; return the snapshot without invalid objects, and the Problems found.

    Objects are checked in dependency order (hosts and networks, then PIFs, then bonds, VLANs
    and tunnels, then VMs, then VIFs), each against the already-valid objects, so an object
    whose network or host is invalid is left out too and says why. Active VIFs that share a MAC
    on a network are kept but quarantined (`duplicate_macs`; `incumbents` are the VIF refs that
    held their MAC before). Pure: same input, same output.
    """
    problems: list[Problem] = []
    kept = PoolState(pool=state.pool, hosts=state.hosts, sdn_controllers={})

    def report(obj: XapiObject, errs: list[tuple[str, str]]) -> bool:
        for fld, msg in errs:
            problems.append(Problem(XAPI_CLASS[type(obj)], obj.ref, obj.uuid,
                                    describe(state, obj), fld, msg))
        return not errs

    seen: dict[str, Network] = {}
    networks = {}
    for n in sorted(state.networks.values(), key=lambda n: (n.uuid, n.ref)):
        if report(n, _check_network(kept, n, seen)):
            networks[n.ref] = n
            seen[n.bridge] = n
    kept = kept.replace(networks=networks)
    kept = kept.replace(pifs={p.ref: p for p in state.pifs.values()
                              if report(p, _check_pif(kept, p))})
    kept = kept.replace(
        bonds={b.ref: b for b in state.bonds.values() if report(b, _check_bond(kept, b))},
        vlans={v.ref: v for v in state.vlans.values() if report(v, _check_vlan(kept, v))},
        tunnels={t.ref: t for t in state.tunnels.values() if report(t, _check_tunnel(kept, t))},
    )
    # A PIF whose bond, VLAN or tunnel was rejected cannot be built either.
    bad_pifs = {}
    for p in kept.pifs.values():
        if p.bond_master_of and not any(b in kept.bonds for b in p.bond_master_of):
            bad_pifs[p.ref] = ("bond_master_of", "the bond this PIF represents is invalid")
        elif p.vlan_master_of != NULL_REF and p.vlan_master_of not in kept.vlans:
            bad_pifs[p.ref] = ("VLAN_master_of", "the VLAN this PIF represents is invalid")
        elif p.tunnel_access_pif_of and not any(t in kept.tunnels for t in p.tunnel_access_pif_of):
            bad_pifs[p.ref] = ("tunnel_access_PIF_of", "the tunnel this PIF gives access to is "
                                                       "invalid")
    for ref, err in bad_pifs.items():
        report(kept.pifs[ref], [err])
    if bad_pifs:
        kept = kept.replace(pifs={r: p for r, p in kept.pifs.items() if r not in bad_pifs})
    kept = kept.replace(
        vms={v.ref: v for v in state.vms.values() if report(v, _check_vm(kept, v))},
        sdn_controllers={c.ref: c for c in state.sdn_controllers.values()
                         if report(c, _check_sdn(kept, c))},
    )
    kept = kept.replace(vifs={v.ref: v for v in state.vifs.values()
                              if report(v, _check_vif(kept, v))})
    losers, dup_problems = duplicate_macs(kept, kept.vifs.values(), incumbents)
    if losers:
        problems += dup_problems
        kept = kept.replace(quarantined=frozenset(losers))
    return kept, problems
