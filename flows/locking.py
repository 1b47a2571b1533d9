"""VIF locking: what a VIF may send, exactly as xapi's `setup-vif-rules` (xapi-spec §4.4).

Where netctl takes the intent from:
- `VIF.locking_mode`, `VIF.ipv4_allowed`, `VIF.ipv6_allowed`, with `network_default` following
  `network.default_locking_mode` — always.
- When netctl is the pool's registered SDN controller (an `SDN_controller` object exists), real
  xapi refuses to set an effective `locked` mode (`OPERATION_NOT_ALLOWED "A vswitch controller
  is active"`: port security is then the controller's job). So an operator states it in
  `VIF.other_config:netctl-locking-mode` (`locked`, `unlocked` or `disabled`), which takes
  precedence over `locking_mode` whenever present; the allowed lists stay the VIF's own
  (xapi still accepts `VIF.set_ipv4_allowed` with a controller).

`disabled` means no traffic in either direction (xapi does not even put the port on the
bridge): the port's rules drop what it sends, and `flows.compile` gives it no forwarding while
the OpenFlow side sets the port `NO_FWD`/`NO_RECV`, so neither NORMAL's flooding nor unicast
reaches it.

What a value netctl cannot read becomes (fail safe and loud: each is a Problem naming the VIF
or network and the field, with the allowed values, and none ever loosens the locking):
- `other_config:netctl-locking-mode` not one of locked, unlocked, disabled (a typo such as
  `lockd`): enforced as `locked`, with the VIF's allowed addresses — the override exists to ask
  for locking, and falling back to the VIF's own `locking_mode` (often `unlocked` while netctl
  is the SDN controller) would leave an operator believing a VIF locked that is not
  (`netctl.model.keys.BAD_LOCKING_OVERRIDE`);
- `locking_mode` not one of xapi's modes: enforced as `locked`;
- an entry of `ipv4_allowed` / `ipv6_allowed` that does not parse: left out, so the VIF is
  locked to the entries that do (none left: no IP traffic at all, as xapi's locked mode with
  empty lists);
- `network.default_locking_mode` not one of unlocked, disabled: its `network_default` VIFs are
  enforced as `disabled`, the strictest reading of a default.
(`netctl.model.validation.applied` and `PoolState.enforced_locking_mode` do it; the compilers
only ever see values they can read.)

One deliberate addition to xapi's rules: a locked VIF cannot send DHCP server replies (UDP
source port 67) or DHCPv6 server replies (547), even from an allowed address — a rogue DHCP
server is the classic attack locking is for (OVN lets such replies through).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from flows.drops import cookie_of
from flows.pipeline import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    FORWARD,
    PORT_SECURITY,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    Flow,
    MatchValue,
    flow,
)
from netctl.model import ENFORCED_LOCKING_MODES, LOCKING_OVERRIDE_KEY, VIF, PoolState

OVERRIDE_KEY = LOCKING_OVERRIDE_KEY
EFFECTIVE_MODES = ENFORCED_LOCKING_MODES
ROUTER_MESSAGES = (134, 137, 146, 147, 151, 152, 153)  # RA, redirect, mobile prefix, MRD


@dataclass(frozen=True)
class Locking:
    mode: str  # locked | unlocked | disabled
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def locking_of(state: PoolState, vif: VIF) -> Locking:
    """What netctl enforces on a VIF (`PoolState.enforced_locking_mode`: the override, xapi's
    mode, or `disabled` for a VIF quarantined for a duplicate MAC)."""
    return Locking(state.enforced_locking_mode(vif), tuple(vif.ipv4_allowed),
                   tuple(vif.ipv6_allowed))


def _addr(text: str, version: int) -> MatchValue:
    """An allowed entry as an OpenFlow match value: a plain address or (address, mask)."""
    net = ipaddress.ip_network(text, strict=False)
    if net.version != version:
        raise ValueError(text)
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


def port_security_flows(port: int, mac: str, locking: Locking) -> list[Flow]:
    """Table-1 flows for one VIF port (traffic *from* the VM only)."""
    go = {"goto": FORWARD}
    if locking.mode == "unlocked":
        return [flow(PORT_SECURITY, 100, "unlocked: everything", in_port=port, **go)]
    if locking.mode == "disabled":
        # not on the unlocked flow's key (priority 100): a flow's cookie cannot be modified
        # in place (OpenFlow 1.3), and this one's says "disabled" (`flows.drops`)
        return [flow(PORT_SECURITY, 90, "disabled: nothing", in_port=port,
                     cookie=cookie_of("disabled"))]
    out = [
        flow(
            PORT_SECURITY,
            8500,
            "no DHCP server replies",
            cookie=cookie_of("dhcp_server"),
            in_port=port,
            eth_type=ETH_IPV4,
            ip_proto=PROTO_UDP,
            udp_src=67,
        ),
        flow(
            PORT_SECURITY,
            8500,
            "no DHCPv6 server replies",
            cookie=cookie_of("dhcp_server"),
            in_port=port,
            eth_type=ETH_IPV6,
            ip_proto=PROTO_UDP,
            udp_src=547,
        ),
        flow(
            PORT_SECURITY,
            8000,
            "DHCP requests",
            in_port=port,
            eth_type=ETH_IPV4,
            ip_proto=PROTO_UDP,
            udp_dst=67,
            eth_src=mac,
            **go,
        ),
        flow(
            PORT_SECURITY,
            7000,
            "ARP probes",
            in_port=port,
            eth_type=ETH_ARP,
            eth_src=mac,
            arp_sha=mac,
            arp_spa="0.0.0.0",
            **go,
        ),
    ]
    for a in locking.ipv4:
        try:
            value = _addr(a, 4)
        except ValueError:
            continue  # the model's validation reports it; the VIF stays locked without it
        out.append(
            flow(
                PORT_SECURITY,
                7000,
                f"ARP for {a}",
                in_port=port,
                eth_type=ETH_ARP,
                eth_src=mac,
                arp_sha=mac,
                arp_spa=value,
                **go,
            )
        )
        out.append(
            flow(
                PORT_SECURITY,
                6000,
                f"IPv4 from {a}",
                in_port=port,
                eth_type=ETH_IPV4,
                eth_src=mac,
                ipv4_src=value,
                **go,
            )
        )
    icmp6 = {"eth_type": ETH_IPV6, "ip_proto": PROTO_ICMPV6}
    for a6 in locking.ipv6:
        try:
            value = _addr(a6, 6)
        except ValueError:
            continue
        out.append(
            flow(
                PORT_SECURITY,
                8000,
                f"NS from {a6}",
                in_port=port,
                eth_src=mac,
                ipv6_src=value,
                icmpv6_type=135,
                ipv6_nd_sll=mac,
                **icmp6,
                **go,
            )
        )
        # xapi: NA whose target is the allowed address itself; for an allowed prefix, any
        # target inside it (a masked nd_target), else the VM could not answer NS for its own
        # addresses ("other NA" below would drop them).
        out.append(
            flow(
                PORT_SECURITY,
                8000,
                f"NA for {a6}",
                in_port=port,
                eth_src=mac,
                ipv6_src=value,
                icmpv6_type=136,
                ipv6_nd_target=value,
                **icmp6,
                **go,
            )
        )
        for proto in (PROTO_ICMPV6, PROTO_TCP, PROTO_UDP):
            out.append(
                flow(
                    PORT_SECURITY,
                    5000,
                    f"IPv6 proto {proto} from {a6}",
                    in_port=port,
                    eth_src=mac,
                    ipv6_src=value,
                    eth_type=ETH_IPV6,
                    ip_proto=proto,
                    **go,
                )
            )
    nd = cookie_of("nd")
    out.append(flow(PORT_SECURITY, 7000, "other NS", in_port=port, icmpv6_type=135, cookie=nd,
                    **icmp6))
    out.append(flow(PORT_SECURITY, 7000, "other NA", in_port=port, icmpv6_type=136, cookie=nd,
                    **icmp6))
    for kind in ROUTER_MESSAGES:
        out.append(
            flow(
                PORT_SECURITY,
                6000,
                f"router message {kind}",
                cookie=cookie_of("router"),
                in_port=port,
                icmpv6_type=kind,
                **icmp6,
            )
        )
    # What is left is dropped; the last rules only say why (`flows.drops`): the VIF's own MAC
    # with an address it may not use, by protocol, or another ethertype; else a MAC not its own.
    for proto, kind in ((ETH_ARP, "arp"), (ETH_IPV4, "ipv4"), (ETH_IPV6, "ipv6")):
        out.append(flow(PORT_SECURITY, 4100, f"{kind} from an address not allowed",
                        in_port=port, eth_src=mac, eth_type=proto, cookie=cookie_of(kind)))
    out.append(flow(PORT_SECURITY, 4050, "other ethertypes", in_port=port, eth_src=mac,
                    cookie=cookie_of("other")))
    out.append(flow(PORT_SECURITY, 4000, "everything else", in_port=port,
                    cookie=cookie_of("mac")))
    return out
