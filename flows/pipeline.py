"""netctl's OpenFlow 1.3 pipeline: the tables, what each may match, and the `Flow` value type.

A `Flow` is validated against the declared pipeline when it is made (Faucet's lesson: an
illegal match is caught in a unit test, not by the switch at 3 a.m.): its table exists, it only
matches fields that table declares, OpenFlow prerequisites hold (an IPv4 field needs
eth_type=0x0800, an ND field needs ICMPv6 type 135/136, ...), and it only jumps forward to a
table the pipeline allows.

    table 0 classify       which port the frame entered by; writes the network's VLAN (0 =
                           the bridge's own untagged network) and a from-tunnel bit to metadata
    table 1 port_security  VIF locking, exactly xapi's setup-vif-rules (+ rogue DHCP replies)
    table 2 forward        per network: known VIF MACs straight to their port, tunnel or uplink;
                           flooding with split horizon; NORMAL for the world outside the pool
    table 10 from_vm       traffic rules, frames from a VIF that has rules: conntrack lookup
    table 11 from_vm_rules ... its rules in order (`flows.rules`), then back to forward
    table 12 to_vm         traffic rules, frames forward sends to a VIF that has rules (its port
                           in REG_PORT): conntrack lookup
    table 13 to_vm_rules   ... its rules in order, then out of the port
(Tables 10-13 hold flows only for VIFs with rules: without rules the tables are as before.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

COOKIE = 0x6E63_0000_0000_0000  # "nc": marks every flow netctl owns
COOKIE_MASK = 0xFFFF_0000_0000_0000
OFPP_NORMAL = 0xFFFFFFFA
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPVID_PRESENT = 0x1000
META_VLAN_MASK = 0x0FFF
META_FROM_TUNNEL = 1 << 16
META_MASK = META_VLAN_MASK | META_FROM_TUNNEL

ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 6, 17, 58
MAX_METER = 0xFF00  # netctl's meter ids are OpenFlow port numbers (`flows.qos`)


_RULE_MATCHES = frozenset({"ct_state", "eth_type", "ip_proto", "tcp_dst", "udp_dst",
                           "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "arp_spa", "arp_tpa"})


@dataclass(frozen=True)
class Table:
    id: int
    name: str
    purpose: str
    matches: frozenset[str]
    next_tables: tuple[int, ...] = ()


CLASSIFY, PORT_SECURITY, FORWARD = 0, 1, 2
FROM_VM, FROM_VM_RULES, TO_VM, TO_VM_RULES = 10, 11, 12, 13  # traffic rules (`flows.rules`)
REG_PORT = "reg5"  # to_vm: the VIF port a frame is on its way to
REG_FLAGS = "reg6"  # bit 0: the sending VIF's rules let the frame through (forward again)
FLAG_FROM_PASSED = 1
# ct_state bits (Nicira): new, established, related, reply, invalid, tracked
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

PIPELINE: dict[int, Table] = {
    t.id: t
    for t in (
        Table(
            CLASSIFY,
            "classify",
            "entry port -> network (metadata) and next stage",
            frozenset({"in_port", "vlan_vid"}),
            (PORT_SECURITY, FORWARD),
        ),
        Table(
            PORT_SECURITY,
            "port_security",
            "what a VIF may send (VIF locking)",
            frozenset(
                {
                    "in_port",
                    "eth_src",
                    "eth_type",
                    "ip_proto",
                    "ipv4_src",
                    "udp_src",
                    "udp_dst",
                    "arp_spa",
                    "arp_sha",
                    "ipv6_src",
                    "icmpv6_type",
                    "ipv6_nd_sll",
                    "ipv6_nd_target",
                }
            ),
            (FORWARD,),
        ),
        Table(
            FORWARD,
            "forward",
            "L2 forwarding within one network",
            frozenset({"metadata", "eth_dst", "vlan_vid", "in_port", REG_FLAGS}),
            (FROM_VM,),
        ),
        Table(FROM_VM, "from_vm", "frames from a VIF with traffic rules: conntrack",
              frozenset({"in_port", "eth_type"}), (FROM_VM_RULES,)),
        Table(FROM_VM_RULES, "from_vm_rules", "what a VIF with traffic rules may send",
              _RULE_MATCHES | {"in_port"}),
        Table(TO_VM, "to_vm", "frames to a VIF with traffic rules: conntrack",
              frozenset({REG_PORT, "eth_type"}), (TO_VM_RULES,)),
        Table(TO_VM_RULES, "to_vm_rules", "what a VIF with traffic rules may receive",
              _RULE_MATCHES | {REG_PORT}),
    )
}

# OpenFlow prerequisites: field -> (required field, allowed values)
PREREQUISITES: dict[str, tuple[str, tuple[int, ...]]] = {
    "ip_proto": ("eth_type", (ETH_IPV4, ETH_IPV6)),
    "ipv4_src": ("eth_type", (ETH_IPV4,)),
    "arp_spa": ("eth_type", (ETH_ARP,)),
    "arp_sha": ("eth_type", (ETH_ARP,)),
    "ipv6_src": ("eth_type", (ETH_IPV6,)),
    "udp_src": ("ip_proto", (PROTO_UDP,)),
    "tcp_dst": ("ip_proto", (PROTO_TCP,)),
    "ipv4_dst": ("eth_type", (ETH_IPV4,)),
    "ipv6_dst": ("eth_type", (ETH_IPV6,)),
    "arp_tpa": ("eth_type", (ETH_ARP,)),
    "udp_dst": ("ip_proto", (PROTO_UDP,)),
    "icmpv6_type": ("ip_proto", (PROTO_ICMPV6,)),
    "ipv6_nd_sll": ("icmpv6_type", (135,)),
    "ipv6_nd_target": ("icmpv6_type", (135, 136)),
}


class FlowError(ValueError):
    """A flow that the pipeline (or OpenFlow) does not allow."""


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    port: int


@dataclass(frozen=True)
class PushVlan:
    vid: int  # 1..4094, pushed with ethertype 0x8100


@dataclass(frozen=True)
class PopVlan:
    pass


@dataclass(frozen=True)
class SetReg:
    """set_field of a whole Nicira register (`REG_PORT`, `REG_FLAGS`)."""

    reg: str
    value: int


@dataclass(frozen=True)
class Resubmit:
    """Nicira resubmit(,table): the frame goes through `table` and comes back to the next
    action (the one way back to an earlier table, or several tables from one action list)."""

    table: int


@dataclass(frozen=True)
class Ct:
    """Nicira ct(): conntrack in `zone`; `commit` stores the connection; with `table` the
    tracked frame continues in that table (the untracked original stops there)."""

    zone: int
    commit: bool = False
    table: int | None = None


Action = Union[Output, PushVlan, PopVlan, SetReg, Resubmit, Ct]  # noqa: UP007 - isinstance
NORMAL = Output(OFPP_NORMAL)
TO_CONTROLLER = Output(OFPP_CONTROLLER)

MatchValue = Union[int, str, tuple[int, int], tuple[str, str]]  # noqa: UP007


@dataclass(frozen=True)
class Flow:
    """One flow entry. Identity on the switch is (table, priority, match); the rest is what it
    does. `actions` are applied; then `goto` (if any). No actions and no goto = drop."""

    table: int
    priority: int
    match: tuple[tuple[str, MatchValue], ...]
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    write_metadata: tuple[int, int] | None = None  # (value, mask)
    cookie: int = COOKIE
    note: str = field(default="", compare=False, hash=False)  # why it exists (for people)
    meter: int | None = None  # a meter instruction (applied first): `flows.qos`

    def __post_init__(self) -> None:
        object.__setattr__(self, "match", tuple(sorted(self.match)))
        table = PIPELINE.get(self.table)
        if table is None:
            raise FlowError(f"no table {self.table} in the pipeline")
        fields_ = dict(self.match)
        if len(fields_) != len(self.match):
            raise FlowError(f"{table.name}: a field is matched twice: {self.match}")
        for name in fields_:
            if name not in table.matches:
                raise FlowError(f"table {table.name} does not match on {name}")
        for name, (needed, allowed) in PREREQUISITES.items():
            if name in fields_ and fields_.get(needed) not in allowed:
                raise FlowError(f"{table.name}: {name} needs {needed} in {allowed}: {self.match}")
        if self.goto is not None and self.goto not in table.next_tables:
            raise FlowError(f"table {table.name} cannot go to table {self.goto}")
        if not 0 <= self.priority <= 0xFFFF:
            raise FlowError(f"priority {self.priority} out of range")
        for action in self.actions:
            if isinstance(action, PushVlan) and not 1 <= action.vid <= 4094:
                raise FlowError(f"cannot push VLAN {action.vid}")
            if isinstance(action, SetReg) and (action.reg not in (REG_PORT, REG_FLAGS)
                                               or not 0 <= action.value < 1 << 32):
                raise FlowError(f"cannot set {action.reg} to {action.value}")
            if isinstance(action, Resubmit | Ct) and getattr(action, "table", None) is not None \
                    and action.table not in PIPELINE:
                raise FlowError(f"no table {action.table} to resubmit to")
            if isinstance(action, Ct) and not 0 <= action.zone <= 0xFFFF:
                raise FlowError(f"conntrack zone {action.zone} out of range")
            if isinstance(action, Ct) and fields_.get("eth_type") not in (ETH_IPV4, ETH_IPV6):
                raise FlowError(f"{table.name}: ct() needs eth_type IPv4 or IPv6: {self.match}")
        if self.meter is not None and not 1 <= self.meter < MAX_METER:
            raise FlowError(f"meter {self.meter} out of netctl's range 1-{MAX_METER - 1}")
        wm = self.write_metadata
        if wm is not None and wm[0] & ~wm[1]:
            raise FlowError(f"metadata {wm[0]:#x} outside mask {wm[1]:#x}")

    @property
    def key(self) -> tuple[int, int, tuple[tuple[str, MatchValue], ...]]:
        """What identifies the entry on the switch (OpenFlow's strict match)."""
        return (self.table, self.priority, self.match)

    @property
    def body(self) -> tuple:
        """What the entry does; a change here is a modify, not an add+delete."""
        return (self.actions, self.goto, self.write_metadata, self.cookie, self.meter)


def flow(
    table: int,
    priority: int,
    note: str = "",
    *,
    actions: tuple[Action, ...] = (),
    goto: int | None = None,
    write_metadata: tuple[int, int] | None = None,
    cookie: int = COOKIE,
    meter: int | None = None,
    **match: MatchValue,
) -> Flow:
    """Shorthand: flow(PORT_SECURITY, 6000, "IPv4", goto=FORWARD, in_port=3, eth_type=...)."""
    return Flow(
        table, priority, tuple(match.items()), tuple(actions), goto, write_metadata, cookie,
        note=note, meter=meter
    )
