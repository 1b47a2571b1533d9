"""What one host's Open vSwitch database should hold: plain frozen data, no I/O.

`vlan.compile_host(state, host)` produces a `HostConfig` from a `PoolState`; `netctl.sinks.ovsdb`
diffs it against the host's OVSDB and sends the difference. The shapes mirror OVSDB's own
tables (Bridge → Port → Interface) so that the apply layer is a column-by-column comparison and
a reader can check a `HostConfig` against `ovs-vsctl list` output line by line.

Only the columns listed here are netctl's; everything else in a row (and every row netctl did not
create, such as the VIF ports the hypervisor adds) is left as it is. Map columns are managed per
key: the keys of the desired map, plus the keys listed in `MANAGED_KEYS` (so a key netctl set
earlier and no longer wants is removed, while keys other tools wrote stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netctl.model import EMPTY, FrozenMap, Problem
from netctl.model.export import NO_EXPORT, BridgeExport

# external_ids key marking rows netctl created (and may therefore delete).
OWNER_KEY = "netctl-owner"
OWNER_VALUE = "netctl"

# Map keys netctl owns per (table, column) even when the desired map lacks them: a key in this
# set that is present in OVSDB but not desired is removed. Entries ending in "*" are prefixes.
MANAGED_KEYS: dict[tuple[str, str], frozenset[str]] = {
    ("Bridge", "other_config"): frozenset({
        "hwaddr", "disable-in-band", "mac-table-size", "enable-ipv6-mcast-snooping",
        "mcast-snooping-disable-flood-unregistered"}),
    ("Bridge", "external_ids"): frozenset({"xs-network-uuids"}),
    ("Port", "other_config"): frozenset({"bond-*", "lacp-*"}),
    ("Port", "external_ids"): frozenset({"fake-bridge-xs-network-uuids", "xs-network-uuid",
                                         "netctl-*"}),
    ("Interface", "other_config"): frozenset({"lacp-aggregation-key", "lacp-actor-key"}),
    ("Interface", "options"): frozenset({"remote_ip", "key", "local_ip"}),
    # only ever compared on tunnel interfaces (`InterfaceConfig.bfd`), which netctl owns
    ("Interface", "bfd"): frozenset({"enable", "min_rx", "min_tx"}),
    ("Interface", "external_ids"): frozenset(),
}


# Interface types netctl creates as tunnel ends (one per peer host and private network).
TUNNEL_TYPES = frozenset({"gre", "vxlan"})

# BFD on every tunnel end netctl creates, exactly as OVS stores `Interface.bfd` (strings), so
# the OVSDB diff finds nothing to write on a re-apply. Why these figures: OVS's detection
# multiplier is fixed at 3, so a session declares its peer down after 3 x min_rx; 300 ms
# gives 0.9 s, which leaves room within the 3 s an operator is promised for "a cut tunnel shows
# as down" (ovs-vswitchd publishes the new bfd_status at once, netctl's tunnel.status writer
# runs every second). The cost is ~3.3 small packets a second each way per tunnel port (a
# 64-host mesh: ~210 a second per host and network), which no underlay notices; a shorter
# interval would buy little and risk flapping on a busy userspace datapath. While a session is
# not up OVS sends at most one packet a second (RFC 5880 §6.8.3), whatever min_tx says.
TUNNEL_BFD: FrozenMap = FrozenMap({"enable": "true", "min_rx": "300", "min_tx": "300"})


def is_managed_key(table: str, column: str, key: str) -> bool:
    for pattern in MANAGED_KEYS.get((table, column), frozenset()):
        if pattern.endswith("*") and key.startswith(pattern[:-1]) or key == pattern:
            return True
    return False


@dataclass(frozen=True)
class InterfaceConfig:
    """One OVSDB Interface row: a NIC, a bond member, a tunnel end or a bridge's internal port.

    `type` "" is a system device (a NIC); "internal" the bridge's own device (or a VLAN fake
    bridge's); "gre"/"vxlan" a tunnel, whose `options` hold remote_ip and key."""

    name: str
    type: str = ""
    mtu_request: int | None = None
    mac: str | None = None  # Interface.mac: the MAC asked for an internal device
    options: FrozenMap = EMPTY
    other_config: FrozenMap = EMPTY
    external_ids: FrozenMap = EMPTY

    @property
    def bfd(self) -> FrozenMap:
        """`Interface.bfd`: BFD on every tunnel end (`TUNNEL_BFD`), nothing elsewhere (a NIC's
        bfd column is left as it is). Derived from the type rather than a field set by the
        compiler: "a tunnel netctl makes proves it carries packets" is a property of every
        tunnel, not a choice per port, and tunnel.status relies on it (issue 21)."""
        return TUNNEL_BFD if self.type in TUNNEL_TYPES else EMPTY


