"""Traffic rules of a VIF or a network (`other_config:netctl-rules`): the syntax, the parser and
what a bad rule becomes. Pure: the standard library only.

Syntax — rules separated by `;` (or new lines), first match wins, VIF rules before the
network's::

    ACTION PROTOCOL [DIRECTION] [PORT | LOW-HIGH] [CIDR]

    ACTION     allow | drop
    PROTOCOL   tcp | udp | icmp | icmpv6 | arp | any      (`any`: every frame)
    DIRECTION  out (from the VM) | in (to the VM) | both   (default both)
    PORT       tcp and udp only: the destination port of the frame (`out`: the other side's
               port, `in`: the VM's port), one port 1-65535 or a range LOW-HIGH
    CIDR       the other side's address: an IPv4 or IPv6 address or prefix (`out`: the
               destination, `in`: the source; for `arp` the target/sender protocol address)

    VIF.other_config:netctl-rules     = "allow arp; allow tcp out 443; drop any"
    network.other_config:netctl-rules = "drop tcp in 22; allow icmp in 10.0.0.0/8"

The words after the protocol may come in any order; words are case-insensitive. A frame that
no rule matches is allowed (no rules at all: today's flows, untouched). Rules are stateful:
the replies of a connection that was allowed (in either direction) are always let back in,
whatever the rules (`ct_state=+est+rpl`, and ICMP errors about it, `+rel`), so
`allow tcp out 443; drop any` lets a VM open HTTPS connections and receive their answers,
and nothing else. `drop any` drops ARP and IPv6 neighbour discovery too: a list that ends in
it says what the VM needs (`allow arp; allow icmpv6`). A CIDR of one family restricts the rule
to it (`allow any 10.0.0.0/8`: IPv4 and ARP from/to that prefix); `icmp` takes IPv4 prefixes
only, `icmpv6` IPv6 ones, `arp` IPv4 ones.

Bad rules (each is a Problem naming the object, `other_config:netctl-rules`, the rule's
number and text and what became of it; the good rules of the list always apply): a rule
must never silently open what it was written to close, nor cut a VM off because of a typo.
- an `allow` rule that does not read whole is left out: what it meant to allow falls to the
  rules after it (nothing is opened that the readable rules do not open);
- a `drop` rule whose protocol reads, or a rule whose action does not read (read as `drop`:
  the stricter action), is kept at its widest readable meaning: an unreadable port or range
  -> every port of its protocol, an unreadable address -> every peer, an unreadable direction
  -> both;
- except that a bad rule is never widened to every frame: when its protocol does not read (or
  is `any` with an unreadable action) it is left out, since a drop of everything would cut
  the VM's network because of a typo.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

KEY = "netctl-rules"
ACTIONS = ("allow", "drop")
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "arp", "any")
DIRECTIONS = ("out", "in", "both")
MAX_RULES = 1000  # per list: each rule is one OpenFlow priority of its own
SYNTAX = ("rules 'ACTION PROTOCOL [out|in|both] [PORT|LOW-HIGH] [CIDR]' separated by ';' "
          "(ACTION allow|drop; PROTOCOL tcp|udp|icmp|icmpv6|arp|any)")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Rule:
    """One rule as netctl enforces it."""

    action: str  # allow | drop
    protocol: str  # tcp | udp | icmp | icmpv6 | arp | any
    direction: str  # out | in | both
    ports: tuple[int, int] | None  # (low, high) inclusive; None: every port
    peer: IpNetwork | None  # the other side's address; None: every peer
    text: str  # as written (for people)

    @property
    def directions(self) -> tuple[str, ...]:
        return ("out", "in") if self.direction == "both" else (self.direction,)

    def __str__(self) -> str:
        parts = [self.action, self.protocol, self.direction]
        if self.ports is not None:
            low, high = self.ports
            parts.append(str(low) if low == high else f"{low}-{high}")
        if self.peer is not None:
            parts.append(str(self.peer))
        return " ".join(parts)


@dataclass(frozen=True)
class BadRule:
    """A rule that does not read whole: its number (1-based), its text, why, and what netctl
    enforces instead (None: nothing, it is left out)."""

    number: int
    text: str
    reason: str
    enforced: Rule | None

    def message(self) -> str:
        became = (f"enforced as '{self.enforced}' (its widest readable meaning) until it is "
                  "corrected" if self.enforced is not None else
                  "left out until it is corrected (the other rules apply)")
        return f"rule {self.number} '{self.text}': {self.reason}; {became}"


@dataclass(frozen=True)
class RuleList:
    rules: tuple[Rule, ...]
    bad: tuple[BadRule, ...]


def split(raw: str) -> list[str]:
    """The rules of a list as written (empty ones dropped)."""
    return [r.strip() for r in raw.replace("\n", ";").split(";") if r.strip()]


@functools.lru_cache(maxsize=1 << 12)
def parse(raw: str) -> RuleList:
    """A whole list: the rules netctl enforces (bad ones as the module docstring says) and the
    bad ones, each with its reason. Never raises."""
    rules: list[Rule] = []
    bad: list[BadRule] = []
    for number, text in enumerate(split(raw), 1):
        if len(rules) >= MAX_RULES:
            bad.append(BadRule(number, text, f"more than {MAX_RULES} rules in one list", None))
            continue
        rule, reason = _rule(text)
        if reason is not None:
            bad.append(BadRule(number, text, reason, rule))
        if rule is not None:
            rules.append(rule)
    return RuleList(tuple(rules), tuple(bad))


def parse_strict(raw: str) -> RuleList:
    """A list whose every rule reads; ValueError otherwise (`netctl.model.keys.RULES`)."""
    found = parse(raw)
    if found.bad:
        raise ValueError(found.bad[0].message())
    return found


def _rule(text: str) -> tuple[Rule | None, str | None]:
    """(the rule enforced or None, why it is bad or None)."""
    words = text.lower().split()
    reasons: list[str] = []
    action = words[0] if words else ""
    if action not in ACTIONS:
        reasons.append(f"'{action}' is not an action (allow, drop)")
        action = "drop"  # the stricter reading, kept only within a readable protocol
        action_ok = False
    else:
        action_ok = True
    protocol = words[1] if len(words) > 1 else ""
    proto_ok = protocol in PROTOCOLS
    if not proto_ok:
        reasons.append(f"'{protocol}' is not a protocol ({', '.join(PROTOCOLS)})"
                       if protocol else "a rule needs a protocol")
    direction: str | None = None
    ports: tuple[int, int] | None = None
    peer: IpNetwork | None = None
    seen: set[str] = set()
    for word in words[2:]:
        if word in DIRECTIONS:
            what = "direction"
        elif word[:1].isdigit() and "." not in word and ":" not in word and "/" not in word:
            what = "port"
        else:
            what = "address"
        if what in seen:  # which one was meant? the widest reading of the two
            reasons.append(f"a second {what} '{word}'")
            if what == "direction":
                direction = None
            elif what == "port":
                ports = None
            else:
                peer = None
            continue
        seen.add(what)
        if what == "direction":
            direction = word
        elif what == "port":
            value = _ports(word)
            if value is None:
                reasons.append(f"'{word}' is not a port or range (1-65535, LOW-HIGH)")
                seen.add("bad port")
            elif proto_ok and protocol not in ("tcp", "udp"):
                reasons.append(f"a port ('{word}') needs tcp or udp, not {protocol}")
                seen.add("bad port")
            else:
                ports = value
        else:
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                reasons.append(f"'{word}' is not a direction (out, in, both), a port or an "
                               "IPv4/IPv6 address or prefix")
                seen.add("bad address")
                continue
            family = _family_problem(protocol if proto_ok else "", net)
            if family:
                reasons.append(family)
                seen.add("bad address")
            else:
                peer = net
    if not reasons:
        return Rule(action, protocol, direction or "both", ports, peer, text), None
    reason = "; ".join(reasons)
    # bad: allow -> left out; drop (or an unreadable action) -> widest readable meaning, but
    # never every frame because of a typo
    if action_ok and action == "allow":
        return None, reason
    if not proto_ok or (protocol == "any" and not action_ok):
        return None, reason
    if "bad port" in seen and protocol not in ("tcp", "udp"):
        ports = None
    return Rule("drop", protocol, direction or "both", ports, peer, text), reason


def _ports(word: str) -> tuple[int, int] | None:
    low_text, dash, high_text = word.partition("-")
    if not low_text.isdigit() or (dash and not high_text.isdigit()):
        return None
    low = int(low_text)
    high = int(high_text) if dash else low
    if not 1 <= low <= high <= 65535:
        return None
    return low, high


def _family_problem(protocol: str, net: IpNetwork) -> str:
    if protocol in ("icmp", "arp") and net.version != 4:
        return f"{protocol} takes an IPv4 address or prefix, not {net}"
    if protocol == "icmpv6" and net.version != 6:
        return f"icmpv6 takes an IPv6 address or prefix, not {net}"
    return ""
