"""Shared test helpers: what a lab leaves behind, read from the machine itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netctl.lab import netns

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


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


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="the lab needs root (CI runs as root)")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
