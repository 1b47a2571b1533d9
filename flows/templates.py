"""A local VIF's part of a switch's table from a per-shape byte template (pure).

Why: a switch's first table at 64 hosts x 1000 VIFs is mostly its local VIFs' flows, and
building each as a validated `Flow` and then its wire bytes was half of the cold compile
(issue 24: a profile put 10 of 25 profiled seconds in `local_vif_flows` and 11 in `canon_flow`,
for ~300k flows). Most VIFs differ only in their port numbers, their MAC and their allowed
addresses: the flows of one *shape* (bridge kind, the VIF's VLAN on it, locking mode, trunks,
which of its `vif`/`tap` ports exist, how many allowed addresses) are compiled once with
sentinel values, canonicalised, and each VIF of that shape gets those bytes with its own
values put in. What the sentinels cannot stand for is compiled as before: traffic rules
(conntrack zones are port numbers cut to 16 bits), a rate limit (a meter id is the port
number, within a smaller range), allowed entries that are networks rather than addresses or
that repeat (flows would merge).

`local_vif_canon` equals `wire.canon_flow` of `flows.compile.local_vif_flows` for every VIF
(`tests/unit/test_templates.py` checks it shape by shape, and the engine's random-change
proof compares the engine's tables, built this way, with a from-scratch compile).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from flows.compile import BridgeIntent, BridgePorts, local_vif_flows
from flows.locking import locking_of
from flows.qos import vif_band
from flows.rules import rules_of
from flows.wire import Body, Key, canon_flow
from netctl.model import VIF, PoolQueries

Entries = dict[Key, Body]

MAX_ADDRESSES = 16  # per family; more: compiled as before
MAX_SHAPES = 4096  # templates kept (a pool has a few dozen shapes)


@dataclass(frozen=True)
class Sentinels:
    """Stand-in values a shape's flows are compiled with: ports (`vif`, `tap`), a MAC, the
    first IPv4 and IPv6 allowed address (the next ones follow)."""

    ports: tuple[int, int]
    mac: str
    v4: int
    v6: int


# Two sets: a template made with the first is proven by the second (`_template`).
SENTINELS = (
    Sentinels((0x7A5E_C001, 0x7A5E_C002), "0e:5a:17:e5:9c:3d",
              int(ipaddress.IPv4Address("198.51.100.1")),  # TEST-NET-2
              int(ipaddress.IPv6Address("2001:db8:7a5e:c0::1"))),  # documentation prefix
    Sentinels((0x6B4D_B103, 0x6B4D_B104), "0e:c3:28:d1:6a:47",
              int(ipaddress.IPv4Address("203.0.113.101")),  # TEST-NET-3
              int(ipaddress.IPv6Address("2001:db8:6b4d:b1::65"))),
)
PORT_SENTINELS = SENTINELS[0].ports


@dataclass(frozen=True)
class Template:
    entries: tuple[tuple[Key, Body], ...]
    taking: tuple[tuple[int, tuple[int, ...]], ...]  # VLAN -> sentinel ports that take traffic
    values: tuple[bytes, ...]  # the sentinels' bytes, in `_values` order


_cache: dict[tuple, Template | None] = {}


def local_vif_canon(state: PoolQueries, intent: BridgeIntent, ports: BridgePorts, vif: VIF,
                    taking: dict[int, list[int]], ruled: set[int]) -> Entries:
    """`dict(canon_flow(f) for f in local_vif_flows(state, intent, ports, vif, taking, ruled))`
    — from the VIF's shape's template when it has one."""
    shape = _shape(state, intent, ports, vif)
    template = None if shape is None else _template(state, intent, vif, shape)
    real = None if template is None else _values(ports, vif, shape)
    if template is None or real is None:
        return dict(canon_flow(f) for f in local_vif_flows(state, intent, ports, vif, taking,
                                                           ruled))
    out = _put(template, real)
    own = _port_map(ports, vif)
    for vlan, sentinel_ports in template.taking:
        taking.setdefault(vlan, []).extend(own[p] for p in sentinel_ports)
    return out


@functools.lru_cache(maxsize=256)
def _pattern(sentinels: tuple[bytes, ...]) -> re.Pattern[bytes]:
    return re.compile(b"|".join(re.escape(v) for v in sentinels))


def _shape(state: PoolQueries, intent: BridgeIntent, ports: BridgePorts, vif: VIF
           ) -> tuple | None:
    """What a VIF's flows depend on besides its ports, MAC and addresses; None: no template."""
    if vif_band(vif) is not None or rules_of(state, vif):
        return None
    locking = locking_of(state, vif)
    if locking.mode == "locked":  # only then do the allowed addresses make flows
        v4, v6 = _addresses(locking.ipv4, 4), _addresses(locking.ipv6, 6)
        if v4 is None or v6 is None:
            return None
    else:
        v4 = v6 = ()
    return (intent.kind, intent.vlans.get(vif.network), locking.mode,
            tuple(sorted(vif.trunks)), vif.uuid in ports.vifs, vif.uuid in ports.taps,
            len(v4), len(v6))