@dataclass(frozen=True)
class PortConfig:
    """One OVSDB Port row. A bond has two or more interfaces; a fake bridge is the internal
    port of a VLAN network (`fake_bridge`, `tag`) on its parent's bridge."""

    name: str
    interfaces: tuple[InterfaceConfig, ...]
    tag: int | None = None
    fake_bridge: bool = False
    bond_mode: str | None = None
    lacp: str | None = None
    bond_updelay: int = 0
    bond_downdelay: int = 0
    mac: str | None = None  # Port.mac: the bond's MAC
    other_config: FrozenMap = EMPTY
    external_ids: FrozenMap = EMPTY

    @property
    def is_bond(self) -> bool:
        return len(self.interfaces) > 1


@dataclass(frozen=True)
class BridgeConfig:
    """One OVSDB Bridge row with all the ports netctl puts on it (its own internal port first).

    `controllers` are OpenFlow targets (`tcp:IP:PORT`, `ssl:IP:PORT`); empty means no
    controller, and `fail_mode` decides what the bridge does on its own."""

    name: str
    ports: tuple[PortConfig, ...]
    fail_mode: str = "standalone"
    datapath_type: str = "system"
    protocols: tuple[str, ...] = ("OpenFlow13",)
    controllers: tuple[str, ...] = ()
    mcast_snooping_enable: bool = False
    other_config: FrozenMap = EMPTY
    external_ids: FrozenMap = EMPTY
    network_uuids: tuple[str, ...] = ()  # xapi networks carried (the bridge's, then VLANs)
    # its NetFlow / IPFIX / sFlow rows (`vlan.export`, written by `netctl.sinks.ovsdb_export`)
    export: BridgeExport = NO_EXPORT

    def port(self, name: str) -> PortConfig:
        return next(p for p in self.ports if p.name == name)


@dataclass(frozen=True)
class VifPortConfig:
    """What netctl sets on a VIF port the hypervisor created (it never creates or deletes one):
    `trunks` from VIF.trunks (empty = all VLANs)."""

    name: str  # vif<domid>.<device>; the tap<domid>.<device> twin gets the same
    vif_uuid: str
    trunks: tuple[int, ...] = ()


@dataclass(frozen=True)
class HostAddress:
    """An IP address dom0 holds on a bridge device (a PIF's IP configuration), e.g. the
    transport address tunnels leave from. OVSDB does not hold these: the host's IP stack does,
    so the caller (networkd on a real host, the lab's hook in the lab) configures them."""

    device: str  # the bridge (or fake bridge) device
    cidr: str  # 172.30.0.1/24 or fd00::1/64
    pif_uuid: str


@dataclass(frozen=True)
class TunnelLink:
    """One tunnel port of the full mesh, kept for status reporting (tunnel.status)."""

    tunnel_uuid: str
    network_uuid: str
    port: str
    protocol: str
    key: int
    remote_ip: str
    peer_host_uuid: str


@dataclass(frozen=True)
class MirrorConfig:
    """One OVSDB Mirror row on `bridge` (netctl's: `external_ids` carries the owner mark and
    `netctl-mirror-source`, the xapi object whose `other_config` asked for it). Ports are
    named (`vif<domid>.<device>`): the sink resolves them against the database, and a mirror
    whose output port is not there yet waits for it. Exactly one of `output_port` (a
    monitoring VIF) and `output_vlan` (RSPAN) is set."""

    name: str  # netctl-mirror-<source uuid>
    bridge: str
    source: str  # "VIF <uuid>" or "network <uuid>"
    select_src: tuple[str, ...] = ()  # ports whose received frames (what the VM sends)
    select_dst: tuple[str, ...] = ()  # ports whose sent frames (what the VM receives)
    output_port: str = ""
    output_vlan: int = 0


@dataclass(frozen=True)
class HostConfig:
    """Everything netctl wants in one host's OVSDB, and what it could not build and why."""

    host_ref: str
    host_uuid: str
    bridges: tuple[BridgeConfig, ...] = ()
    vif_ports: tuple[VifPortConfig, ...] = ()
    addresses: tuple[HostAddress, ...] = ()
    tunnels: tuple[TunnelLink, ...] = ()
    tunnel_keys: tuple[tuple[str, int], ...] = ()  # (network uuid, key), sorted
    # port mirroring (`vlan.mirror`, written by `netctl.sinks.ovsdb_mirror`): the Mirror rows,
    # and per bridge the RSPAN VLANs it floods without learning (`Bridge.flood_vlans`)
    mirrors: tuple[MirrorConfig, ...] = ()
    flood_vlans: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (bridge, VLANs), sorted
    problems: tuple[Problem, ...] = field(default=(), compare=False)

    def bridge(self, name: str) -> BridgeConfig:
        return next(b for b in self.bridges if b.name == name)

    def bridge_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bridges)

    def port_names(self) -> tuple[str, ...]:
        return tuple(p.name for b in self.bridges for p in b.ports)
