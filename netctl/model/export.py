"""Flow export (NetFlow, IPFIX, sFlow): how a collector list is written in xapi and what one
bridge's OVSDB export rows should hold. Pure data and parsing, no I/O.

The intent is in `other_config` of the pool (every bridge of every host) and of a network
(that network's bridge on every host), keys declared in `netctl.model.keys`; `vlan.export`
builds a bridge's `BridgeExport` from them and `netctl.sinks.ovsdb_export` writes it as the
bridge's `NetFlow`, `IPFIX` and `sFlow` rows.

A collector list (`netflow-targets`, `ipfix-targets`, `sflow-targets`) is written as OVS
writes a target: `IP:PORT` for IPv4, `[IPv6]:PORT` for IPv6, comma-separated
(`192.0.2.1:2055,[2001:db8::1]:2055`); `none` (or an empty value) says "no export" (a network
that turns the pool's export off on its bridge); a leading `+` on a network's list adds its
collectors to the pool's instead of replacing them (`+192.0.2.9:6343`). Only IP addresses:
ovs-vswitchd does not resolve names for collectors, and a name that did not resolve would be
a collector that silently gets nothing. Each target is normalised (an IPv6 address in its
compressed, lower-case form), because OVSDB stores the strings as netctl writes them and an
unchanged intent must compare equal to what is there (zero operations on a restart).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netctl.model.hostport import split_host_port

NONE_WORDS = frozenset({"", "none"})
KINDS = ("netflow", "ipfix", "sflow")  # BridgeExport's fields, as OVS's Bridge columns


class ValueReason(ValueError):
    """A value a key does not allow, with the reason in words (`Key.finding` adds it to the
    Problem: which collector of a list is wrong and why)."""


@dataclass(frozen=True)
class Targets:
    """A parsed collector list: normalised `IP:PORT` strings (sorted, no duplicates); `add`:
    add them to the next source's (the pool's) rather than replace those."""

    targets: tuple[str, ...] = ()
    add: bool = False


def collector(text: str) -> str:
    """One collector as OVS stores it (`192.0.2.1:2055`, `[2001:db8::1]:2055`); raises
    ValueReason saying what is wrong."""
    try:
        host, port = split_host_port(text)
    except ValueError as exc:
        raise ValueReason(str(exc)) from None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueReason(f"'{text}': '{host}' is not an IP address") from None
    if address.is_multicast or address.is_unspecified:
        raise ValueReason(f"'{text}': {address} cannot be a collector's address")
    if address.version == 6:
        return f"[{address.compressed}]:{port}"
    return f"{address}:{port}"


def parse_targets(raw: str) -> Targets:
    """A collector list as written in other_config (the module docstring)."""
    text = raw.strip()
    add = text.startswith("+")
    if add:
        text = text[1:].strip()
    if text.lower() in NONE_WORDS:
        if add:
            raise ValueReason("'+' must be followed by collectors")
        return Targets()
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise ValueReason("an empty entry in the list (two commas, or one at an end)")
    return Targets(tuple(sorted({collector(item) for item in items})), add)


@dataclass(frozen=True)
class NetFlowExport:
    """One `NetFlow` row (NetFlow v5). `active_timeout`: seconds between records of a flow
    still active (OVS: 0 = its default, 600 s)."""

    targets: tuple[str, ...]
    active_timeout: int = 0


@dataclass(frozen=True)
class IpfixExport:
    """One `IPFIX` row (bridge-wide sampling): 1 in `sampling` packets; `cache_active_timeout`
    seconds a flow's record is aggregated before it is sent (0: a record per sampled packet)."""

    targets: tuple[str, ...]
    sampling: int
    cache_active_timeout: int = 0


@dataclass(frozen=True)
class SflowExport:
    """One `sFlow` row: 1 in `sampling` packets (their first `header` bytes), interface
    counters every `polling` seconds (0: none), `agent` (a device or an address whose IP
    the datagrams name; "" lets OVS pick the address it reaches the collector from)."""

    targets: tuple[str, ...]
    sampling: int
    polling: int
    header: int
    agent: str = ""


@dataclass(frozen=True)
class BridgeExport:
    """A bridge's flow export: each kind present or None (no row; an owned row is removed)."""

    netflow: NetFlowExport | None = None
    ipfix: IpfixExport | None = None
    sflow: SflowExport | None = None

    def __bool__(self) -> bool:
        return any((self.netflow, self.ipfix, self.sflow))


NO_EXPORT = BridgeExport()


_DEVICE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def sflow_agent(raw: str) -> str:
    """`sflow-agent`: a host device name (OVS takes its address) or an IP address."""
    text = raw.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not 0 < len(text) <= 15 or not set(text) <= _DEVICE_CHARS:
        raise ValueReason(f"'{text}' is neither an IP address nor a device name")
    return text
