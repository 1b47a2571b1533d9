"""Convergence: a VIF is plugged -> first echo reply across hosts, p50/p90/p99 over N plugs.

Why: the issue's target is p90 <= 25 ms for a plugged VIF to carry traffic (OVN, measured in
the same kind of lab, needs p50 36 ms / p90 50 ms from its API call to the first cross-host
reply). This measures netctl's reactive path: the switch reports a new port (OpenFlow
port-status), the controller recomputes that bridge and sends the difference in one bundle.

Setup: the mini pool (2 hosts, one NIC each, one VM each, external network) relabelled to lab
prefix `tb2` and management network 198.18.62.0/24, under the real controller *process*
(`netctl openflow`, native hub, OpenFlow port 36654) fed by the xapi simulator, exactly as the
lab tests run it (`harness/sdn.py`). The lab is torn down in a `finally`.

One sample: vm2's VIF (host2) is unplugged (`lab.unplug_vif`), the controller is given time to
drop its flows, a prober inside vm1 (host1) that is already running starts sending ICMP echo
requests to vm2 every 0.5 ms, then `lab.plug_vif` re-plugs the VIF (new veth, addresses in the
VM, then `ovs-vsctl add-port` with xapi's external_ids). The interval reported is

    start = the port's Interface row appears in host2's OVSDB, as seen by an
            `ovsdb-client monitor` started beforehand (its notification, read by a thread of
            this script: within a fraction of a millisecond of the commit)
    end   = the prober receives its first echo reply (all clocks are CLOCK_MONOTONIC)

Two modes, `--count` plugs each: `static` pins vm1's MAC in vm2's neighbour table (before the
add-port), so the first reply needs nothing but the flows: this is netctl's convergence.
`guest` leaves ARP to the guest, as a real VM does: vm2 must ARP for vm1 when the first
request reaches it. The interval covers: vswitchd adding the port, the port-status to the
controller, its recompute of that bridge, the bundle + barrier, OVS applying it, and one ICMP
round trip across hosts (in `guest` mode also vm2's ARP for vm1: its interface is new). The
same figures from when `ovs-vsctl add-port` started (includes `ip netns exec` and process
start-up, ~20 ms here) and from when it returned are printed as well. Probe resolution 0.5 ms.
xapi is not involved (the VIF record does not change; the lab plays xenopsd).

    .venv/bin/python bench/convergence.py [--count 100] [--port 36654]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netctl.lab.ovs_instance import OvsInstance  # noqa: E402
from netctl.topology import parse_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PREFIX, MANAGEMENT = "tb2", "198.18.62.0/24"
SRC_VM, DST_VM, DST_IP = "vm1", "vm2", "10.50.0.2"

# Runs inside vm1: on each "go" line, probe DST every INTERVAL until the first echo reply,
# print "<monotonic time of that reply> <probes sent>", and wait for the next "go".
PROBER = r"""
import os, select, socket, struct, sys, time
dst, interval = sys.argv[1], float(sys.argv[2])
ident = os.getpid() & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack(f"!{len(b)//2}H", b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
def echo(seq):
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"netctl-bench"
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]
def drain():
    while True:
        try: s.recv(2048)
        except BlockingIOError: return
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "go":
        break
    drain()
    seq, nxt, got = 0, time.monotonic(), None
    deadline = nxt + 10
    while got is None and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= nxt:
            seq = (seq + 1) & 0xFFFF
            try: s.sendto(echo(seq), (dst, 0))
            except OSError: pass
            nxt += interval
        r, _, _ = select.select([s], [], [], max(0.0, nxt - time.monotonic()))
        while r:
            try: pkt = s.recv(2048)
            except BlockingIOError: break
            ihl = (pkt[0] & 15) * 4
            typ, _, _, pid, _ = struct.unpack("!BBHHH", pkt[ihl:ihl + 8])
            if typ == 0 and pid == ident:
                got = time.monotonic(); break
    print(f"{got if got is not None else -1} {seq}", flush=True)
