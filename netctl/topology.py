"""Topology files: one YAML document that describes a whole Xen pool (the pool description).

The same file seeds the lab (namespaces, OVS instances, cables, VMs) and the xapi simulator
(hosts, PIFs, networks, bonds, VLANs, tunnels, VMs, VIFs), so both agree on every name, MAC and
UUID. UUIDs are derived deterministically from the lab name and the object's identity, unless
the file gives one.

Parsing is pure (no I/O beyond reading the file) and fails *before anything is created* with a
`TopologyError` that names the file, the object and the field. The format is documented in
`topologies/README.md`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

UUID_NAMESPACE = uuid.UUID("6f1c1f6e-2b1e-4d9a-9c1e-6e6574637466")  # netctl's own namespace
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,3}$")
BOND_MODES = ("balance-slb", "active-backup", "lacp")
LOCKING_MODES = ("network_default", "locked", "unlocked", "disabled")
DEFAULT_LOCKING = ("unlocked", "disabled")
TUNNEL_PROTOCOLS = ("gre", "vxlan")
RESERVED_BRIDGE_PREFIXES = ("vif", "tap", "eth")


class TopologyError(ValueError):
    """A malformed topology: names the file, the object and the field."""

    def __init__(self, source: str, obj: str, fld: str, message: str) -> None:
        self.source, self.obj, self.field, self.message = source, obj, fld, message
        super().__init__(f"{source}: {obj}: field '{fld}': {message}")


@dataclass(frozen=True)
class Network:
    """A xapi network. kind is derived: 'external' (NICs/bonds), 'vlan', 'private' (tunnels)
    or 'internal' (no PIF anywhere: a single-host private network)."""

    name: str
    bridge: str
    uuid: str
    mtu: int = 1500
    default_locking_mode: str = "unlocked"
    vlan_tag: int | None = None
    vlan_parent: str | None = None  # network name whose PIF carries the tagged frames
    tunnel_protocol: str | None = None
    tunnel_transport: str | None = None  # network name whose PIF carries the tunnel
    other_config: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def kind(self) -> str:
        if self.vlan_tag is not None:
            return "vlan"
        if self.tunnel_protocol is not None:
            return "private"
        return "external"


@dataclass(frozen=True)
class Nic:
    device: str
    mac: str
    uuid: str  # the physical PIF's uuid
    network: str | None = None  # network of this NIC's own PIF (None if bonded or unused)


@dataclass(frozen=True)
class Bond:
    device: str
    members: tuple[str, ...]
    mode: str
    network: str
    uuid: str
    pif_uuid: str
    properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PifAddress:
    """IP configuration of the PIF a host has on a network (static, as xapi `Static`)."""

    network: str
    ipv4: str | None = None  # CIDR, e.g. 172.30.0.1/24
    ipv6: str | None = None


@dataclass(frozen=True)
class Host:
    name: str
    index: int  # 1-based, stable order of the file
    uuid: str
    nics: tuple[Nic, ...]
    bonds: tuple[Bond, ...] = ()
    addresses: tuple[PifAddress, ...] = ()

    def nic(self, device: str) -> Nic:
        return next(n for n in self.nics if n.device == device)

    def address_on(self, network: str) -> PifAddress | None:
        return next((a for a in self.addresses if a.network == network), None)

    def uplink_networks(self) -> tuple[str, ...]:
        """Networks this host has a physical or bond PIF on."""
        nets = [n.network for n in self.nics if n.network]
        nets += [b.network for b in self.bonds]
        return tuple(nets)


@dataclass(frozen=True)
class Vif:
    device: int
    network: str
    mac: str
    uuid: str
    ipv4: tuple[str, ...] = ()  # CIDRs configured inside the VM
    ipv6: tuple[str, ...] = ()
    locking_mode: str = "network_default"
    ipv4_allowed: tuple[str, ...] = ()
    ipv6_allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vm:
    name: str
    host: str
    domid: int
    uuid: str
    vifs: tuple[Vif, ...]


@dataclass(frozen=True)
class Cable:
    """A host NIC cabled to a switch port: access VLAN `vlan`, or trunk `trunk` (+ native)."""

    host: str
    nic: str
    vlan: int | None = None
    trunk: tuple[int, ...] = ()
    native: int = 1


@dataclass(frozen=True)
class SwitchBond:
    """Switch-side LACP bond (a LAG) over the ports cabled to some NICs of one host."""

    host: str
    nics: tuple[str, ...]
    lacp_time: str = "fast"


@dataclass(frozen=True)
class Outside:
    """A machine outside the pool behind the switch (a router, a physical server)."""

    name: str
    mac: str
    vlan: int = 1
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()


@dataclass(frozen=True)
class Switch:
    name: str
    cables: tuple[Cable, ...]
    bonds: tuple[SwitchBond, ...] = ()
    outside: tuple[Outside, ...] = ()


@dataclass(frozen=True)
class Topology:
    name: str
    prefix: str
    source: str
    management: str  # IPv4 or IPv6 CIDR of the management network (root namespace: the first
    # address; an IPv6 one makes an IPv6-only management network, as XCP-ng 8.3 can install)
    pool_uuid: str
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]
    switch: Switch
    vms: tuple[Vm, ...]
    pool_other_config: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    def to_yaml(self) -> str:
        """The topology as YAML (what it was parsed from, with any relabelling applied)."""
        return yaml.safe_dump(self.raw, sort_keys=False)

    def relabel(self, prefix: str, management: str) -> Topology:
        """The same pool under another lab prefix and management network (e.g. for tests that
        must not collide with a running demo). Names, MACs and UUIDs stay the same."""
        return parse_data({**self.raw, "prefix": prefix, "management": management}, self.source)

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def vm(self, name: str) -> Vm:
        return next(v for v in self.vms if v.name == name)

    def management_address(self, host: str | None) -> str:
        """The management address of a host, IPv4 or IPv6 as the management network is (None =
        the root namespace, where the controller runs)."""
        net = ipaddress.ip_network(self.management)
        offset = 1 if host is None else 10 + self.host(host).index
        return str(net.network_address + offset)

    def hosts_with(self, network: str) -> tuple[Host, ...]:
        """Hosts that have a PIF on `network` (VLAN and private networks: through their parent)."""
        net = self.network(network)
        if net.kind == "vlan":
            return self.hosts_with(net.vlan_parent or "")
        if net.kind == "private":
            transport = net.tunnel_transport or ""
            return tuple(h for h in self.hosts_with(transport) if h.address_on(transport))
        return tuple(h for h in self.hosts if network in h.uplink_networks())


# ---------------------------------------------------------------------------------------------
# Parsing


class _Ctx:
    """Carries the file name so every error names it."""

    def __init__(self, source: str, lab: str = "") -> None:
        self.source = source
        self.lab = lab

    def fail(self, obj: str, fld: str, message: str) -> TopologyError:
        return TopologyError(self.source, obj, fld, message)

    def uuid(self, *parts: object) -> str:
        return uuid5_str("/".join([self.lab, *map(str, parts)]))

    def mac(self, *parts: object) -> str:
        """A stable locally-administered unicast MAC derived from the object's identity."""
        digest = uuid5_bytes("mac/" + "/".join([self.lab, *map(str, parts)]))
        return "02:" + digest[:5].hex(":")


