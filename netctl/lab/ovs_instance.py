"""One Open vSwitch instance (ovsdb-server + ovs-vswitchd) running inside one lab namespace.

This is what makes a lab namespace a pool *host*: its own database, sockets, pidfiles and logs
in its own directory, so bridge names such as `xenbr0` repeat across hosts as on real hosts,
and its OVSDB answers on the host's management address over TCP like a real host's would.
All bridges are `datapath_type=netdev` (userspace datapath): this machine has no OVS module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from netctl.lab import netns
from netctl.lab.processes import OwnedProcess
from netctl.model.hostport import ovs_active, ovs_passive

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
OVSDB_PORT = 6640


@dataclass(frozen=True)
class OvsInstance:
    """Handle on an OVS instance; cheap to rebuild from the lab state (namespace + directory)."""

    ns: str
    rundir: Path
    ovsdb_address: str | None = None  # management IPv4/IPv6 for ptcp:6640 (None: unix only)

    @property
    def db_sock(self) -> Path:
        return self.rundir / "db.sock"

    @property
    def ovsdb_endpoint(self) -> str:
        """The endpoint a controller uses (TCP on the management network)."""
        return (
            ovs_active("tcp", self.ovsdb_address, OVSDB_PORT)
            if self.ovsdb_address
            else f"unix:{self.db_sock}"
        )

    def env(self) -> dict[str, str]:
        d = str(self.rundir)
        return {**os.environ, "OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d}

    def start(self, system_id: str, hostname: str) -> list[OwnedProcess]:
        """Create the database and start both daemons; returns the processes to record."""
        started = [self.start_ovsdb()]
        self.vsctl("--no-wait", "init", "--", "set", "Open_vSwitch", ".",
                   f"external_ids:system-id={system_id}", f"external_ids:hostname={hostname}")
        netns.run(self.ns, ["ovs-vswitchd", f"unix:{self.db_sock}",
                            f"--pidfile={self.rundir / 'ovs-vswitchd.pid'}", "--detach",
                            f"--log-file={self.rundir / 'ovs-vswitchd.log'}"], env=self.env())
        started.append(OwnedProcess.from_pidfile(self.rundir / "ovs-vswitchd.pid",
                                                 f"{self.ns} ovs-vswitchd"))
        return started

    def start_ovsdb(self) -> OwnedProcess:
        """Start (or restart, keeping its database) this host's ovsdb-server."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        db = self.rundir / "conf.db"
        if not db.exists():
            netns.run(None, ["ovsdb-tool", "create", str(db), str(SCHEMA)])
        # managers (`set-manager`) and their SSL settings come from the database, as on a
        # XenServer host, where xapi's openvswitch-config-update sets them
        remotes = [f"--remote=punix:{self.db_sock}",
                   "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                   "--private-key=db:Open_vSwitch,SSL,private_key",
                   "--certificate=db:Open_vSwitch,SSL,certificate",
                   "--bootstrap-ca-cert=db:Open_vSwitch,SSL,ca_cert"]
        if self.ovsdb_address:
            remotes.append(f"--remote={ovs_passive('ptcp', OVSDB_PORT, self.ovsdb_address)}")
        pidfile = self.rundir / "ovsdb-server.pid"
        pidfile.unlink(missing_ok=True)
        netns.run(self.ns, ["ovsdb-server", str(db), *remotes, f"--pidfile={pidfile}",
                            "--detach", f"--log-file={self.rundir / 'ovsdb-server.log'}"],
                  env=self.env())
        return OwnedProcess.from_pidfile(pidfile, f"{self.ns} ovsdb-server")

    def vsctl(self, *args: str, check: bool = True) -> str:
        return netns.run(
            self.ns,
            ["ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=30", *args],
            env=self.env(),
            check=check,
        ).stdout.strip()

    def bridge_exists(self, bridge: str) -> bool:
        argv = ["ovs-vsctl", f"--db=unix:{self.db_sock}", "br-exists", bridge]
        return netns.run(self.ns, argv, env=self.env(), check=False).returncode == 0

    def appctl(self, *args: str, check: bool = True) -> str:
        """ovs-appctl to this instance's ovs-vswitchd (its control socket is found, as OVS's own
        tools find it, through OVS_RUNDIR and the pidfile: the same works in `netctl lab cli`)."""
        return netns.run(
            self.ns, ["ovs-appctl", "-t", "ovs-vswitchd", *args], env=self.env(), check=check
        ).stdout.strip()

    def ofctl(self, *args: str, check: bool = True) -> str:
        """ovs-ofctl against a bridge of this instance (finds BRIDGE.mgmt through OVS_RUNDIR)."""
        return netns.run(self.ns, ["ovs-ofctl", *args], env=self.env(), check=check).stdout.strip()
