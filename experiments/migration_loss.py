"""Traffic lost during a live migration, by network kind: external, VLAN, VXLAN, GRE.

A pool of three hosts, one NIC each (a trunk: the untagged external network plus VLAN 10),
with four networks: `pool` (external), `vlan10` (VLAN 10 on pool), `vx` (VXLAN over pool) and
`gre` (GRE over pool). vm1 (host1) and vm2 (host2) have a VIF on each. vm1 pings vm2 on all
four at once every 9 ms; after 1 s `VM.pool_migrate` (the official XenAPI client, against the
xapi simulator) moves vm2 to the other of host2/host3, the lab agent re-plugs its VIFs there
as xenopsd would, and `netctl run` moves its flows. Per network: replies lost x ping's pacing,
and the longest gap between two replies. This is the lab's migration (the namespace keeps
running, its VIFs are re-plugged): there is no guest pause, only the network's part.

    python -m experiments.migration_loss [--migrations 10] [--duration 4] [--out DIR]
    python -m experiments.migration_loss --smoke        # one migration
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from experiments._cli import need_root, parser, slot
from netctl.experiment import Experiment, PingFigures, PoolBuilder, save_plot, table

# (kind, network, subnet): vm N has .N in the subnet, device = position
NETWORKS = (("external", "pool", "10.80.0"), ("VLAN", "vlan10", "10.81.0"),
            ("VXLAN", "vx", "10.82.0"), ("GRE", "gre", "10.83.0"))
# What `--smoke` prints (tests/experiments/test_experiments_smoke.py checks each regex).
SMOKE_FIGURES = (
    r"^external +1 +\d+\.\d +\d+\.\d +(\d+\.\d|inf) +(\d+\.\d|inf)$",
    r"^VLAN +1 +\d+\.\d +\d+\.\d +(\d+\.\d|inf) +(\d+\.\d|inf)$",
    r"^VXLAN +1 +\d+\.\d +\d+\.\d +(\d+\.\d|inf) +(\d+\.\d|inf)$",
    r"^GRE +1 +\d+\.\d +\d+\.\d +(\d+\.\d|inf) +(\d+\.\d|inf)$",
)
PLOT = "migration_loss.png"


class MigrationPool(PoolBuilder):
    """Three hosts, the four kinds of network, vm1 on host1 and vm2 on host2 on each."""

    def build(self) -> None:  # type: ignore[override]
        self.add_network("pool")
        self.add_network("vlan10", vlan=10)
        self.add_network("vx", tunnel="vxlan")
        self.add_network("gre", tunnel="gre")
        for h in (1, 2, 3):
            self.add_host(f"host{h}")
        for n in (1, 2):
            self.add_vm(f"vm{n}", f"host{n}")
            for _kind, net, subnet in NETWORKS:
                self.add_vif(f"vm{n}", net, f"{subnet}.{n}/24")


def migrate_once(ex: Experiment, dst: str, duration: float) -> tuple[dict[str, PingFigures],
                                                                     float]:
    """One migration of vm2 to `dst` under four pings: figures per kind, the call's seconds."""
    streams = {kind: ex.ping_stream("vm1", f"{subnet}.2", duration)
               for kind, _net, subnet in NETWORKS}
    time.sleep(1.0)
    t = time.monotonic()
    ex.migrate("vm2", dst)
    call = time.monotonic() - t
    figures = {kind: s.figures() for kind, s in streams.items()}
    reachable = ex.wait(lambda: ex.where("vm2") == dst and all(
        ex.ping("vm1", f"{subnet}.2") for _k, _n, subnet in NETWORKS), 30)
    if reachable is None:
        raise RuntimeError(f"vm2 not reachable on every network after moving to {dst}")
    return figures, call


def plot(results: dict[str, list[PingFigures]], path: Path) -> Path:
    kinds = list(results)

    def draw(ax) -> None:  # noqa: ANN001 - a matplotlib Axes
        lost = [statistics.median(f.lost_ms for f in results[k]) for k in kinds]
        gaps = [statistics.median(f.gap_ms for f in results[k]) for k in kinds]
        worst = [max(f.gap_ms for f in results[k]) for k in kinds]
        xs = range(len(kinds))
        ax.bar([x - 0.2 for x in xs], lost, 0.4, label="lost x pacing (median)")
        ax.bar([x + 0.2 for x in xs], gaps, 0.4, label="longest gap (median)")
        ax.scatter([x + 0.2 for x in xs], worst, marker="_", s=400, color="black",
                   label="longest gap (max)", zorder=3)
        ax.set_xticks(list(xs), kinds)
        ax.set_ylabel("ms")
        ax.legend()

    n = len(next(iter(results.values())))
    return save_plot(path, draw, f"Traffic lost during VM.pool_migrate ({n} migrations)")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--migrations", type=int, default=10)
    ap.add_argument("--duration", type=float, default=4.0, help="ping per migration (s)")
    args = ap.parse_args(argv)
    need_root()
    lab = slot(2, args.smoke)
    if args.smoke:
        print("smoke run: one migration: proves the path, not the figure")
        args.migrations, args.duration = 1, 3.0
    results: dict[str, list[PingFigures]] = {kind: [] for kind, _n, _s in NETWORKS}
    calls: list[float] = []
    with Experiment.up(MigrationPool("migrate"), lab.prefix, lab.management, lab.ports) as ex:
        print(f"pool up and converged in {ex.converged_s:.1f}s", flush=True)
        if ex.wait(lambda: all(ex.ping("vm1", f"{s}.2") for _k, _n, s in NETWORKS), 30) is None:
            raise RuntimeError("vm1 does not reach vm2 on every network before the experiment")
        where = "host2"
        for i in range(args.migrations):
            dst = "host3" if where == "host2" else "host2"
            figures, call = migrate_once(ex, dst, args.duration)
            calls.append(call)
            for kind, f in figures.items():
                results[kind].append(f)
            print(f"  migration {i + 1} {where}->{dst}: " + ", ".join(
                f"{k} {f.lost_ms:.0f} ms lost / gap {f.gap_ms:.0f} ms"
                for k, f in figures.items()), flush=True)
            where = dst
            time.sleep(1.0)
    print()
    print(table(["network", "migrations", "lost ms p50", "lost ms max", "gap ms p50",
                 "gap ms max"],
                [(kind, len(fs), statistics.median(f.lost_ms for f in fs),
                  max(f.lost_ms for f in fs), statistics.median(f.gap_ms for f in fs),
                  max(f.gap_ms for f in fs)) for kind, fs in results.items()]))
    print(f"VM.pool_migrate call: median {statistics.median(calls) * 1000:.0f} ms")
    path = plot(results, args.out / PLOT)
    print(f"\nplot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