def uuid5_bytes(name: str) -> bytes:
    """`uuid.uuid5(UUID_NAMESPACE, name).bytes` without building a UUID object: a pool of 64k
    VMs derives ~200k of them at start."""
    digest = bytearray(hashlib.sha1(UUID_NAMESPACE.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return bytes(digest)


def uuid5_str(name: str) -> str:
    """`str(uuid.uuid5(UUID_NAMESPACE, name))`, faster (`uuid5_bytes`)."""
    h = uuid5_bytes(name).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _mapping(ctx: _Ctx, value: Any, obj: str, fld: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ctx.fail(obj, fld, f"expected a mapping, got {type(value).__name__}")
    return value


def _list(ctx: _Ctx, value: Any, obj: str, fld: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.fail(obj, fld, f"expected a list, got {type(value).__name__}")
    return value


def _unknown(ctx: _Ctx, data: dict[str, Any], allowed: set[str], obj: str) -> None:
    for key in data:
        if key not in allowed:
            raise ctx.fail(obj, str(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _name(ctx: _Ctx, value: Any, obj: str, fld: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ctx.fail(
            obj,
            fld,
            f"{value!r} is not a valid name (lower-case letter, then up to 9 letters/digits)",
        )
    return value


def _int(ctx: _Ctx, value: Any, obj: str, fld: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.fail(obj, fld, f"{value!r} is not an integer")
    if not lo <= value <= hi:
        raise ctx.fail(obj, fld, f"{value} is outside {lo}..{hi}")
    return value


def _choice(ctx: _Ctx, value: Any, obj: str, fld: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ctx.fail(obj, fld, f"{value!r} is not one of {', '.join(choices)}")
    return str(value)


def _mac(ctx: _Ctx, value: Any, obj: str, fld: str = "mac") -> str:
    if not isinstance(value, str) or not MAC_RE.match(value.lower()):
        raise ctx.fail(obj, fld, f"{value!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise ctx.fail(obj, fld, f"{mac} is a multicast MAC")
    return mac


def _cidr(ctx: _Ctx, value: Any, obj: str, fld: str, version: int) -> str:
    try:  # the version's own class: ip_interface tries IPv4 first, costly for every IPv6
        iface = (ipaddress.IPv4Interface if version == 4 else ipaddress.IPv6Interface)(str(value))
    except ValueError:
        raise ctx.fail(obj, fld, f"{value!r} is not an IPv{version} address/prefix") from None
    if iface.version != version or "/" not in str(value):
        raise ctx.fail(obj, fld, f"{value!r} is not an IPv{version} address/prefix")
    if (
        iface.ip == iface.network.network_address
        and iface.network.prefixlen < iface.max_prefixlen - 1
    ):
        raise ctx.fail(obj, fld, f"{value} is a network address, not a host address")
    return str(iface)


def _cidrs(ctx: _Ctx, value: Any, obj: str, fld: str, version: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    return tuple(
        _cidr(ctx, v, obj, f"{fld}[{i}]", version)
        for i, v in enumerate(_list(ctx, value, obj, fld))
    )


def _allowed(ctx: _Ctx, value: Any, obj: str, fld: str, version: int) -> tuple[str, ...]:
    out = []
    for i, v in enumerate(_list(ctx, value, obj, fld)):
        try:
            net = ipaddress.ip_network(str(v), strict=False)
        except ValueError:
            raise ctx.fail(obj, f"{fld}[{i}]", f"{v!r} is not an IPv{version} address") from None
        if net.version != version:
            raise ctx.fail(obj, f"{fld}[{i}]", f"{v!r} is not an IPv{version} address")
        out.append(str(v))
    return tuple(out)


def _vlan(ctx: _Ctx, value: Any, obj: str, fld: str) -> int:
    return _int(ctx, value, obj, fld, 1, 4094)


def parse_file(path: str | Path) -> Topology:
    """Read and validate a topology file. Raises TopologyError naming file, object and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(str(path), "file", "-", f"cannot read: {exc.strerror}") from None
    return parse_text(text, str(path))


def parse_text(text: str, source: str = "<topology>") -> Topology:
    """A topology from YAML text, or from JSON (which is YAML too): JSON is read by `json`,
    ~100x faster than a YAML loader, which matters at full pool size (a 64-host x 1000-VM file
    is read in 0.1 s as JSON, 8 s as YAML with libyaml)."""
    if text.lstrip().startswith("{"):
        try:
            return parse_data(json.loads(text), source)
        except json.JSONDecodeError:
            pass  # YAML's flow style, or broken: the YAML loader says which
    try:
        # libyaml's loader when PyYAML has it (the pure-Python one is ~8x slower)
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "document"
        raise TopologyError(source, where, "-", f"not valid YAML: {exc}") from None
    return parse_data(data, source)


def parse_data(data: Any, source: str = "<topology>") -> Topology:  # noqa: C901 - one schema
    ctx = _Ctx(source)
    top = _mapping(ctx, data, "topology", "-")
    _unknown(
        ctx,
        top,
        {"name", "prefix", "management", "pool", "networks", "hosts", "switch", "vms"},
        "topology",
    )
    name = _name(ctx, top.get("name"), "topology", "name")
    ctx.lab = name
    prefix = top.get("prefix", name[:4])
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
        raise ctx.fail("topology", "prefix", f"{prefix!r} must be 2-4 lower-case letters/digits")
    mgmt_raw = top.get("management", "198.18.0.0/24")
    try:
        mgmt = ipaddress.ip_network(str(mgmt_raw))
    except ValueError:
        raise ctx.fail(
            "topology", "management", f"{mgmt_raw!r} is not an IPv4 or IPv6 network"
        ) from None
    if mgmt.num_addresses < 64:
        raise ctx.fail(
            "topology", "management",
            f"{mgmt_raw} must be an IPv4 network of /26 or larger, or an IPv6 network of /122 "
            "or larger",
        )

    pool = _mapping(ctx, top.get("pool"), "pool", "-")
    _unknown(ctx, pool, {"other_config", "uuid"}, "pool")
    pool_other = {
        str(k): str(v)
        for k, v in _mapping(ctx, pool.get("other_config"), "pool", "other_config").items()
    }

    networks = _parse_networks(ctx, top.get("networks"))
    net_names = {n.name for n in networks}
    hosts = _parse_hosts(ctx, top.get("hosts"), net_names)
    vms = _parse_vms(ctx, top.get("vms"), net_names, {h.name for h in hosts})
    switch = _parse_switch(ctx, top.get("switch"), hosts)
    _cross_checks(ctx, networks, hosts, vms, switch)
    return Topology(
        name=name,
        prefix=prefix,
        source=source,
        management=str(mgmt),
        pool_uuid=str(pool.get("uuid") or ctx.uuid("pool")),
        networks=networks,
        hosts=hosts,
        switch=switch,
        vms=vms,
        pool_other_config=pool_other,
        raw=top,
    )


def _parse_networks(ctx: _Ctx, raw: Any) -> tuple[Network, ...]:
    out: list[Network] = []
    bridges: dict[str, str] = {}
    items = _list(ctx, raw, "topology", "networks")
    if not items:
        raise ctx.fail("topology", "networks", "at least one network is required")
    for i, item in enumerate(items):
        obj = f"networks[{i}]"
        item = _mapping(ctx, item, obj, "-")
        _unknown(
            ctx,
            item,
            {
                "name",
                "bridge",
                "mtu",
                "default_locking_mode",
                "vlan",
                "tunnel",
                "other_config",
                "uuid",
            },
            obj,
        )
        name = _name(ctx, item.get("name"), obj)
        obj = f"network '{name}'"
        if any(n.name == name for n in out):
            raise ctx.fail(obj, "name", "duplicate network name")
        bridge = item.get("bridge")
        if not isinstance(bridge, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$", bridge):
            raise ctx.fail(obj, "bridge", f"{bridge!r} is not a bridge name (1-15 characters)")
        if bridge.startswith(RESERVED_BRIDGE_PREFIXES):
            raise ctx.fail(obj, "bridge", f"{bridge} starts with a reserved prefix (vif, tap, eth)")
        if bridge in bridges:
            raise ctx.fail(
                obj, "bridge", f"{bridge} is already the bridge of network '{bridges[bridge]}'"
            )
        bridges[bridge] = name
        mtu = _int(ctx, item.get("mtu", 1500), obj, "mtu", 68, 9216)
        dlm = _choice(
            ctx,
            item.get("default_locking_mode", "unlocked"),
            obj,
            "default_locking_mode",
            DEFAULT_LOCKING,
        )
        vlan_tag = vlan_parent = proto = transport = None
        if "vlan" in item:
            vlan = _mapping(ctx, item["vlan"], obj, "vlan")
            _unknown(ctx, vlan, {"tag", "parent"}, f"{obj} vlan")
            vlan_tag = _vlan(ctx, vlan.get("tag"), obj, "vlan.tag")
            vlan_parent = vlan.get("parent")
            if not isinstance(vlan_parent, str):
                raise ctx.fail(obj, "vlan.parent", "names the network whose PIFs carry the VLAN")
        if "tunnel" in item:
            if vlan_tag is not None:
                raise ctx.fail(obj, "tunnel", "a network is either a VLAN or a private network")
            tun = _mapping(ctx, item["tunnel"], obj, "tunnel")
            _unknown(ctx, tun, {"protocol", "transport"}, f"{obj} tunnel")
            proto = _choice(
                ctx, tun.get("protocol", "gre"), obj, "tunnel.protocol", TUNNEL_PROTOCOLS
            )
            transport = tun.get("transport")
            if not isinstance(transport, str):
                raise ctx.fail(
                    obj, "tunnel.transport", "names the network whose PIFs carry the tunnel"
                )
        other = {
            str(k): str(v)
            for k, v in _mapping(ctx, item.get("other_config"), obj, "other_config").items()
        }
        out.append(
            Network(
                name=name,
                bridge=bridge,
                uuid=str(item.get("uuid") or ctx.uuid("network", name)),
                mtu=mtu,
                default_locking_mode=dlm,
                vlan_tag=vlan_tag,
                vlan_parent=vlan_parent,
                tunnel_protocol=proto,
                tunnel_transport=transport,
                other_config=other,
            )
        )
    names = {n.name for n in out}
    for n in out:
        obj = f"network '{n.name}'"
        for fld, ref in (("vlan.parent", n.vlan_parent), ("tunnel.transport", n.tunnel_transport)):
            if ref is None:
                continue
            if ref not in names:
                raise ctx.fail(obj, fld, f"unknown network '{ref}'")
            parent = next(p for p in out if p.name == ref)
            if parent.kind != "external":
                raise ctx.fail(
                    obj,
                    fld,
                    f"network '{ref}' is a {parent.kind} network; "
                    "it must have physical or bond PIFs",
                )
    return tuple(out)


def _parse_hosts(ctx: _Ctx, raw: Any, net_names: set[str]) -> tuple[Host, ...]:
    out: list[Host] = []
    items = _list(ctx, raw, "topology", "hosts")
    if not items:
        raise ctx.fail("topology", "hosts", "at least one host is required")
    macs: dict[str, str] = {}
    for i, item in enumerate(items):
        obj = f"hosts[{i}]"
        item = _mapping(ctx, item, obj, "-")
        _unknown(ctx, item, {"name", "nics", "bonds", "addresses", "uuid"}, obj)
        name = _name(ctx, item.get("name"), obj)
        obj = f"host '{name}'"
        if any(h.name == name for h in out):
            raise ctx.fail(obj, "name", "duplicate host name")
        nics: list[Nic] = []
        for j, nraw in enumerate(_list(ctx, item.get("nics"), obj, "nics")):
            nobj = f"{obj} nics[{j}]"
            nraw = _mapping(ctx, nraw, nobj, "-")
            _unknown(ctx, nraw, {"device", "mac", "network", "uuid"}, nobj)
            dev = nraw.get("device")
            if not isinstance(dev, str) or not re.match(r"^eth\d{1,2}$", dev):
                raise ctx.fail(nobj, "device", f"{dev!r} is not a NIC name (eth0, eth1, ...)")
            nobj = f"{obj} NIC {dev}"
            if any(n.device == dev for n in nics):
                raise ctx.fail(nobj, "device", "duplicate NIC")
            mac = _mac(ctx, nraw["mac"], nobj) if "mac" in nraw else ctx.mac("nic", name, dev)
            if mac in macs:
                raise ctx.fail(nobj, "mac", f"{mac} is already used by {macs[mac]}")
            macs[mac] = nobj
            net = nraw.get("network")
            if net is not None and net not in net_names:
                raise ctx.fail(nobj, "network", f"unknown network '{net}'")
            nics.append(
                Nic(
                    device=dev,
                    mac=mac,
                    uuid=str(nraw.get("uuid") or ctx.uuid("pif", name, dev)),
                    network=net,
                )
            )
        if not nics:
            raise ctx.fail(obj, "nics", "a host needs at least one NIC")
        bonds: list[Bond] = []
        bonded: dict[str, str] = {}
        for j, braw in enumerate(_list(ctx, item.get("bonds"), obj, "bonds")):
            bobj = f"{obj} bonds[{j}]"
            braw = _mapping(ctx, braw, bobj, "-")
            _unknown(
                ctx, braw, {"device", "members", "mode", "network", "properties", "uuid"}, bobj
            )
            dev = braw.get("device", f"bond{j}")
            if not isinstance(dev, str) or not re.match(r"^bond\d{1,2}$", dev):
                raise ctx.fail(bobj, "device", f"{dev!r} is not a bond name (bond0, bond1, ...)")
            bobj = f"{obj} bond {dev}"
            members = _list(ctx, braw.get("members"), bobj, "members")
            if len(members) < 2:
                raise ctx.fail(
                    bobj, "members", f"a bond needs at least two NICs, got {len(members)}"
                )
            for m in members:
                if not any(n.device == m for n in nics):
                    raise ctx.fail(bobj, "members", f"host '{name}' has no NIC {m!r}")
                if m in bonded:
                    raise ctx.fail(bobj, "members", f"{m} is already a member of {bonded[m]}")
                if next(n for n in nics if n.device == m).network:
                    raise ctx.fail(
                        bobj, "members", f"{m} has its own network; a bond member cannot"
                    )
                bonded[m] = dev
            mode = _choice(ctx, braw.get("mode", "balance-slb"), bobj, "mode", BOND_MODES)
            net = braw.get("network")
            if net not in net_names:
                raise ctx.fail(bobj, "network", f"unknown network {net!r}")
            props = _mapping(ctx, braw.get("properties"), bobj, "properties")
            if props and mode != "lacp":
                raise ctx.fail(bobj, "properties", f"mode {mode} takes no properties")
            bonds.append(
                Bond(
                    device=dev,
                    members=tuple(members),
                    mode=mode,
                    network=net,
                    uuid=str(braw.get("uuid") or ctx.uuid("bond", name, dev)),
                    pif_uuid=ctx.uuid("pif", name, dev),
                    properties=tuple(sorted((str(k), str(v)) for k, v in props.items())),
                )
            )
        uplinks = [n.network for n in nics if n.network] + [b.network for b in bonds]
        for net in uplinks:
            if uplinks.count(net) > 1:
                raise ctx.fail(obj, "nics", f"network '{net}' has two PIFs on this host")
        addresses: list[PifAddress] = []
        for net, araw in _mapping(ctx, item.get("addresses"), obj, "addresses").items():
            aobj = f"{obj} addresses.{net}"
            if net not in uplinks:
                raise ctx.fail(
                    obj, f"addresses.{net}", "the host has no NIC or bond on that network"
                )
            araw = _mapping(ctx, araw, aobj, "-")
            _unknown(ctx, araw, {"ipv4", "ipv6"}, aobj)
            addresses.append(
                PifAddress(
                    network=net,
                    ipv4=_cidr(ctx, araw["ipv4"], aobj, "ipv4", 4) if "ipv4" in araw else None,
                    ipv6=_cidr(ctx, araw["ipv6"], aobj, "ipv6", 6) if "ipv6" in araw else None,
                )
            )
        out.append(
            Host(
                name=name,
                index=i + 1,
                uuid=str(item.get("uuid") or ctx.uuid("host", name)),
                nics=tuple(nics),
                bonds=tuple(bonds),
                addresses=tuple(addresses),
            )
        )
    return tuple(out)


def _default_domid(i: int, host: str, taken: dict[tuple[str, int], str],
                   next_free: dict[str, int]) -> int:
    """A VM's domid when the file gives none: its place in the file (1-based), which names its
    VIFs (`vif<domid>.<device>`) the same in every run; past Xen's domid range (32767, a pool
    of more VMs than that) the lowest domid free on its host, as domids are per host."""
    if i + 1 <= 32767 and (host, i + 1) not in taken:
        return i + 1
    domid = next_free.get(host, 1)
    while (host, domid) in taken:
        domid += 1
    next_free[host] = domid + 1
    return domid


def _parse_vms(ctx: _Ctx, raw: Any, net_names: set[str], host_names: set[str]) -> tuple[Vm, ...]:
    out: list[Vm] = []
    names: set[str] = set()
    macs: dict[str, str] = {}
    domids: dict[tuple[str, int], str] = {}
    next_domid: dict[str, int] = {}
    for i, item in enumerate(_list(ctx, raw, "topology", "vms")):
        obj = f"vms[{i}]"
        item = _mapping(ctx, item, obj, "-")
        _unknown(ctx, item, {"name", "host", "domid", "vifs", "uuid"}, obj)
        name = _name(ctx, item.get("name"), obj)
        obj = f"VM '{name}'"
        if name in names:
            raise ctx.fail(obj, "name", "duplicate VM name")
        names.add(name)
        if name in host_names:
            raise ctx.fail(obj, "name", f"'{name}' is already a host name")
        host = item.get("host")
        if host not in host_names:
            raise ctx.fail(obj, "host", f"unknown host {host!r}")
        domid = _int(ctx, item.get("domid", _default_domid(i, host, domids, next_domid)),
                     obj, "domid", 1, 32767)
        if (host, domid) in domids:
            raise ctx.fail(
                obj,
                "domid",
                f"domid {domid} is already used by {domids[(host, domid)]} " f"on host '{host}'",
            )
        domids[(host, domid)] = obj
        vifs: list[Vif] = []
        for j, vraw in enumerate(_list(ctx, item.get("vifs"), obj, "vifs")):
            vobj = f"{obj} vifs[{j}]"
            vraw = _mapping(ctx, vraw, vobj, "-")
            _unknown(
                ctx,
                vraw,
                {
                    "device",
                    "network",
                    "mac",
                    "ipv4",
                    "ipv6",
                    "locking_mode",
                    "ipv4_allowed",
                    "ipv6_allowed",
                    "uuid",
                },
                vobj,
            )
            dev = _int(ctx, vraw.get("device", j), vobj, "device", 0, 15)
            vobj = f"{obj} VIF {dev}"
            if any(v.device == dev for v in vifs):
                raise ctx.fail(vobj, "device", "duplicate VIF device")
            net = vraw.get("network")
            if net not in net_names:
                raise ctx.fail(vobj, "network", f"unknown network {net!r}")
            mac = _mac(ctx, vraw["mac"], vobj) if "mac" in vraw else ctx.mac("vif", name, dev)
            if mac in macs:
                raise ctx.fail(vobj, "mac", f"{mac} is already used by {macs[mac]}")
            macs[mac] = vobj
            vifs.append(
                Vif(
                    device=dev,
                    network=net,
                    mac=mac,
                    uuid=str(vraw.get("uuid") or ctx.uuid("vif", name, dev)),
                    ipv4=_cidrs(ctx, vraw.get("ipv4"), vobj, "ipv4", 4),
                    ipv6=_cidrs(ctx, vraw.get("ipv6"), vobj, "ipv6", 6),
                    locking_mode=_choice(
                        ctx,
                        vraw.get("locking_mode", "network_default"),
                        vobj,
                        "locking_mode",
                        LOCKING_MODES,
                    ),
                    ipv4_allowed=_allowed(ctx, vraw.get("ipv4_allowed"), vobj, "ipv4_allowed", 4),
                    ipv6_allowed=_allowed(ctx, vraw.get("ipv6_allowed"), vobj, "ipv6_allowed", 6),
                )
            )
        out.append(
            Vm(
                name=name,
                host=host,
                domid=domid,
                uuid=str(item.get("uuid") or ctx.uuid("vm", name)),
                vifs=tuple(vifs),
            )
        )
    return tuple(out)


def _parse_switch(ctx: _Ctx, raw: Any, hosts: tuple[Host, ...]) -> Switch:
    sw = _mapping(ctx, raw, "switch", "-")
    _unknown(ctx, sw, {"name", "cables", "bonds", "outside"}, "switch")
    name = _name(ctx, sw.get("name", "tor"), "switch")
    by_name = {h.name: h for h in hosts}
    cables: list[Cable] = []
    for i, craw in enumerate(_list(ctx, sw.get("cables"), "switch", "cables")):
        obj = f"switch cables[{i}]"
        craw = _mapping(ctx, craw, obj, "-")
        _unknown(ctx, craw, {"host", "nic", "vlan", "trunk", "native"}, obj)
        host = craw.get("host")
        if host not in by_name:
            raise ctx.fail(obj, "host", f"unknown host {host!r}")
        nic = craw.get("nic")
        if not any(n.device == nic for n in by_name[host].nics):
            raise ctx.fail(obj, "nic", f"host '{host}' has no NIC {nic!r}")
        obj = f"switch cable {host}/{nic}"
        if any(c.host == host and c.nic == nic for c in cables):
            raise ctx.fail(obj, "nic", "this NIC is already cabled")
        if "vlan" in craw and "trunk" in craw:
            raise ctx.fail(obj, "trunk", "a port is either access (vlan) or trunk, not both")
        vlan = _vlan(ctx, craw["vlan"], obj, "vlan") if "vlan" in craw else None
        trunk = tuple(
            _vlan(ctx, v, obj, f"trunk[{k}]")
            for k, v in enumerate(_list(ctx, craw.get("trunk"), obj, "trunk"))
        )
        native = _vlan(ctx, craw.get("native", 1), obj, "native")
        if vlan is None and not trunk:
            vlan = native
        cables.append(Cable(host=host, nic=nic, vlan=vlan, trunk=trunk, native=native))
    bonds: list[SwitchBond] = []
    for i, braw in enumerate(_list(ctx, sw.get("bonds"), "switch", "bonds")):
        obj = f"switch bonds[{i}]"
        braw = _mapping(ctx, braw, obj, "-")
        _unknown(ctx, braw, {"host", "nics", "lacp_time"}, obj)
        host = braw.get("host")
        if host not in by_name:
            raise ctx.fail(obj, "host", f"unknown host {host!r}")
        nics = tuple(_list(ctx, braw.get("nics"), obj, "nics"))
        if len(nics) < 2:
            raise ctx.fail(obj, "nics", f"a LACP bond needs at least two ports, got {len(nics)}")
        port_cfg = set()
        for nic in nics:
            cable = next((c for c in cables if c.host == host and c.nic == nic), None)
            if cable is None:
                raise ctx.fail(obj, "nics", f"{host}/{nic} is not cabled to the switch")
            if any(nic in b.nics and b.host == host for b in bonds):
                raise ctx.fail(obj, "nics", f"{host}/{nic} is already in a switch bond")
            port_cfg.add((cable.vlan, cable.trunk, cable.native))
        if len(port_cfg) > 1:
            raise ctx.fail(obj, "nics", "the bonded ports must have the same VLAN configuration")
        host_bond = next((b for b in by_name[host].bonds if set(b.members) == set(nics)), None)
        if host_bond is None:
            raise ctx.fail(obj, "nics", f"host '{host}' has no bond of exactly {', '.join(nics)}")
        if host_bond.mode != "lacp":
            raise ctx.fail(
                obj,
                "nics",
                f"host '{host}' bond {host_bond.device} has mode "
                f"{host_bond.mode}: its switch ports must stay independent",
            )
        lacp_time = _choice(ctx, braw.get("lacp_time", "fast"), obj, "lacp_time", ("fast", "slow"))
        bonds.append(SwitchBond(host=host, nics=nics, lacp_time=lacp_time))
    outside: list[Outside] = []
    for i, oraw in enumerate(_list(ctx, sw.get("outside"), "switch", "outside")):
        obj = f"switch outside[{i}]"
        oraw = _mapping(ctx, oraw, obj, "-")
        _unknown(ctx, oraw, {"name", "mac", "vlan", "ipv4", "ipv6"}, obj)
        oname = _name(ctx, oraw.get("name"), obj)
        obj = f"outside host '{oname}'"
        if oname in by_name or any(o.name == oname for o in outside) or oname == name:
            raise ctx.fail(obj, "name", f"'{oname}' is already used")
        mac = _mac(ctx, oraw["mac"], obj) if "mac" in oraw else ctx.mac("outside", oname)
        outside.append(
            Outside(
                name=oname,
                mac=mac,
                vlan=_vlan(ctx, oraw.get("vlan", 1), obj, "vlan"),
                ipv4=_cidrs(ctx, oraw.get("ipv4"), obj, "ipv4", 4),
                ipv6=_cidrs(ctx, oraw.get("ipv6"), obj, "ipv6", 6),
            )
        )
    return Switch(name=name, cables=tuple(cables), bonds=tuple(bonds), outside=tuple(outside))


def _cross_checks(
    ctx: _Ctx,
    networks: tuple[Network, ...],
    hosts: tuple[Host, ...],
    vms: tuple[Vm, ...],
    switch: Switch,
) -> None:
    """Checks that span objects: MAC uniqueness across kinds, names across kinds."""
    macs: dict[str, str] = {}
    for h in hosts:
        for n in h.nics:
            macs[n.mac] = f"host '{h.name}' NIC {n.device}"
    for vm in vms:
        for v in vm.vifs:
            if v.mac in macs:
                raise ctx.fail(
                    f"VM '{vm.name}' VIF {v.device}",
                    "mac",
                    f"{v.mac} is already used by " f"{macs[v.mac]}",
                )
            macs[v.mac] = f"VM '{vm.name}' VIF {v.device}"
    for o in switch.outside:
        if o.mac in macs:
            raise ctx.fail(
                f"outside host '{o.name}'", "mac", f"{o.mac} is already used by {macs[o.mac]}"
            )
        if o.name in {vm.name for vm in vms}:
            raise ctx.fail(f"outside host '{o.name}'", "name", f"'{o.name}' is already a VM name")
    for net in networks:
        if net.kind == "private":
            transport = net.tunnel_transport or ""
            if not any(h.address_on(transport) for h in hosts):
                raise ctx.fail(
                    f"network '{net.name}'",
                    "tunnel.transport",
                    f"no host has an IP address on network '{transport}' to carry the tunnel",
                )
