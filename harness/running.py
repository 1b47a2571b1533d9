"""A pool under `netctl run` (lab + xapi simulator + lab agent + netctl run, as processes the
lab records), for lab tests and benchmarks that drive netctl as an operator does, and the
helpers they share: polling (`until`) and a ping's losses (`Ping`), both from the experiment
API (`netctl.experiment.measure`), and capturing what arrives somewhere (`capture`)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.footprint import NOTHING, clear_dead_lab, lab_footprint
from netctl.cli.demo import DemoPool
from netctl.experiment.measure import Ping, until  # noqa: F401 - shared with the experiments
from netctl.lab.lab import Lab
from netctl.topology import parse_file

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"


@contextmanager
def running_pool(topology: str, prefix: str, management: str, ports: tuple[int, int, int],
                 settings: dict[str, dict] | None = None, lacp: bool = True,
                 attach: bool = False, converge: bool = True, members: bool = False,
                 instances: int = 1, etcd_members: int = 0, ttl: float = 3.0
                 ) -> Iterator[DemoPool]:
    """Bring `topologies/<topology>` up under `prefix` with `netctl run` (its extra
    configuration `settings`), wait until it converged (and its LACP bonds negotiated), hand
    it over, and leave nothing behind. `attach`: see `DemoPool`; `converge=False` hands it
    over without waiting (an attach-mode pool converges only once netctl is registered);
    `members`: every host serves its own xapi, netctl run is given a slave's; `instances`,
    `etcd_members`, `ttl`: several netctl run instances on etcd (`DemoPool`)."""
    topo = parse_file(TOPOLOGIES / topology).relabel(prefix, management)
    clear_dead_lab(prefix)
    pool = DemoPool(topo, ports=ports, settings=settings, attach=attach, members=members,
                    instances=instances, etcd_members=etcd_members, ttl=ttl)
    try:
        pool.up()
        if converge:
            pool._wait(pool.converged, 90, "netctl run convergence")
        if lacp and converge:
            assert pool.lab is not None and pool.lab.wait_lacp(20)
        yield pool
    finally:
        pool.down()
    assert lab_footprint(prefix) == NOTHING


def capture(lab: Lab, node: str, iface: str, action: Callable[[], object],
            seconds: float = 1.5, expression: tuple[str, ...] = ()) -> str:
    """tcpdump on a lab node's interface (`any`: all of them) while `action()` runs: what
    arrived (text, one frame a line), optionally only what matches a pcap `expression`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cap.txt"
        with open(out, "w") as sink:
            cap = lab.popen(node, ["tcpdump", "-l", "-n", "-e", "-Q", "in", "-i", iface,
                                   *expression], stdout=sink, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1.0)
                action()
                time.sleep(seconds)
            finally:
                cap.terminate()
                cap.wait(timeout=10)
        return out.read_text()
