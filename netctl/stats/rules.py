"""Traffic rules' hit counters (`flows.rules`): what the poller asks a switch for (every flow
with the rule tag in its cookie, in every table) and how a reply's entries become packets per
VIF port and rule, read with `struct` as the drop counters are (`netctl.stats.wire`)."""

from __future__ import annotations

import struct

from flows.pipeline import COOKIE, FROM_VM_RULES, TO_VM_RULES
from flows.rules import ORIGINS, RULE_MASK, RULE_TAG, rule_of
from netctl.stats.wire import OXM_IN_PORT, oxm_value

RULE_COOKIE = COOKIE | RULE_TAG  # every rule flow's cookie, under RULE_MASK
ALL_TABLES = 0xFF  # OFPTT_ALL
_FAST = struct.Struct("!HB21xQQ8xHH")  # length, table, cookie, packets, match type and length
OXM_REG5 = 0x0001_0A04  # Nicira reg5, 4 bytes (to the VM: table to_vm_rules)

Hit = tuple[str, str, int]  # (direction out|in, origin: vif|network|reply|default, number)

__all__ = ["ALL_TABLES", "ORIGINS", "RULE_COOKIE", "RULE_MASK", "Hit", "rule_entries"]


def rule_entries(body: bytes) -> dict[int, dict[Hit, int]]:
    """Packets per VIF port and (direction, origin, rule number) over the ofp_flow_stats
    entries of a reply; entries that counted nothing, and flows of other tables, are left
    out."""
    out: dict[int, dict[Hit, int]] = {}
    pos, end = 0, len(body)
    while pos + 52 <= end:
        length, table, cookie, packets, _type, match_length = _FAST.unpack_from(body, pos)
        if length < 56 or pos + length > end:
            raise ValueError(f"flow stats entry of length {length} at {pos} in {end} bytes")
        if packets and table in (FROM_VM_RULES, TO_VM_RULES):
            which = rule_of(cookie)
            port = oxm_value(body, pos, match_length,
                             OXM_IN_PORT if table == FROM_VM_RULES else OXM_REG5)
            if which is not None and port is not None:
                key = ("out" if table == FROM_VM_RULES else "in", *which)
                per = out.setdefault(port, {})
                per[key] = per.get(key, 0) + packets
        pos += length
    return out
