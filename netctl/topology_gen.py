"""Generated pools of any size, as a new user would write them: N hosts with one NIC each on
an external network, a VXLAN private network over it, and VMs on both.

Why: the demo and the lab must work on any valid topology, not only on the hand-written demo
pool; a generator gives the sizes (8, 16 hosts, ...) on which that is measured
(`topologies/pool-8.yaml`, `pool-16.yaml` are its output) and small pools for the tests.

    python -m netctl.topology_gen 16 > topologies/pool-16.yaml
    python -m netctl.topology_gen 64 --vms-per-host 1000 --vifs-per-vm 1 --json > pool-64k.json

Past 250 VMs the VMs' addresses come from a /16 (such a pool is for the simulator, `netctl
xapi-sim`, not the lab); write it as JSON, which a topology file may be: 0.1 s to read at
64 x 1000 against 8 s as YAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

SMALL = 250  # up to this many VMs, their addresses are .1-.250 of a /24
MAX_VMS = 65000  # beyond, of a /16


def pool_data(hosts: int, vms_per_host: int = 2, *, name: str | None = None,
              prefix: str | None = None, management: str = "198.18.40.0/24",
              private_ipv6: bool = False, locked: bool = True,
              vifs_per_vm: int = 2) -> dict[str, Any]:
    """The topology as parsed YAML data (`netctl.topology.parse_data` reads it).

    Every VM has eth0 on the external network `pool` (IPv4 and IPv6) and eth1 on the VXLAN
    network `priv` (IPv4, plus IPv6 with `private_ipv6`). With `locked`, vm1's eth0 is locked
    to its own addresses, so the demo's locking checks have a VIF to work on. With
    `vifs_per_vm=1` the VMs have eth0 only."""
    if hosts < 1 or vms_per_host < 0:
        raise ValueError("at least one host, and no negative VM count")
    if vifs_per_vm not in (1, 2):
        raise ValueError("one or two VIFs per VM")
    if hosts * vms_per_host > MAX_VMS or hosts > 200:
        raise ValueError(f"at most 200 hosts and {MAX_VMS} VMs")
    name = name or f"pool{hosts}"
    data: dict[str, Any] = {
        "name": name,
        "prefix": prefix or f"p{hosts}"[:4],
        "management": management,
        "networks": [
            {"name": "pool", "bridge": "xenbr0"},
            {"name": "priv", "bridge": "xapi1", "mtu": 1450,
             "tunnel": {"protocol": "vxlan", "transport": "pool"}},
        ],
        "hosts": [
            {"name": f"host{i}", "nics": [{"device": "eth0", "network": "pool"}],
             "addresses": {"pool": {"ipv4": f"172.31.{i // 250}.{i % 250 + 1}/16"}}}
            for i in range(1, hosts + 1)
        ],
        "switch": {"cables": [{"host": f"host{i}", "nic": "eth0"}
                              for i in range(1, hosts + 1)]},
        "vms": [],
    }
    small = hosts * vms_per_host <= SMALL

    def ipv4(net: int, k: int) -> tuple[str, str]:
        """The k-th VM's address on 10.<net>/24 (small pools) or 10.<net>/16, and its CIDR."""
        addr = f"10.{net}.0.{k}" if small else f"10.{net}.{k >> 8}.{k & 255}"
        return addr, f"{addr}/{24 if small else 16}"

    for k in range(1, hosts * vms_per_host + 1):
        addr, cidr = ipv4(60, k)
        eth0: dict[str, Any] = {"network": "pool", "ipv4": [cidr],
                                "ipv6": [f"fd4e:60::{k:x}/64"]}
        if locked and k == 1:
            eth0.update(locking_mode="locked", ipv4_allowed=[addr],
                        ipv6_allowed=[f"fd4e:60::{k:x}"])
        vifs = [eth0]
        if vifs_per_vm == 2:
            eth1: dict[str, Any] = {"device": 1, "network": "priv", "ipv4": [ipv4(61, k)[1]]}
            if private_ipv6:
                eth1["ipv6"] = [f"fd4e:61::{k:x}/64"]
            vifs.append(eth1)
        data["vms"].append({"name": f"vm{k}", "host": f"host{(k - 1) // vms_per_host + 1}",
                            "vifs": vifs})
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hosts", type=int)
    parser.add_argument("--vms-per-host", type=int, default=2)
    parser.add_argument("--prefix")
    parser.add_argument("--management", default="198.18.40.0/24")
    parser.add_argument("--vifs-per-vm", type=int, choices=(1, 2), default=2,
                        help="1: eth0 on the external network only")
    parser.add_argument("--json", action="store_true",
                        help="write JSON (a topology file may be JSON; far faster to read)")
    args = parser.parse_args(argv)
    try:
        data = pool_data(args.hosts, args.vms_per_host, prefix=args.prefix,
                         management=args.management, vifs_per_vm=args.vifs_per_vm)
    except ValueError as exc:
        parser.error(str(exc))
    if args.json:
        json.dump(data, sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
        return
    sys.stdout.write(f"# Generated: python -m netctl.topology_gen {args.hosts}; "
                     "format: topologies/README.md\n")
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


if __name__ == "__main__":
    main()
