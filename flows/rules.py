"""Traffic rules as flows: per VIF port, stateful (conntrack), on the port, never the MAC (pure).

The rules (`netctl.model.rules`: syntax, bad rules) come from `VIF.other_config:netctl-rules`
and then `network.other_config:netctl-rules`. A VIF without any has none of the flows below and
its other flows are exactly as before. For a VIF port P with rules (its `vif` port and its
`tap` twin each):

    forward  1000  in_port=P, reg6 bit 0 clear     -> from_vm        (the hook: frames P sent)
    from_vm   100  in_port=P, ip | ipv6            -> ct(zone=P, table=from_vm_rules)
               50  in_port=P                       -> from_vm_rules  (ARP, other: untracked)
    from_vm_rules  in_port=P, then the rules       allow: reg6=1, [ct(commit,zone=P)],
                                                   resubmit(,forward); drop: nothing
    forward: every output to P (unicast to its MAC, and its place in a flood list) becomes
             reg5=P, resubmit(,to_vm)
    to_vm     100  reg5=P, ip | ipv6               -> ct(zone=P, table=to_vm_rules)
               50  reg5=P                          -> to_vm_rules
    to_vm_rules    reg5=P, then the rules          allow: [ct(commit,zone=P)], output:P

In each rules table, by priority: replies of a connection that was let through (committed in
the port's zone, in either direction: `+trk+est+rpl`) and ICMP errors about one (`+trk+rel`)
pass first (40000, 39999); then the VIF's rules (30000 - 2i), the network's (20000 - 2j); then
what no rule matched passes (1 for IP, committed; 0 for the rest). A rule is one priority
(and the one below it for the non-IP part of `any`), so order is exact and rules never overlap
at one priority. The conntrack zone is the port number (unique on its bridge).

Every rule flow's cookie is netctl's with a rule tag, the list (VIF, network; the replies;
the default) and the rule's number (`cookie_of`, `rule_of`): the switch's per-flow counters
are each rule's hits, read by the statistics poller by that tag. A cookie is a function of
the flow's key (the priority says the list and the number), as OpenFlow 1.3 cannot change the
cookie of an installed flow.

On an external bridge OVS's NORMAL action (which netctl uses there for broadcast, multicast,
unknown unicast and the world outside the pool) would deliver to the port directly: a ruled
port is set NO_FLOOD there (`netctl.sinks.portconfig`) and its VLAN's broadcast and multicast
reach it through `to_port` (`flows.compile.flood_flows`), but for a VIF that trunks VLANs,
which keeps NORMAL's flooding; unicast NORMAL learnt for a MAC the guest changed to still
bypasses the to-VM rules (frames from the VIF always pass its from-VM rules, on every bridge).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from flows.pipeline import (
    COOKIE,
    CT_EST,
    CT_REL,
    CT_RPL,
    CT_TRK,
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    FLAG_FROM_PASSED,
    FORWARD,
    FROM_VM,
    FROM_VM_RULES,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    REG_FLAGS,
    REG_PORT,
    TO_VM,
    TO_VM_RULES,
    Action,
    Ct,
    Flow,
    MatchValue,
    Output,
    Resubmit,
    SetReg,
    flow,
)
from netctl.model import VIF, PoolQueries
from netctl.model.rules import KEY, Rule, parse

PROTO_ICMP = 1
RULE_TAG = 0x0000_A000_0000_0000  # below netctl's own 16 bits: "a traffic-rule flow"
RULE_MASK = 0xFFFF_F000_0000_0000
ORIGINS = ("vif", "network", "reply", "default")
_ORIGIN_SHIFT = 32
HOOK_PRIORITY = 1000
REPLY_PRIORITY, RELATED_PRIORITY = 40000, 39999
VIF_BASE, NETWORK_BASE = 30000, 20000


def cookie_of(origin: str, index: int = 0) -> int:
    """The cookie of a rule flow: its list (`ORIGINS`) and its rule's number (0-based)."""
    return COOKIE | RULE_TAG | (ORIGINS.index(origin) + 1) << _ORIGIN_SHIFT | index


def rule_of(cookie: int) -> tuple[str, int] | None:
    """(origin, rule number 0-based) a rule flow's cookie names; None: not a rule flow."""
    if cookie & RULE_MASK != COOKIE | RULE_TAG:
        return None
    origin = (cookie >> _ORIGIN_SHIFT & 0xFF) - 1
    if not 0 <= origin < len(ORIGINS):
        return None
    return ORIGINS[origin], cookie & 0xFFFF_FFFF


@dataclass(frozen=True)
class VifRules:
    """The rules a VIF is enforced with: its own, then its network's."""

    vif: tuple[Rule, ...]
    network: tuple[Rule, ...]

    def __bool__(self) -> bool:
        return bool(self.vif or self.network)


NO_RULES = VifRules((), ())


def rules_of(state: PoolQueries, vif: VIF) -> VifRules:
    """What a VIF is enforced with (bad rules as `netctl.model.rules` says)."""
    own = vif.other_config.get(KEY)
    net = state.networks.get(vif.network)
    shared = net.other_config.get(KEY) if net is not None else None
    if own is None and shared is None:
        return NO_RULES
    return VifRules(parse(own).rules if own is not None else (),
                    parse(shared).rules if shared is not None else ())


def to_port(port: int, ruled: bool) -> tuple[Action, ...]:
    """What forward does to send a frame to a VIF port: out of it, or through its rules."""
    if not ruled:
        return (Output(port),)
    return (SetReg(REG_PORT, port), Resubmit(TO_VM))


