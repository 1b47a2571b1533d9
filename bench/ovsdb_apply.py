"""How long, and how many OVSDB operations, netctl takes to configure a host with many VLAN
networks (the seed's "better VLAN scalability"): from scratch, then for one added VLAN, then
for the same config again — each as two figures (issue 24): *written* (the apply until
ovsdb-server's reply) and *in effect* (until ovs-vswitchd's `cur_cfg` reached the
transaction's `next_cfg`; both from the start of the apply). Real ovsdb-server + ovs-vswitchd
(userspace datapath).

`--hosts N`: N lab hosts at once (`netctl.lab`: each its own namespace, ovsdb-server and
ovs-vswitchd, host networking left to netctl), every host given the same VLAN networks on its
eth0 in one transaction, all applies started together: both figures per host.

Usage (root): .venv/bin/python -m bench.ovsdb_apply [--vlans 1000]
              .venv/bin/python -m bench.ovsdb_apply --hosts 16 --vlans 4094   # lab sbd
              .venv/bin/python -m bench.ovsdb_apply --smoke   # 20 VLANs (namespace sb4-*),
                                                              # then 2 lab hosts x 10 (lab sbc)
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.hostnet_builders import PoolBuilder  # noqa: E402
from harness.sandbox import OvsSandbox  # noqa: E402
from netctl.hostconfig import HostConfig  # noqa: E402
from netctl.lab.lab import Lab  # noqa: E402
from netctl.sinks.ovsdb import HostOvsdb  # noqa: E402
from netctl.topology import parse_data  # noqa: E402
from netctl.topology_gen import pool_data  # noqa: E402
from vlan import compile_host  # noqa: E402

# What `--smoke` must print (tests/bench/test_bench_smoke.py checks each regex on stdout).
SMOKE_FIGURES = (
    r"^from scratch +[\d.]+ +[\d.]+ +\d+$",
    r"^same again +[\d.]+ +- +0$",
    r"^one VLAN added +[\d.]+ +[\d.]+ +\d+$",
    r"^host1 +\d+ +[\d.]+ +[\d.]+$",
    r"^host2 +\d+ +[\d.]+ +[\d.]+$",
    r"^all hosts +\d+ +[\d.]+ +[\d.]+ +\(slowest host; wall [\d.]+ s\)$",
)
SMOKE_NEEDS_ROOT = True
# The labs of `--hosts` (management /24s and prefixes of their own: bench/README.md's table)
SMOKE_LAB, FULL_LAB = ("sbc", "198.18.90.0/24"), ("sbd", "198.18.74.0/24")
EFFECT_TIMEOUT = 3600.0  # seconds vswitchd may take to apply a change (4094 VLANs x 16 hosts)


def pool(n_vlans: int):
    b = PoolBuilder()
    h = b.host("host1")
    _, master = b.bond(h, "bond0", b.network("pool", "xapi1"),
                       [b.nic(h, "eth0", None), b.nic(h, "eth1", None)], "lacp")
    for tag in range(1, n_vlans + 1):
        b.vlan(master, tag, b.network(f"v{tag}", f"xv{tag}"))
    return b, h


def trunk_host(n_vlans: int) -> HostConfig:
    """A lab host's configuration: its eth0 on the pool network, `n_vlans` VLAN networks on
    it (fake bridges on eth0's bridge)."""
    b = PoolBuilder()
    h = b.host("host1")
    pif = b.nic(h, "eth0", b.network("pool", "xenbr0"))
    for tag in range(1, n_vlans + 1):
        b.vlan(pif, tag, b.network(f"v{tag}", f"xv{tag}"))
    return compile_host(b.state(), h.ref, datapath_type="netdev")


def effect_cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def one_host(n_vlans: int, name: str) -> None:
    """From scratch, the same again, one VLAN added: written and in effect, operations."""
    box = OvsSandbox(name)
    try:
        rows = []
        b, h = pool(n_vlans)
        t = time.perf_counter()
        config = compile_host(b.state(), h.ref, datapath_type="netdev")
        compile_s = time.perf_counter() - t
        # the last step adds a VLAN; at 4094 (the highest tag) it removes one instead
        last = ("one VLAN added", n_vlans + 1) if n_vlans < 4094 else \
            ("one VLAN removed", n_vlans - 1)
        b2, h2 = pool(last[1])
        config2 = compile_host(b2.state(), h2.ref, datapath_type="netdev")
        with HostOvsdb(box.unix, timeout=300) as db:
            for label, cfg in (("from scratch", config), ("same again", config),
                               (last[0], config2)):
                before = db.progress.state()
                t = time.perf_counter()
                result = db.apply(cfg)
                written = time.perf_counter() - t
                if not db.wait_in_effect(EFFECT_TIMEOUT):
                    raise SystemExit(f"{label}: not in effect after {EFFECT_TIMEOUT:.0f} s")
                state = db.progress.state()
                sent = state != before  # nothing sent: nothing to wait for
                rows.append((label, state.write_seconds if sent else written,
                             state.effect_seconds if sent else None, result.count))
        ports = len(box.table("Port"))
        print(f"host with {n_vlans} VLAN networks (fake bridges on one LACP bond bridge); "
              f"compile_host {compile_s * 1000:.0f} ms; Port rows now {ports}")
        print("written: until ovsdb-server's reply; in effect: until ovs-vswitchd's cur_cfg "
              "reached the transaction's next_cfg (both from the start of the apply)")
        print(f"{'apply':<16} {'written s':>10} {'in effect s':>12} {'operations':>11}")
        for label, secs, effect, ops in rows:
            print(f"{label:<16} {secs:>10.3f} {effect_cell(effect):>12} {ops:>11}")
    finally:
        box.close()


def many_hosts(n_hosts: int, n_vlans: int, lab_name: tuple[str, str]) -> None:
    """`n_hosts` lab hosts, each given `n_vlans` VLAN networks at the same moment."""
    prefix, management = lab_name
    topo = parse_data(pool_data(n_hosts, 0, name=f"{prefix}vlans", prefix=prefix,
                                management=management), f"<bench {prefix}>")
    config = trunk_host(n_vlans)
    lab = Lab.up(topo, host_networking="none")
    dbs: dict[str, HostOvsdb] = {}
    try:
        for host in topo.hosts:
            dbs[host.name] = HostOvsdb(lab.ovsdb_endpoint(host.name), timeout=600).connect()
        results: dict[str, tuple[int, float, float | None]] = {}
        errors: list[str] = []
        go = threading.Barrier(n_hosts + 1)

        def apply(name: str, db: HostOvsdb) -> None:
            go.wait()
            try:
                ops = db.apply(config).count
                ok = db.wait_in_effect(EFFECT_TIMEOUT)
                s = db.progress.state()
                results[name] = (ops, s.write_seconds or 0.0, s.effect_seconds if ok else None)
            except Exception as exc:  # noqa: BLE001 - reported below, the others go on
                errors.append(f"{name}: {exc}")

        threads = [threading.Thread(target=apply, args=item, daemon=True)
                   for item in dbs.items()]
        for thread in threads:
            thread.start()
        t = time.perf_counter()
        go.wait()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t
        print(f"{n_hosts} lab hosts at once (lab {prefix}), {n_vlans} VLAN networks each "
              f"(fake bridges on eth0's bridge), one transaction per host started together")
        print(f"{'host':<10} {'operations':>11} {'written s':>10} {'in effect s':>12}")
        for name in sorted(results, key=lambda n: int(n[4:])):
            ops, written, effect = results[name]
            print(f"{name:<10} {ops:>11} {written:>10.3f} {effect_cell(effect):>12}")
        if results:
            total = sum(r[0] for r in results.values())
            slowest_write = max(r[1] for r in results.values())
            effects = [r[2] for r in results.values() if r[2] is not None]
            print(f"{'all hosts':<10} {total:>11} {slowest_write:>10.3f} "
                  f"{effect_cell(max(effects) if len(effects) == len(results) else None):>12}"
                  f"   (slowest host; wall {wall:.1f} s)")
        if errors or len(results) < n_hosts:
            raise SystemExit("failed: " + "; ".join(errors))
    finally:
        for db in dbs.values():
            db.close()
        lab.reload().down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vlans", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=0,
                        help="N lab hosts at once (lab sbd), instead of one sandbox host")
    parser.add_argument("--smoke", action="store_true",
                        help="20 VLANs in a sandbox of its own (sb4-*), then 2 lab hosts x 10 "
                        "VLANs (lab sbc): seconds, for make test")
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: where it spends time
    if args.smoke:
        print("smoke run: small sizes, to prove the path runs; its figures are not the "
              "benchmark's")
        one_host(20, "sb4")
        many_hosts(2, 10, SMOKE_LAB)
    elif args.hosts:
        many_hosts(args.hosts, args.vlans, FULL_LAB)
    else:
        one_host(args.vlans, "t4bench")


if __name__ == "__main__":
    main()
