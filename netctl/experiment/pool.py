"""`Experiment.up(...)`: a pool under `netctl run` on the lab, for a script to drive and measure.

What comes up is what `make demo` runs (`netctl.cli.demo.DemoPool`): the lab with empty host
OVS instances, the xapi simulator, the lab agent playing xenopsd/networkd from xapi, and
`netctl run`, which builds bridges, bonds, VLANs, tunnels and every flow table. The block
gets it once netctl has converged (every host's OVSDB written, every switch's table, every
VIF plugged, every tunnel proven by BFD, every LACP bond negotiated), and drives it the way an
operator and a hypervisor would: XenAPI calls (`xapi`), lab actions (`lab`: exec in a VM,
pull a cable). Leaving the block stops every process the pool started (by PID) and removes
every namespace and link of its prefix, then checks the machine itself: anything left of the
prefix is an error.

Why a context manager and not a fixture: an experiment is a script, run by hand at several
sizes; the same object serves a test (`with Experiment.up(...) as ex:` in a test function).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from netctl.cli.demo import DemoPool
from netctl.experiment.measure import PingStream, timed
from netctl.experiment.topo import PoolBuilder
from netctl.lab.footprint import NOTHING, lab_footprint
from netctl.lab.lab import Lab
from netctl.topology import Topology, parse_file


def as_topology(source: Topology | PoolBuilder | str | Path, prefix: str,
                management: str) -> Topology:
    """A topology file, a parsed `Topology` or a `PoolBuilder`, under `prefix` and
    `management` (names, MACs and UUIDs are the pool's own: only the lab's names change)."""
    if isinstance(source, PoolBuilder):
        return source.topology(prefix, management)
    topology = source if isinstance(source, Topology) else parse_file(source)
    return topology.relabel(prefix, management)


class Experiment:
    """A running pool: its `topology`, the `lab`, the XenAPI session (`xapi` is
    `session.xenapi`), netctl's `/status`, and the actions experiments repeat."""

    def __init__(self, pool: DemoPool) -> None:
        self.pool = pool
        assert pool.lab is not None and pool.session is not None
        self.topology: Topology = pool.topology
        self.session = pool.session
        self.started = time.monotonic()
        self.converged_s: float | None = None

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    @contextmanager
    def up(cls, source: Topology | PoolBuilder | str | Path, prefix: str, management: str,
           ports: tuple[int, int, int], settings: dict[str, dict] | None = None,
           timeout: float = 120.0) -> Iterator[Experiment]:
        """Bring the pool up under lab `prefix` (2-4 characters: every namespace and link is
        named `prefix-...`), management network `management` (a /24 of this machine's that
        no route uses), `ports` (xapi simulator, OpenFlow, metrics: on loopback and the
        management network). `settings`: extra `netctl run` configuration by section
        (netctl/service/config.py). Waits up to `timeout` s for convergence."""
        topology = as_topology(source, prefix, management)
        left = lab_footprint(prefix)
        if left != NOTHING:
            raise RuntimeError(f"lab {prefix} exists already (another run, or one that died: "
                               f"`netctl lab down --lab {prefix}`): {left}")
        pool = DemoPool(topology, ports=ports, settings=settings)
        try:
            started = time.monotonic()
            pool.up()
            pool._wait(pool.converged, timeout, "netctl run convergence")
            assert pool.lab is not None
            if not pool.lab.wait_lacp(30):
                raise RuntimeError("LACP did not negotiate on every switch-side bond")
            ex = cls(pool)
            ex.converged_s = time.monotonic() - started
            yield ex
        finally:
            pool.down()
            left = lab_footprint(prefix)
            if left != NOTHING:
                raise RuntimeError(f"lab {prefix} left behind: {left}")

    # ------------------------------------------------------------------ handles
    @property
    def lab(self) -> Lab:
        """The lab, its record re-read (the lab agent moves VMs and plugs VIFs)."""
        assert self.pool.lab is not None
        return self.pool.lab.reload()

    @property
    def xapi(self) -> Any:
        return self.session.xenapi

    def status(self) -> dict:
        """netctl run's `/status` (the summary; {} when it does not answer)."""
        return self.pool.status()

    def metrics(self) -> str:
        """netctl run's Prometheus text."""
        url = f"http://127.0.0.1:{self.pool.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    # ------------------------------------------------------------------ XenAPI by name
    def ref(self, cls: str, name: str) -> str:
        """The ref of a host, VM or network by its name in the topology."""
        getter = {"host": self.topology.host, "VM": self.topology.vm,
                  "network": self.topology.network}[cls]
        return self.pool.ref(cls, getter(name).uuid)

    def vif_ref(self, vm: str, device: int) -> str:
        return self.pool.vif_ref(vm, device)

    def migrate(self, vm: str, host: str) -> None:
        """`VM.pool_migrate` through XenAPI (the lab agent moves the VM's VIFs)."""
        self.xapi.VM.pool_migrate(self.ref("VM", vm), self.ref("host", host), {})

    def plug(self, vm: str, device: int) -> None:
        self.xapi.VIF.plug(self.vif_ref(vm, device))

    def unplug(self, vm: str, device: int) -> None:
        self.xapi.VIF.unplug(self.vif_ref(vm, device))

    # ------------------------------------------------------------------ what the lab shows
    def where(self, vm: str) -> str:
        """The host the lab runs `vm` on ("-" when it does not run)."""
        return self.lab.vm_host(vm)

    def plugged(self, vm: str, device: int) -> bool:
        return device in self.lab.state.plugged.get(vm, [])

    def address(self, vm: str, device: int = 0) -> str:
        """The first IPv4 address of a topology VM's VIF (without its prefix length)."""
        return self.lab.vif(vm, device).ipv4[0].split("/")[0]

    def exec(self, node: str, *argv: str, check: bool = True) -> str:
        """Run a command in a lab node (VM, host, switch, outside machine): its stdout."""
        return self.lab.exec(node, list(argv), check=check).stdout

    def ping(self, node: str, address: str, wait: float = 0.5, tries: int = 1) -> bool:
        """One echo from `node` answered (any of `tries`)."""
        family = "-6" if ":" in address else "-4"
        return any(self.lab.exec(node, ["ping", family, "-n", "-c", "1", "-W", str(wait),
                                        address], check=False).returncode == 0
                   for _ in range(tries))

    def ping_stream(self, node: str, address: str, duration: float, **kw: Any) -> PingStream:
        """`ping -D` every 9 ms for `duration` s, started now (`.figures()` at the end)."""
        return PingStream(self.pool.lab, node, address, duration, **kw)  # type: ignore[arg-type]

    def wait(self, predicate: Any, timeout: float = 30.0) -> float | None:
        """Seconds until `predicate()` holds (None: not within `timeout`)."""
        return timed(predicate, timeout)

    # ------------------------------------------------------------------ cables
    def cut(self, host: str, nic: str) -> None:
        """Pull a host NIC's cable at the switch: both ends lose carrier."""
        self.lab.set_cable(host, nic, up=False)

    def reconnect(self, host: str, nic: str) -> None:
        self.lab.set_cable(host, nic, up=True)
        self.lab.silence_cable(host, nic, silent=False)

    def silence(self, host: str, nic: str) -> None:
        """Cut a cable silently: carrier stays up, no frame crosses (only LACP notices)."""
        self.lab.silence_cable(host, nic)

    def tx_packets(self, node: str, device: str) -> int:
        return int(self.exec(node, "cat", f"/sys/class/net/{device}/statistics/tx_packets"))
