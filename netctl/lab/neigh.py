"""Room in the kernel's neighbour tables for every VM of a lab.

Why: each lab VM is a network namespace, but Linux keeps one ARP table and one IPv6 neighbour
(ND) table for the whole machine, shared by all namespaces, with one set of limits
(`net.ipv{4,6}.neigh.default.gc_thresh{1,2,3}`, readable only in the root namespace; Debian's
defaults 128/512/1024). A real VM has a kernel, and a table, of its own. In a lab of 32 VMs,
every VM that talks to every other holds ~31 entries per address family, and for IPv6 twice
that (the global address and the link-local one that neighbour unreachability detection
uses): ~2000 ND entries. Past gc_thresh3 the kernel refuses new entries ("neighbour table
overflow", counted as `table_fulls` in /proc/net/stat/ndisc_cache), so a VM's first IPv6
contact with a new peer never even sends its Neighbor Solicitation and the ping fails, until
garbage collection frees stale entries a minute later. (Measured on the 16-host pool: 72-111
of 2976 probes, all first IPv6 contacts, with the IPv4 limits already raised on that machine.)
The lab raises the limits to what its VMs need, never lowers them (other labs, and the
machine itself, share them).
"""

from __future__ import annotations

from pathlib import Path

from netctl.topology import Topology

SYSCTL = Path("/proc/sys/net")
# The floor: what this project's machines already use for IPv4 (room for several labs).
FLOOR = (4096, 8192, 16384)


def entries_needed(topology: Topology) -> int:
    """Neighbour entries the lab's VMs and outside machines may hold at once, per family:
    every endpoint of a network resolving every other one, twice (global and link-local)."""
    per_network: dict[str, int] = {}
    for vm in topology.vms:
        for vif in vm.vifs:
            per_network[vif.network] = per_network.get(vif.network, 0) + 1
    outside = len(topology.switch.outside)
    return sum(2 * (n + outside) * (n + outside - 1) for n in per_network.values()) + 64


def wanted(topology: Topology) -> tuple[int, int, int]:
    """gc_thresh1, 2, 3 for this lab: the need as the soft floor, 2x and 4x above it."""
    need = entries_needed(topology)
    return max(FLOOR[0], need), max(FLOOR[1], 2 * need), max(FLOOR[2], 4 * need)


def ensure_room(topology: Topology, root: Path = SYSCTL) -> list[str]:
    """Raise the machine's ARP and ND table limits to at least `wanted` (never lower them);
    returns the settings changed, as `sysctl` names them ("key: old -> new")."""
    changed = []
    for family in ("ipv4", "ipv6"):
        for i, value in enumerate(wanted(topology), start=1):
            path = root / family / "neigh" / "default" / f"gc_thresh{i}"
            try:
                old = int(path.read_text())
            except (OSError, ValueError):
                continue  # no such table (IPv6 disabled) or no /proc: nothing to raise
            if old < value:
                path.write_text(f"{value}\n")
                changed.append(f"net.{family}.neigh.default.gc_thresh{i}: {old} -> {value}")
    return changed
