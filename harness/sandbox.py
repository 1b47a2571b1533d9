"""A real ovsdb-server + ovs-vswitchd for tests: the database in the root namespace (so TCP and
SSL endpoints on loopback are reachable from here), ovs-vswitchd in a namespace of its own
(`t4o-N`, with veth NICs eth0..eth3) so its netdev bridges stay out of the root namespace.

Everything it starts it stops by PID; everything it creates it deletes (namespace, directory).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60, **kw)


class OvsSandbox:
    def __init__(self, name: str = "t4o") -> None:
        self.ns = f"{name}-{os.getpid() % 10000}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"netctl-{name}-"))
        self.tcp_port = free_port()
        self.ssl_port = free_port()
        self.pids: dict[str, int] = {}
        self._make_certs()
        run(["ip", "netns", "add", self.ns])
        self.nsexec(["ip", "link", "set", "lo", "up"])
        try:
            for i in range(4):  # NICs: veth pairs (no dummy module here), peers left unused
                self.nsexec(["ip", "link", "add", f"eth{i}", "type", "veth", "peer", "name",
                             f"peer{i}"])
                for dev in (f"eth{i}", f"peer{i}"):
                    self.nsexec(["ip", "link", "set", dev, "up"])
            self.start_ovsdb(fresh=True)
        except BaseException:
            self.close()
            raise
        env = self.env()
        self.nsexec(["ovs-vswitchd", f"unix:{self.sock}", f"--pidfile={self.dir}/vswitchd.pid",
                     "--detach", f"--log-file={self.dir}/vswitchd.log",
                     f"--unixctl={self.dir}/vswitchd.ctl"], env=env)
        self.pids["vswitchd"] = int((self.dir / "vswitchd.pid").read_text())

    # --- endpoints ---------------------------------------------------------------------------
    @property
    def sock(self) -> Path:
        return self.dir / "db.sock"

    @property
    def unix(self) -> str:
        return f"unix:{self.sock}"

    @property
    def tcp(self) -> str:
        return f"tcp:127.0.0.1:{self.tcp_port}"

    @property
    def ssl(self) -> str:
        return f"ssl:127.0.0.1:{self.ssl_port}"

    def env(self) -> dict[str, str]:
        d = str(self.dir)
        return {**os.environ, "OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d}

    def nsexec(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.ns, *argv], **kw)

    # --- ovsdb-server ------------------------------------------------------------------------
    def start_ovsdb(self, fresh: bool = False) -> None:
        db = self.dir / "conf.db"
        if fresh and db.exists():
            db.unlink()
        if not db.exists():
            run(["ovsdb-tool", "create", str(db), SCHEMA])
        c = self.dir
        run(["ovsdb-server", str(db), f"--remote=punix:{self.sock}",
             f"--remote=ptcp:{self.tcp_port}:127.0.0.1",
             f"--remote=pssl:{self.ssl_port}:127.0.0.1",
             f"--private-key={c}/server.key", f"--certificate={c}/server.crt",
             f"--ca-cert={c}/ca.crt",
             f"--pidfile={c}/ovsdb.pid", "--detach", f"--log-file={c}/ovsdb.log",
             f"--unixctl={c}/ovsdb.ctl"], env=self.env())
        self.pids["ovsdb"] = int((c / "ovsdb.pid").read_text())
        if fresh:
            self.vsctl("--no-wait", "init")

    def stop_ovsdb(self) -> None:
        self._kill("ovsdb")

    def restart_ovsdb(self, wipe: bool) -> None:
        self.stop_ovsdb()
        self.start_ovsdb(fresh=wipe)

    def _kill(self, what: str) -> None:
        pid = self.pids.pop(what, None)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self._kill("vswitchd")
        self._kill("ovsdb")
        run(["ip", "netns", "del", self.ns], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- tools -------------------------------------------------------------------------------
    def vsctl(self, *args: str) -> str:
        return run(["ovs-vsctl", f"--db={self.unix}", "--timeout=20", *args],
                   env=self.env()).stdout.strip()

    def appctl(self, *args: str) -> str:
        return run(["ovs-appctl", "-t", f"{self.dir}/vswitchd.ctl", *args]).stdout.strip()

    def table(self, table: str) -> dict[str, dict]:
        """name -> {column: python value} for every row of Bridge / Port / Interface."""
        out = json.loads(self.vsctl("--format=json", "list", table))
        rows = {}
        for data in out["data"]:
            row = {h: _value(v) for h, v in zip(out["headings"], data, strict=True)}
            rows[row["name"]] = row
        return rows

    def settled_versions(self, quiet: float = 0.3, timeout: float = 10.0) -> dict[str, str]:
        """`versions()` once ovs-vswitchd has stopped writing its own status columns (a bond
        Port's `bond_active_slave`, say, as its members settle): two reads `quiet` apart
        agree. A test that proves netctl writes nothing compares against this."""
        deadline = time.monotonic() + timeout
        last = self.versions()
        while True:
            time.sleep(quiet)
            now = self.versions()
            if now == last or time.monotonic() > deadline:
                return now
            last = now

    def versions(self) -> dict[str, str]:
        """table/name -> _version (a new uuid whenever the row is written)."""
        tables = ("Bridge", "Port", "Interface", "Controller", "Open_vSwitch")
        ops = [{"op": "select", "table": t, "where": [],
                "columns": ["_version", "name" if t not in ("Controller", "Open_vSwitch")
                            else "_uuid"]} for t in tables]
        out = json.loads(run(["ovsdb-client", "transact", self.unix,
                              json.dumps(["Open_vSwitch", *ops])]).stdout)
        versions = {}
        for table, result in zip(tables, out, strict=True):
            for i, row in enumerate(sorted(result["rows"], key=lambda r: str(r))):
                name = row.get("name", str(i))
                versions[f"{table}/{name}"] = str(row["_version"])
        return versions

    def _any(self, table: str) -> dict[str, dict]:
        if table in ("Bridge", "Port", "Interface"):
            return self.table(table)
        out = json.loads(self.vsctl("--format=json", "list", table))
        return {str(i): {h: _value(v) for h, v in zip(out["headings"], d, strict=True)}
                for i, d in enumerate(out["data"])}

    def _make_certs(self) -> None:
        d = self.dir
        subj = "/CN=netctl-test-ca"
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", "-subj", subj])
        for who in ("server", "client"):
            run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/{who}.key",
                 "-out", f"{d}/{who}.csr", "-subj", f"/CN=netctl-{who}"])
            run(["openssl", "x509", "-req", "-in", f"{d}/{who}.csr", "-CA", f"{d}/ca.crt",
                 "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-days", "2",
                 "-out", f"{d}/{who}.crt"])


def _value(v):
    """OVSDB JSON (["set", [...]], ["map", [...]], ["uuid", u]) → Python."""
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return [_value(x) for x in v[1]]
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return {k: _value(x) for k, x in v[1]}
    if isinstance(v, list) and len(v) == 2 and v[0] == "uuid":
        return v[1]
    return v
