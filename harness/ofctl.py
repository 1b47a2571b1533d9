"""Reading what OVS's own tools print, for tests that check the switch's word, not netctl's."""

from __future__ import annotations


def no_flood_ports(show: str) -> set[int]:
    """The ports `ovs-ofctl -O OpenFlow10 show BRIDGE` lists with NO_FLOOD in their config
    (OpenFlow 1.0's bit: a 1.3 `show` never prints it)."""
    port, ports = None, set()
    for line in show.splitlines():
        head = line.strip().split("(", 1)[0]
        if head.isdigit():
            port = int(head)
        elif line.strip().startswith("config:") and port is not None and "NO_FLOOD" in line:
            ports.add(port)
    return ports
