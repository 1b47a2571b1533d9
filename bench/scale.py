"""Benchmark (prints figures, not a test): netctl's reconcile path at pool sizes up to 64 hosts
x 1000 VIFs (issue 9).

    .venv/bin/python -m bench.scale [--sizes 1x100,8x100,64x100,64x1000] [--samples 20]
    .venv/bin/python -m bench.scale --smoke         # 2x20, a few samples (seconds)
    .venv/bin/python -m bench.scale --sizes 64x1000 --cold-only   # full sync + cold compile

The real path, minus sockets to switches: a xapi simulator (a process of its own, as xapi is
in a real pool: `harness.synthetic.SimulatorProcess`) seeded with a synthetic pool
(`harness.synthetic`: VMs with realistic records, 1-3 VIFs each over an external network on an
LACP bond, a VLAN network and a VXLAN private network; every 4th VIF locked) served on
loopback -> `XapiSync` (the product's client) -> `NetctlEngine` (the product's engine) ->
recording targets (`harness.engine_rig`): a switch per bridge of every host, with a port per
running VIF, that takes the engine's flow deltas and counts flow-mods; OVSDB changes counted as
the rows a transaction would change between two host configurations.

Per size it prints:
- full sync: `XapiSync.connect()` (login + `event.from("")` + conversion), seconds, and the
  CPU netctl's side spent in it (the rest is the simulator building its reply);
- cold compile: the engine's first round over the whole pool (validation, every host's
  configuration) plus every switch connecting (every table built), seconds;
- RSS of this process (netctl's side: the simulator is not in it) after the cold compile, and
  its peak (VmHWM);
- per event kind, over --samples changes made through XenAPI: the processing time from the
  xapi change set received by the client (`XapiSync.step()` returned it) to every delta handed
  to its target (the engine's round, done) — p50/p99 in ms — with flow-mods and OVSDB rows;
- a boot storm: 1000 VIF plugs (unplugged first) issued through XenAPI within 10 s while the
  sync and the engine run, and the time from the last plug to the last one applied;
- the statistics poll (issue 21): every switch answers the poller (`netctl.sources.
  stats_poller`) with the bytes OVS would send (`harness.stats_rig`: every port's statistics,
  VIF locking's drop flows from the engine's own tables), parsed by os-ken as in `netctl run`:
  CPU per round (asking, os-ken reading each reply, the poller's reading; drop counters every
  2nd round, every drop flow having counted something: the worst case) as a share of one core
  at the 5 s interval, a /metrics scrape and a /stats?top=10 of the result; then the locking change
  again while a thread polls every switch back to back (the worst case, not one round per
  5 s), p50/p99 against the same changes without it.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import XenAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.engine_rig import RecordingSwitches, config_ops  # noqa: E402
from harness.synthetic import PoolSpec, SimulatorProcess  # noqa: E402
from netctl.engine.core import NetctlEngine  # noqa: E402
from netctl.engine.hosts import HostSettings  # noqa: E402
from netctl.sources.xapi.sync import XapiSync  # noqa: E402

SMOKE_FIGURES = (
    r"^size +2 x 20: full sync +[\d.]+ s \([\d.]+ s netctl's CPU\), cold compile +[\d.]+ s",
    r"^  locking change +p50 +[\d.]+ ms",
    r"^  new private network",
    r"^  boot storm: \d+ plugs",
    r"^  statistics poll \(every drop flow counted\): \d+ switches, \d+ ports, [\d.]+ ms CPU",
    r"^  locking change while polling",
)
USER, PASSWORD = "root", "scale"
SETTINGS = HostSettings(controllers=("tcp:198.51.100.1:6653",), datapath_type="netdev")


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process, MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
                  if ":" in line)
    def kib(name: str) -> float:
        return float(fields[name].split()[0]) / 1024
    return kib("VmRSS"), kib("VmHWM")


@dataclass
class Kind:
    name: str
    times: list[float] = field(default_factory=list)  # ms per sample
    flow_mods: list[int] = field(default_factory=list)
    ovsdb: list[int] = field(default_factory=list)
    hosts_with_network: int = 0

    def line(self) -> str:
        if not self.times:
            return f"  {self.name:<26} (no samples)"
        t = sorted(self.times)
        p99 = t[min(len(t) - 1, max(0, round(0.99 * len(t)) - 1))]
        fm = statistics.median(self.flow_mods)
        return (f"  {self.name:<26} p50 {statistics.median(t):8.2f} ms  p99 {p99:8.2f} ms  "
                f"flow-mods {fm:7.0f}  OVSDB rows {statistics.median(self.ovsdb):5.0f}  "
                f"({len(t)} samples)")


class Bench:
    def __init__(self, hosts: int, vifs: int) -> None:
        self.spec = PoolSpec(hosts=hosts, vifs_per_host=vifs)
        # xapi is another process in a real pool: so is the simulator here (its encoding and
        # its records are not netctl's time and memory)
        self.server = SimulatorProcess(self.spec, users={USER: PASSWORD}, event_delay=0.0)
        self.pool = self.server.pool
        self.x = XenAPI.Session(self.server.url)
        self.x.xenapi.login_with_password(USER, PASSWORD, "1.0", "bench-scale")
        self.engine = NetctlEngine(SETTINGS)
        self.switches = RecordingSwitches()
        self.received: list = []  # change sets as the sync published them
        self.sync = XapiSync(self.server.url, USER, PASSWORD, timeout=0.02,
                             on_changes=self.received.append)
        self.configs: dict = {}
        self.sync_cpu = 0.0  # CPU seconds of this thread in the full sync

    def close(self) -> None:
        try:
            self.x.xenapi.session.logout()
        except Exception:  # noqa: BLE001
            pass
        self.sync.stop()
        self.server.stop()

    # ------------------------------------------------------------------ phases
    def cold(self) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.thread_time()
        self.sync.connect()
        changes = self.received.pop()
        full_sync = time.perf_counter() - start
        self.sync_cpu = time.thread_time() - cpu
        start = time.perf_counter()
        gc.disable()  # as netctl's reconcile thread does for its first round
        self.engine.xapi((r, b, a) for r, (b, a) in changes.objects.items())
        self.engine.run()
        self._take_hosts()
        self.engine.clear()
        self.switches.connect_all(self.engine)
        self.engine.run()
        self.switches.apply(self.engine)
        self.engine.clear()
        cold = time.perf_counter() - start
        gc.enable()
        gc.collect()
        gc.freeze()  # as netctl's reconcile thread does after its first round
        return full_sync, cold

    def _take_hosts(self) -> int:
        ops = 0
        configs = self.engine.hosts.configs
        for ref in configs.changed:
            new = configs.config(ref)
            ops += config_ops(self.configs.get(ref), new)
            self.configs[ref] = new
        return ops

    def settle(self, kind: Kind | None, until: Callable[[], bool] | None = None,
               wait: float = 2.0) -> None:
        """Read xapi's change sets until `until()` (or quiet), each through one engine round;
        the processing time is the sum of the rounds (from each set received to its deltas)."""
        deadline = time.monotonic() + wait
        spent, mods, ops, seen = 0.0, 0, 0, False
        while time.monotonic() < deadline:
            changes = self.sync.step()
            if not changes:
                if seen and (until is None or until()):
                    break
                continue
            seen = True
            m, o, t = self._round(changes)
            mods, ops, spent = mods + m, ops + o, spent + t
            if until is not None and until():
                break
        if kind is not None:
            kind.times.append(spent * 1000)
            kind.flow_mods.append(mods)
            kind.ovsdb.append(ops)

    def _round(self, changes) -> tuple[int, int, float]:  # noqa: ANN001 - a ChangeSet
        """One engine round for a change set, then (as OVS would, once the OVSDB side applied
        the new host configurations) new bridges and ports appear, in a second round.
        Returns (flow-mods, OVSDB rows, seconds netctl spent: the rounds, not the recording
        targets' own bookkeeping)."""
        start = time.perf_counter()
        self.engine.xapi((r, b, a) for r, (b, a) in changes.objects.items())
        self.engine.run()
        spent = time.perf_counter() - start
        changed = set(self.engine.hosts.configs.changed)
        ops = self._take_hosts()
        mods = self.switches.apply(self.engine).flow_mods
        self.engine.clear()
        if changed and self.switches.follow(self.engine, changed):
            start = time.perf_counter()
            self.engine.run()
            spent += time.perf_counter() - start
            mods += self.switches.apply(self.engine).flow_mods
            self.engine.clear()
        return mods, ops, spent

    def port_event(self, kind: Kind | None, vif: str, up: bool) -> None:
        """The hypervisor plugs the VIF's port: that switch event through one round."""
        view = self.engine.view
        v = view.vifs[vif]
        vm = view.vms[v.vm]
        dpid = next(d for d, t in self.engine.flows.tables.tables.items()
                    if t.host_ref == vm.resident_on and v.network in t.shape.vlans)
        self.switches.port(self.engine, dpid, f"vif{vm.domid}.{v.device}", up)
        start = time.perf_counter()
        self.engine.run()
        spent = time.perf_counter() - start
        mods = self.switches.apply(self.engine).flow_mods
        if kind is not None:
            kind.times.append(spent * 1000)
            kind.flow_mods.append(mods)
            kind.ovsdb.append(self._take_hosts())
        self.engine.clear()

    def move_ports(self, kind: Kind | None, vm_ref: str, old_host: str, old_domid: int) -> None:
        """The hypervisor's side of a migration xapi already reported: each of the VM's
        ports leaves the old host's switch, then its new port appears on the new host's (a
        VIF is held at its old port until then: `flows.handover`), each through one round;
        added to `kind`'s last sample."""
        view = self.engine.view
        tables = self.engine.flows.tables.tables
        vm = view.vms[vm_ref]
        spent, mods = 0.0, 0
        for v in view.vm_vifs(vm_ref):
            steps = ((old_host, f"vif{old_domid}.{v.device}", False),
                     (vm.resident_on, f"vif{vm.domid}.{v.device}", True))
            for host, name, up in steps:
                dpid = next((d for d, t in tables.items()
                             if t.host_ref == host and v.network in t.shape.vlans), None)
                if dpid is None:
                    continue
                self.switches.port(self.engine, dpid, name, up)
                start = time.perf_counter()
                self.engine.run()
                spent += time.perf_counter() - start
                mods += self.switches.apply(self.engine).flow_mods
                self.engine.clear()
        if kind is not None:
            kind.times[-1] += spent * 1000
            kind.flow_mods[-1] += mods

    # ------------------------------------------------------------------ event kinds
    def stats_poll(self, rounds: int) -> None:
        """Statistics rounds over every switch (module docstring), then what a scrape of
        /metrics and a /stats?top=10 cost with the result: once with every drop flow having
        counted something (the worst case), once with 1 in 50 of them (a pool where a few
        VMs send what their locking drops)."""
        from types import SimpleNamespace

        from harness.stats_rig import answer, attach, datapaths
        from netctl.service.stats_view import StatsCollector, document
        from netctl.sources.stats_poller import DEFAULT_INTERVAL, DROPS_EVERY, StatsPoller
        from netctl.stats.table import StatsTable

        tables = self.engine.flows.tables
        for case, every in (("every drop flow counted", 1), ("1 in 50 counted", 50)):
            dps = datapaths(self.switches, tables, every)
            poller = StatsPoller(StatsTable())
            attach(poller)
            for dp in dps:
                poller.connected(dp)
            cpu = []
            for _ in range(rounds):
                start = time.thread_time()
                poller.poll()
                for dp in dps:
                    answer(dp, poller)
                cpu.append(time.thread_time() - start)
            poller.poll()  # completes the last round's bookkeeping
            run = SimpleNamespace(engine=self.engine, poller=poller, view=self.engine.view)
            start = time.perf_counter()
            series = sum(len(f.samples) for f in StatsCollector(run).collect())
            scrape = time.perf_counter() - start
            start = time.perf_counter()
            document(run, {"top": ["10"]})
            top = time.perf_counter() - start
            ports = sum(len(dp.ports) for dp in dps)
            drops = sum(len(dp.drop_body) for dp in dps)
            per_round = sum(cpu) / len(cpu)  # rounds with and without the drop counters
            print(f"  statistics poll ({case}): {len(dps)} switches, {ports} ports, "
                  f"{per_round * 1000:.1f} ms CPU per round (mean of {len(cpu)}: port counters "
                  f"every round, {drops} drop-flow counters every {DROPS_EVERY}; max "
                  f"{max(cpu) * 1000:.0f} ms), {per_round / DEFAULT_INTERVAL * 100:.2f}% of one "
                  f"core at {DEFAULT_INTERVAL:g} s; /metrics scrape {scrape * 1000:.0f} ms "
                  f"({series} series), /stats?top=10 {top * 1000:.0f} ms", flush=True)
        self._stats_rig = (dps, poller)

    def latency_while_polling(self, samples: int) -> list[Kind]:
        """The locking change with a thread polling every switch back to back (the
        statistics' worst case: the GIL shared with the reconcile path)."""
        from harness.stats_rig import answer

        dps, poller = self._stats_rig
        stop = threading.Event()
        rounds = [0]

        def polling() -> None:
            while not stop.is_set():
                poller.poll()
                for dp in dps:
                    answer(dp, poller)
                rounds[0] += 1

        x = self.x.xenapi
        locked = self.pool.locked
        kinds = [Kind("locking change, no polling"), Kind("locking change while polling")]
        for kind, poll in zip(kinds, (False, True), strict=True):
            thread = threading.Thread(target=polling, daemon=True) if poll else None
            if thread is not None:
                thread.start()
            for i in range(samples):
                vif = locked[i % len(locked)]
                mode = x.VIF.get_locking_mode(vif)
                x.VIF.set_locking_mode(vif, "locked" if mode == "unlocked" else "unlocked")
                self.settle(kind)
            if thread is not None:
                stop.set()
                thread.join()
        kinds[1].name += f" ({rounds[0]} rounds)"
        return kinds

    def run_kinds(self, samples: int, network_samples: int) -> list[Kind]:
        x = self.x.xenapi
        pool = self.pool
        kinds = {n: Kind(n) for n in ("locking change", "VIF unplug", "VIF plug",
                                      "VIF port appears", "new VIF", "live migration",
                                      "new VLAN network", "new private network",
                                      "one PIF changed")}
        hosts = pool.hosts
        locked = [v for v in pool.locked if pool.vifs.get(hosts[0]) and v in pool.vifs[hosts[0]]]
        locked = locked or pool.locked
        self.settle(None, wait=0.3)
        for i in range(samples):
            vif = locked[i % len(locked)]
            x.VIF.set_locking_mode(vif, "unlocked" if i % 2 == 0 else "locked")
            self.settle(kinds["locking change"])
        vifs = pool.vifs[hosts[-1]]
        for i in range(samples):
            vif = vifs[(i * 7) % len(vifs)]
            x.VIF.unplug(vif)
            self.settle(kinds["VIF unplug"])
            self.port_event(None, vif, False)  # the hypervisor removes the port
            x.VIF.plug(vif)
            self.settle(kinds["VIF plug"])
            self.port_event(kinds["VIF port appears"], vif, True)
        private = pool.network["private"]
        for i in range(samples):
            host = hosts[i % len(hosts)]
            vm = pool.vms[host][i % len(pool.vms[host])]
            device = str(10 + i // len(hosts))
            ref = x.VIF.create({"device": device, "network": private, "VM": vm,
                                "MAC": f"02:fe:00:00:{i // 256:02x}:{i % 256:02x}",
                                "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                                "qos_algorithm_params": {}, "locking_mode": "network_default",
                                "ipv4_allowed": [], "ipv6_allowed": []})
            x.VIF.plug(ref)
            self.settle(kinds["new VIF"],
                        until=lambda r=ref: self.engine.view.vifs.get(r) is not None)
        if len(hosts) > 1:
            for i in range(samples):
                vm = pool.vms[hosts[0]][i % len(pool.vms[hosts[0]])]
                target = hosts[1 + i % (len(hosts) - 1)]
                domid = self.engine.view.vms[vm].domid
                x.VM.pool_migrate(vm, target, {})
                self.settle(kinds["live migration"])  # xapi's part, then the ports move
                self.move_ports(kinds["live migration"], vm, hosts[0], domid)
                domid = self.engine.view.vms[vm].domid
                x.VM.pool_migrate(vm, hosts[0], {})
                self.settle(None)
                self.move_ports(None, vm, target, domid)
        external_pif = x.network.get_PIFs(pool.network["external"])[0]
        kinds["new VLAN network"].hosts_with_network = len(hosts)
        for i in range(network_samples):
            net = x.network.create({"name_label": f"bench-vlan-{i}", "name_description": "",
                                    "MTU": "1500", "other_config": {}})
            x.pool.create_VLAN_from_PIF(external_pif, net, 200 + i)
            self.settle(kinds["new VLAN network"],
                        until=lambda n=net: len(self.engine.view.network_pifs(n)) >= len(hosts))
        for i in range(network_samples):
            net = x.network.create({"name_label": f"bench-private-{i}", "name_description": "",
                                    "MTU": "1450", "other_config": {}})
            for host in hosts:
                x.tunnel.create(pool.management_pif[host], net, "vxlan")
            self.settle(kinds["new private network"],
                        until=lambda n=net: len(self.engine.view.network_pifs(n)) >= len(hosts))
        for i in range(network_samples):
            pif = pool.management_pif[hosts[i % len(hosts)]]
            x.PIF.add_to_other_config(pif, "bench", str(i)) if i % 2 == 0 else \
                x.PIF.remove_from_other_config(pif, "bench")
            self.settle(kinds["one PIF changed"])
        return list(kinds.values())

    def boot_storm(self, plugs: int, seconds: float) -> tuple[int, float, float]:
        """`plugs` VIF plugs issued within `seconds` (after unplugging them, untimed) while
        the sync and the engine run; returns (plugs, last plug at, drained after last plug)."""
        x = self.x.xenapi
        pool = self.pool
        candidates = [v for h in pool.hosts for v in pool.vifs[h]]
        chosen = candidates[:: max(1, len(candidates) // plugs)][:plugs]
        for vif in chosen:
            x.VIF.unplug(vif)
        self.settle(None, wait=5.0,
                    until=lambda: not any(self.engine.view.vifs[v].currently_attached
                                          for v in chosen[-5:]))
        done = threading.Event()
        last_plug = [0.0]

        def writer() -> None:
            session = XenAPI.Session(self.server.url)
            session.xenapi.login_with_password(USER, PASSWORD, "1.0", "bench-storm")
            start = time.monotonic()
            for i, vif in enumerate(chosen):
                due = start + seconds * i / len(chosen)
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                session.xenapi.VIF.plug(vif)
            last_plug[0] = time.monotonic()
            done.set()

        thread = threading.Thread(target=writer, daemon=True)
        start = time.monotonic()
        thread.start()
        applied_at = 0.0
        while True:
            changes = self.sync.step()
            if changes:
                self._round(changes)
                applied_at = time.monotonic()
            view = self.engine.view
            if done.is_set() and all(view.vifs[v].currently_attached for v in chosen):
                break
            if time.monotonic() - start > seconds * 10 + 60:
                break
        thread.join()
        return len(chosen), last_plug[0] - start, max(0.0, applied_at - last_plug[0])


def run_size(hosts: int, vifs: int, samples: int, network_samples: int, storm: int,
             storm_seconds: float, stats_rounds: int = 6, cold_only: bool = False) -> None:
    gc.collect()
    started = time.perf_counter()
    bench = Bench(hosts, vifs)
    seeded = time.perf_counter() - started
    try:
        full_sync, cold = bench.cold()
        rss, peak = rss_mib()
        tables = bench.engine.flows.tables
        print(f"size {hosts:3d} x {vifs}: full sync {full_sync:7.2f} s ({bench.sync_cpu:.2f} s "
              f"netctl's CPU), cold compile "
              f"{cold:7.2f} s ({len(tables.tables)} switches, "
              f"{bench.switches.counts.full} tables), RSS {rss:7.0f} MiB, peak {peak:7.0f} "
              f"MiB (simulator seeded in {seeded:.1f} s)", flush=True)
        if cold_only:
            return
        for kind in bench.run_kinds(samples, network_samples):
            print(kind.line(), flush=True)
        n, spread, drained = bench.boot_storm(storm, storm_seconds)
        rss, peak = rss_mib()
        print(f"  boot storm: {n} plugs issued within {spread:.1f} s, the last applied "
              f"{drained:.2f} s after the last plug; RSS {rss:.0f} MiB, peak {peak:.0f} MiB",
              flush=True)
        bench.stats_poll(stats_rounds)
        for kind in bench.latency_while_polling(samples):
            print(kind.line(), flush=True)
        stats = bench.engine.graph.stats()
        print("  engine: " + ", ".join(f"{n} {s.handled} handled/{s.recomputes} recomputes"
                                       for n, s in stats.items()), flush=True)
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1x100,8x100,64x100,64x1000",
                        help="comma-separated HOSTSxVIFS_PER_HOST")
    parser.add_argument("--samples", type=int, default=20, help="changes per VIF event kind")
    parser.add_argument("--network-samples", type=int, default=3,
                        help="changes per network-wide event kind")
    parser.add_argument("--storm", type=int, default=1000, help="VIF plugs in the boot storm")
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--stats-rounds", type=int, default=6,
                        help="statistics poll rounds timed")
    parser.add_argument("--cold-only", action="store_true",
                        help="per size only the full sync and the cold compile line")
    parser.add_argument("--smoke", action="store_true", help="2x20, a few samples")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.samples, args.network_samples = "2x20", 3, 1
        args.storm, args.storm_seconds, args.stats_rounds = 20, 1.0, 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    for size in args.sizes.split(","):
        hosts, vifs = (int(v) for v in size.lower().split("x"))
        run_size(hosts, vifs, args.samples, args.network_samples, args.storm,
                 args.storm_seconds, args.stats_rounds, args.cold_only)


if __name__ == "__main__":
    main()
