"""Processes the lab started, recorded so that exactly those (and nothing else) can be stopped.

A PID alone is not an identity: it can be reused after the process dies. We record the PID with
its start time (field 22 of /proc/PID/stat) and stop a process only if both still match.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class OwnedProcess:
    pid: int
    starttime: int  # clock ticks since boot, from /proc/PID/stat
    what: str  # e.g. "host1 ovs-vswitchd"

    @classmethod
    def from_pid(cls, pid: int, what: str) -> OwnedProcess:
        return cls(pid=pid, starttime=_starttime(pid), what=what)

    @classmethod
    def from_pidfile(cls, path: Path, what: str, timeout: float = 10.0) -> OwnedProcess:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return cls.from_pid(int(path.read_text().strip()), what)
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: no pid in {path} after {timeout}s") from None
                time.sleep(0.02)

    def alive(self) -> bool:
        try:
            return _starttime(self.pid) == self.starttime
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`, only if this is still the process we started."""
        if not self.alive():
            return
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.alive():
            self._signal(signal.SIGKILL)
            while self.alive():
                time.sleep(0.02)

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass  # it ended between our check and the signal: what we wanted

    def to_json(self) -> dict:
        return asdict(self)


def _starttime(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; fields after the closing paren are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is as good as gone
        raise OSError("zombie")
    return int(fields[19])
