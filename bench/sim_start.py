"""Benchmark (prints figures, not a test): how long `netctl xapi-sim` takes to answer its first
login at full pool size, from a topology file as a user writes one.

    .venv/bin/python -m bench.sim_start [--hosts 64] [--vms-per-host 1000] [--runs 3]
                                        [--formats json,yaml]
    .venv/bin/python -m bench.sim_start --smoke     # 4 hosts x 25 VMs, one run each (seconds)

The topology is `python -m netctl.topology_gen H --vms-per-host V --vifs-per-vm 1` (one VIF per
VM on the external network), written as JSON and as YAML. Each run starts a fresh
`netctl xapi-sim --topology FILE --listen 127.0.0.1:PORT` process and measures, from the
process's start, the interval until `session.login_with_password` of the official XenAPI client
succeeds (reading the file, seeding the pool, importing, binding); then it checks the pool is
whole (`VIF.get_all` counts every VIF) and stops the process by its PID. Issue 23's target is
<= 15 s at 64 x 1000.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import XenAPI
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netctl.topology_gen import pool_data  # noqa: E402

# What `--smoke` must print (tests/bench/test_bench_smoke.py checks each regex on stdout).
SMOKE_FIGURES = (
    r"^first login, JSON .*: +[\d.]+ s",
    r"^first login, YAML .*: +[\d.]+ s",
)
TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_topology(hosts: int, vms: int, directory: Path) -> dict[str, Path]:
    data = pool_data(hosts, vms, vifs_per_vm=1, prefix="bss")
    paths = {"json": directory / "pool.json", "yaml": directory / "pool.yaml"}
    paths["json"].write_text(json.dumps(data, separators=(",", ":")))
    paths["yaml"].write_text(yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                       sort_keys=False))
    return paths


def first_login(path: Path, vifs: int) -> float:
    """Seconds from starting `netctl xapi-sim` to its first successful login."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "netctl.cli", "xapi-sim", "--topology",
                             str(path), "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"netctl xapi-sim exited {proc.returncode}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
            if time.perf_counter() - t0 > TIMEOUT:
                raise SystemExit(f"no login within {TIMEOUT:.0f} s")
            session = XenAPI.Session(url)
            try:
                session.xenapi.login_with_password("root", "netctl", "1.0", "bench")
            except OSError:
                time.sleep(0.05)
                continue
            elapsed = time.perf_counter() - t0
            try:
                got = len(session.xenapi.VIF.get_all())
            finally:
                session.xenapi.session.logout()
            if got != vifs:
                raise SystemExit(f"the simulator serves {got} VIFs, the topology has {vifs}")
            return elapsed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--vms-per-host", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formats", default="json,yaml")
    parser.add_argument("--smoke", action="store_true", help="4 hosts x 25 VMs, one run each")
    args = parser.parse_args(argv)
    if args.smoke:
        args.hosts, args.vms_per_host, args.runs = 4, 25, 1
    vifs = args.hosts * args.vms_per_host
    size = f"{args.hosts} hosts x {args.vms_per_host} VMs"
    print(f"netctl xapi-sim, first login from process start, {size} (one VIF each), "
          f"{args.runs} run(s) per format")
    with tempfile.TemporaryDirectory(prefix="netctl-sim-start-") as tmp:
        paths = write_topology(args.hosts, args.vms_per_host, Path(tmp))
        for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
            runs = [first_login(paths[fmt], vifs) for _ in range(args.runs)]
            each = ", ".join(f"{r:.1f}" for r in runs)
            print(f"first login, {fmt.upper()} file ({paths[fmt].stat().st_size / 1e6:.1f} MB), "
                  f"{size}: {statistics.median(runs):8.2f} s median (runs: {each} s)",
                  flush=True)


if __name__ == "__main__":
    main()
