"""Benchmark (prints figures, not a test): the whole `netctl run` process at pool scale — a
XenAPI call until the bridge's bundle is committed, and the process's CPU when nothing changes.

    .venv/bin/python -m bench.process_path [--sizes 4x20,64x1000] [--samples 30]
                                           [--idle-seconds 30] [--spacing 0.3] [--keep]
    .venv/bin/python -m bench.process_path --smoke     # 2x10, 5 samples, 3 s idle

Why: `bench/scale.py` times the engine inside one process, without sockets; this one runs the
product as an operator does, and measures what its sources, threads and sinks add at 64 hosts
x 1000 VIFs against a small pool, in the same run.

Per size (HOSTSxVIFS_PER_HOST), everything on loopback and stopped by PID at the end:
- the xapi simulator seeded with a `harness.synthetic` pool, with the simulator's default
  event delay, served from a process of its own. That delay is 50 ms
  (`netctl.xapisim.sim.Simulator(event_delay=0.05)`, xapi's `event_from_delay`): every
  `event.from` sleeps it before it scans, so a change made while netctl's long poll waits
  reaches netctl ~50 ms later. It is inside every sample, at every size;
- one real `ovsdb-server` per host (unix socket in a temp dir) with `harness.fakeswitch`'s
  `CfgAcker` answering `next_cfg` as ovs-vswitchd would (no vswitchd): netctl's OVSDB
  transactions (ovsdbapp's, like `ovs-vsctl` without `--no-wait`) bump `next_cfg` and wait
  for `cur_cfg`; without the ack each host's first apply would time out (20 s) and retry;
- a real `netctl run` (`python -m netctl.cli run --xapi URL --password-file F --config CFG`;
  OpenFlow and metrics on free loopback ports, `ovsdb.hosts` naming each host's socket,
  `datapath_type: netdev`), started through a few lines that give each of its threads its
  Python name as the kernel's thread name (`/proc/PID/task/*/comm`), so per-thread CPU can be
  named;
- `harness.fakeswitch` switches for every bridge of every host (datapath ids, port names and
  numbers as OVS and the hypervisor give them), connected to netctl's OpenFlow port.

Figures:
- **converged**: from `netctl run` started to every switch's first bundle committed (full
  sync, first round, every table sent), and until `/status` shows every host applied, every
  VIF with its port, every switch's table counted; with the CPU seconds netctl (by thread),
  the simulator and the fake switches (this process) spent until then. The switches connect
  as soon as netctl listens, long before its full sync ends, as existing bridges do when
  netctl restarts;
- **locking change**: `--samples` `VIF.set_locking_mode` calls through the official XenAPI
  client on random VIFs (to `locked`, back to `unlocked` or `network_default`), `--spacing` s
  apart: t0 = `time.monotonic()` just before the call, t1 = when the VIF's switch committed
  the first bundle after t0 holding a flow-mod that matches the VIF's port (`time.monotonic`
  is one clock for every process on Linux). p50/p90/p99 (nearest rank) in ms. The
  simulator's event delay is inside every sample (the change waits for it before netctl can
  see it) and cancels out of the ratio between sizes;
- **idle**: with nothing changing, netctl's utime+stime over `--idle-seconds` (from
  `/proc/PID/stat`) as % of one core, and per thread from each thread's `schedstat`
  (nanoseconds; grouped by name: the reconcile thread, `ovsdb-<host>` workers, os-ken's
  per-switch loops, ...) with the reconcile thread's CPU per 0.25 s tick (its timer:
  `netctl/service/loop.py`). The flow audit (every 60 s per switch) may or may not fall in
  the window;
- netctl's RSS (and peak) after the idle window, what its `/status` counted (bundles,
  flow-mods, full diffs, audits, repairs, errors), what the fake switches saw, and the
  warnings and errors in its log.
The last lines compare the largest size with the smallest: p90 ratio against 1.5x, idle CPU
of the largest against 2% of a core. Nothing is asserted: these are figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.fakeswitch import (  # noqa: E402
    FakeSwitches,
    PoolSwitches,
    VifPort,
    pool_switches,
    start_ackers,
)
from harness.sandbox import SCHEMA, free_port  # noqa: E402
from harness.synthetic import PoolSpec, SimulatorProcess  # noqa: E402

SMOKE_FIGURES = (
    r"^size +2 x 10: \d+ switches, \d+ VIFs, simulator event delay +[\d.]+ ms",
    r"^  converged: every switch's first bundle +[\d.]+ s after start",
    r"^  locking change \(XenAPI call -> bundle committed\): p50 +[\d.]+ ms +p90 +[\d.]+ ms",
    r"^  idle [\d.]+ s: netctl run +[\d.]+% of one core",
    r"^  netctl RSS +\d+ MiB",
    r"^p90 ratio .* = +[\d.]+x \(target",
)
# ovsdb-server per host: OVS, which `make setup` installs as root (it would run as any user)
SMOKE_NEEDS_ROOT = True
USER, PASSWORD = "root", "process-path"
ROOT = Path(__file__).resolve().parents[1]
TICK_SECONDS = 0.25  # netctl's reconcile timer (netctl/service/loop.py)
P90_TARGET, IDLE_TARGET = 1.5, 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Run before netctl.cli: each thread's Python name becomes its kernel name (15 bytes), so
# /proc/PID/task/*/comm says which thread is which ("Thread-7 (_recv_loop)" -> "_recv_loop").
NAMED_THREADS = r"""
import ctypes, re, runpy, sys, threading
_prctl = ctypes.CDLL(None).prctl
def _name(text):
    m = re.fullmatch(r"Thread-\d+ \((.+)\)", text)
    _prctl(15, (m.group(1) if m else text).encode()[:15], 0, 0, 0)