"""


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured sample)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def measure(mode: str, args: argparse.Namespace, lab: Any, pool: Any, prober: Any,
            marks: dict[str, Any]) -> bool:
    """`args.count` unplug/plug cycles; prints the percentiles; True if all succeeded."""
    from_start: list[float] = []
    from_db: list[float] = []
    from_end: list[float] = []
    vsctl_ms: list[float] = []
    failures = 0
    flow_mods0 = pool.controller.status().get("stats", {}).get("flow_mods", 0)
    t0 = time.monotonic()
    for i in range(args.count):
        lab.unplug_vif(DST_VM, 0)
        time.sleep(args.settle)
        marks.clear()
        marks["port"] = lab.vif_port(DST_VM, 0)
        prober.stdin.write("go\n")
        lab.plug_vif(DST_VM, 0)
        got, sent = prober.stdout.readline().split()
        reply = float(got)
        if reply < 0 or reply < marks["start"]:
            failures += 1
            why = ("no reply in 10 s" if reply < 0
                   else "reply before the port existed (flows not removed?)")
            print(f"  plug {i + 1}: {why}")
            continue
        if "ovsdb" not in marks:
            failures += 1
            print(f"  plug {i + 1}: the OVSDB monitor did not see the port")
            continue
        from_start.append(1000 * (reply - marks["start"]))
        from_db.append(1000 * (reply - marks["ovsdb"]))
        from_end.append(1000 * max(0.0, reply - marks["end"]))
        vsctl_ms.append(1000 * (marks["end"] - marks["start"]))
    stats = pool.controller.status().get("stats", {})
    if not from_start:
        print(f"mode {mode}: no successful sample")
        return False
    sent_mods = stats.get("flow_mods", 0) - flow_mods0
    print(f"\nmode {mode}: {len(from_start)} samples ({failures} failed) in "
          f"{time.monotonic() - t0:.0f}s; controller sent {sent_mods} flow-mods "
          f"({sent_mods / max(1, args.count):.0f} per unplug+plug), full recomputes "
          f"{stats.get('full_recomputes')}")
    print(f"  {'interval (ms)':<44} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6}")
    for label, vals in (
        ("port in OVSDB -> first reply", from_db),
        ("ovs-vsctl add-port start -> first reply", from_start),
        ("ovs-vsctl add-port returned -> first reply", from_end),
        ("(ovs-vsctl add-port itself)", vsctl_ms),
    ):
        print(f"  {label:<44} {pct(vals, 50):6.1f} {pct(vals, 90):6.1f} "
              f"{pct(vals, 99):6.1f} {max(vals):6.1f}")
    p90 = pct(from_db, 90)
    print(f"  target p90 <= 25 ms: {'MET' if p90 <= 25 else 'NOT MET'} (p90 {p90:.1f} ms from "
          f"the port in OVSDB; mean {statistics.mean(from_db):.1f}, min "
          f"{min(from_db):.1f}). OVN for scale: p50 36 / p90 50 ms, but from its API call "
          f"(NB -> SB -> ovn-controller), which this interval does not include")
    return failures == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100, help="plugs to measure")
    ap.add_argument("--port", type=int, default=36654, help="OpenFlow port of the controller")
    ap.add_argument("--interval", type=float, default=0.0005, help="probe interval (s)")
    ap.add_argument("--modes", default="static,guest", help="static and/or guest (ARP)")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="wait after an unplug, for the controller to drop the VIF's flows")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from harness.sdn import sdn_pool

    topo = parse_file(ROOT / "topologies" / "mini-pool.yaml").relabel(PREFIX, MANAGEMENT)
    # Time the `ovs-vsctl add-port` of the VIF being plugged (the lab runs it inside plug_vif).
    marks: dict[str, Any] = {}
    pin: Any = None
    original = OvsInstance.vsctl

    def vsctl(self: OvsInstance, *a: str, check: bool = True) -> str:
        watched = "add-port" in a and marks.get("port") in a
        if watched:
            if pin is not None:  # vm2's eth0 exists and is configured by now: pin vm1's MAC
                pin()
            marks["start"] = time.monotonic()
        out = original(self, *a, check=check)
        if watched:
            marks["end"] = time.monotonic()
        return out

    OvsInstance.vsctl = vsctl  # type: ignore[method-assign]
    workdir = Path(tempfile.mkdtemp(prefix="netctl-convergence-"))
    pool = None
    prober: Any = None
    monitor: Any = None
    try:
        t0 = time.monotonic()
        pool = sdn_pool(topo, workdir, port=args.port)
        lab = pool.lab
        print(f"convergence: lab {PREFIX} up, controller converged in "
              f"{time.monotonic() - t0:.1f}s; {args.count} plugs of {DST_VM}'s VIF (host2), "
              f"probing from {SRC_VM} (host1) every {args.interval * 1000:g} ms")
        if lab.exec(SRC_VM, ["ping", "-n", "-q", "-c", "3", "-W", "1", DST_IP],
                    check=False).returncode != 0:
            raise RuntimeError(f"{SRC_VM} cannot reach {DST_IP} before the benchmark")
        monitor = lab.popen("host2", [
            "ovsdb-client", "--format=csv", "--no-headings", "monitor",
            f"unix:{lab.ovs('host2').db_sock}", "Open_vSwitch", "Interface",
            "name,!initial,!delete,!modify"], bufsize=1)

        def watch() -> None:
            for line in monitor.stdout:
                # "<row uuid>,insert,<name>"
                if marks.get("port") and line.rstrip().split(",")[-1] == marks["port"]:
                    marks.setdefault("ovsdb", time.monotonic())

        threading.Thread(target=watch, daemon=True).start()
        prober = lab.popen(SRC_VM, [sys.executable, "-c", PROBER, DST_IP, str(args.interval)],
                           stdin=-1, bufsize=1)
        if prober.stdout.readline().strip() != "ready":
            raise RuntimeError(f"prober did not start: {prober.stderr.read()}")
        src_mac = lab.vif(SRC_VM, 0).mac
        src_ip = lab.vif(SRC_VM, 0).ipv4[0].split("/")[0]
        met = True
        for mode in args.modes.split(","):
            if mode == "static":
                def pin() -> None:
                    lab.exec(DST_VM, ["ip", "neigh", "replace", src_ip, "lladdr", src_mac,
                                      "dev", "eth0", "nud", "permanent"])
            else:
                pin = None
            met &= measure(mode, args, lab, pool, prober, marks)
        return 0 if met else 1
    finally:
        OvsInstance.vsctl = original  # type: ignore[method-assign]
        if prober is not None and prober.poll() is None:
            prober.stdin.close()
            try:
                prober.wait(timeout=5)
            except Exception:  # noqa: BLE001 - it is ours; make sure it ends
                prober.kill()
        if monitor is not None and monitor.poll() is None:
            monitor.terminate()
            monitor.wait(timeout=5)
        if pool is not None:
            pool.close()


if __name__ == "__main__":
    sys.exit(main())
