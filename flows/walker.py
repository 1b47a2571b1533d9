"""A small OpenFlow table walker over `Flow`s: what would the switch do with this packet?

Lets the pure tests check a compiled table by behaviour (where a frame goes, and with which
VLAN) rather than by comparing flow text. It implements exactly the subset the pipeline uses:
highest-priority match per table, masked fields, write_metadata, goto, push/pop VLAN, output
(NORMAL is reported as the pseudo-port "NORMAL").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from flows.pipeline import (
    OFPP_CONTROLLER,
    OFPP_NORMAL,
    OFPVID_PRESENT,
    Flow,
    Output,
    PopVlan,
    PushVlan,
)

Packet = dict[str, object]


@dataclass(frozen=True)
class Delivery:
    port: int | str  # an OpenFlow port number, "NORMAL" or "CONTROLLER"
    vlan: int  # VLAN the frame carries when it leaves (0 = untagged)


def _as_int(value: object) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.count(":") == 5 and len(text) == 17:
        return int(text.replace(":", ""), 16)
    return int(ipaddress.ip_address(text))


def _matches(flow: Flow, packet: Packet) -> bool:
    for name, want in flow.match:
        if name not in packet:
            return False
        have = _as_int(packet[name])
        if isinstance(want, tuple):
            value, mask = (_as_int(w) for w in want)
            if have & mask != value & mask:
                return False
        elif have != _as_int(want):
            return False
    return True


def walk(flows: Iterable[Flow], packet: Packet, max_tables: int = 16) -> list[Delivery]:
    """Where `packet` (fields as in OpenFlow matches; vlan_vid 0 = untagged) would go."""
    by_table: dict[int, list[Flow]] = {}
    for f in flows:
        by_table.setdefault(f.table, []).append(f)
    for entries in by_table.values():
        entries.sort(key=lambda f: -f.priority)
    pkt = {"metadata": 0, "vlan_vid": 0, **packet}
    out: list[Delivery] = []
    table: int | None = 0
    for _ in range(max_tables):
        if table is None:
            break
        hit = next((f for f in by_table.get(table, []) if _matches(f, pkt)), None)
        if hit is None:
            break  # table miss: OpenFlow 1.3 drops
        for action in hit.actions:
            if isinstance(action, PopVlan):
                pkt["vlan_vid"] = 0
            elif isinstance(action, PushVlan):
                pkt["vlan_vid"] = OFPVID_PRESENT | action.vid
            elif isinstance(action, Output):
                vlan = int(pkt["vlan_vid"]) & 0x0FFF
                if action.port == OFPP_NORMAL:
                    out.append(Delivery("NORMAL", vlan))
                elif action.port == OFPP_CONTROLLER:
                    out.append(Delivery("CONTROLLER", vlan))
                elif action.port != pkt.get("in_port"):  # OpenFlow never hairpins implicitly
                    out.append(Delivery(action.port, vlan))
        if hit.write_metadata is not None:
            value, mask = hit.write_metadata
            pkt["metadata"] = (int(pkt["metadata"]) & ~mask) | (value & mask)
        table = hit.goto
    return out


def ports_reached(flows: Iterable[Flow], packet: Packet) -> set[int | str]:
    return {d.port for d in walk(flows, packet)}
