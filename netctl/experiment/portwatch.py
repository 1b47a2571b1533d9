"""When a port's Interface row appeared in (or left) a lab host's OVSDB, on CLOCK_MONOTONIC.

Why: benchmarks time "the port exists" -> "traffic flows". The mark comes from an
`ovsdb-client monitor` started beforehand; a Python thread reading its output can be scheduled
late (measured: up to ~1.3 ms after the reply the mark was meant to precede), so each update
is stamped with ovsdb-client's *own* receive time (`--timestamp`: wall clock, millisecond
resolution), converted to CLOCK_MONOTONIC with the offset between the two clocks taken at
start. The millisecond is floored: a mark is at most 1 ms early, so an interval measured from
it reads at most 1 ms long, never short.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from typing import Any

from netctl.lab.lab import Lab

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")


class PortWatch:
    """Interface inserts and deletes on some lab hosts, and "ready": ovs-vswitchd has added the
    port to its datapath (it wrote the row's `ofport`, the number OpenFlow will call it by):
    (monotonic time, host, op, name)."""

    def __init__(self, lab: Lab, hosts: list[str]) -> None:
        self.events: list[tuple[float, str, str, str]] = []
        self.changed = threading.Condition()
        self.procs: list[Any] = []
        self._offset = time.time() - time.monotonic()
        for host in hosts:
            proc = lab.popen(host, [
                "ovsdb-client", "--timestamp", "--format=csv", "--no-headings", "monitor",
                f"unix:{lab.ovs(host).db_sock}", "Open_vSwitch", "Interface",
                "name,ofport,!initial"], bufsize=1)
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(host, proc), daemon=True,
                             name=f"portwatch-{host}").start()

    def _read(self, host: str, proc: Any) -> None:
        stamp = None
        for raw in proc.stdout:
            line = raw.rstrip()
            if _STAMP.match(line):  # local wall clock of this update's receipt
                wall = datetime.strptime(line, "%Y-%m-%d %H:%M:%S.%f").timestamp()
                stamp = wall - self._offset
                continue
            parts = line.split(",")  # "<row uuid>,insert|delete|old|new,<name>,<ofport>"
            if stamp is None or len(parts) < 4:
                continue
            op, name, ofport = parts[1], parts[2].strip('"'), parts[3]
            numbered = ofport.isdigit() and 0 < int(ofport) < 0xFF00
            if op == "new":  # a modification: the port is in the datapath once it has a number
                if not numbered:
                    continue
                ops = ["ready"]
            elif op == "insert":
                # ovsdb-server sends the changes of transactions committed close together in
                # one update: a row inserted and numbered by ovs-vswitchd at once is both
                ops = ["insert", "ready"] if numbered else ["insert"]
            elif op == "delete":
                ops = ["delete"]
            else:
                continue
            with self.changed:
                self.events += [(stamp, host, o, name) for o in ops]
                self.changed.notify_all()

    def find(self, host: str, op: str, after: float, name: str | None = None,
             prefix: str = "", suffix: str = "") -> float | None:
        """The first matching event at or after `after` (monotonic), or None."""
        with self.changed:
            events = list(self.events)
        for t, h, o, n in events:
            if t >= after and h == host and o == op and (name is None or n == name) \
                    and n.startswith(prefix) and n.endswith(suffix):
                return t
        return None

    def wait(self, host: str, op: str, after: float, timeout: float, **match: Any
             ) -> float | None:
        """`find`, waiting up to `timeout` s for the event to be read."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = self.find(host, op, after, **match)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self.changed.wait(left)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=5)
