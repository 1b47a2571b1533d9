"""Bond failover time by bond mode and lacp-time, with bonds netctl builds from xapi.

A pool of two hosts: host1 bonds eth0+eth1 (bond0, the mode under test; a `lacp` bond faces a
switch-side LACP bond with the same lacp-time, the other modes face two independent switch
ports, as a real switch does), host2 has one NIC; vm1 on host1 pings vm2 on host2 every 9 ms.
The member carrying that traffic (the one whose tx counter moves) is then
- pulled: its cable loses carrier at both ends (`carrier lost`), or, after it is back and
  the bond settled again,
- silenced: carrier stays up, no frame crosses (`silent cut`): only LACP's timeout can tell.
Failover time = replies lost x ping's pacing (and the longest gap between two replies);
"> window" when the traffic did not come back within the window.

    python -m experiments.bond_failover [--window 12] [--out DIR]
    python -m experiments.bond_failover --smoke     # lacp fast, carrier lost, 3 s window
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from experiments._cli import LabSlot, need_root, parser, slot
from netctl.experiment import Experiment, PoolBuilder, save_plot, table

CONFIGS = (("lacp", "fast"), ("lacp", "slow"), ("active-backup", "-"), ("balance-slb", "-"))
EVENTS = ("carrier lost", "silent cut")
VM2 = "10.70.0.2"
# What `--smoke` prints (tests/experiments/test_experiments_smoke.py checks each regex).
SMOKE_FIGURES = (r"^lacp/fast +carrier lost +(\d+\.\d|> \d+ s) +(\d+\.\d|inf|-)$",)
PLOT = "bond_failover.png"


class BondPool(PoolBuilder):
    """host1: bond0 of `mode` over eth0+eth1; host2: one NIC; one VM on each."""

    def build(self, mode: str = "lacp", lacp_time: str = "fast") -> None:  # type: ignore[override]
        self.add_network("pool")
        self.add_host("host1", nics=2, bond_mode=mode,
                      lacp_time=lacp_time if lacp_time != "-" else "fast")
        self.add_host("host2")
        for n, host in ((1, "host1"), (2, "host2")):
            self.add_vm(f"vm{n}", host)
            self.add_vif(f"vm{n}", "pool", f"10.70.0.{n}/24")


@dataclass
class Row:
    config: str
    event: str
    lost_ms: float | None  # None: not back within the window
    gap_ms: float | None


def busy_member(ex: Experiment) -> str:
    """host1's bond member that carries vm1 -> vm2 (the one whose tx counter moves most)."""
    before = {d: ex.tx_packets("host1", d) for d in ("eth0", "eth1")}
    ex.exec("vm1", "ping", "-n", "-q", "-c", "20", "-i", "0.01", VM2, check=False)
    moved = {d: ex.tx_packets("host1", d) - before[d] for d in before}
    return max(moved, key=lambda d: moved[d])


def measure(ex: Experiment, cut: Callable[[str], None], window: float) -> tuple[
        str, float | None, float | None]:
    """(member cut, lost ms or None, longest gap ms or None) for one cut under a 9 ms ping."""
    member = busy_member(ex)
    start = time.monotonic()
    stream = ex.ping_stream("vm1", VM2, window)
    time.sleep(1.0)
    cut(member)
    fig = stream.figures()
    # back: replies were still coming in the window's last second
    if fig.last_at is None or fig.last_at < start + window - 1.0:
        return member, None, None
    return member, fig.lost_ms, fig.gap_ms


def settle(ex: Experiment, lacp: bool) -> None:
    """After a cable is back: LACP negotiated again and vm1 reaches vm2."""
    if lacp and not ex.lab.wait_lacp(60):
        raise RuntimeError("LACP did not negotiate again after the cable came back")
    if ex.wait(lambda: ex.ping("vm1", VM2), 30) is None:
        raise RuntimeError("vm1 does not reach vm2 after the cable came back")
    time.sleep(2.0)


def run_config(mode: str, lacp_time: str, events: tuple[str, ...], window: float,
               lab: LabSlot) -> list[Row]:
    rows = []
    name = f"{mode}/{lacp_time}" if mode == "lacp" else mode
    with Experiment.up(BondPool("bond", mode=mode, lacp_time=lacp_time), lab.prefix,
                       lab.management, lab.ports) as ex:
        print(f"{name}: pool up and converged in {ex.converged_s:.1f}s", flush=True)
        if ex.wait(lambda: ex.ping("vm1", VM2), 30) is None:
            raise RuntimeError("vm1 does not reach vm2 before the experiment")
        for event in events:
            if event == "carrier lost":
                member, lost, gap = measure(ex, lambda m: ex.cut("host1", m), window)
                ex.reconnect("host1", member)
                settle(ex, mode == "lacp")
            else:
                member, lost, gap = measure(ex, lambda m: ex.silence("host1", m), window)
            print(f"  {event} on host1/{member}: "
                  + (f"{lost:.0f} ms lost, longest gap {gap:.0f} ms" if lost is not None
                     else f"not back within {window:g} s"), flush=True)
            rows.append(Row(name, event, lost, gap))
    return rows


def plot(rows: list[Row], window: float, path: Path) -> Path:
    configs = list(dict.fromkeys(r.config for r in rows))
    events = list(dict.fromkeys(r.event for r in rows))
    cap = window * 1000

    def draw(ax) -> None:  # noqa: ANN001 - a matplotlib Axes
        width = 0.8 / len(events)
        for j, event in enumerate(events):
            xs, hs, never = [], [], []
            for i, config in enumerate(configs):
                row = next((r for r in rows if r.config == config and r.event == event), None)
                if row is None:
                    continue
                xs.append(i + j * width)
                hs.append(cap if row.lost_ms is None else max(row.lost_ms, 1.0))
                never.append(row.lost_ms is None)
            bars = ax.bar(xs, hs, width, label=event)
            for bar, n in zip(bars, never, strict=True):
                if n:
                    bar.set_hatch("//")
                    ax.annotate(f"> {window:g} s", (bar.get_x() + bar.get_width() / 2, cap),
                                ha="center", va="bottom", fontsize=8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(configs))], configs)
        ax.set_yscale("log")
        ax.set_ylabel("traffic lost (ms, 9 ms ping)")
        ax.legend()

    return save_plot(path, draw, "Bond failover by mode / lacp-time (netctl-built bonds)")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--window", type=float, default=12.0, help="ping duration per event (s)")
    args = ap.parse_args(argv)
    need_root()
    lab = slot(1, args.smoke)
    configs, events, window = CONFIGS, EVENTS, args.window
    if args.smoke:
        print("smoke run: lacp fast, carrier lost, 3 s window: proves the path, not the figure")
        configs, events, window = CONFIGS[:1], EVENTS[:1], 3.0
    rows: list[Row] = []
    for mode, lacp_time in configs:
        rows += run_config(mode, lacp_time, events, window, lab)
    print()
    print(table(["bond", "event", "lost (ms)", "longest gap (ms)"],
                [(r.config, r.event, r.lost_ms if r.lost_ms is not None else f"> {window:g} s",
                  r.gap_ms) for r in rows]))
    path = plot(rows, window, args.out / PLOT)
    print(f"\nplot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
