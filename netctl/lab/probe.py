"""Run connectivity probes in a running lab with real packets (ping / ping -6), in parallel."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from netctl.lab.expect import Probe
from netctl.lab.lab import Lab

PARALLEL = 24


@dataclass(frozen=True)
class Result:
    probe: Probe
    observed: bool

    @property
    def ok(self) -> bool:
        return self.observed == self.probe.expected


def ping_argv(probe: Probe, count: int = 2, wait: float = 1.0) -> list[str]:
    """Bound to the source interface, so the reply proves that interface's network path."""
    family = ["-6"] if probe.family == "IPv6" else ["-4"]
    return [
        "ping",
        *family,
        "-n",
        "-q",
        "-c",
        str(count),
        "-i",
        "0.2",
        "-W",
        str(wait),
        "-I",
        probe.src.ifname,
        probe.address,
    ]


def run_probes(lab: Lab, probes: Iterable[Probe], count: int = 2) -> list[Result]:
    """A probe is observed reachable if at least one echo reply came back."""
    pending = list(probes)
    results: list[Result] = []
    while pending:
        batch, pending = pending[:PARALLEL], pending[PARALLEL:]
        procs = [(p, lab.popen(p.src.node, ping_argv(p, count))) for p in batch]
        for probe, proc in procs:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            results.append(Result(probe, proc.returncode == 0))
    return results
