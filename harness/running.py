"""A pool under `netctl run` (lab + xapi simulator + lab agent + netctl run, as processes the
lab records), for lab tests and benchmarks that drive netctl as an operator does, and the
polling helper they share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.footprint import NOTHING, lab_footprint
from netctl.demo import DemoPool
from netctl.topology import parse_file

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"


@contextmanager
def running_pool(topology: str, prefix: str, management: str, ports: tuple[int, int, int],
                 settings: dict[str, dict] | None = None, lacp: bool = True
                 ) -> Iterator[DemoPool]:
    """Bring `topologies/<topology>` up under `prefix` with `netctl run` (its extra
    configuration `settings`), wait until it converged (and its LACP bonds negotiated), hand
    it over, and leave nothing behind."""
    topo = parse_file(TOPOLOGIES / topology).relabel(prefix, management)
    assert lab_footprint(prefix) == NOTHING, "a previous run left this lab behind"
    pool = DemoPool(topo, ports=ports, settings=settings)
    try:
        pool.up()
        pool._wait(pool.converged, 90, "netctl run convergence")
        if lacp:
            assert pool.lab is not None and pool.lab.wait_lacp(20)
        yield pool
    finally:
        pool.down()
    assert lab_footprint(prefix) == NOTHING


def until(predicate: Callable[[], object], timeout: float = 30.0, step: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
