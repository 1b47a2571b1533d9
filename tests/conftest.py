"""Shared test helpers; what a lab leaves behind is `harness.footprint` (benchmarks use it too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.footprint import lab_footprint

__all__ = ["ROOT", "TOPOLOGIES", "lab_footprint"]

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="the lab needs root (CI runs as root)")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
