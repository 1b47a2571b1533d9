"""xapi's networking objects as netctl reads them: frozen dataclasses, one per xapi class, and
the vocabulary of their fields (the modes and protocols xapi accepts, `NULL_REF`).

Its own module because everything else is written in these words — the pool state and its
queries (`netctl.model.state`), validation (`netctl.model.validation`), the xapi reader that
builds them (`netctl.sources.xapi.convert`), the compilers and the engine that read them —
while they depend on nothing: only the standard library.

Naming rule: every field carries xapi's field name, lower-cased (`PIF.MAC` -> `PIF.mac`,
`PIF.VLAN_master_of` -> `PIF.vlan_master_of`, `VIF.VM` -> `VIF.vm`, `network.MTU` -> `mtu`), so
`reference/xapi-spec.md` Appendix A documents this model too. Unset references are
`NULL_REF` ("OpaqueRef:NULL") exactly as xapi sends them; sets are tuples in xapi's order; maps
are `FrozenMap`s (immutable, hashable).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

NULL_REF = "OpaqueRef:NULL"

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

    def get(self, key: str, default: Any = None) -> Any:  # the dict's, not Mapping's (hot)
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

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
    def primary_ipv6(self) -> bool:
        """xapi's `primary_address_type` is IPv6: the host's services on this PIF (management,
        tunnel endpoints) use its IPv6 address (XCP-ng 8.3 installs IPv6-only hosts so)."""
        return self.primary_address_type == "IPv6"

    @property
    def primary_configured(self) -> bool:
        """The PIF has an IP configuration in its primary family (Static, DHCP, Autoconf):
        what xapi asks of a tunnel's transport PIF."""
        mode = self.ipv6_configuration_mode if self.primary_ipv6 else self.ip_configuration_mode
        return mode != "None"

    @property
    def primary_address(self) -> str:
        """The PIF's address in its primary family, without a prefix length ("" when it has
        none yet): where a tunnel to this host must be sent. For IPv6 the first global
        (not link-local) address of `PIF.IPv6`; a value that does not parse is passed over."""
        if not self.primary_configured:
            return ""
        if not self.primary_ipv6:
            return self.ip
        for text in self.ipv6_addresses:
            try:
                addr = ipaddress.IPv6Interface(text).ip
            except ValueError:
                continue
            if not addr.is_link_local and not addr.is_unspecified:
                return str(addr)
        return ""

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


def vif_port(domid: int, device: str) -> str:
    """The port xenopsd plugs a VIF of domain `domid` in as: `vif<domid>.<device>` (a VIF's
    OVS port is found by this name; xapi's hotplug scripts write its external_ids)."""
    return f"vif{domid}.{device}"


def tap_port(domid: int, device: str) -> str:
    """`tap<domid>.<device>`: the emulated NIC of an HVM guest without PV drivers, which xapi
    plugs beside (and instead of) `vif<domid>.<device>` until the drivers connect: the same
    VIF."""
    return f"tap{domid}.{device}"


def tap_twin(vif_port_name: str) -> str:
    """The tap port of the VIF whose vif port is named `vif_port_name`."""
    return "tap" + vif_port_name.removeprefix("vif")


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
