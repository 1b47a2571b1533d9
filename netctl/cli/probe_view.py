"""How the connectivity probes are reported: the failures by pair, always; the matrix only
where it fits.

Why: at 32 VMs the who-reaches-whom matrix is wider than any terminal, rich squeezes its
columns to nothing, and which probes failed could not be read at all. The failures, one line
per (from, to) pair with every failed address of that pair, are readable at any size; the
matrix is a bonus for small pools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # `netctl status` imports the views: no lab modules for it
    from netctl.lab.probe import Result


def failures_by_pair(results: Sequence[Result]) -> list[str]:
    """One line per (source, destination) pair with at least one probe not as expected:
    `vm3/eth0 (pool) -> vm7/eth0 (pool): IPv6 fd4e:60::7 not reached`, in probe order."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.ok:
            continue
        what = "not reached" if r.probe.expected else "reached (expected isolated)"
        pairs.setdefault((r.probe.src.label, r.probe.dst.label), []).append(
            f"{r.probe.family} {r.probe.address} {what}")
    return [f"{src} -> {dst}: " + "; ".join(items) for (src, dst), items in pairs.items()]


def matrix_fits(table: Table, console: Console) -> bool:
    """Does the table fit the console's width with every cell on one line? (Narrower, rich
    squeezes the columns, wrapping and truncating the cells until nothing can be read.)"""
    unbounded = console.options.update_width(1 << 20)  # rich caps a measure at the width
    return console.measure(table, options=unbounded).maximum <= console.width
