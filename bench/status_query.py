"""Benchmark (prints figures, not a test): what one `/status` answer costs the HTTP thread of
`netctl run`, per kind of query, at pool size (64 hosts x 1000 VIFs by default).

    .venv/bin/python -m bench.status_query [--size 64x1000] [--repeat 7] [--problems N]
    .venv/bin/python -m bench.status_query --smoke       # 2x20, 3 repeats (seconds)

Why: /status once listed every VIF of the pool in one document (about a second at 64 x 1000,
70,000 rows in `netctl status`); it now answers a summary, filtered queries and, on request,
the whole document (`netctl.service.status`). The target is 20 ms for the summary and every
filtered query at 64 x 1000; this prints what each costs.

In one process, no root, no sockets: a `harness.synthetic` pool (`pool_state`: VMs with 1-3
VIFs over an external network on an LACP bond, a VLAN network and a VXLAN private network) fed
to the product's `NetctlEngine` as one change set, its first round run and every switch
connected (`harness.engine_rig.RecordingSwitches`), so the VIFs have their ports and flows.
The status functions read a stand-in for `netctl.service.run.Run` holding that engine: xapi
connected, an OVSDB worker status per host (no OVSDB session: bond members read "unknown"),
the flow sink's per-switch summary as the real sink gives it. One sample is
`status.snapshot(run, query)` plus `json.dumps` of the answer (what the HTTP handler does);
the figure is the median (and the slowest) of --repeat samples, with the answer's size. The
garbage collector is frozen after the build, as netctl's reconcile thread does after its
first round.

`--problems N` publishes N problems (one per VIF, spread over the pool, as a network gone bad
would make) before timing: the summary then lists the first 200 and counts them all, a filtered
answer reads those about it through an index built once per published list; that build is
timed too (the first filtered query after a new list, as after any xapi change).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.engine_rig import RecordingSwitches  # noqa: E402
from harness.synthetic import PoolSpec, pool_state  # noqa: E402
from netctl.engine.core import NetctlEngine  # noqa: E402
from netctl.engine.hosts import HostSettings  # noqa: E402
from netctl.model import Problem  # noqa: E402
from netctl.service import status  # noqa: E402
from netctl.service.loop import RoundStats  # noqa: E402
from netctl.service.ovsdb_workers import HostStatus  # noqa: E402
from netctl.sinks.openflow import Stats  # noqa: E402
from netctl.sources.xapi.members import PoolMembers

SMOKE_FIGURES = (
    r"^size +2 x 20: \d+ hosts, \d+ VMs, \d+ VIFs",
    r"^  summary +median +[\d.]+ ms",
    r"^  network='[^']+' +median +[\d.]+ ms.*of \d+ VIFs",
    r"^  vm='[^']+' +median +[\d.]+ ms",
    r"^  full=1 +median +[\d.]+ ms",
    r"^  \d+ problems published: .* median +[\d.]+ ms",
)
SETTINGS = HostSettings(controllers=("tcp:198.51.100.1:6653",), datapath_type="netdev")


class StandInRun:
    """What `netctl.service.status` reads of a `Run`, around a real engine."""

    def __init__(self, engine: NetctlEngine, switches: RecordingSwitches) -> None:
        self.engine = engine
        self.sync = SimpleNamespace(url="https://pool-master/", connected=True, full_syncs=1,
                                    reconnects=0, members=PoolMembers(["https://pool-master/"]))
        self.loop = SimpleNamespace(stats=RoundStats(rounds=2), problems=engine.problems())
        tables = engine.desired
        rows = []
        for dpid, table in sorted(tables.tables.items()):
            ident = tables.identity(dpid)
            rows.append({"dpid": dpid, "host": table.host_ref,
                         "bridge": ident[1] if ident else None,
                         "ports": len(switches.names.get(dpid, {})),
                         "flows": sum(1 for _ in tables.entries(dpid))})
        self._switches = rows
        self.sink = SimpleNamespace(stats=Stats(), summary=self._summary, problems=list,
                                    portconfig=None)
        self.workers: dict[str, Any] = {}
        view = engine.view
        for ref, host in view.hosts.items():
            cfg = engine.hosts.configs.config(ref)
            self.workers[ref] = SimpleNamespace(db=None, status=HostStatus(
                host.name_label, host.uuid, f"tcp:{host.address}:6640", connected=True,
                applies=1, bridges=[b.name for b in cfg.bridges] if cfg else []))

    def _summary(self) -> list[dict]:
        """As `FlowSink.summary`: a fresh row per switch on every call."""
        return [dict(row) for row in self._switches]

    @property
    def view(self) -> Any:
        return self.engine.view

    @property
    def problems(self) -> list:
        return self.loop.problems + self.sink.problems()


def build(hosts: int, vifs: int) -> tuple[StandInRun, float]:
    """The stand-in run over a compiled pool of that size, and the seconds it took."""
    started = time.perf_counter()
    state = pool_state(PoolSpec(hosts=hosts, vifs_per_host=vifs))
    engine = NetctlEngine(SETTINGS)
    gc.disable()
    engine.xapi((obj.ref, None, obj) for obj in state.objects())
    engine.run()
    engine.clear()
    switches = RecordingSwitches()
    switches.connect_all(engine)
    engine.run()
    switches.apply(engine)
    engine.clear()
    run = StandInRun(engine, switches)
    gc.enable()
    gc.collect()
    gc.freeze()
    return run, time.perf_counter() - started


def queries(run: StandInRun) -> list[tuple[str, dict[str, str]]]:
    """One query of each kind, named as a person would ask: the busiest network (most VIFs),
    a host, a VM (by name and by uuid), combinations, a name nobody has, the whole document."""
    view = run.view
    host = sorted(view.hosts.values(), key=lambda h: h.name_label)[len(view.hosts) // 2]
    busiest = max(view.networks.values(), key=lambda n: len(view.network_vifs(n.ref)))
    most = max(len(view.vm_vifs(vm.ref)) for vm in view.vms.values() if vm.is_guest)
    guests = sorted((vm for vm in view.vms.values()
                     if vm.is_guest and len(view.vm_vifs(vm.ref)) == most),
                    key=lambda vm: vm.name_label)
    vm = guests[len(guests) // 2]  # one with the most VIFs
    return [
        ("summary", {}),
        (f"host={host.name_label!r}", {"host": host.name_label}),
        (f"network={busiest.name_label!r}", {"network": busiest.name_label}),
        (f"network={busiest.bridge!r}&host={host.name_label!r}",
         {"network": busiest.bridge, "host": host.name_label}),
        (f"vm={vm.name_label!r}", {"vm": vm.name_label}),
        ("vm=<uuid>", {"vm": vm.uuid}),
        (f"vm={vm.name_label!r}&network={busiest.name_label!r}",
         {"vm": vm.name_label, "network": busiest.name_label}),
        ("vm=<unknown> (404)", {"vm": "no-such-vm"}),
        ("full=1", {"full": "1"}),
    ]


def sample(run: StandInRun, query: dict[str, str]) -> tuple[float, int, dict]:
    """One answer as the HTTP handler gives it: (seconds, bytes, the answer)."""
    started = time.perf_counter()
    try:
        answer = status.snapshot(run, query)
    except status.QueryError as exc:
        answer = exc.body
    body = json.dumps(answer).encode()
    return time.perf_counter() - started, len(body), answer


def describe(answer: dict) -> str:
    if "error" in answer:
        return f"error: {answer['error']}"
    if answer.get("view") == "summary":
        c = answer["counts"]
        return (f"{len(answer['hosts'])} hosts, {len(answer['bonds'])} bonds, "
                f"{len(answer['tunnels'])} tunnels, {len(answer['switches'])} switches, "
                f"{len(answer.get('vifs', []))} VIF rows of {c['vifs']} VIFs")
    if answer.get("view") == "query":
        return (f"{len(answer['vifs'])} VIF rows of {answer['vifs_total']} VIFs, "
                f"{len(answer['hosts'])} hosts, {len(answer['bonds'])} bonds, "
                f"{len(answer['tunnels'])} tunnels, {len(answer['switches'])} switches")
    return f"{len(answer['vifs'])} VIF rows, {len(answer['switches'])} switches"


def publish_problems(run: StandInRun, count: int) -> None:
    """`count` problems on VIFs spread over the pool, published as a new list (as the
    reconcile loop publishes after a round that changed xapi's intent)."""
    vifs = sorted(run.view.vifs.values(), key=lambda v: v.ref)
    step = max(1, len(vifs) // max(count, 1))
    run.loop.problems = [Problem("VIF", v.ref, v.uuid, f"VIF {v.device}", "MAC",
                                 "a synthetic problem") for v in vifs[::step][:count]]


def run_size(hosts: int, vifs: int, repeat: int, problems: int) -> None:
    run, seconds = build(hosts, vifs)
    view = run.view
    print(f"size {hosts:3d} x {vifs}: {len(view.hosts)} hosts, {len(view.vms)} VMs, "
          f"{len(view.vifs)} VIFs, {len(view.networks)} networks, "
          f"{len(run.sink.summary())} switches (built in {seconds:.1f} s)", flush=True)
    kinds = queries(run)
    if problems:
        first = []
        for _ in range(3):
            publish_problems(run, problems)
            first.append(sample(run, kinds[4][1])[0] * 1000)  # a VM: the index is most of it
        print(f"  {problems} problems published: the first filtered query after a new list "
              f"(its problem index built) median {statistics.median(first):.2f} ms", flush=True)
    for name, query in kinds:
        times, size, answer = [], 0, {}
        for _ in range(repeat if name != "full=1" else max(3, repeat // 2)):
            t, size, answer = sample(run, query)
            times.append(t * 1000)
        print(f"  {name:44s} median {statistics.median(times):8.2f} ms, max "
              f"{max(times):8.2f} ms, {size / 1024:8.1f} KiB: {describe(answer)}"
              f"{problem_note(answer)}", flush=True)


def problem_note(answer: dict) -> str:
    total = answer.get("problems_total", 0)
    return f"; {len(answer['problems'])} of {total} problems listed" if total else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="64x1000", help="HOSTSxVIFS_PER_HOST")
    parser.add_argument("--repeat", type=int, default=7, help="samples per query")
    parser.add_argument("--problems", type=int, default=0,
                        help="publish this many problems (on VIFs) before timing")
    parser.add_argument("--smoke", action="store_true", help="2x20, 3 samples, 10 problems")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.repeat, args.problems = "2x20", 3, 10
    hosts, vifs = (int(v) for v in args.size.lower().split("x"))
    run_size(hosts, vifs, args.repeat, args.problems)


if __name__ == "__main__":
    main()
