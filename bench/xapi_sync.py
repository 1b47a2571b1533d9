"""Benchmark (prints figures, not a test): full sync of a big pool and incremental throughput.

    .venv/bin/python bench/xapi_sync.py [--hosts 64] [--vifs-per-host 1000] [--events 2000]
    .venv/bin/python bench/xapi_sync.py --smoke      # 2 hosts x 20 VIFs, 20 events (seconds)

Full sync: a synthetic pool (`harness.synthetic`: H hosts x V VIFs per host, VMs with realistic
records and 1-3 VIFs each over an external network on an LACP bond, a VLAN network and a VXLAN
private network; every 4th VIF locked) read by `XapiSync.connect()` over XML-RPC (the official
client) and over JSON-RPC (the same `event.from("")` posted to /jsonrpc), timing and peak
Python memory (tracemalloc). Incremental: a writer thread toggles VIF locking modes through the
XenAPI client while the sync runs; events/s = writes whose change reached the client's
PoolState per second, end to end. No lab, no root: the simulator listens on an ephemeral
loopback port.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

import XenAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.synthetic import PoolSpec, simulator  # noqa: E402
from netctl.xapi.convert import state_from_records  # noqa: E402
from netctl.xapi.server import serve  # noqa: E402
from netctl.xapi.sim import Simulator  # noqa: E402
from netctl.xapi.sync import SYNC_CLASSES, XapiSync  # noqa: E402

# What `--smoke` must print (tests/bench/test_bench_smoke.py checks each regex on stdout).
SMOKE_FIGURES = (
    r"^full sync XML-RPC .*: +[\d.]+ s, peak +[\d.]+ MiB, \d+ VIFs",
    r"^full sync JSON-RPC .*: +[\d.]+ s, peak +[\d.]+ MiB, \d+ VIFs",
    r"^incremental: +\d+ events/s",
)
USER, PASSWORD = "root", "bench"


def build(hosts: int, vifs_per_host: int) -> Simulator:
    sim, _pool = simulator(PoolSpec(hosts=hosts, vifs_per_host=vifs_per_host),
                           users={USER: PASSWORD}, event_delay=0.0)
    return sim


def full_sync_xmlrpc(url: str) -> tuple[float, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    sync = XapiSync(url, USER, PASSWORD)
    sync.connect()
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n = len(sync.state.vifs)
    sync.stop()
    return elapsed, peak / 2**20, n


def full_sync_jsonrpc(url: str) -> tuple[float, float, int]:
    def call(method: str, params: list) -> object:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
        req = urllib.request.Request(url + "jsonrpc", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())["result"]

    tracemalloc.start()
    t0 = time.perf_counter()
    session = call("session.login_with_password", [USER, PASSWORD])
    result = call("event.from", [session, list(SYNC_CLASSES), "", 0.0])
    records: dict[str, dict] = {c: {} for c in SYNC_CLASSES}
    by_lower = {c.lower(): c for c in SYNC_CLASSES}
    for ev in result["events"]:
        records[by_lower[ev["class"]]][ev["ref"]] = ev["snapshot"]
    state = state_from_records(records)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak / 2**20, len(state.vifs)


def incremental(url: str, sim: Simulator, events: int) -> float:
    sync = XapiSync(url, USER, PASSWORD, timeout=5.0)
    sync.connect()
    sync.start()
    vifs = sorted(sync.state.vifs)[:events]
    writer = XenAPI.Session(url)
    writer.xenapi.login_with_password(USER, PASSWORD)
    done = threading.Event()
    t0 = time.perf_counter()

    def write() -> None:
        for ref in vifs:
            writer.xenapi.VIF.set_locking_mode(ref, "disabled")
        done.set()

    threading.Thread(target=write, daemon=True).start()
    last = vifs[-1]
    sync.wait_for(lambda s: s.vifs[last].locking_mode == "disabled", timeout=600)
    elapsed = time.perf_counter() - t0
    assert all(sync.state.vifs[r].locking_mode == "disabled" for r in vifs)
    sync.stop()
    return len(vifs) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=64)
    ap.add_argument("--vifs-per-host", type=int, default=1000)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--smoke", action="store_true",
                    help="2 hosts x 20 VIFs, 20 events: seconds (what make test runs)")
    args = ap.parse_args()
    if args.smoke:
        args.hosts, args.vifs_per_host, args.events = 2, 20, 20
        print("smoke run: small sizes, to prove the path runs; its figures are not the benchmark's")
    t0 = time.perf_counter()
    sim = build(args.hosts, args.vifs_per_host)
    vms = sum(1 for r in sim.store.table("VM").rows.values()
              if not r.fields["is_control_domain"])
    print(f"pool: {args.hosts} hosts x {args.vifs_per_host} VIFs "
          f"({args.hosts * args.vifs_per_host} VIFs on {vms} VMs, harness.synthetic), built in "
          f"{time.perf_counter() - t0:.1f}s")
    srv = serve(sim, "127.0.0.1", 0)
    try:
        secs, mib, n = full_sync_xmlrpc(srv.url)
        print(f"full sync XML-RPC  (XenAPI client -> PoolState): {secs:6.2f} s, "
              f"peak {mib:7.1f} MiB, {n} VIFs")
        secs, mib, n = full_sync_jsonrpc(srv.url)
        print(f"full sync JSON-RPC (event.from on /jsonrpc -> PoolState): {secs:6.2f} s, "
              f"peak {mib:7.1f} MiB, {n} VIFs")
        rate = incremental(srv.url, sim, args.events)
        print(f"incremental: {rate:8.0f} events/s end to end (VIF.set_locking_mode via XenAPI "
              f"-> event.from -> PoolState), {args.events} writes")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
