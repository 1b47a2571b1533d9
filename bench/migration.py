"""Live migration as the guest sees it: replies lost and the longest gap of a 10 ms ping while
`VM.pool_migrate` moves the VM it pings to another host, on an external and a private network.

Why: issue 12's target is that a migration loses at most the lab's own plug-to-plug gap: the
time between the VIF's port leaving the source host and its port appearing on the destination,
during which no network could deliver anything. Whatever is lost beyond that is netctl's (the
new port's flows, the other hosts learning where the VIF went, the held-and-replayed first
frames of the new port).

Setup: a generated 3-host pool (one NIC per host on the external network `pool`, a VXLAN
private network `priv` over it), vm1 on host1, vm2 on host2, each with a VIF on both networks;
the real controller process (`netctl openflow`, `harness.sdn`) and the lab's xenopsd stand-in
(`netctl.lab.agent.LabAgent`), which moves a VM's VIFs when xapi says it moved (new domid:
ports `vif<domid>.<dev>` on the destination; then the guest's gratuitous ARP, as netfront
sends one). Lab `tb4`, management 198.18.64.0/24, OpenFlow port 36656.

One migration: vm1 starts `ping -D -i 0.009` to vm2 on both networks at once (iputils 20221126
paces `-i 0.01` at 16 ms and `-i 0.009` at 9 ms, measured on loopback: the closest to 10 ms;
the pacing measured in the run is printed and used); after 1 s,
`VM.pool_migrate(vm2, other host)` through the official XenAPI client; the pings run
`--duration` s in all. Per network: replies lost (x the pacing), the longest gap between two
replies (receive timestamps), and the lab's gap for that VIF: its port's Interface row deleted
on the source to its new port's row inserted on the destination (`ovsdb-client monitor` on
both hosts). vm2 alternates host2 -> host3 -> host2 ...  This is the lab's migration (the VM's
namespace keeps running; its VIFs are re-plugged), not a memory copy: there is no guest pause.

    .venv/bin/python bench/migration.py [--migrations 10] [--duration 4]
    .venv/bin/python bench/migration.py --smoke     # 1 migration, lab sb5 (198.18.95.0/24)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.footprint import NOTHING, lab_footprint  # noqa: E402
from harness.sdn import SdnPool, report_leftovers, sdn_pool  # noqa: E402
from netctl.experiment.measure import ping_figures  # noqa: E402
from netctl.experiment.portwatch import PortWatch  # noqa: E402
from netctl.lab.agent import LabAgent  # noqa: E402
from netctl.topology import Topology, parse_data  # noqa: E402

INTERVAL = 0.009  # asked of ping; see the docstring for why not 0.01
TARGET_BEYOND_MS = 20
NETWORKS = (("external", "pool", 0, "10.60.0.2"), ("private", "priv", 1, "10.61.0.2"))
LAB = ("tb4", "198.18.64.0/24", 36656)
SMOKE_LAB = ("sb5", "198.18.95.0/24", 27205)
# What `--smoke` must print (tests/bench/test_bench_smoke.py checks each regex on stdout).
SMOKE_FIGURES = (
    r"^  migration 1 host2->host3: external lost \d+ \(\d+ ms at \d+ ms\), longest gap \d+ ms, "
    r"lab gap "
    r"\d+ ms \(last reply -?\d+ ms before it, first -?\d+ ms after; port in the datapath "
    r"(-?\d+|\?) ms after its row\); private lost \d+",
    r"^external +\d+ +\d+ +\d+ +\d+ +\d+ +\d+( +-?\d+){8}$",
    r"^private +\d+ +\d+ +\d+ +\d+ +\d+ +\d+( +-?\d+){8}$",
)
SMOKE_NEEDS_ROOT = True


def topology(prefix: str, management: str) -> Topology:
    data: dict[str, Any] = {
        "name": "migrate", "prefix": prefix, "management": management,
        "networks": [{"name": "pool", "bridge": "xenbr0"},
                     {"name": "priv", "bridge": "xapi1",
                      "tunnel": {"protocol": "vxlan", "transport": "pool"}}],
        "hosts": [{"name": f"host{h}", "nics": [{"device": "eth0", "network": "pool"}],
                   "addresses": {"pool": {"ipv4": f"172.31.0.{h}/24"}}} for h in (1, 2, 3)],
        "switch": {"cables": [{"host": f"host{h}", "nic": "eth0"} for h in (1, 2, 3)]},
        "vms": [{"name": f"vm{n}", "host": f"host{n}", "vifs": [
            {"device": 0, "network": "pool", "ipv4": [f"10.60.0.{n}/24"]},
            {"device": 1, "network": "priv", "ipv4": [f"10.61.0.{n}/24"]}]} for n in (1, 2)],
    }
    return parse_data(data, "<bench/migration.py>")


@dataclasses.dataclass
class Result:
    """One network in one migration (ms)."""

    lost: int
    gap_ms: float
    lab_gap_ms: float | None
    spacing_ms: float = INTERVAL * 1000  # median time between two replies: ping's pacing
    before_ms: float | None = None  # the last reply before the gap -> old port deleted
    after_ms: float | None = None  # new port inserted -> the first reply after the gap
    added_ms: float | None = None  # new port inserted -> in vswitchd's datapath (its ofport)


def migrate_once(pool: SdnPool, watch: PortWatch, vm_ref: str, dst: str, src: str,
                 duration: float) -> tuple[dict[str, Result], float]:
    x = pool.session.xenapi
    host_ref = next(h for h in x.host.get_all() if x.host.get_name_label(h) == dst)
    pings = {name: pool.lab.popen("vm1", ["ping", "-D", "-n", "-i", str(INTERVAL), "-W", "1",
                                          "-w", f"{duration:g}", ip])
             for name, _net, _dev, ip in NETWORKS}
    time.sleep(1.0)
    t_call = time.monotonic()
    x.VM.pool_migrate(vm_ref, host_ref, {})
    call_s = time.monotonic() - t_call
    out = {}
    for name, _net, dev, _ip in NETWORKS:
        stdout, _ = pings[name].communicate(timeout=duration + 30)
        figures = ping_figures(stdout, INTERVAL)
        lost, gap, around, spacing = (figures.lost, figures.gap_ms, figures.gap_at,
                                      figures.spacing_ms)
        gone = watch.wait(src, "delete", t_call, 1.0, prefix="vif", suffix=f".{dev}")
        came = watch.wait(dst, "insert", t_call, 1.0, prefix="vif", suffix=f".{dev}")
        ready = watch.wait(dst, "ready", t_call, 1.0, prefix="vif", suffix=f".{dev}")
        lab_gap = None if gone is None or came is None else 1000 * (came - gone)
        before = None if gone is None or around is None else 1000 * (gone - around[0])
        after = None if came is None or around is None else 1000 * (around[1] - came)
        added = None if came is None or ready is None else 1000 * (ready - came)
        out[name] = Result(lost, gap, lab_gap, spacing, before, after, added)
    return out, call_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--migrations", type=int, default=10)
    ap.add_argument("--duration", type=float, default=4.0, help="ping duration per migration (s)")
    ap.add_argument("--smoke", action="store_true", help="1 migration, lab sb5: for make test")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the controller's log and status file (else removed)")
    args = ap.parse_args(argv)
    prefix, management, port = LAB
    if args.smoke:
        print("smoke run: one migration, to prove the path runs; its figures are not the "
              "benchmark's")
        args.migrations, args.duration = 1, 3.0
        prefix, management, port = SMOKE_LAB
    if lab_footprint(prefix) != NOTHING:
        print(f"lab {prefix} exists: another run is going on, or a run left it behind "
              f"(netctl lab down --lab {prefix})", file=sys.stderr)
        return 2
    topo = topology(prefix, management)
    workdir = Path(tempfile.mkdtemp(prefix=f"netctl-migration-{prefix}-"))
    pool: SdnPool | None = None
    agent: LabAgent | None = None
    watch: PortWatch | None = None
    rows: list[tuple[int, str, str, dict[str, Result], float]] = []
    try:
        t0 = time.monotonic()
        pool = sdn_pool(topo, workdir, port=port)
        agent = LabAgent(pool.lab, pool.server.url).start()
        if not agent.wait_in_step(30):
            raise RuntimeError(f"the lab agent did not follow xapi: {agent.errors}")
        for _name, _net, _dev, ip in NETWORKS:
            if not any(pool.lab.exec("vm1", ["ping", "-n", "-c", "1", "-W", "1", ip],
                                     check=False).returncode == 0 for _ in range(5)):
                raise RuntimeError(f"vm1 cannot reach {ip} before the benchmark")
        print(f"migration: lab {prefix} up, controller converged, agent in step in "
              f"{time.monotonic() - t0:.1f}s; {args.migrations} migrations of vm2, pings every "
              f"{INTERVAL * 1000:g} ms "
              f"from vm1 (host1) on both networks, {args.duration:g} s each")
        watch = PortWatch(pool.lab, ["host2", "host3"])
        time.sleep(0.5)
        vm_ref = pool.session.xenapi.VM.get_by_name_label("vm2")[0]
        where = "host2"
        for i in range(args.migrations):
            dst = "host3" if where == "host2" else "host2"
            res, call_s = migrate_once(pool, watch, vm_ref, dst, where, args.duration)
            rows.append((i + 1, where, dst, res, call_s))
            text = "; ".join(
                f"{name} lost {r.lost} ({r.lost * r.spacing_ms:.0f} ms at "
                f"{r.spacing_ms:.0f} ms), longest gap {r.gap_ms:.0f} ms, "
                f"lab gap {_ms(r.lab_gap_ms)} ms (last reply {_ms(r.before_ms)} ms before it, "
                f"first {_ms(r.after_ms)} ms after; port in the datapath {_ms(r.added_ms)} ms "
                f"after its row)"
                for name, r in res.items())
            print(f"  migration {i + 1} {where}->{dst}: {text} (VM.pool_migrate "
                  f"{call_s * 1000:.0f} ms)")
            where = dst
            agent.wait_in_step(30)
            time.sleep(0.5)
    finally:
        if watch is not None:
            watch.stop()
        if agent is not None:
            agent.stop()
        if pool is not None:
            pool.close()
        report_leftovers(prefix, workdir, args.keep_logs)
    print(f"\n{len(rows)} migrations (ms; median and max over them; 'beyond lab' = longest gap "
          "minus the lab's own port gap, i.e. what netctl adds)")
    print(f"{'network':<10} {'lost':>6} {'max':>6} {'gap':>6} {'max':>6} {'lab':>6} {'max':>6} "
          f"{'beyond':>7} {'max':>6} {'before':>7} {'max':>6} {'after':>6} {'max':>6} "
          f"{'added':>6} {'max':>6}")
    met = True
    for name, _net, _dev, _ip in NETWORKS:
        lost = [r[3][name].lost * r[3][name].spacing_ms for r in rows]
        gaps = [r[3][name].gap_ms for r in rows]
        labs = [r[3][name].lab_gap_ms for r in rows if r[3][name].lab_gap_ms is not None]
        beyond = [r[3][name].gap_ms - r[3][name].lab_gap_ms for r in rows
                  if r[3][name].lab_gap_ms is not None]
        if not labs:
            labs = beyond = [float("nan")]
        before = [r[3][name].before_ms for r in rows if r[3][name].before_ms is not None] or [
            float("nan")]
        after = [r[3][name].after_ms for r in rows if r[3][name].after_ms is not None] or [
            float("nan")]
        added = [r[3][name].added_ms for r in rows if r[3][name].added_ms is not None] or [
            float("nan")]
        met &= max(beyond) <= TARGET_BEYOND_MS
        print(f"{name:<10} {statistics.median(lost):6.0f} {max(lost):6.0f} "
              f"{statistics.median(gaps):6.0f} {max(gaps):6.0f} {statistics.median(labs):6.0f} "
              f"{max(labs):6.0f} {statistics.median(beyond):7.0f} {max(beyond):6.0f} "
              f"{statistics.median(before):7.0f} {max(before):6.0f} "
              f"{statistics.median(after):6.0f} {max(after):6.0f} "
              f"{statistics.median(added):6.0f} {max(added):6.0f}")
    print(f"target: no gap beyond the lab's own port gap (allowing {TARGET_BEYOND_MS} ms, two "
          f"ping intervals): {'MET' if met else 'NOT MET'}")
    return 0 if met or args.smoke else 1


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    sys.exit(main())
