"""ADDRESS:PORT as Open vSwitch, os-ken and URLs spell it, for IPv4 and IPv6 pools alike.

An IPv6 address carries colons of its own, so wherever an address is joined with a port
(`tcp:[fd00::11]:6640`, `ssl:[fd00::1]:6653`, `ptcp:6640:[fd00::11]`, `http://[fd00::1]:80/`)
it is written in brackets, and read back by the last colon outside them. XCP-ng 8.3 installs
IPv6-only hosts: `host.address` is then an IPv6 address and every endpoint built from it must
be bracketed, or OVS reads `tcp:fd00::11:6640` as a port it cannot parse. One module, so the
controller, its configuration and the lab spell endpoints the same way. Pure: `ipaddress` only.
"""

from __future__ import annotations

import ipaddress


def is_ipv6(address: str) -> bool:
    """`address` (without brackets) is an IPv6 address (a DNS name or IPv4 address is not)."""
    try:
        return ipaddress.ip_address(address.strip("[]")).version == 6
    except ValueError:
        return False


def bracketed(address: str) -> str:
    """The address as it stands next to a port: `[fd00::1]` for IPv6, unchanged otherwise."""
    bare = address.strip("[]")
    return f"[{bare}]" if is_ipv6(bare) else address


def join_host_port(address: str, port: int | str) -> str:
    """`10.0.0.1:6640`, `[fd00::1]:6640`."""
    return f"{bracketed(address)}:{port}"


def split_host_port(text: str) -> tuple[str, int]:
    """(address without brackets, port) of `ADDRESS:PORT`, `[IPV6]:PORT` or `:PORT` (any
    address: ""). Raises ValueError naming the text when there is no port or the brackets do
    not close; an unbracketed IPv6 address followed by a port is refused rather than guessed."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1:].startswith(":"):
            raise ValueError(f"{text!r}: expected [IPV6]:PORT")
        host, port = text[1:end], text[end + 2:]
        if not is_ipv6(host):
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r}: expected ADDRESS:PORT")
        if ":" in host:
            raise ValueError(f"{text!r}: an IPv6 address goes in brackets: [{host}]:{port}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: {port!r} is not a port (1-65535)")
    return host, int(port)


def ovs_active(kind: str, address: str, port: int | str) -> str:
    """An active OVS/OpenFlow connection target: `tcp:ADDR:PORT`, `ssl:[IPV6]:PORT`."""
    return f"{kind}:{join_host_port(address, port)}"


def ovs_passive(kind: str, port: int | str, address: str = "") -> str:
    """A passive OVS listener: `ptcp:PORT:ADDR`, `pssl:6640:[IPV6]` (OVS's order: port first)."""
    return f"{kind}:{port}:{bracketed(address)}" if address else f"{kind}:{port}"
