"""Bond failover time with netctl-built LACP bonds (lacp-time fast vs slow), measured with a
10 ms ping between VMs on two hosts, when the member carrying the traffic

- loses carrier (`ip link set ethN down` on the host: both ends of the cable go down),
- goes silent with carrier up (`Lab.silence_cable`: the switch-side end's MTU drops to 68,
  so no LACP PDU or frame crosses either way; only LACP's timeout can notice), or
- leaves the switch's LAG while its carrier stays up (the switch-side interface is taken out of
  the switch bond; the switch's LACP also changes what it says on the remaining member, so the
  host reacts faster than an LACP timeout would).

Failover time ≈ lost replies × 10 ms. Lab: tests/lab/data/hostnet-lacp.yaml, prefix t4c.
Usage (root): .venv/bin/python -m bench.bond_failover [--window 12]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from functools import partial
from pathlib import Path

import yaml

from harness.hostnet_lab import DATA, HostnetLab

INTERVAL = 0.01


def topology_file(lacp_time: str, directory: Path) -> str:
    raw = yaml.safe_load((DATA / "hostnet-lacp.yaml").read_text())
    for host in raw["hosts"]:
        for bond in host["bonds"]:
            bond["properties"] = {"lacp-time": lacp_time}
    for bond in raw["switch"]["bonds"]:
        bond["lacp_time"] = lacp_time
    path = directory / f"bench-lacp-{lacp_time}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)  # absolute: HostnetLab's DATA / path is the path itself


def tx_packets(hn: HostnetLab, host: str, dev: str) -> int:
    out = hn.lab.exec(host, ["cat", f"/sys/class/net/{dev}/statistics/tx_packets"]).stdout
    return int(out)


def busy_member(hn: HostnetLab) -> str:
    """The host1 bond member that carries vm1 -> vm4 (the one whose tx counter moves)."""
    before = {d: tx_packets(hn, "host1", d) for d in ("eth0", "eth1")}
    hn.ping("vm1", "10.10.0.14", count=20, interval=0.01)
    delta = {d: tx_packets(hn, "host1", d) - before[d] for d in before}
    return max(delta, key=delta.get)


def measure(hn: HostnetLab, cut, window: float) -> float | None:
    """Lost time (s) of a 10 ms ping across `cut()`; None if it never came back."""
    count = int(window / INTERVAL)
    ping = hn.lab.popen("vm1", ["ping", "-n", "-c", str(count), "-i", str(INTERVAL), "-W", "1",
                                "10.10.0.14"])
    time.sleep(1.0)
    cut()
    out, _ = ping.communicate(timeout=window + 30)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    if not m:
        return None
    sent, got = map(int, m.groups())
    tail_ok = hn.ping("vm1", "10.10.0.14", count=2)
    return (sent - got) * INTERVAL if tail_ok else None


def lose_carrier(hn: HostnetLab, member: str) -> None:
    hn.lab.exec("host1", ["ip", "link", "set", member, "down"])


def go_silent(hn: HostnetLab, member: str) -> None:
    keep = "h1-eth1" if member == "eth0" else "h1-eth0"
    uuid = hn.lab.tor.vsctl("get", "Interface", keep, "_uuid")
    hn.lab.tor.vsctl("set", "Port", "po1", f"interfaces={uuid}")


def silent_cut(hn: HostnetLab, member: str) -> None:
    hn.lab.silence_cable("host1", member)


def run(lacp_time: str, window: float, directory: Path) -> list[tuple[str, str, str]]:
    rows = []
    for kind, action in (("carrier lost", lose_carrier), ("silent cut", silent_cut),
                         ("left switch LAG", go_silent)):
        hn = HostnetLab(topology_file(lacp_time, directory), "t4c", "198.18.42.0/24")
        try:
            assert hn.lab.wait_lacp(120), "LACP did not negotiate"
            assert hn.wait_ping("vm1", "10.10.0.14")
            lost = measure(hn, partial(action, hn, busy_member(hn)), window)
            rows.append((lacp_time, kind, "not within window" if lost is None
                         else f"{lost * 1000:.0f} ms"))
        finally:
            hn.down()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--window", type=float, default=12.0, help="ping duration (s)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="netctl-t4c-") as tmp:
        for lacp_time in ("fast", "slow"):
            rows += run(lacp_time, args.window, Path(tmp))
    print(f"{'lacp-time':<10} {'event':<16} {'traffic lost (10 ms ping)':>26}")
    for lacp_time, kind, lost in rows:
        print(f"{lacp_time:<10} {kind:<16} {lost:>26}")


if __name__ == "__main__":
    main()
