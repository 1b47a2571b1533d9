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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from operator import itemgetter

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


# One byte string of a template: constant, or a `bytes % values` format and the getter that
# picks its values (in order) from a VIF's own.
Filler = tuple[bytes, Callable[[tuple[bytes, ...]], object] | None]


@dataclass(frozen=True)
class Template:
    entries: tuple[tuple[Key, Body], ...]
    taking: tuple[tuple[int, tuple[int, ...]], ...]  # VLAN -> sentinel ports that take traffic
    values: tuple[bytes, ...]  # the sentinels' bytes, in `_values` order
    # per entry: table, priority, match, instructions, cookie (the two byte strings as fillers)
    fillers: tuple[tuple[int, int, Filler, Filler, int], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        index = {v: i for i, v in enumerate(self.values)}
        pattern = _pattern(self.values)
        object.__setattr__(self, "fillers", tuple(
            (table, priority, _filler(match, pattern, index),
             _filler(instructions, pattern, index), cookie)
            for (table, priority, match), (instructions, cookie) in self.entries))


def _filler(data: bytes, pattern: re.Pattern[bytes], index: dict[bytes, int]) -> Filler:
    """`data` as a format with a `%b` for each sentinel in it (one pass: the text between
    them is escaped, never searched again) and the getter of the values that go there."""
    found = [index[v] for v in pattern.findall(data)]
    if not found:
        return data, None
    fmt = b"%b".join(piece.replace(b"%", b"%%") for piece in pattern.split(data))
    return fmt, itemgetter(*found)


_cache: dict[tuple, Template | None] = {}


def local_vif_canon(state: PoolQueries, intent: BridgeIntent, ports: BridgePorts, vif: VIF,
                    taking: dict[int, list[int]], ruled: set[int]) -> Entries:
    """`dict(canon_flow(f) for f in local_vif_flows(state, intent, ports, vif, taking, ruled))`
    — from the VIF's shape's template when it has one."""
    found = _shape(state, intent, ports, vif)
    template = None if found is None else _template(state, intent, vif, found[0])
    if template is None or found is None:
        return dict(canon_flow(f) for f in local_vif_flows(state, intent, ports, vif, taking,
                                                           ruled))
    own = _port_map(ports, vif)
    out = _put(template, (*(own[s].to_bytes(4, "big") for s in PORT_SENTINELS if s in own),
                          _mac_bytes(vif.mac.lower()), *found[1]))
    for vlan, sentinel_ports in template.taking:
        taking.setdefault(vlan, []).extend(own[p] for p in sentinel_ports)
    return out


@functools.lru_cache(maxsize=256)
def _pattern(sentinels: tuple[bytes, ...]) -> re.Pattern[bytes]:
    return re.compile(b"|".join(re.escape(v) for v in sentinels))


def _shape(state: PoolQueries, intent: BridgeIntent, ports: BridgePorts, vif: VIF
           ) -> tuple[tuple, tuple[bytes, ...]] | None:
    """What a VIF's flows depend on besides its ports, MAC and addresses, and its allowed
    addresses packed (IPv4 then IPv6, as the template's sentinels); None: no template."""
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
            len(v4), len(v6)), (*v4, *v6)


def _addresses(entries: Iterable[str], version: int) -> tuple[bytes, ...] | None:
    """The allowed entries' packed addresses; None when one is a network, does not parse,
    repeats, or there are too many (those compile as before)."""
    out = []
    for text in entries:
        packed = _dotted_quad(text) if version == 4 else None
        if packed is None:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                return None
            if net.version != version or net.prefixlen != net.max_prefixlen:
                return None
            packed = net.network_address.packed
        out.append(packed)
    if len(set(out)) != len(out) or len(out) > MAX_ADDRESSES:
        return None
    return tuple(out)


def _dotted_quad(text: str) -> bytes | None:
    """A plain IPv4 address in its one canonical spelling, packed, without `ipaddress` (a
    locked pool has one per VIF); None for anything else (left to `ipaddress`)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = []
    for part in parts:
        if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part[0] == "0"):
            return None
        value = int(part)
        if value > 255:
            return None
        out.append(value)
    return bytes(out)


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
    """The template's entries with `real` in place of its sentinels (each byte string one
    `%` format: a value put in is never scanned for another sentinel)."""
    if len(real) != len(template.values):
        raise ValueError(f"{len(real)} values for a template of {len(template.values)}")
    return {(table, priority, m[0] % m[1](real) if m[1] else m[0]):
            (i[0] % i[1](real) if i[1] else i[0], cookie)
            for table, priority, m, i, cookie in template.fillers}