_inner = threading.Thread._bootstrap_inner
def _bootstrap_inner(self):
    _name(self.name)
    _inner(self)
threading.Thread._bootstrap_inner = _bootstrap_inner
_name("netctl-main")
import os, signal
if os.environ.get("NETCTL_BENCH_GCLOG"):  # every full collection: when, how long (ms)
    import gc, time
    _gc_log, _gc_start = open(os.environ["NETCTL_BENCH_GCLOG"], "a", buffering=1), [0.0]
    def _gc_timed(phase, info):
        if info["generation"] == 2:
            if phase == "start":
                _gc_start[0] = time.perf_counter()
            else:
                _gc_log.write(f"{time.monotonic():.3f} "
                              f"{(time.perf_counter() - _gc_start[0]) * 1000:.1f}\n")
    gc.callbacks.append(_gc_timed)
if os.environ.get("NETCTL_BENCH_TRACEMALLOC"):  # --memory: where the heap is, on SIGUSR1
    import tracemalloc
    tracemalloc.start(1)
    def _dump(*_):
        snap = tracemalloc.take_snapshot()
        path = os.environ["NETCTL_BENCH_TRACEMALLOC"]
        with open(path + ".tmp", "w") as out:
            for key in ("filename", "lineno"):
                stats = snap.statistics(key)
                out.write(f"traced {sum(s.size for s in stats) / 2**20:.0f} MiB by {key}:\n")
                for s in stats[:25]:
                    f = s.traceback[0]
                    out.write(f"  {s.size / 2**20:7.1f} MiB {s.count:9d}  {f.filename}"
                              + (f":{f.lineno}" if key == "lineno" else "") + "\n")
        os.replace(path + ".tmp", path)  # whole, for the bench reading it
    signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["netctl", *sys.argv[1:]]
