"""Benchmark (prints figures, not a test): full sync of a big pool and incremental throughput.

    .venv/bin/python bench/xapi_sync.py [--hosts 64] [--vifs-per-host 1000] [--runs 3]
                                        [--protocols jsonrpc,xmlrpc] [--events 2000]
    .venv/bin/python bench/xapi_sync.py --smoke      # 2 hosts x 20 VIFs, 20 events (seconds)

Pool: `harness.synthetic` (H hosts x V VIFs per host, VMs with realistic records carrying every
datamodel field and 1-3 VIFs each over an external network on an LACP bond, a VLAN network
and a VXLAN private network; every 4th VIF locked), served by the simulator in a process of its
own, so the client's memory is measured alone, as `netctl run`'s would be.

Full sync, per protocol: each run is a fresh client process that measures the interval from
`XapiSync(url, ..., protocol=P)` to `connect()` returned and `sync.state` built — login,
`event.from(classes, "")` (the simulator's scan and encoding, the transfer, the client's
decoding) and the conversion of every record to the model — and its peak RSS (VmHWM, from
/proc/self/status: the whole process, interpreter and imports included, not only Python's
allocations). Median of `--runs` runs (the machine this runs on is shared and busy).

Incremental: a writer thread toggles VIF locking modes through the XenAPI client while the sync
(JSON-RPC, as netctl runs it) follows; events/s = writes whose change reached the client's
PoolState per second, end to end. No lab, no root: the simulator listens on an ephemeral
loopback port.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# What `--smoke` must print (tests/bench/test_bench_smoke.py checks each regex on stdout).
SMOKE_FIGURES = (
    r"^full sync XML-RPC .*: +[\d.]+ s, peak +[\d.]+ MiB, \d+ VIFs",
    r"^full sync JSON-RPC .*: +[\d.]+ s, peak +[\d.]+ MiB, \d+ VIFs",
    r"^incremental: +\d+ events/s",
)
USER, PASSWORD = "root", "bench"
NAMES = {"jsonrpc": "JSON-RPC", "xmlrpc": "XML-RPC"}


def memory_mib() -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of this process, MiB."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def serve_pool(hosts: int, vifs_per_host: int, conn: Connection) -> None:
    """Child process: build the synthetic pool, serve it, report (url, build s, VMs), and
    serve until the parent says stop (or goes away)."""
    from harness.synthetic import PoolSpec, simulator
    from netctl.xapisim.server import serve

    t0 = time.perf_counter()
    sim, _pool = simulator(PoolSpec(hosts=hosts, vifs_per_host=vifs_per_host),
                           users={USER: PASSWORD}, event_delay=0.0)
    built = time.perf_counter() - t0
    vms = sum(1 for r in sim.store.table("VM").rows.values()
              if not r.fields["is_control_domain"])
    srv = serve(sim, "127.0.0.1", 0)
    conn.send((srv.url, built, vms))
    try:
        conn.recv()
    except EOFError:
        pass
    srv.stop()


def full_sync(url: str, protocol: str, conn: Connection) -> None:
    """Child process: one full sync; sends (seconds, peak MiB, RSS after MiB, start MiB,
    VIFs, wire used)."""
    from netctl.sources.xapi.sync import XapiSync

    start = memory_mib()["VmRSS"]
    t0 = time.perf_counter()
    sync = XapiSync(url, USER, PASSWORD, protocol=protocol, dump_timeout=1800)
    sync.connect()
    state = sync.state
    elapsed = time.perf_counter() - t0
    mem = memory_mib()
    conn.send((elapsed, mem["VmHWM"], mem["VmRSS"], start, len(state.vifs), sync.wire))
    sync.stop()


def in_child(target, *args) -> object:  # noqa: ANN001 - a process entry point
    """Run `target(*args, conn)` in a fresh interpreter; what it sends back."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child))
    proc.start()
    child.close()
    try:
        return parent.recv()
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.terminate()


def incremental(url: str, events: int) -> float:
    import XenAPI

    from netctl.sources.xapi.sync import XapiSync

    sync = XapiSync(url, USER, PASSWORD, timeout=5.0)
    sync.connect()
    sync.start()
    vifs = sorted(sync.state.vifs)[:events]
    writer = XenAPI.Session(url)
    writer.xenapi.login_with_password(USER, PASSWORD)
    t0 = time.perf_counter()

    def write() -> None:
        for ref in vifs:
            writer.xenapi.VIF.set_locking_mode(ref, "disabled")

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
    ap.add_argument("--runs", type=int, default=3, help="full syncs per protocol (median)")
    ap.add_argument("--protocols", default="jsonrpc,xmlrpc",
                    help="comma-separated: jsonrpc, xmlrpc")
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--smoke", action="store_true",
                    help="2 hosts x 20 VIFs, 20 events: seconds (what make test runs)")
    args = ap.parse_args()
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if set(protocols) - set(NAMES):
        ap.error(f"--protocols: choose among {', '.join(NAMES)}")
    if args.smoke:
        args.hosts, args.vifs_per_host, args.events, args.runs = 2, 20, 20, 1
        protocols = list(NAMES)
        print("smoke run: small sizes, to prove the path runs; its figures are not the benchmark's")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve_pool, args=(args.hosts, args.vifs_per_host, child),
                         daemon=True)
    server.start()
    child.close()
    try:
        url, built, vms = parent.recv()
        print(f"pool: {args.hosts} hosts x {args.vifs_per_host} VIFs "
              f"({args.hosts * args.vifs_per_host} VIFs on {vms} VMs, harness.synthetic), "
              f"built in {built:.1f}s, served by the simulator in its own process")
        for protocol in protocols:
            runs = [in_child(full_sync, url, protocol) for _ in range(args.runs)]
            secs = statistics.median(r[0] for r in runs)
            peak = statistics.median(r[1] for r in runs)
            after = statistics.median(r[2] for r in runs)
            start = statistics.median(r[3] for r in runs)
            wires = {r[5] for r in runs}
            assert wires == {protocol}, f"asked for {protocol}, the sync used {wires}"
            print(f"full sync {NAMES[protocol]} (XapiSync, login -> PoolState, median of "
                  f"{len(runs)}): {secs:6.2f} s, peak {peak:7.1f} MiB, {runs[0][4]} VIFs "
                  f"(client RSS: {start:.0f} MiB at start, {after:.0f} MiB holding the pool; "
                  f"runs: {' '.join(f'{r[0]:.2f}' for r in runs)} s)", flush=True)
        rate = incremental(url, args.events)
        print(f"incremental: {rate:8.0f} events/s end to end (VIF.set_locking_mode via XenAPI "
              f"-> event.from -> PoolState), {args.events} writes")
    finally:
        parent.send("stop")
        server.join(60)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
