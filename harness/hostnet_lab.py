"""A lab whose host networking is built by netctl (issue 4), from the xapi simulator's pool:

topology → lab (host OVS instances empty) + xapi simulator → XapiSync (official XenAPI client)
→ PoolState → `vlan.compile_host` per host → `netctl.sinks.ovsdb.HostOvsdb.apply` over each host's
OVSDB TCP endpoint → dom0 addresses (`HostConfig.addresses`) put on the bridge devices → VMs
start. This is the "host IP configurator" of the lab: a real host's networkd does that part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import XenAPI

from harness.footprint import NOTHING, clear_dead_lab, lab_footprint
from netctl.hostconfig import HostConfig
from netctl.lab.lab import Lab
from netctl.model import PoolState
from netctl.sinks.ovsdb import HostOvsdb
from netctl.sources.xapi.sync import XapiSync
from netctl.topology import parse_file
from netctl.xapisim.server import serve
from netctl.xapisim.sim import Simulator
from vlan import compile_host

# The lab topologies of the host-networking tests (data files, not test code).
DATA = Path(__file__).resolve().parent.parent / "topologies"


class HostnetLab:
    """The lab, the simulated xapi and netctl's per-host OVSDB connections, up together."""

    def __init__(self, topology: str, prefix: str, management: str,
                 xapi_setup: Callable[[XenAPI.Session], None] | None = None) -> None:
        self.topology = parse_file(DATA / topology).relabel(prefix, management)
        clear_dead_lab(prefix)
        self.prefix = prefix
        self.lab = Lab.up(self.topology, host_networking="none")
        self.dbs: dict[str, HostOvsdb] = {}
        self.configs: dict[str, HostConfig] = {}
        self.server = None
        try:
            self.sim = Simulator.from_topology(self.topology)
            self.server = serve(self.sim, "127.0.0.1", 0)
            if xapi_setup is not None:
                session = XenAPI.Session(self.server.url)
                session.xenapi.login_with_password("root", "netctl", "1.0", "test")
                xapi_setup(session)
                session.xenapi.session.logout()
            sync = XapiSync(self.server.url, "root", "netctl")
            sync.connect()
            self.state: PoolState = sync.state
            self.apply()
            self.lab.start_vms()
        except BaseException:
            self.down()
            raise

    def host_ref(self, name: str) -> str:
        return next(h.ref for h in self.state.hosts.values() if h.name_label == name)

    def apply(self) -> None:
        for host in self.topology.hosts:
            config = compile_host(self.state, self.host_ref(host.name), datapath_type="netdev")
            assert config.problems == (), config.problems
            db = self.dbs.get(host.name)
            if db is None:
                db = self.dbs[host.name] = HostOvsdb(self.lab.ovsdb_endpoint(host.name)).connect()
            db.apply(config)
            # the addresses below go on bridge devices ovs-vswitchd creates: wait until it
            # has applied the change (apply returns once it is written)
            if not db.wait_in_effect():
                raise TimeoutError(f"{host.name}: ovs-vswitchd did not apply the configuration "
                                   f"in {db.timeout:.0f} s ({db.progress.state()})")
            self.configs[host.name] = config
            self.configure_addresses(host.name, config)

    def configure_addresses(self, host: str, config: HostConfig) -> None:
        """dom0's IP configuration on the bridge devices (networkd's job on a real host)."""
        for addr in config.addresses:
            self.lab.exec(host, ["ip", "link", "set", addr.device, "up"])
            self.lab.own_ip(host, addr.device)
            self.lab.exec(host, ["ip", "addr", "replace", addr.cidr, "dev", addr.device])

    def ping(self, node: str, address: str, count: int = 3, interval: float = 0.2) -> bool:
        proc = self.lab.exec(node, ["ping", "-n", "-c", str(count), "-i", str(interval),
                                    "-W", "1", address], check=False)
        return proc.returncode == 0

    def wait_ping(self, node: str, address: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(node, address, count=1):
                return True
        return False

    def down(self) -> None:
        for db in self.dbs.values():
            db.close()
        if self.server is not None:
            self.server.stop()
        self.lab.down()
        assert lab_footprint(self.prefix) == NOTHING