runpy.run_module("netctl.cli", run_name="__main__", alter_sys=True)
"""


# ------------------------------------------------------------------------------- processes


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM to that PID, SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def ovsdb_servers(names: list[str], workdir: Path) -> Iterator[dict[str, str]]:
    """One ovsdb-server per host name (an Open_vSwitch row, a unix socket); yields
    {name: socket path}; stops each by its PID."""
    procs: list[subprocess.Popen] = []
    sockets: dict[str, str] = {}
    try:
        for name in names:
            d = workdir / name
            d.mkdir()
            db = d / "conf.db"
            subprocess.run(["ovsdb-tool", "create", str(db), SCHEMA], check=True)
            subprocess.run(["ovsdb-tool", "transact", str(db), json.dumps(
                ["Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}])],
                check=True, capture_output=True)
            procs.append(subprocess.Popen(
                ["ovsdb-server", str(db), f"--remote=punix:{d / 'db.sock'}",
                 f"--unixctl={d / 'ovsdb.ctl'}", f"--log-file={d / 'ovsdb.log'}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            sockets[name] = str(d / "db.sock")
        deadline = time.monotonic() + 30
        while not all(Path(s).exists() for s in sockets.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("ovsdb-server did not create its socket within 30 s")
            time.sleep(0.05)
        yield sockets
    finally:
        for proc in procs:
            stop_process(proc)


@dataclass
class Netctl:
    """`netctl run` as a subprocess, with its config, log and /status."""

    workdir: Path
    xapi_url: str
    ovsdb: dict[str, str]  # host name_label -> socket path
    openflow_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started: float = 0.0
    memory: bool = False  # --memory: run it under tracemalloc, print where its heap is
    stats_interval: float = 5.0  # --stats-interval: netctl's statistics poll (0: off)

    @property
    def log(self) -> Path:
        return self.workdir / "netctl.log"

    @property
    def gc_log(self) -> Path:
        """netctl's full (generation 2) collections: monotonic time and milliseconds."""
        return self.workdir / "gc.log"

    def full_collections(self, since: float, until: float) -> list[float]:
        """Milliseconds of each full collection that ended in [since, until] (monotonic)."""
        if not self.gc_log.exists():
            return []
        out = []
        for line in self.gc_log.read_text().splitlines():
            at, ms = (float(v) for v in line.split())
            if since <= at <= until:
                out.append(ms)
        return out

    def start(self) -> None:
        config = self.workdir / "netctl.yaml"
        config.write_text(json.dumps({  # JSON is YAML
            # (port_config off: the fake switches speak OpenFlow 1.3 only, and the port after
            # a free one need not be free)
            "openflow": {"listen": f"127.0.0.1:{self.openflow_port}", "hub": "native",
                         "port_config": False},
            "ovsdb": {"hosts": {h: f"unix:{p}" for h, p in self.ovsdb.items()},
                      "datapath_type": "netdev"},
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "stats": {"interval": self.stats_interval},
        }, indent=1))
        (self.workdir / "password").write_text(PASSWORD)
        self.started = time.monotonic()
        env = dict(os.environ, NETCTL_BENCH_GCLOG=str(self.gc_log))
        if self.memory:
            env["NETCTL_BENCH_TRACEMALLOC"] = str(self.workdir / "heap.txt")
        with open(self.log, "w") as log:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-c", NAMED_THREADS, "run", "--xapi", self.xapi_url,
                 "--username", USER, "--password-file", str(self.workdir / "password"),
                 "--config", str(config)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env=env)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict:
        """The whole /status document: `?full=1` (every VIF row), or plain /status where the
        query is not served (a netctl from before /status had views)."""
        for query in ("?full=1", ""):
            url = f"http://127.0.0.1:{self.metrics_port}/status{query}"
            try:
                with urllib.request.urlopen(url, timeout=60) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError:
                continue
            except (OSError, ValueError):
                return {}
        return {}

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def problems_in_log(self) -> list[str]:
        """Warning and error lines of its log (timestamps cut, so repeats collapse)."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [line[24:] for line in lines if re.search(r" (WARNING|ERROR|CRITICAL) ", line)
                or line.startswith("Traceback")]


# ------------------------------------------------------------------------------- /proc


def process_ticks(pid: int) -> int:
    """utime + stime of the whole process (its dead threads included), clock ticks."""
    return _ticks(Path(f"/proc/{pid}/stat").read_text())


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (kernel thread name, seconds on a CPU). From `schedstat` (nanoseconds): a
    thread's utime+stime in `stat` is rounded to whole ticks, which loses most of what each of
    hundreds of mostly idle threads uses."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out[int(task.name)] = ((task / "comm").read_text().strip(),
                                   int((task / "schedstat").read_text().split()[0]) / 1e9)
    return out


def _ticks(stat: str) -> int:
    rest = stat[stat.rindex(")") + 2:].split()  # fields from 3 (state) on
    return int(rest[11]) + int(rest[12])  # utime (14), stime (15)


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, MiB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(float(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore


# ------------------------------------------------------------------------------- one size


@dataclass
class Result:
    hosts: int
    vifs: int
    latencies: list[float] = field(default_factory=list)  # ms
    failed: int = 0
    idle_percent: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.hosts}x{self.vifs}"


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def converge(netctl: Netctl, switches: FakeSwitches, pool: PoolSwitches, simulator: int,
             timeout: float) -> None:
    """Until every switch committed its first bundle, then until /status shows every host
    applied, every VIF on its port and every switch's table counted; prints both times and
    the CPU each process spent until the last first bundle."""
    sim0, own0 = process_ticks(simulator), process_ticks(os.getpid())
    if not switches.wait(lambda: switches.all_committed() or not netctl.alive(), timeout):
        missing = [s.spec for s in switches.switches.values() if not s.commits]
        raise RuntimeError(f"{len(missing)} switches without a bundle after {timeout:.0f} s "
                           f"(e.g. {missing[0].host} {missing[0].bridge}); log: {netctl.log}")
    if not netctl.alive():
        raise RuntimeError(f"netctl run exited {netctl.proc.returncode}: see {netctl.log}")
    cpu = {"netctl run": process_ticks(netctl.pid) / CLK_TCK,
           "simulator": (process_ticks(simulator) - sim0) / CLK_TCK,
           "fake switches (this process)": (process_ticks(os.getpid()) - own0) / CLK_TCK}
    threads = _groups(thread_cpu(netctl.pid), {})
    firsts = sorted(sw.commits[0].at for sw in switches.switches.values())
    mods = sum(sw.commits[0].flow_mods for sw in switches.switches.values())
    deadline = time.monotonic() + timeout
    while True:
        st = netctl.status()
        if _complete(st, pool, len(switches.switches)):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"/status incomplete after {timeout:.0f} s: {_summary(st)}")
        time.sleep(1.0)
    done = time.monotonic() - netctl.started
    print(f"  converged: every switch's first bundle {firsts[-1] - netctl.started:7.2f} s "
          f"after start (the first at {firsts[0] - netctl.started:.2f} s; {mods} flow-mods in "
          f"{len(firsts)} first bundles); /status complete (every host applied, "
          f"{len(pool.vifs)} VIFs on their ports, every table counted) {done:.2f} s after "
          "start", flush=True)
    print("    CPU until the last first bundle: " +
          ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cpu.items()) +
          "; netctl by thread: " + _top(threads, 1.0, 5, "s"), flush=True)


def _complete(st: dict, pool: PoolSwitches, switches: int) -> bool:
    hosts = st.get("hosts", [])
    hosts_ok = len(hosts) == len(pool.hosts) and all(
        h["connected"] and h["applies"] >= 1 for h in hosts)
    ported = sum(1 for v in st.get("vifs", []) if v["port"])
    tables = [s for s in st.get("switches", []) if s["flows"] is not None]
    return hosts_ok and ported == len(pool.vifs) and len(tables) == switches


def _summary(st: dict) -> str:
    if not st:
        return "no answer"
    hosts = st.get("hosts", [])
    return (f"{sum(1 for h in hosts if h['applies'])}/{len(hosts)} hosts applied, "
            f"{sum(1 for v in st.get('vifs', []) if v['port'])} VIFs on ports, "
            f"{sum(1 for s in st.get('switches', []) if s['flows'] is not None)} tables "
            "counted")


def settle(switches: FakeSwitches, quiet: float, timeout: float) -> float:
    """Until no switch committed anything for `quiet` s; returns how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if time.monotonic() - switches.last_commit() >= quiet:
            break
        time.sleep(0.1)
    return time.monotonic() - start


