"""A pool under `netctl run` (lab + xapi simulator + lab agent + netctl run, as processes the
lab records), for lab tests and benchmarks that drive netctl as an operator does, and the
helpers they share: polling (`until`) and capturing what arrives somewhere (`capture`)."""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.footprint import NOTHING, lab_footprint
from netctl.cli.demo import DemoPool
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
    assert lab_footprint(prefix) == NOTHING, "a previous run left this lab behind"
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


class Ping:
    """`node` pings `address` every `interval` seconds while the block runs: `sent`, and
    `lost` = the requests without a reply before the last one (the request in flight when
    SIGINT stops ping has not been lost, only not waited for)."""

    def __init__(self, lab: Lab, node: str, address: str, interval: float) -> None:
        self.lab, self.node, self.address, self.interval = lab, node, address, interval
        self.sent = self.lost = 0

    def __enter__(self) -> Ping:
        self.proc = self.lab.popen(self.node, ["ping", "-n", "-i", str(self.interval), "-W",
                                               "1", self.address],
                                   stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)  # ping prints its summary
        out, _ = self.proc.communicate(timeout=10)
        found = re.search(r"(\d+) packets transmitted", out)
        self.sent = int(found.group(1)) if found else 0
        replied = {int(n) for n in re.findall(r"icmp_seq=(\d+) ttl=", out)}
        self.lost = len(set(range(1, self.sent)) - replied)


def until(predicate: Callable[[], object], timeout: float = 30.0, step: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


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