def port_rule_flows(port: int, rules: VifRules) -> list[Flow]:
    """Every flow of one VIF port's rules (none without rules)."""
    if not rules:
        return []
    zone = port & 0xFFFF
    out = [
        flow(FORWARD, HOOK_PRIORITY, f"port {port} has traffic rules", in_port=port,
             **{REG_FLAGS: (0, FLAG_FROM_PASSED)}, goto=FROM_VM),
    ]
    for eth in (ETH_IPV4, ETH_IPV6):
        out.append(flow(FROM_VM, 100, "conntrack", in_port=port, eth_type=eth,
                        actions=(Ct(zone, table=FROM_VM_RULES),)))
        out.append(flow(TO_VM, 100, "conntrack", eth_type=eth,
                        actions=(Ct(zone, table=TO_VM_RULES),), **{REG_PORT: port}))
    out.append(flow(FROM_VM, 50, "not IP: untracked", in_port=port, goto=FROM_VM_RULES))
    out.append(flow(TO_VM, 50, "not IP: untracked", goto=TO_VM_RULES, **{REG_PORT: port}))
    for direction in ("out", "in"):
        table, who = (FROM_VM_RULES, {"in_port": port}) if direction == "out" else \
            (TO_VM_RULES, {REG_PORT: port})
        passed = _pass(direction, port, zone, commit=False)
        reply = cookie_of("reply")
        out.append(flow(table, REPLY_PRIORITY, "replies of an allowed connection", cookie=reply,
                        ct_state=(CT_TRK | CT_EST | CT_RPL, CT_TRK | CT_EST | CT_RPL),
                        actions=passed, **who))
        out.append(flow(table, RELATED_PRIORITY, "related to an allowed connection",
                        cookie=reply, ct_state=(CT_TRK | CT_REL, CT_TRK | CT_REL),
                        actions=passed, **who))
        for origin, base, listed in (("vif", VIF_BASE, rules.vif),
                                     ("network", NETWORK_BASE, rules.network)):
            for index, rule in enumerate(listed):
                if direction in rule.directions:
                    out += _rule_flows(rule, direction, table, who, base - 2 * index,
                                       cookie_of(origin, index), port, zone)
        default = cookie_of("default")
        for eth in (ETH_IPV4, ETH_IPV6):
            out.append(flow(table, 1, "no rule matched: allowed", cookie=default, eth_type=eth,
                            actions=_pass(direction, port, zone, commit=True), **who))
        out.append(flow(table, 0, "no rule matched: allowed", cookie=default,
                        actions=passed, **who))
    return out


def _pass(direction: str, port: int, zone: int, commit: bool) -> tuple[Action, ...]:
    ct = (Ct(zone, commit=True),) if commit else ()
    if direction == "out":
        return (SetReg(REG_FLAGS, FLAG_FROM_PASSED), *ct, Resubmit(FORWARD))
    return (*ct, Output(port))


def _rule_flows(rule: Rule, direction: str, table: int, who: dict[str, MatchValue],
                priority: int, cookie: int, port: int, zone: int) -> list[Flow]:
    """One rule in one direction: one flow per (ethertype, port mask) it covers."""
    allow = rule.action == "allow"
    note = f"rule '{rule.text}' ({direction})"
    out: list[Flow] = []
    for prio, eth, fields in _matches(rule, direction):
        ip = eth in (ETH_IPV4, ETH_IPV6)
        actions = _pass(direction, port, zone, commit=ip) if allow else ()
        match = dict(who, **fields)
        if eth is not None:
            match["eth_type"] = eth
        out.append(flow(table, priority - prio, note, cookie=cookie, actions=actions, **match))
    return out


def _matches(rule: Rule, direction: str) -> Iterable[tuple[int, int | None, dict]]:
    """(priority offset, ethertype or None: every frame, other fields) per flow of a rule."""
    out_dir = direction == "out"
    peer = rule.peer
    families = (4, 6) if peer is None else (peer.version,)
    proto = rule.protocol
    if proto == "arp" or (proto == "any" and 4 in families):
        fields: dict = {}
        if peer is not None:
            fields["arp_tpa" if out_dir else "arp_spa"] = _net(peer)
        if proto == "arp":
            yield 0, ETH_ARP, fields
            return
        if peer is not None:
            yield 0, ETH_ARP, fields
    ip_proto = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP,
                "icmpv6": PROTO_ICMPV6}.get(proto)
    if proto == "icmp":
        families = (4,)
    elif proto == "icmpv6":
        families = (6,)
    for version in families:
        eth = ETH_IPV4 if version == 4 else ETH_IPV6
        base: dict = {}
        if ip_proto is not None:
            base["ip_proto"] = ip_proto
        if peer is not None:
            name = ("ipv4_" if version == 4 else "ipv6_") + ("dst" if out_dir else "src")
            base[name] = _net(peer)
        if rule.ports is not None and proto in ("tcp", "udp"):
            field = "tcp_dst" if proto == "tcp" else "udp_dst"
            for value, mask in port_masks(*rule.ports):
                yield 0, eth, dict(base, **{field: value if mask == 0xFFFF else (value, mask)})
        else:
            yield 0, eth, base
    if proto == "any" and peer is None:
        yield 1, None, {}  # every other frame, one priority below the IP part


def _net(net) -> MatchValue:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


@functools.lru_cache(maxsize=1 << 10)
def port_masks(low: int, high: int) -> tuple[tuple[int, int], ...]:
    """A port range as the fewest (value, mask) pairs that cover exactly it."""
    out = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        out.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return tuple(out)