def locking_samples(url: str, switches: FakeSwitches, pool: PoolSwitches, samples: int,
                    spacing: float, result: Result) -> list[tuple[float, int]]:
    """`samples` locking changes through XenAPI; appends latencies (ms) to `result`.
    Returns (XenAPI call ms, flow-mods in the bundle) per sample."""
    import XenAPI

    session = XenAPI.Session(url)
    session.xenapi.login_with_password(USER, PASSWORD, "1.0", "bench-process-path")
    rng = random.Random(9)
    vifs = sorted(pool.vifs.values(), key=lambda v: v.ref)
    modes = {v.ref: v.locking_mode for v in vifs}
    extra = []
    try:
        for _ in range(samples):
            vif = rng.choice(vifs)
            mode = "locked" if modes[vif.ref] != "locked" else \
                rng.choice(("unlocked", "network_default"))
            t0 = time.monotonic()
            session.xenapi.VIF.set_locking_mode(vif.ref, mode)
            called = time.monotonic() - t0
            modes[vif.ref] = mode
            commit = switches.wait_commit(vif.dpid, t0, _touches(vif), timeout=10)
            if commit is None:
                result.failed += 1
            else:
                result.latencies.append((commit.at - t0) * 1000)
                extra.append((called * 1000, commit.flow_mods))
            time.sleep(max(0.0, t0 + spacing - time.monotonic()))
    finally:
        with contextlib.suppress(Exception):
            session.xenapi.session.logout()
    return extra


