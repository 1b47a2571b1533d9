"""What a lab leaves behind, read from the machine itself (not from the lab's own record), so
that a test or benchmark can assert that a teardown really removed everything."""

from __future__ import annotations

import os
from pathlib import Path

from netctl.lab import netns

NOTHING: dict[str, list[str]] = {"namespaces": [], "root links": [], "processes": []}


def lab_footprint(prefix: str) -> dict[str, list[str]]:
    """Everything on this machine that carries the lab's prefix or runs from its directory."""
    procs = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"netctl-lab/{prefix}/" in cmdline:
            procs.append(f"{pid}: {cmdline}")
    return {
        "namespaces": [n for n in netns.netns.listnetns() if n.startswith(f"{prefix}-")],
        "root links": [n for n in netns.links(None) if n.startswith(f"{prefix}-")],
        "processes": procs,
    }