def _addresses(entries: Iterable[str], version: int) -> tuple[bytes, ...] | None:
    """The allowed entries' packed addresses; None when one is a network, does not parse,
    repeats, or there are too many (those compile as before)."""
    out = []
    for text in entries:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        if net.version != version or net.prefixlen != net.max_prefixlen:
            return None
        out.append(net.network_address.packed)
    if len(set(out)) != len(out) or len(out) > MAX_ADDRESSES:
        return None
    return tuple(out)


def _values(ports: BridgePorts, vif: VIF, shape: tuple) -> tuple[bytes, ...] | None:
    """The VIF's own bytes for each sentinel, in the template's order."""
    own = _port_map(ports, vif)
    if shape[2] == "locked":
        v4, v6 = _addresses(vif.ipv4_allowed, 4), _addresses(vif.ipv6_allowed, 6)
    else:
        v4 = v6 = ()
    if v4 is None or v6 is None or (len(v4), len(v6)) != shape[-2:]:
        return None
    return (*(own[s].to_bytes(4, "big") for s in PORT_SENTINELS if s in own),
            _mac_bytes(vif.mac.lower()), *v4, *v6)


def _port_map(ports: BridgePorts, vif: VIF) -> dict[int, int]:
    """Sentinel port -> the VIF's real port, for the ports it has."""
    out = {}
    if vif.uuid in ports.vifs:
        out[PORT_SENTINELS[0]] = ports.vifs[vif.uuid]
    if vif.uuid in ports.taps:
        out[PORT_SENTINELS[1]] = ports.taps[vif.uuid]
    return out


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _template(state: PoolQueries, intent: BridgeIntent, vif: VIF, shape: tuple
              ) -> Template | None:
    """The shape's template (cached), made with the first set of sentinels and proven with the
    second: the first template with the second set's values put in must be exactly what the
    second set compiles to, or the shape has no template (compiled as before)."""
    if shape in _cache:
        return _cache[shape]
    if len(_cache) >= MAX_SHAPES:  # a pool of very varied trunks: start again, never grow
        _cache.clear()
    first = _made(state, intent, vif, shape, SENTINELS[0])
    second = _made(state, intent, vif, shape, SENTINELS[1])
    ok = first is not None and second is not None and \
        _put(first, second.values) == dict(second.entries) and first.taking == second.taking
    _cache[shape] = first if ok else None
    return _cache[shape]


def _made(state: PoolQueries, intent: BridgeIntent, vif: VIF, shape: tuple,
          sentinels: Sentinels) -> Template | None:
    n4, n6 = shape[-2:]
    v4 = [str(ipaddress.IPv4Address(sentinels.v4 + i)) for i in range(n4)]
    v6 = [str(ipaddress.IPv6Address(sentinels.v6 + i)) for i in range(n6)]
    stand_in = replace(vif, mac=sentinels.mac,
                       ipv4_allowed=tuple(v4) if n4 else vif.ipv4_allowed,
                       ipv6_allowed=tuple(v6) if n6 else vif.ipv6_allowed)
    ports = BridgePorts(vifs={vif.uuid: sentinels.ports[0]} if shape[4] else {},
                        taps={vif.uuid: sentinels.ports[1]} if shape[5] else {})
    taking: dict[int, list[int]] = {}
    # the stand-in keeps the VIF's ref and network: the pool reads the same locking mode
    flows = local_vif_flows(state, intent, ports, stand_in, taking, set())
    entries = tuple(canon_flow(f) for f in flows)
    values = (*(p.to_bytes(4, "big") for i, p in enumerate(sentinels.ports) if shape[4 + i]),
              _mac_bytes(sentinels.mac),
              *(ipaddress.IPv4Address(a).packed for a in v4),
              *(ipaddress.IPv6Address(a).packed for a in v6))
    if len(entries) != len(dict(entries)) or len(set(values)) != len(values) or \
            any(a in b for a in values for b in values if a is not b):
        return None
    back = {p: i for i, p in enumerate(sentinels.ports)}
    return Template(entries, tuple((vlan, tuple(PORT_SENTINELS[back[p]] for p in ps))
                                   for vlan, ps in taking.items()), values)


def _put(template: Template, real: tuple[bytes, ...]) -> Entries:
    """The template's entries with `real` in place of its sentinels (one pass each: a value
    put in is never scanned again for another sentinel)."""
    values = dict(zip(template.values, real, strict=True))
    pattern = _pattern(template.values)

    def put(found: re.Match) -> bytes:
        return values[found.group(0)]

    return {(table, priority, pattern.sub(put, match)): (pattern.sub(put, instructions), cookie)
            for (table, priority, match), (instructions, cookie) in template.entries}