def _touches(vif: VifPort) -> Callable:
    return lambda commit: commit.touches_port(vif.number)


def idle(netctl: Netctl, switches: FakeSwitches, seconds: float, result: Result) -> None:
    """netctl's CPU while nothing changes: the process, and its threads by name."""
    settle(switches, quiet=1.0, timeout=30)
    before_mods = switches.totals().flow_mods
    threads0, ticks0, t0 = thread_cpu(netctl.pid), process_ticks(netctl.pid), time.monotonic()
    time.sleep(seconds)
    threads1, ticks1, t1 = thread_cpu(netctl.pid), process_ticks(netctl.pid), time.monotonic()
    wall = t1 - t0
    result.idle_percent = (ticks1 - ticks0) / CLK_TCK / wall * 100
    groups = _groups(threads1, threads0)
    reconcile = sum(groups.get("netctl-reconcil", [0.0]))
    threads_sum = sum(sum(v) for v in groups.values())
    shown = _top(groups, 100 / wall, 10, "%")
    verdict = "met" if result.idle_percent <= IDLE_TARGET else "NOT met"
    print(f"  idle {wall:.0f} s: netctl run {result.idle_percent:6.2f}% of one core "
          f"({ticks1 - ticks0} ticks of 1/{CLK_TCK} s in /proc/PID/stat; its threads' "
          f"schedstat: {threads_sum / wall * 100:.2f}%; target <= {IDLE_TARGET:.0f}%: "
          f"{verdict}); reconcile thread {reconcile / wall * 100:.2f}% = "
          f"{reconcile / (wall / TICK_SECONDS) * 1000:.2f} ms per {TICK_SECONDS} s tick; "
          f"{len(threads1)} threads; flow-mods sent meanwhile: "
          f"{switches.totals().flow_mods - before_mods}", flush=True)
    print(f"    by thread: {shown}", flush=True)


def _groups(now: dict[int, tuple[str, float]], before: dict[int, tuple[str, float]]
            ) -> dict[str, list[float]]:
    """CPU seconds per thread since `before`, grouped by name (trailing digits as *)."""
    groups: dict[str, list[float]] = {}
    for tid, (name, seconds) in now.items():
        used = seconds - before.get(tid, (name, 0.0))[1]
        groups.setdefault(re.sub(r"\d+$", "*", name), []).append(used)
    return groups


def _top(groups: dict[str, list[float]], scale: float, count: int, unit: str) -> str:
    ranked = sorted(groups.items(), key=lambda kv: -sum(kv[1]))
    rest = ranked[count:]
    text = ", ".join(f"{g} {sum(v) * scale:.2f}{unit}" +
                     (f" ({len(v)} threads)" if len(v) > 1 else "") for g, v in ranked[:count])
    if rest:
        text += (f", {len(rest)} other groups ({sum(len(v) for _g, v in rest)} threads) "
                 f"{sum(sum(v) for _g, v in rest) * scale:.2f}{unit}")
    return text


