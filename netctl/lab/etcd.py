"""A real etcd cluster on loopback for tests and benchmarks (Debian's `etcd-server`, 3.4).

N members (1 or 3), each a child process of this one with its own free client and peer ports
and its own temporary data directory. Every process is recorded by PID and stopped by PID,
never by name: the machine is shared. `stop_member(i)` kills one member as a crash would
(SIGKILL; its data directory stays), `start_member(i)` starts it again on the same ports and
data, so a test can lose and restore quorum. `close()` stops every member and deletes the
data directories.

The members run with etcd's default heartbeat (100 ms) and election timeout (1 s), so a lost
leader is replaced in about a second, as in production; leases are checked for expiry by the
leader every 500 ms (etcd's own granularity, part of any takeover time measured on it).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ETCD = "/usr/bin/etcd"
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child


def etcd_available() -> bool:
    """Whether Debian's etcd-server is installed (`make setup` installs it)."""
    return os.access(ETCD, os.X_OK)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: the kernel kills the member if this process dies, so a
    crashed test leaves no etcd behind (the parent's PID is the only name it is known by)."""
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


class EtcdCluster:
    """`size` etcd members on 127.0.0.1, started and healthy when the constructor returns.

    `.endpoints` lists the members' `host:port`; `.url` is the coordination URL netctl takes
    (`etcd3+http://127.0.0.1:P1,127.0.0.1:P2,...`: every member, so a client can go on when
    one is down)."""

    def __init__(self, size: int = 1, name: str = "netctl-etcd",
                 start_timeout: float = 30.0) -> None:
        if size not in (1, 3, 5):
            raise ValueError("an etcd cluster for tests has 1, 3 or 5 members")
        if not etcd_available():
            raise FileNotFoundError(f"{ETCD} (Debian's etcd-server; `make setup` installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.token = f"{name}-{os.getpid()}-{int(time.time() * 1000)}"
        self.members = [
            Member(name=f"m{i}", client_port=free_port(), peer_port=free_port(),
                   data_dir=self.dir / f"m{i}.etcd", log=self.dir / f"m{i}.log")
            for i in range(size)]
        try:
            for i in range(size):
                self._spawn(i)
            self.wait_healthy(range(size), start_timeout)
        except BaseException:
            self.close()
            raise

    # --- endpoints ---------------------------------------------------------------------------
    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{m.client_port}" for m in self.members]

    @property
    def url(self) -> str:
        return "etcd3+http://" + ",".join(self.endpoints)

    def member_url(self, i: int) -> str:
        """The coordination URL of one member alone."""
        return f"etcd3+http://{self.endpoints[i]}"

    # --- members -----------------------------------------------------------------------------
    def _spawn(self, i: int) -> None:
        m = self.members[i]
        cluster = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        argv = [
            ETCD, "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", cluster, "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",  # ignored on a restart: the WAL says
            "--logger", "zap", "--log-outputs", "stderr",
        ]
        with open(m.log, "ab") as log:
            m.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      preexec_fn=_die_with_parent, close_fds=True)

    def stop_member(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Stop member `i` by its PID (SIGKILL by default: a crash; the data stays)."""
        m = self.members[i]
        if m.proc is None or m.proc.poll() is not None:
            return
        os.kill(m.proc.pid, sig)
        try:
            m.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait(10)

    def start_member(self, i: int, wait: bool = True, timeout: float = 30.0) -> None:
        """Start member `i` again (same ports, same data directory) and, with `wait`, until
        it answers healthy (which needs a quorum of members up)."""
        if self.members[i].pid is not None:
            return
        self._spawn(i)
        if wait:
            self.wait_healthy([i], timeout)

    def running(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.pid is not None]

    def healthy(self, i: int) -> bool:
        """etcd's /health: true only when the member has a leader (a quorum) and answers."""
        try:
            with urllib.request.urlopen(f"{self.members[i].client_url}/health",
                                        timeout=1.0) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def status(self, i: int) -> dict | None:
        """Member `i`'s `/v3/maintenance/status` (its id, the leader it knows), None if it
        does not answer."""
        req = urllib.request.Request(f"{self.members[i].client_url}/v3/maintenance/status",
                                     data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=1.0) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def leader(self) -> int | None:
        """The index of the Raft leader now, as the running members say, or None."""
        statuses = {i: self.status(i) for i in self.running()}
        ids = {s["header"]["member_id"]: i for i, s in statuses.items() if s}
        for s in statuses.values():
            if s and s.get("leader") in ids:
                return ids[s["leader"]]
        return None

    def wait_healthy(self, members, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        todo = list(members)
        while todo:
            for i in list(todo):
                if self.members[i].proc is None or self.members[i].proc.poll() is not None:
                    raise RuntimeError(f"etcd member {i} exited: {self.tail(i)}")
                if self.healthy(i):
                    todo.remove(i)
            if todo:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd members {todo} not healthy after {timeout} s: "
                                       + " | ".join(self.tail(i) for i in todo))
                time.sleep(0.1)

    def tail(self, i: int, lines: int = 5) -> str:
        try:
            return " / ".join(self.members[i].log.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- the end -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every member by PID (SIGTERM, then SIGKILL) and delete the data."""
        for i, m in enumerate(self.members):
            if m.pid is not None:
                self.stop_member(i, signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
