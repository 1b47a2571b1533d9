"""Convergence: a VIF is plugged -> first echo reply across hosts; p50/p90/p99/max and failures
per interval, over 300 plugs, idle or under a storm of other changes through XenAPI.

Why: users feel one number above all, "the VM's network works when its port appears" (issue
12). The issue's targets: p99 <= 25 ms and 0 failed samples idle; p99 <= 100 ms while the pool
is busy. This measures netctl's reactive path under the real controller *process* (`netctl
openflow`, native hub) fed by the xapi simulator (`harness.sdn`): OVS reports the new port
(port-status), the controller recomputes that port's flows and sends them in one bundle, and
holds and replays the first frames of a port it has no rules for yet.

Scenarios:
- idle (default): the mini pool (`topologies/mini-pool.yaml`: 2 hosts, one NIC each, external
  network), lab `tb2`, management 198.18.62.0/24, OpenFlow port 36654.
- `--load`: a generated pool of `--hosts` hosts (default 8): vm1 on host1 and vm2 on host2 as
  above, and `--storm-vms` VMs on every other host, half on the external network, half on a
  VXLAN private network, all locked. While the plugs are measured, a storm thread drives the
  other hosts through the official XenAPI client: every 1/`--storm-rate` s one `VIF.plug` and
  one `VIF.unplug` (a boot storm of `--storm-rate` VMs/s, default 20, with as many going away)
  and every other tick a `VIF.set_locking_mode` (locked <-> unlocked). One lab xenopsd
  stand-in per storm host (`netctl.lab.agent.LabAgent`, seeing only that host) realises them;
  how many it managed is printed (on 2 cores the lab cannot plug 20 VIFs/s: the controller
  still gets every xapi event, the dataplane fewer port events). Lab `tb3`, 198.18.63.0/24,
  port 36655.

One sample: vm2's VIF (host2) is unplugged (`lab.unplug_vif`), `--settle` s for the controller
to drop its flows, a prober inside vm1 (host1), already running, starts an ICMP echo to vm2
every `--interval` (0.5 ms), then `lab.plug_vif` re-plugs the VIF (new veth, addresses inside
the VM, then `ovs-vsctl add-port` with xapi's external_ids). Intervals (CLOCK_MONOTONIC):

    port in OVSDB -> first reply       from the Interface row's insert, as an `ovsdb-client
                                        monitor` started beforehand received it (its own
                                        timestamp, ms floored:
                                        `netctl.experiment.portwatch`; at most 1 ms long,
                                        never short)
    add-port start -> first reply      from when `ovs-vsctl add-port` was started
    add-port returned -> first reply   from when it returned
    (add-port itself)                  the lab's own cost

A sample with no reply within `--window` s, a reply before the port existed (the previous
plug's flows were not removed in time), or no OVSDB mark is a *failed* sample: it is counted
per interval and the run goes on. Percentiles are nearest-rank over the successful samples.

Modes (`--modes`, both by default): `static` pins vm1's MAC in vm2's neighbour table, so the
reply needs only the flows; `guest` leaves vm2's ARP to vm2, as a just-booted guest does (its
first frame, an ARP request, reaches a port the controller has no rules for yet and must be
held and replayed). In both modes the *prober's* neighbour entry for vm2 is pinned
(`--prober-arp pinned`): the prober starts before the port exists, and with the kernel's entry
(`--prober-arp kernel`) vm1's own ARP for vm2 can go out before vm2's port exists (when vm1's
entry has aged to FAILED or a failing PROBE across the unplugged windows), and Linux retries it
only after 1 s: a tail that no network can remove (measured: bench/README.md, "the 1 s tail").

    .venv/bin/python bench/convergence.py [--count 300] [--modes static,guest]
    .venv/bin/python bench/convergence.py --load [--hosts 8] [--storm-rate 20] [--modes guest]
    .venv/bin/python bench/convergence.py --smoke    # a few plugs idle and under a small storm
                                                     # (labs sb2/sb6, 198.18.92/96.0/24)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import XenAPI  # noqa: E402

from harness.footprint import NOTHING, lab_footprint  # noqa: E402
from harness.sdn import SdnPool, report_leftovers, sdn_pool  # noqa: E402
from netctl.experiment.measure import PROBER, pct  # noqa: E402
from netctl.experiment.portwatch import PortWatch  # noqa: E402
from netctl.lab.agent import LabAgent  # noqa: E402
from netctl.lab.lab import Lab  # noqa: E402
from netctl.lab.ovs_instance import OvsInstance  # noqa: E402
from netctl.lab.state import LabState  # noqa: E402
from netctl.model import PoolState  # noqa: E402
from netctl.topology import Topology, parse_data, parse_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SRC_VM, DST_VM, DST_IP = "vm1", "vm2", "10.50.0.2"
# (prefix, management network, OpenFlow port) per scenario; smoke runs never meet full runs.
LABS = {("idle", False): ("tb2", "198.18.62.0/24", 36654),
        ("load", False): ("tb3", "198.18.63.0/24", 36655),
        ("idle", True): ("sb2", "198.18.92.0/24", 27202),
        ("load", True): ("sb6", "198.18.96.0/24", 27206)}
INTERVALS = ("port in OVSDB -> first reply", "add-port start -> first reply",
             "add-port returned -> first reply", "(add-port itself)")
# What `--smoke` must print (tests/bench/test_bench_smoke.py checks each regex on stdout).
SMOKE_FIGURES = (
    r"^idle, mode static: \d+ plugs",
    r"^idle, mode guest: \d+ plugs",
    r"^  port in OVSDB -> first reply +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +\d+$",
    r"^load, mode guest: \d+ plugs",
    r"^  storm: \d+ VIF.plug \+ \d+ VIF.unplug",
)
SMOKE_NEEDS_ROOT = True

@dataclasses.dataclass
class Sample:
    """One plug: marks on CLOCK_MONOTONIC (None: not seen) and what went wrong, if anything."""

    n: int
    start: float | None = None  # ovs-vsctl add-port started
    end: float | None = None  # ... returned
    ovsdb: float | None = None  # the Interface row seen by the monitor
    reply: float | None = None  # first echo reply in vm1
    probes: int = 0
    failure: str = ""

    def intervals(self) -> dict[str, float | None]:
        """ms per interval; None where this sample failed for that interval."""
        if self.failure or self.reply is None or self.start is None or self.end is None:
            return dict.fromkeys(INTERVALS)
        return {
            INTERVALS[0]: None if self.ovsdb is None else 1000 * (self.reply - self.ovsdb),
            INTERVALS[1]: 1000 * (self.reply - self.start),
            INTERVALS[2]: 1000 * max(0.0, self.reply - self.end),
            INTERVALS[3]: 1000 * (self.end - self.start),
        }


def work(status: dict) -> dict[str, int]:
    """What the controller did so far, from its status file: flow-mods sent, and the
    recomputes it counts (the engine's per-node fallbacks, or the older full recomputes)."""
    out = {"flow-mods": int(status.get("stats", {}).get("flow_mods", 0))}
    engine = status.get("engine")
    if engine:
        out["engine recomputes"] = sum(int(n.get("recomputes", 0))
                                       for n in engine.get("nodes", {}).values())
        out["bridges rebuilt"] = int(engine.get("bridges_rebuilt", 0))
    elif "full_recomputes" in status.get("stats", {}):
        out["full recomputes"] = int(status["stats"]["full_recomputes"] or 0)
    return out


def report(title: str, samples: list[Sample], seconds: float, extra: str = "") -> bool:
    """Print the table for one mode; True if the headline interval had no failed sample."""
    print(f"\n{title}: {len(samples)} plugs in {seconds:.0f}s{extra}")
    print(f"  {'interval (ms)':<36} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'failed':>6}")
    headline_failed = 0
    for label in INTERVALS:
        vals = [v for s in samples if (v := s.intervals()[label]) is not None]
        failed = len(samples) - len(vals)
        if label == INTERVALS[0]:
            headline_failed = failed
        if vals:
            print(f"  {label:<36} {pct(vals, 50):7.1f} {pct(vals, 90):7.1f} "
                  f"{pct(vals, 99):7.1f} {max(vals):7.1f} {failed:6d}")
        else:
            print(f"  {label:<36} {'-':>7} {'-':>7} {'-':>7} {'-':>7} {failed:6d}")
    reasons: dict[str, int] = {}
    for s in samples:
        if s.failure:
            reasons[s.failure] = reasons.get(s.failure, 0) + 1
    for why, count in sorted(reasons.items()):
        print(f"  failed: {count} x {why}")
    return headline_failed == 0


class Marks:
    """Shared between the plug (in this thread) and the vsctl hook."""

    def __init__(self) -> None:
        self.port: str | None = None
        self.sample: Sample | None = None
        self.pin: Callable[[], None] | None = None


def hook_add_port(marks: Marks) -> Callable[[], None]:
    """Time the `ovs-vsctl add-port` of the VIF being plugged (the lab runs it in plug_vif);
    pin vm1's MAC in vm2 first in static mode. Returns the function that undoes the hook."""
    original = OvsInstance.vsctl

    def vsctl(self: OvsInstance, *a: str, check: bool = True) -> str:
        sample = marks.sample
        watched = sample is not None and "add-port" in a and marks.port in a
        if watched:
            if marks.pin is not None:  # vm2's eth0 exists and is configured by now
                marks.pin()
            sample.start = time.monotonic()
        out = original(self, *a, check=check)
        if watched:
            sample.end = time.monotonic()
        return out

    OvsInstance.vsctl = vsctl  # type: ignore[method-assign]

    def undo() -> None:
        OvsInstance.vsctl = original  # type: ignore[method-assign]

    return undo


def measure(args: argparse.Namespace, lab: Lab, prober: Any, marks: Marks, watch: PortWatch,
            count: int) -> list[Sample]:
    samples = []
    for n in range(count):
        lab.unplug_vif(DST_VM, 0)
        time.sleep(args.settle)
        sample = Sample(n)
        marks.port = port = lab.vif_port(DST_VM, 0)
        marks.sample = sample
        go = time.monotonic()
        prober.stdin.write("go\n")
        lab.plug_vif(DST_VM, 0)
        line = prober.stdout.readline().split()
        marks.sample = None
        got, sent = float(line[0]), int(line[1])
        sample.probes = sent
        sample.ovsdb = watch.wait("host2", "insert", go, timeout=1.0, name=port)
        if got < 0:
            sample.failure = f"no reply within {args.window:g} s"
        else:
            sample.reply = got
            if sample.start is None or got < sample.start:
                sample.failure = "reply before the port existed (old flows not yet removed)"
            elif sample.ovsdb is None:
                sample.failure = "the OVSDB monitor did not see the port"
        if sample.failure and not args.quiet:
            print(f"  plug {n + 1}: {sample.failure}")
        samples.append(sample)
    return samples


# --------------------------------------------------------------------------- the load storm


def load_topology(hosts: int, storm_vms: int, prefix: str, management: str) -> Topology:
    """vm1 on host1 and vm2 on host2 (external network `pool`, as in the mini pool) and
    `storm_vms` VMs on each other host, alternately on `pool` and on the VXLAN network `priv`,
    all locked to their address."""
    data: dict[str, Any] = {
        "name": "convload", "prefix": prefix, "management": management,
        "networks": [{"name": "pool", "bridge": "xenbr0"},
                     {"name": "priv", "bridge": "xapi1",
                      "tunnel": {"protocol": "vxlan", "transport": "pool"}}],
        "hosts": [], "switch": {"cables": []}, "vms": [],
    }
    for h in range(1, hosts + 1):
        data["hosts"].append({"name": f"host{h}", "nics": [{"device": "eth0", "network": "pool"}],
                              "addresses": {"pool": {"ipv4": f"172.31.0.{h}/24"}}})
        data["switch"]["cables"].append({"host": f"host{h}", "nic": "eth0"})
    for n, host in ((1, "host1"), (2, "host2")):
        data["vms"].append({"name": f"vm{n}", "host": host, "vifs": [
            {"network": "pool", "ipv4": [f"10.50.0.{n}/24"], "ipv6": [f"fd4e:50::{n}/64"]}]})
    for h in range(3, hosts + 1):
        for k in range(storm_vms):
            net = "pool" if k % 2 == 0 else "priv"
            ip = f"10.{51 if net == 'pool' else 52}.{h}.{k + 1}"
            data["vms"].append({"name": f"s{h}x{k}", "host": f"host{h}", "vifs": [
                {"network": net, "ipv4": [f"{ip}/16"], "locking_mode": "locked",
                 "ipv4_allowed": [ip]}]})
    return parse_data(data, "<bench/convergence.py --load>")


@dataclasses.dataclass
class Storm:
    """XenAPI calls made, and what the lab agents realised, while the storm ran."""

    plugs: int = 0
    unplugs: int = 0
    locks: int = 0
    errors: int = 0
    realised_plugs: int = 0
    realised_unplugs: int = 0
    started: float = 0.0
    stopped: float = 0.0
    late_ticks: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def realised(self, plug: bool) -> None:
        with self.lock:  # one agent thread per storm host
            if plug:
                self.realised_plugs += 1
            else:
                self.realised_unplugs += 1


def start_storm(url: str, topology: Topology, rate: float, stop: threading.Event,
                storm: Storm, agents: list[LabAgent]) -> threading.Thread:
    """Every 1/rate s: one VIF.plug (of the VIF unplugged longest ago) and one VIF.unplug (of
    the VIF plugged longest ago); every other tick a locking-mode change. Half the storm VIFs
    are unplugged first (and the agent given time to follow) so there is always one of each
    to do; the counters start after that."""
    session = XenAPI.Session(url)
    session.xenapi.login_with_password("root", "netctl", "1.0", "bench-storm")
    x = session.xenapi
    refs = [x.VIF.get_by_uuid(v.uuid) for vm in topology.vms
            if vm.name not in (SRC_VM, DST_VM) for v in vm.vifs]
    rng = random.Random(12)
    rng.shuffle(refs)
    plugged, unplugged = refs[: len(refs) // 2], refs[len(refs) // 2:]
    for ref in unplugged:
        x.VIF.unplug(ref)
    time.sleep(0.5)
    for agent in agents:
        agent.wait_in_step(30)
    storm.realised_plugs = storm.realised_unplugs = 0
    locked: dict[str, bool] = dict.fromkeys(refs, True)

    def run() -> None:
        tick = 0
        storm.started = next_at = time.monotonic()
        while not stop.is_set():
            try:
                ref = unplugged.pop(0)
                x.VIF.plug(ref)
                plugged.append(ref)
                storm.plugs += 1
                ref = plugged.pop(0)
                x.VIF.unplug(ref)
                unplugged.append(ref)
                storm.unplugs += 1
                if tick % 2 == 0:
                    ref = rng.choice(refs)
                    locked[ref] = not locked[ref]
                    x.VIF.set_locking_mode(ref, "locked" if locked[ref] else "unlocked")
                    storm.locks += 1
            except Exception:  # noqa: BLE001 - counted; the storm goes on
                storm.errors += 1
            tick += 1
            next_at += 1.0 / rate
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                storm.late_ticks += 1
        storm.stopped = time.monotonic()
        try:
            session.xenapi.session.logout()
        except Exception:  # noqa: BLE001 - best effort
            pass

    thread = threading.Thread(target=run, daemon=True, name="storm")
    thread.start()
    return thread


class StormAgent(LabAgent):
    """The lab's xenopsd stand-in for one storm host, as every real host runs its own: it sees
    xapi's state reduced to that host's VMs and PIFs (never vm1 and vm2, which the benchmark
    plugs itself: the same measurement as idle), on its own Lab handle whose record copy holds
    only that host's VMs and is never saved (the benchmark's handle is the one writer of the
    lab record; teardown reads only namespaces, links and processes, which that handle
    records). Counts the plugs and unplugs it makes."""

    def __init__(self, pool: SdnPool, storm: Storm, host: str) -> None:
        state = LabState.load(pool.lab.prefix)
        state.save = lambda: None  # type: ignore[method-assign]
        mine = {vm.name for vm in pool.topology.vms if vm.host == host} - {SRC_VM, DST_VM}
        for field in ("vm_host", "vm_domid", "plugged", "vm_uuid"):
            placed = getattr(state, field, None)
            if isinstance(placed, dict):
                for vm in set(placed) - mine:
                    placed.pop(vm)
        lab = Lab(pool.topology, state)
        self.host_uuid = pool.topology.host(host).uuid
        self.mine = {pool.topology.vm(vm).uuid for vm in mine}
        # the lab's plug entry point (`plug` taking a VifSpec; `plug_vif` before it)
        plug_name = "plug" if hasattr(lab, "plug") else "plug_vif"
        plug, unplug = getattr(lab, plug_name), lab.unplug_vif

        def counted_plug(*a: Any, **kw: Any) -> Any:
            out = plug(*a, **kw)
            storm.realised(plug=True)
            return out

        def counted_unplug(*a: Any, **kw: Any) -> Any:
            out = unplug(*a, **kw)
            storm.realised(plug=False)
            return out

        setattr(lab, plug_name, counted_plug)
        lab.unplug_vif = counted_unplug  # type: ignore[method-assign]
        super().__init__(lab, pool.server.url)

    def reconcile(self, state: PoolState) -> bool:
        host = next((h.ref for h in state.hosts.values() if h.uuid == self.host_uuid), None)
        vms = {ref: vm for ref, vm in state.vms.items() if vm.uuid in self.mine}
        pifs = {ref: pif for ref, pif in state.pifs.items() if pif.host == host}
        return super().reconcile(state.replace(vms=vms, pifs=pifs))


# --------------------------------------------------------------------------- main


def run_scenario(args: argparse.Namespace, load: bool) -> bool:
    scenario = "load" if load else "idle"
    prefix, management, port = LABS[(scenario, args.smoke)]
    if args.port:
        port = args.port
    if load:
        topo = load_topology(args.hosts, args.storm_vms, prefix, management)
    else:
        topo = parse_file(ROOT / "topologies" / "mini-pool.yaml").relabel(prefix, management)
    if lab_footprint(prefix) != NOTHING:
        raise RuntimeError(f"lab {prefix} exists: another run is going on, or a run left it "
                           f"behind (netctl lab down --lab {prefix})")
    marks = Marks()
    undo = hook_add_port(marks)
    workdir = Path(tempfile.mkdtemp(prefix=f"netctl-convergence-{prefix}-"))
    pool: SdnPool | None = None
    prober: Any = None
    watch: PortWatch | None = None
    agents: list[LabAgent] = []
    stop = threading.Event()
    storm = Storm()
    storm_thread = None
    met = True
    try:
        t0 = time.monotonic()
        pool = sdn_pool(topo, workdir, port=port)
        lab = pool.lab
        print(f"{scenario}: lab {prefix} up ({len(topo.hosts)} hosts, {len(topo.vms)} VMs), "
              f"controller converged in {time.monotonic() - t0:.1f}s; plugs of {DST_VM}'s VIF "
              f"(host2), probing from {SRC_VM} (host1) every {args.interval * 1000:g} ms")
        ok = any(lab.exec(SRC_VM, ["ping", "-n", "-q", "-c", "1", "-W", "1", DST_IP],
                          check=False).returncode == 0 for _ in range(5))
        if not ok:
            raise RuntimeError(f"{SRC_VM} cannot reach {DST_IP} before the benchmark")
        watch = PortWatch(lab, ["host2"])
        prober = lab.popen(SRC_VM, [sys.executable, "-c", PROBER, DST_IP, str(args.interval),
                                    str(args.window)], stdin=-1, bufsize=1)
        if prober.stdout.readline().strip() != "ready":
            raise RuntimeError(f"prober did not start: {prober.stderr.read()}")
        dst = lab.vif(DST_VM, 0)
        src = lab.vif(SRC_VM, 0)
        if args.prober_arp == "pinned":  # vm2's MAC does not change across plugs
            lab.exec(SRC_VM, ["ip", "neigh", "replace", DST_IP, "lladdr", dst.mac, "dev",
                              "eth0", "nud", "permanent"])
        if load:
            agents = [StormAgent(pool, storm, h.name).start() for h in topo.hosts[2:]]
            storm_thread = start_storm(pool.server.url, topo, args.storm_rate, stop, storm,
                                       agents)
            time.sleep(1.0)  # the storm is under way before the first sample
        for mode in args.modes.split(","):
            if mode == "static":
                src_ip = src.ipv4[0].split("/")[0]

                def pin(ip: str = src_ip, mac: str = src.mac) -> None:
                    lab.exec(DST_VM, ["ip", "neigh", "replace", ip, "lladdr", mac, "dev",
                                      "eth0", "nud", "permanent"])

                marks.pin = pin
            elif mode == "guest":
                marks.pin = None
            else:
                raise ValueError(f"unknown mode {mode!r} (static, guest)")
            before = work(pool.controller.status())
            t1 = time.monotonic()
            samples = measure(args, lab, prober, marks, watch, args.count)
            seconds = time.monotonic() - t1
            after = work(pool.controller.status())
            extra = "; controller: " + ", ".join(
                f"{after[k] - before.get(k, 0)} {k}" for k in after)
            met &= report(f"{scenario}, mode {mode}", samples, seconds, extra)
            if args.samples:
                with open(args.samples, "a") as out:
                    for s in samples:
                        out.write(json.dumps({"scenario": scenario, "mode": mode,
                                              **dataclasses.asdict(s)}) + "\n")
        if load:
            stop.set()
            if storm_thread is not None:
                storm_thread.join(10)
            took = max(1e-9, storm.stopped - storm.started)
            asked = storm.plugs + storm.unplugs
            done = storm.realised_plugs + storm.realised_unplugs
            print(f"  storm: {storm.plugs} VIF.plug + {storm.unplugs} VIF.unplug "
                  f"({asked / took:.1f}/s) and {storm.locks} VIF.set_locking_mode through "
                  f"XenAPI in {took:.0f}s on {len(topo.hosts) - 2} hosts ({storm.errors} "
                  f"errors, {storm.late_ticks} ticks late); the lab agents realised "
                  f"{storm.realised_plugs} plugs and {storm.realised_unplugs} unplugs "
                  f"({done / took:.1f}/s)")
        return met
    finally:
        stop.set()
        undo()
        for agent in agents:
            agent.stop()
        if prober is not None and prober.poll() is None:
            prober.stdin.close()
            try:
                prober.wait(timeout=5)
            except Exception:  # noqa: BLE001 - it is ours; make sure it ends
                prober.kill()
        if watch is not None:
            watch.stop()
        if pool is not None:
            pool.close()
        report_leftovers(prefix, workdir, args.keep_logs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=300, help="plugs to measure per mode")
    ap.add_argument("--modes", default="static,guest", help="static and/or guest (ARP)")
    ap.add_argument("--load", action="store_true", help="measure under a XenAPI storm")
    ap.add_argument("--hosts", type=int, default=8, help="--load: hosts in the lab (>= 3)")
    ap.add_argument("--storm-vms", type=int, default=6, help="--load: VMs per storm host")
    ap.add_argument("--storm-rate", type=float, default=20.0,
                    help="--load: VIF plugs (and as many unplugs) per second")
    ap.add_argument("--port", type=int, default=0, help="OpenFlow port (default per lab)")
    ap.add_argument("--interval", type=float, default=0.0005, help="probe interval (s)")
    ap.add_argument("--window", type=float, default=10.0, help="wait for a reply (s)")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="wait after an unplug, for the controller to drop the VIF's flows")
    ap.add_argument("--prober-arp", choices=("pinned", "kernel"), default="pinned",
                    help="vm1's neighbour entry for vm2: pinned, or the kernel's own")
    ap.add_argument("--samples", help="append every sample (JSON lines) to this file")
    ap.add_argument("--quiet", action="store_true", help="do not print each failed sample")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the controller's log and status file (else removed)")
    ap.add_argument("--smoke", action="store_true",
                    help="a few plugs idle, then under a small storm (3 hosts): for make test")
    args = ap.parse_args(argv)
    if args.hosts < 3:
        ap.error("--hosts must be at least 3 (vm1, vm2 and one storm host)")
    if args.smoke:
        print("smoke run: few plugs and a small lab, to prove the path runs; its figures are "
              "not the benchmark's")
        args.count, args.hosts, args.storm_vms, args.storm_rate = 4, 3, 4, 5.0
        met = run_scenario(args, load=False)
        args.modes = "guest"
        met &= run_scenario(args, load=True)
        return 0  # a slow smoke sample is not a broken tool
    met = run_scenario(args, load=args.load)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
