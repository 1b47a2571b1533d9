"""Measuring a lab as a guest sees it: polling, ping streams (replies lost, longest gap), a
prober timing the first echo reply, nearest-rank percentiles.

Why here: the lab tests (`harness.running`), the benchmarks (`bench/`) and the experiments
(`experiments/`) time the same things; one copy of each tool keeps their figures comparable.
Every clock is CLOCK_MONOTONIC (`time.monotonic()`), which network namespaces share, so a time
read inside a VM and one read here can be subtracted.
"""

from __future__ import annotations

import math
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netctl.lab.lab import Lab

# iputils 20221126 paces `-i 0.01` at 16 ms and `-i 0.009` at 9 ms (measured on loopback):
# 9 ms is the closest to 10 ms it gives.
FAST_PING = 0.009


def until(predicate: Callable[[], object], timeout: float = 30.0, step: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def timed(predicate: Callable[[], object], timeout: float = 30.0, step: float = 0.01
          ) -> float | None:
    """Seconds until `predicate` is first true (None: not within `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured sample)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


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


@dataclass(frozen=True)
class PingFigures:
    """What one `ping -D` run saw."""

    sent: int
    lost: int
    gap_ms: float  # the longest time between two replies (inf: fewer than two replies)
    gap_at: tuple[float, float] | None  # that gap's two replies, CLOCK_MONOTONIC seconds
    spacing_ms: float  # the median time between replies: ping's real pacing
    last_at: float | None = None  # the last reply, CLOCK_MONOTONIC seconds

    @property
    def lost_ms(self) -> float:
        """Replies lost times the pacing: how long the path was broken, at ping's grain."""
        return self.lost * self.spacing_ms


def ping_figures(output: str, interval: float = FAST_PING) -> PingFigures:
    """The figures of `ping -D` output (whose stamps are wall-clock; converted here)."""
    wall_minus_mono = time.time() - time.monotonic()
    times = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", output,
                                                      re.MULTILINE)]
    m = re.search(r"(\d+) packets transmitted, (\d+) received", output)
    sent, got = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    pairs = list(zip(times, times[1:], strict=False))
    last = times[-1] - wall_minus_mono if times else None
    if not pairs:
        return PingFigures(sent, sent - got, float("inf"), None, interval * 1000, last)
    a, b = max(pairs, key=lambda ab: ab[1] - ab[0])
    spacing = 1000 * statistics.median(y - x for x, y in pairs)
    return PingFigures(sent, sent - got, 1000 * (b - a),
                       (a - wall_minus_mono, b - wall_minus_mono), spacing, last)


class PingStream:
    """`ping -D` from a lab node for `duration` seconds, started now: `figures()` waits for
    it to end. Several may run at once (one per network a migration crosses)."""

    def __init__(self, lab: Lab, node: str, address: str, duration: float,
                 interval: float = FAST_PING, extra: tuple[str, ...] = ()) -> None:
        self.interval, self.duration = interval, duration
        self.proc = lab.popen(node, ["ping", "-D", "-n", "-i", str(interval), "-W", "1",
                                     "-w", f"{duration:g}", *extra, address])

    def figures(self) -> PingFigures:
        out, _ = self.proc.communicate(timeout=self.duration + 30)
        return ping_figures(out, self.interval)


# Runs inside a VM: on each "go" line, probe DST every INTERVAL until the first echo reply or
# WINDOW s, print "<monotonic time of that reply or -1> <probes sent>", wait for the next "go".
PROBER = r"""
import os, select, socket, struct, sys, time
dst, interval, window = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
ident = os.getpid() & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack(f"!{len(b)//2}H", b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
def echo(seq):
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"netctl-bench"
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]
def drain():
    while True:
        try: s.recv(2048)
        except BlockingIOError: return
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "go":
        break
    drain()
    seq, nxt, got = 0, time.monotonic(), None
    deadline = nxt + window
    while got is None and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= nxt:
            seq = (seq + 1) & 0xFFFF
            try: s.sendto(echo(seq), (dst, 0))
            except OSError: pass
            nxt += interval
        r, _, _ = select.select([s], [], [], max(0.0, nxt - time.monotonic()))
        while r:
            try: pkt = s.recv(2048)
            except BlockingIOError: break
            ihl = (pkt[0] & 15) * 4
            typ, _, _, pid, _ = struct.unpack("!BBHHH", pkt[ihl:ihl + 8])
            if typ == 0 and pid == ident:
                got = time.monotonic(); break
    print(f"{got if got is not None else -1} {seq}", flush=True)
"""


class Prober:
    """A process in a VM that, each time it is told `go`, sends an ICMP echo to `address`
    every `interval` s until the first reply: when that reply came (monotonic), without the
    1 s steps of ping's retries or a process start in the measured interval."""

    def __init__(self, lab: Lab, node: str, address: str, interval: float = 0.0005,
                 window: float = 10.0) -> None:
        self.proc: Any = lab.popen(node, [sys.executable, "-c", PROBER, address, str(interval),
                                          str(window)], stdin=subprocess.PIPE, bufsize=1)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"prober did not start: {self.proc.stderr.read()}")

    def go(self) -> None:
        """Start probing (returns at once; `reply()` waits for the answer)."""
        self.proc.stdin.write("go\n")

    def reply(self) -> tuple[float | None, int]:
        """(monotonic time of the first reply, or None within the window; probes sent)."""
        got, sent = self.proc.stdout.readline().split()
        return (None if float(got) < 0 else float(got)), int(sent)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