def report_latency(result: Result, extra: list[tuple[float, int]], delay_ms: float) -> None:
    lat = result.latencies
    if not lat:
        print(f"  locking change (XenAPI call -> bundle committed): no sample arrived "
              f"({result.failed} failed)", flush=True)
        return
    calls = [c for c, _ in extra]
    mods = sorted(m for _, m in extra)
    print(f"  locking change (XenAPI call -> bundle committed): p50 {percentile(lat, .5):7.1f} ms"
          f"  p90 {percentile(lat, .9):7.1f} ms  p99 {percentile(lat, .99):7.1f} ms  max "
          f"{max(lat):7.1f} ms ({len(lat)} samples, {result.failed} failed; the XenAPI call "
          f"itself p50 {percentile(calls, .5):.1f} ms; {mods[len(mods) // 2]} flow-mods per "
          f"bundle (median); p50 beyond the simulator's {delay_ms:.0f} ms event delay: "
          f"{percentile(lat, .5) - delay_ms:.1f} ms)", flush=True)


def report_collections(netctl: Netctl, *windows: tuple[str, float, float]) -> None:
    """netctl's full collections (generation 2) in each window: a pause of the whole
    process that no thread can preempt (its length grows with the objects not frozen)."""
    parts = []
    for name, since, until in windows:
        pauses = netctl.full_collections(since, until)
        parts.append(f"{name} {len(pauses)}" + (f" (max {max(pauses):.0f} ms, "
                                                f"{sum(pauses):.0f} ms in all)" if pauses else ""))
    print(f"  netctl's full collections (gen 2): {'; '.join(parts)}", flush=True)


def report_counts(netctl: Netctl, switches: FakeSwitches, acks: int) -> None:
    rss, peak = memory_mib(netctl.pid)
    st = netctl.status()
    flows = st.get("flows", {})
    engine = st.get("engine", {})
    rounds = engine.get("rounds", {})
    total = switches.totals()
    print(f"  netctl RSS {rss:6.0f} MiB (peak {peak:.0f} MiB); its /status: "
          f"{flows.get('bundles')} bundles, {flows.get('flow_mods')} flow-mods, "
          f"{flows.get('full_diffs')} full diffs, {flows.get('audits')} audits, "
          f"{flows.get('repairs')} repairs, {flows.get('errors')} errors, "
          f"{rounds.get('rounds')} rounds ({rounds.get('busy_ms', 0):.0f} ms busy), "
          f"{engine.get('bridges_rebuilt')} tables built for {len(switches.switches)} "
          f"switches, {engine.get('hosts_rebuilt')} host configurations built, "
          f"{len(st.get('problems', []))} problems", flush=True)
    print(f"  fake switches: {total.connects} connects, {total.bundles} bundles, "
          f"{total.flow_mods} flow-mods applied, {switches.flow_count()} flows held, "
          f"{total.flow_dumps} flow dumps, {total.aggregates} aggregate requests, "
          f"{total.barriers} barriers, {total.echoes} echoes, {total.port_mods} port-mods, "
          f"{total.packet_outs} packet-outs, {total.unknown} requests refused "
          f"{_kinds(switches.unknown())}; "
          f"{acks} next_cfg bumps answered (ovs-vswitchd's part)", flush=True)
    problems = netctl.problems_in_log()
    distinct = list(dict.fromkeys(problems))
    print(f"  netctl log: {len(problems)} warning/error lines" +
          "".join(f"\n    {line[:160]}" for line in distinct[:6]), flush=True)


def _kinds(unknown: dict[tuple[int, int], int]) -> str:
    """(type, subtype) -> count, as "(type 18/1870 x4)" (1870: the ONF flow monitor)."""
    return "(" + ", ".join(f"type {t}/{sub} x{n}" for (t, sub), n in sorted(unknown.items())) \
        + ")" if unknown else ""


