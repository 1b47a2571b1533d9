"""What OVS says about its bonds (`ovs-appctl lacp/show`, `bond/show`), as data.

netctl configures bonds and OVS runs them; reporting (Bond.links_up, tests, the failover
benchmark) reads these two texts. Parsing is pure and tolerant: unknown lines are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER = re.compile(r"^---- (?P<name>\S+) ----$")


@dataclass(frozen=True)
class LacpStatus:
    """One bond's LACP state: `negotiated` when the partner answered and agreed."""

    bond: str
    status: str = ""  # e.g. "active negotiated", "active", "off"
    members: dict[str, str] = field(default_factory=dict)  # member -> "current attached"...

    @property
    def negotiated(self) -> bool:
        return "negotiated" in self.status.split()

    def attached(self) -> tuple[str, ...]:
        return tuple(m for m, s in sorted(self.members.items()) if "attached" in s.split())


@dataclass(frozen=True)
class BondMemberStatus:
    name: str
    enabled: bool
    active: bool = False


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if m:
            current = out.setdefault(m.group("name"), [])
        elif current is not None:
            current.append(line)
    return out


def parse_lacp_show(text: str) -> dict[str, LacpStatus]:
    """`ovs-appctl lacp/show` → {bond name: LacpStatus}."""
    out: dict[str, LacpStatus] = {}
    for name, lines in _sections(text).items():
        status = ""
        members: dict[str, str] = {}
        for line in lines:
            s = line.strip()
            if s.startswith("status:"):
                status = s.split(":", 1)[1].strip()
            m = re.match(r"^(?:member|slave):?\s+(\S+?):\s*(.*)$", s)
            if m:
                members[m.group(1)] = m.group(2).strip()
        out[name] = LacpStatus(name, status, members)
    return out


def parse_bond_show(text: str) -> dict[str, tuple[BondMemberStatus, ...]]:
    """`ovs-appctl bond/show` → {bond name: members with enabled/active flags}."""
    out: dict[str, tuple[BondMemberStatus, ...]] = {}
    for name, lines in _sections(text).items():
        members: list[BondMemberStatus] = []
        for line in lines:
            s = line.strip()
            m = re.match(r"^(?:member|slave)\s+(\S+?):\s*(\S+)", s)
            if m:
                members.append(BondMemberStatus(m.group(1), m.group(2) == "enabled"))
            elif s in ("active member", "active slave") and members:
                last = members.pop()
                members.append(BondMemberStatus(last.name, last.enabled, True))
        out[name] = tuple(members)
    return out
