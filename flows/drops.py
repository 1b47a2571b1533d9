"""Which rule of VIF locking dropped a frame: a kind per drop flow, carried in its cookie.

An operator asks "did anything get dropped by anti-spoofing, and what?". The switch counts
packets per flow, so every drop flow of `flows.locking` says what it drops: its cookie is
netctl's (`COOKIE`, the top 16 bits, as every flow netctl owns) with a drop tag and the kind
below it. One flow-stats request per bridge, filtered by the tag (`DROP_TAG`, `DROP_MASK`),
reads every drop counter and nothing else; `kind_of` reads the kind back.

    mac          a frame whose source MAC is not the VIF's
    ipv4         IPv4 from the VIF's MAC, from an address it may not use
    ipv6         IPv6 from the VIF's MAC, from an address it may not use
    arp          ARP from the VIF's MAC claiming an address it may not use
    nd           neighbour solicitations/advertisements for addresses not its own
    router       router advertisements, redirects and other router messages
    dhcp_server  DHCP / DHCPv6 server replies (a rogue DHCP server)
    other        another ethertype from the VIF's MAC
    disabled     everything, from a VIF whose locking mode is disabled
"""

from __future__ import annotations

from flows.pipeline import COOKIE

KINDS = ("mac", "ipv4", "ipv6", "arp", "nd", "router", "dhcp_server", "other", "disabled")
DROP_TAG = 0x0000_D000_0000_0000  # below netctl's own 16 bits: "a drop flow"
DROP_MASK = 0xFFFF_F000_0000_0000  # netctl's bits and the tag
_KIND_SHIFT = 32


def cookie_of(kind: str) -> int:
    """The cookie of a drop flow of this kind."""
    return COOKIE | DROP_TAG | (KINDS.index(kind) + 1) << _KIND_SHIFT


def kind_of(cookie: int) -> str | None:
    """The kind a drop flow's cookie names (None: not a netctl drop flow)."""
    if cookie & DROP_MASK != COOKIE | DROP_TAG:
        return None
    index = (cookie >> _KIND_SHIFT & 0xFF) - 1
    return KINDS[index] if 0 <= index < len(KINDS) else None