def run_size(hosts: int, vifs: int, args: argparse.Namespace) -> Result:
    result = Result(hosts, vifs)
    spec = PoolSpec(hosts=hosts, vifs_per_host=vifs)
    timeout = 60 + hosts * vifs / 100  # 64x1000: ~11 min
    with contextlib.ExitStack() as stack:  # stopped in reverse: netctl first, simulator last
        workdir = Path(tempfile.mkdtemp(prefix=f"netctl-pp-{hosts}x{vifs}-"))
        stack.callback(_remove, workdir, args.keep)
        # its default event delay; seeds in its own process while the switches are derived
        simulator = stack.enter_context(SimulatorProcess(spec, wait=False, start="spawn",
                                                         users={USER: PASSWORD}))
        t0 = time.perf_counter()
        pool = pool_switches(spec)  # while the simulator seeds, in its process
        derived = time.perf_counter() - t0
        url, seeded, delay = (simulator.ready().url, simulator.seeded,
                              simulator.event_delay)
        ports = sum(len(s.ports) for s in pool.specs)
        print(f"size {hosts:3d} x {vifs}: {len(pool.specs)} switches, {len(pool.vifs)} VIFs, "
              f"simulator event delay {delay * 1000:5.1f} ms (seeded in {seeded:.1f} s; "
              f"{ports} OpenFlow ports derived in {derived:.1f} s)", flush=True)
        sockets = stack.enter_context(ovsdb_servers(sorted(pool.hosts), workdir))
        netctl = Netctl(workdir, url, sockets, memory=args.memory,
                        stats_interval=args.stats_interval)
        switches = FakeSwitches(pool.specs, "127.0.0.1", netctl.openflow_port).start()
        stack.callback(switches.stop)
        ackers = start_ackers(switches, sockets.values())
        netctl.start()
        stack.callback(netctl.stop)
        converge(netctl, switches, pool, simulator.pid, timeout)
        settled = settle(switches, quiet=2.0, timeout=120)
        print(f"  settled: no bundle for 2 s, {settled:.1f} s after convergence", flush=True)
        sampling = time.monotonic()
        extra = locking_samples(url, switches, pool, args.samples, args.spacing, result)
        report_latency(result, extra, delay * 1000)
        idling = time.monotonic()
        idle(netctl, switches, args.idle_seconds, result)
        report_collections(netctl, ("the samples", sampling, idling),
                           ("idle", idling, time.monotonic()))
        report_counts(netctl, switches, sum(a.acks for a in ackers))
        if args.memory:
            heap = workdir / "heap.txt"
            os.kill(netctl.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 300
            while not heap.exists() and time.monotonic() < deadline:
                time.sleep(1)
            print(heap.read_text() if heap.exists() else "  (no heap snapshot)", flush=True)
    return result


def _remove(workdir: Path, keep: bool) -> None:
    if keep:
        print(f"  kept {workdir}", flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def compare(results: list[Result]) -> None:
    done = [r for r in results if r.latencies]
    if not done:
        return
    small, large = done[0], done[-1]
    p_small, p_large = percentile(small.latencies, .9), percentile(large.latencies, .9)
    ratio = p_large / p_small
    verdict = "met" if ratio <= P90_TARGET else "NOT met"
    print(f"p90 ratio {large.name} / {small.name}: {p_large:.1f} / {p_small:.1f} ms = "
          f"{ratio:.2f}x (target <= {P90_TARGET}x: {verdict})")
    verdict = "met" if large.idle_percent <= IDLE_TARGET else "NOT met"
    print(f"idle CPU of netctl run at {large.name}: {large.idle_percent:.2f}% of one core "
          f"(target <= {IDLE_TARGET:.0f}%: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4x20,64x1000",
                        help="comma-separated HOSTSxVIFS_PER_HOST, smallest first")
    parser.add_argument("--samples", type=int, default=30, help="locking changes per size")
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between changes")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--stats-interval", type=float, default=5.0,
                        help="netctl's statistics poll, seconds (its default 5; 0: off)")
    parser.add_argument("--keep", action="store_true", help="keep the work dirs (logs)")
    parser.add_argument("--smoke", action="store_true", help="2x10, 5 samples, 3 s idle")
    parser.add_argument("--memory", action="store_true",
                        help="run netctl under tracemalloc (slower) and print where its heap is "
                             "after the idle window, by file and by line")
    args = parser.parse_args()

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every `finally`: all stopped by PID

    signal.signal(signal.SIGTERM, stop)
    if args.smoke:
        args.sizes, args.samples, args.idle_seconds = "2x10", 5, 3.0
        print("smoke run: small sizes, to prove the path runs; its figures are not the "
              "benchmark's")
    results = []
    for size in args.sizes.split(","):
        hosts, vifs = (int(v) for v in size.lower().split("x"))
        results.append(run_size(hosts, vifs, args))
    compare(results)


if __name__ == "__main__":
    main()
