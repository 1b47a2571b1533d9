"""Network namespaces and links of the lab, over netlink (pyroute2).

Every object made here is named by the caller with the lab's owned prefix; nothing here
deletes an object it was not asked to delete by name, and nothing kills processes.
"""

from __future__ import annotations

import errno
import ipaddress
import subprocess
from collections.abc import Sequence

from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

IFA_F_NODAD = 0x02


class LabCommandError(RuntimeError):
    """A command run inside a lab namespace failed; carries its output for the message."""


def exists(name: str) -> bool:
    return name in netns.listnetns()


def create(name: str) -> None:
    """Create a named namespace with loopback up."""
    netns.create(name)
    with NetNS(name) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


def remove(name: str) -> None:
    if exists(name):
        netns.remove(name)


def run(
    ns: str | None,
    argv: Sequence[str],
    check: bool = True,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Run a command in namespace `ns` (None = the root namespace) and capture its output."""
    full = list(argv) if ns is None else ["ip", "netns", "exec", ns, *argv]
    proc = subprocess.run(
        full, capture_output=True, text=True, timeout=timeout, env=env, input=input
    )
    if check and proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise LabCommandError(f"{' '.join(full)} failed ({proc.returncode}): {output}")
    return proc


def _handle(ns: str | None) -> IPRoute | NetNS:
    return IPRoute() if ns is None else NetNS(ns)


def add_veth(
    ns_a: str | None,
    name_a: str,
    ns_b: str | None,
    name_b: str,
    mtu: int = 1500,
    mac_b: str | None = None,
) -> None:
    """Create a veth pair with end `name_a` in `ns_a` and `name_b` in `ns_b`; both ends up.
    `mac_b` is set before the link comes up, so its IPv6 link-local address derives from it."""
    with _handle(ns_a) as ipr:
        peer: dict[str, object] = {"ifname": name_b}
        if ns_b is not None and ns_b != ns_a:
            peer["net_ns_fd"] = ns_b
        ipr.link("add", ifname=name_a, kind="veth", peer=peer)
        idx = ipr.link_lookup(ifname=name_a)[0]
        ipr.link("set", index=idx, mtu=mtu, state="up")
    with _handle(ns_b) as ipr:
        idx = ipr.link_lookup(ifname=name_b)[0]
        if mac_b:
            ipr.link("set", index=idx, address=mac_b)
        ipr.link("set", index=idx, mtu=mtu, state="up")


def link_exists(ns: str | None, name: str) -> bool:
    with _handle(ns) as ipr:
        return bool(ipr.link_lookup(ifname=name))


def links(ns: str | None) -> list[str]:
    with _handle(ns) as ipr:
        return [link.get("ifname") for link in ipr.get_links()]


def delete_link(ns: str | None, name: str) -> None:
    """Delete a link if it is there. A veth whose peer's namespace was just deleted vanishes on
    its own, asynchronously: "no such device" is success, not an error."""
    with _handle(ns) as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise


def add_linux_bridge(name: str) -> None:
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="bridge")
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")


def enslave(ns: str | None, port: str, bridge: str) -> None:
    with _handle(ns) as ipr:
        ipr.link(
            "set", index=ipr.link_lookup(ifname=port)[0], master=ipr.link_lookup(ifname=bridge)[0]
        )


def configure(
    ns: str | None,
    ifname: str,
    mac: str | None = None,
    mtu: int | None = None,
    addresses: Sequence[str] = (),
    up: bool = True,
) -> None:
    """Set MAC/MTU, add IPv4/IPv6 addresses (IPv6 without duplicate address detection)."""
    with _handle(ns) as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        if mac:
            ipr.link("set", index=idx, address=mac)
        if mtu:
            ipr.link("set", index=idx, mtu=mtu)
        for cidr in addresses:
            iface = ipaddress.ip_interface(cidr)
            extra = {"flags": IFA_F_NODAD} if iface.version == 6 else {}
            ipr.addr(
                "add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen, **extra
            )
        if up:
            ipr.link("set", index=idx, state="up")


def root_routes_overlapping(cidr: str) -> list[str]:
    """Routes of the root namespace that overlap `cidr` (a lab must not shadow them)."""
    net = ipaddress.ip_network(cidr)
    found = []
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=10 if net.version == 6 else 2):  # AF_INET6 / AF_INET
            dst = route.get("RTA_DST")
            if dst is None:
                continue
            rnet = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
            if rnet.overlaps(net):
                found.append(str(rnet))
    return found
