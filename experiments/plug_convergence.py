"""Convergence after a VIF plug, by pool size (2, 4, 8, 16 hosts).

A pool of N hosts, one NIC each on the external network `pool`, a VXLAN network `priv` over
it (a full mesh of N x (N-1) tunnel ends, each with BFD), and one VM per host with a VIF on
each network, so every host's switches carry both. The VM on the last host (vmN) has one VIF
unplugged and plugged again through XenAPI (`VIF.unplug`, `VIF.plug`); the lab agent plugs
its port as xenopsd would, and `netctl run` installs its flows on its host (and its remote
flows on every other). A prober in vm1 (host1) sends an ICMP echo to that VIF's address
every 0.5 ms from just before the plug until the first reply. Per sample:
- `VIF.plug -> reply`: from the XenAPI call to the first echo reply (all of it: xapi, the
  lab agent's plug, netctl's flows on both hosts, one round trip);
- `port -> reply`: from the port's Interface row in the host's OVSDB (as ovsdb-client
  received it) to the first reply: netctl's share, without the lab agent's.
vm1's neighbour entry for the VIF is pinned (its MAC does not change); the VIF's own ARP for
vm1 goes out as a booting guest's does (held and replayed if its rules are not in yet).

    python -m experiments.plug_convergence [--sizes 2,4,8,16] [--plugs 20] [--out DIR]
    python -m experiments.plug_convergence --smoke     # 2 hosts, 3 plugs per network
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from experiments._cli import LabSlot, need_root, parser, slot
from netctl.experiment import Experiment, PoolBuilder, Prober, pct, save_plot, table
from netctl.experiment.portwatch import PortWatch

NETWORKS = (("external", "pool", 0, "10.90.0"), ("VXLAN", "priv", 1, "10.91.0"))
# What `--smoke` prints (tests/experiments/test_experiments_smoke.py checks each regex).
SMOKE_FIGURES = (r"^2 +external +3 +\d+\.\d +\d+\.\d +\d+\.\d +(\d+\.\d|-) +\d+$",
                 r"^2 +VXLAN +3 +\d+\.\d +\d+\.\d +\d+\.\d +(\d+\.\d|-) +\d+$")
PLOT = "plug_convergence.png"


class SizedPool(PoolBuilder):
    """`hosts` hosts with one NIC, an external and a VXLAN network, one VM per host."""

    def build(self, hosts: int = 2) -> None:  # type: ignore[override]
        self.add_network("pool")
        self.add_network("priv", tunnel="vxlan")
        for h in range(1, hosts + 1):
            self.add_host(f"host{h}")
            self.add_vm(f"vm{h}", f"host{h}")
            for _kind, net, _dev, subnet in NETWORKS:
                self.add_vif(f"vm{h}", net, f"{subnet}.{h}/24")


@dataclass
class Sample:
    plug_ms: float | None  # VIF.plug called -> first reply (None: no reply in the window)
    port_ms: float | None  # port's OVSDB row -> first reply (None: not seen)


def one_plug(ex: Experiment, vm: str, host: str, device: int, prober: Prober,
             watch: PortWatch, settle: float) -> Sample:
    ex.unplug(vm, device)
    if ex.wait(lambda: not ex.plugged(vm, device), 20) is None:
        raise RuntimeError(f"the lab did not unplug {vm}/{device}")
    time.sleep(settle)  # netctl drops the VIF's flows
    prober.go()
    t0 = time.monotonic()
    ex.plug(vm, device)
    reply, _probes = prober.reply()
    port = watch.wait(host, "insert", t0, timeout=2.0, suffix=f".{device}")
    if ex.wait(lambda: ex.plugged(vm, device), 20) is None:
        raise RuntimeError(f"the lab did not plug {vm}/{device}")
    if reply is None:
        return Sample(None, None)
    return Sample(1000 * (reply - t0), None if port is None else 1000 * (reply - port))


def run_size(hosts: int, plugs: int, settle: float, timeout: float, lab_slot: LabSlot
             ) -> dict[str, list[Sample]]:
    vm, host = f"vm{hosts}", f"host{hosts}"
    out: dict[str, list[Sample]] = {kind: [] for kind, *_ in NETWORKS}
    with Experiment.up(SizedPool(f"plug{hosts}", hosts=hosts), lab_slot.prefix,
                       lab_slot.management, lab_slot.ports, timeout=timeout) as ex:
        print(f"{hosts} hosts: pool up and converged in {ex.converged_s:.1f}s", flush=True)
        probers: dict[str, Prober] = {}
        watch = PortWatch(ex.lab, [host])
        try:
            for kind, _net, device, subnet in NETWORKS:
                address = f"{subnet}.{hosts}"
                if ex.wait(lambda a=address: ex.ping("vm1", a), 30) is None:
                    raise RuntimeError(f"vm1 does not reach {address} before the experiment")
                mac = ex.lab.vif(vm, device).mac
                ex.exec("vm1", "ip", "neigh", "replace", address, "lladdr", mac, "dev",
                        f"eth{device}", "nud", "permanent")
                probers[kind] = Prober(ex.lab, "vm1", address)
            for _ in range(plugs):
                for kind, _net, device, _subnet in NETWORKS:
                    out[kind].append(one_plug(ex, vm, host, device, probers[kind], watch,
                                              settle))
        finally:
            for p in probers.values():
                p.close()
            watch.stop()
    return out


def summary(samples: list[Sample]) -> tuple[float | None, ...]:
    ok = [s.plug_ms for s in samples if s.plug_ms is not None]
    port = [s.port_ms for s in samples if s.port_ms is not None]
    if not ok:
        return None, None, None, None
    return pct(ok, 50), pct(ok, 90), max(ok), (pct(port, 50) if port else None)


def plot(results: dict[int, dict[str, list[Sample]]], path: Path) -> Path:
    sizes = sorted(results)

    def draw(ax) -> None:  # noqa: ANN001 - a matplotlib Axes
        for kind, *_ in NETWORKS:
            p50 = [summary(results[n][kind])[0] for n in sizes]
            p90 = [summary(results[n][kind])[1] for n in sizes]
            port = [summary(results[n][kind])[3] for n in sizes]
            line = ax.plot(sizes, p50, marker="o", label=f"{kind}: VIF.plug -> reply, p50")[0]
            ax.plot(sizes, p90, marker="^", linestyle=":", color=line.get_color(),
                    label=f"{kind}: VIF.plug -> reply, p90")
            ax.plot(sizes, port, marker="s", linestyle="--", color=line.get_color(),
                    label=f"{kind}: port in OVSDB -> reply, p50")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xlabel("hosts in the pool")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)

    return save_plot(path, draw, "Convergence after a VIF plug, by pool size")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--sizes", default="2,4,8,16", help="pool sizes (hosts), comma-separated")
    ap.add_argument("--plugs", type=int, default=20, help="plugs per network and size")
    ap.add_argument("--settle", type=float, default=0.5, help="wait after an unplug (s)")
    args = ap.parse_args(argv)
    need_root()
    lab = slot(3, args.smoke)
    sizes = [int(n) for n in args.sizes.split(",")]
    if args.smoke:
        print("smoke run: 2 hosts, 3 plugs per network: proves the path, not the figure")
        sizes, args.plugs = [2], 3
    results: dict[int, dict[str, list[Sample]]] = {}
    for n in sizes:
        results[n] = run_size(n, args.plugs, args.settle, 60.0 + 10.0 * n, lab)
    print()
    rows = []
    for n in sizes:
        for kind, *_ in NETWORKS:
            samples = results[n][kind]
            failed = sum(s.plug_ms is None for s in samples)
            rows.append((n, kind, len(samples), *summary(samples), failed))
    print(table(["hosts", "network", "plugs", "plug->reply p50", "p90", "max",
                 "port->reply p50", "failed"], rows))
    path = plot(results, args.out / PLOT)
    print(f"\nplot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
