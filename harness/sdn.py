"""A pool under netctl's OpenFlow controller: lab + xapi simulator + controller process.

The controller runs as its own process (`netctl openflow`), exactly as an operator runs it, so
tests can stop and restart it, switch os-ken hubs, and read its status file.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import XenAPI

from harness.footprint import NOTHING, lab_footprint
from netctl.lab.lab import Lab
from netctl.topology import Topology
from netctl.xapisim.server import RunningServer, serve
from netctl.xapisim.sim import Simulator


@dataclass
class ControllerProcess:
    listen: str
    xapi_url: str
    workdir: Path
    proc: subprocess.Popen | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def status_file(self) -> Path:
        return self.workdir / "status.json"

    def start(self, hub: str = "native") -> None:
        (self.workdir / "password").write_text("netctl")
        self.status_file.unlink(missing_ok=True)
        log = open(self.workdir / f"controller-{hub}.log", "a")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "netctl.cli",
                "openflow",
                "--listen",
                self.listen,
                "--xapi",
                self.xapi_url,
                "--password-file",
                str(self.workdir / "password"),
                "--hub",
                hub,
                "--status-file",
                str(self.status_file),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def wait_converged(self, switches: int, timeout: float = 30.0) -> dict:
        """Until `switches` switches are connected and each has its table installed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"controller exited with {self.proc.returncode}")
            st = self.status()
            sws = st.get("switches", [])
            if len(sws) >= switches and all(s["flows"] is not None for s in sws):
                return st
            time.sleep(0.1)
        raise AssertionError(f"controller did not converge: {self.status()}")


@dataclass
class SdnPool:
    topology: Topology
    lab: Lab
    sim: Simulator
    server: RunningServer
    controller: ControllerProcess
    session: XenAPI.Session

    @property
    def switch_count(self) -> int:
        """Bridges with a datapath of their own, over all hosts."""
        return sum(
            len(self.lab.bridges(h.name)) - self._fake_bridges(h.name) for h in self.topology.hosts
        )

    def _fake_bridges(self, host: str) -> int:
        ovs = self.lab.ovs(host)
        return sum(ovs.vsctl("br-to-parent", b) != b for b in ovs.vsctl("list-br").split())

    def vif_ref(self, vm: str, device: int) -> str:
        uuid = next(v.uuid for v in self.topology.vm(vm).vifs if v.device == device)
        return self.session.xenapi.VIF.get_by_uuid(uuid)

    def close(self) -> None:
        self.controller.stop()
        try:
            self.session.xenapi.session.logout()
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.lab.down()
        self.server.stop()


def sdn_pool(topology: Topology, workdir: Path, port: int, hub: str = "native") -> SdnPool:
    sim = Simulator.from_topology(topology)
    server = serve(sim, "127.0.0.1", 0)
    lab = None
    try:
        listen = f"{topology.management_address(None)}:{port}"
        lab = Lab.up(topology, controller=f"tcp:{listen}")
        controller = ControllerProcess(listen, server.url, workdir)
        session = XenAPI.Session(server.url)
        session.xenapi.login_with_password("root", "netctl", "1.0", "netctl-tests")
        pool = SdnPool(topology, lab, sim, server, controller, session)
        controller.start(hub)
        controller.wait_converged(pool.switch_count)
        lab.wait_lacp(timeout=20)
        return pool
    except BaseException:
        if lab is not None:
            lab.down()
        server.stop()
        raise


def report_leftovers(prefix: str, workdir: Path, keep_logs: bool) -> None:
    """After a benchmark's lab is closed: say on stderr what of lab `prefix` is left behind
    (nothing, normally), and keep the controller's log and status (`keep_logs`, saying where)
    or remove them."""
    left = lab_footprint(prefix)
    if left != NOTHING:
        print(f"lab {prefix} left behind: {left}", file=sys.stderr)
    if keep_logs:
        print(f"controller log and status: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
