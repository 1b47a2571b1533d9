"""What every experiment script shares: its options, where its plot goes, its lab names.

Labs: smoke runs use prefixes `xs1`..`xs8` on 198.18.111-118.0/24, full runs `xp1`..`xp8`
on 198.18.121-128.0/24; each script has its own number and three ports per run (xapi
simulator, OpenFlow, metrics) in 27350-27397, so two scripts, or a smoke and a full run,
never meet.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"  # ignored by git


@dataclass(frozen=True)
class LabSlot:
    """Where one run's pools live: lab prefix, management network, ports."""

    prefix: str
    management: str
    ports: tuple[int, int, int]


def slot(number: int, smoke: bool) -> LabSlot:
    """Experiment `number` (1-8): its smoke or full lab."""
    if not 1 <= number <= 8:
        raise ValueError("experiment numbers are 1-8 (ports 27350-27397)")
    base = 27350 + 6 * (number - 1) + (0 if smoke else 3)
    if smoke:
        return LabSlot(f"xs{number}", f"198.18.{110 + number}.0/24", (base, base + 1, base + 2))
    return LabSlot(f"xp{number}", f"198.18.{120 + number}.0/24", (base, base + 1, base + 2))


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="a small run in seconds (make test): proves the path, not the figure")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help=f"directory for the PNG plot (default {RESULTS})")
    return ap


def need_root() -> None:
    if os.geteuid() != 0:
        sys.exit("the lab needs root (namespaces, Open vSwitch)")
