"""How long, and how many OVSDB operations, netctl takes to configure a host with many VLAN
networks (the seed's "better VLAN scalability"): from scratch, then for one added VLAN, then
for the same config again. Real ovsdb-server + ovs-vswitchd (userspace datapath).

Usage (root): .venv/bin/python -m bench.ovsdb_apply [--vlans 1000]
              .venv/bin/python -m bench.ovsdb_apply --smoke   # 20 VLANs, namespace sb4-*
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.hostnet_builders import PoolBuilder  # noqa: E402
from harness.sandbox import OvsSandbox  # noqa: E402
from netctl.sinks.ovsdb import HostOvsdb  # noqa: E402
from vlan import compile_host  # noqa: E402

# What `--smoke` must print (tests/bench/test_bench_smoke.py checks each regex on stdout).
SMOKE_FIGURES = (
    r"^from scratch +[\d.]+ +\d+$",
    r"^same again +[\d.]+ +0$",
    r"^one VLAN added +[\d.]+ +\d+$",
)
SMOKE_NEEDS_ROOT = True


def pool(n_vlans: int):
    b = PoolBuilder()
    h = b.host("host1")
    _, master = b.bond(h, "bond0", b.network("pool", "xapi1"),
                       [b.nic(h, "eth0", None), b.nic(h, "eth1", None)], "lacp")
    for tag in range(1, n_vlans + 1):
        b.vlan(master, tag, b.network(f"v{tag}", f"xv{tag}"))
    return b, h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vlans", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true",
                        help="20 VLANs in a sandbox of its own (sb4-*): seconds, for make test")
    args = parser.parse_args()
    name = "t4bench"
    if args.smoke:
        args.vlans, name = 20, "sb4"
        print("smoke run: small sizes, to prove the path runs; its figures are not the "
              "benchmark's")
    box = OvsSandbox(name)
    try:
        rows = []
        b, h = pool(args.vlans)
        t = time.perf_counter()
        config = compile_host(b.state(), h.ref, datapath_type="netdev")
        compile_s = time.perf_counter() - t
        b2, h2 = pool(args.vlans + 1)
        config2 = compile_host(b2.state(), h2.ref, datapath_type="netdev")
        with HostOvsdb(box.unix, timeout=300) as db:
            for label, cfg in (("from scratch", config), ("same again", config),
                               ("one VLAN added", config2)):
                t = time.perf_counter()
                result = db.apply(cfg)
                rows.append((label, time.perf_counter() - t, result.count))
        ports = len(box.table("Port"))
        print(f"host with {args.vlans} VLAN networks (fake bridges on one LACP bond bridge); "
              f"compile_host {compile_s * 1000:.0f} ms; Port rows now {ports}")
        print(f"{'apply':<16} {'seconds':>9} {'operations':>11}")
        for label, secs, ops in rows:
            print(f"{label:<16} {secs:>9.3f} {ops:>11}")
    finally:
        box.close()


if __name__ == "__main__":
    main()
