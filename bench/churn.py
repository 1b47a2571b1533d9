"""Flow-mods sent for one VIF change, in pools of 1, 8 and 64 hosts x 100 VIFs.

Why: the issue's target is that one VIF change costs "the same small number" of flow-mods at
every pool size (OVN's lesson: incremental processing, not recompute-everything). This is a
benchmark of the controller's own diff, so the switches are *recording stand-ins*: objects with
os-ken's real OpenFlow 1.3 `ofproto`/`ofproto_parser` that count what `FlowController` would
send instead of sending it. No OVS, no sockets, no os-ken hub.

Each pool is generated (topology dict -> `parse_data` -> xapi simulator -> `state_from_records`,
the same path `tests/unit/test_flows.py` uses): every host has one NIC on the external network
`pool` (xenbr0) and carries the VXLAN private network `priv` (xapi1) over it, so every host has
two switches; each host runs 100 VMs with one VIF each, alternately on `pool` and `priv`.

Changes measured (each on a VIF of host 0, applied then reverted; figures are per change):
- lock:     a VIF's locking_mode locked -> unlocked (xapi event: `set_state(state, {vif})`)
- replug:   the VIF's port leaves the switch and comes back with a new ofport (port-status)
- migrate:  the VM moves to another host: xapi event (resident_on, domid) + port-status on
            both hosts (private network: every host's "to remote VIF" flow must change)
- new-vif:  a VIF is created and plugged (xapi event + port-status)

Printed per pool size: flow-mods and bundles sent, bridges compiled (how much the controller
recomputed), full vs incremental recomputes, and wall time per change.

    .venv/bin/python bench/churn.py [--sizes 1,8,64] [--vifs 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser  # noqa: E402

from flows.ports import datapath_id, tunnel_peers  # noqa: E402
from netctl.model import VIF, PoolState  # noqa: E402
from netctl.openflow.core import FlowController  # noqa: E402
from netctl.topology import parse_data  # noqa: E402
from netctl.xapi.convert import state_from_records  # noqa: E402
from netctl.xapi.sim import Simulator  # noqa: E402

CLASSES = ("pool", "host", "host_metrics", "network", "PIF", "Bond", "VLAN", "tunnel", "VIF",
           "VM", "SDN_controller")
UPLINK = 1
FIRST_VIF_PORT = 100


# ---------------------------------------------------------------- the recording datapath


@dataclass
class Port:
    """What os-ken's Datapath.ports holds (only the name is read)."""

    name: bytes


@dataclass
class RecordingDatapath:
    """Stands in for an os-ken Datapath: real message classes, no socket. Counts the flow-mods
    inside bundles (what a switch would have to apply) and the bundles themselves."""

    id: int
    ports: dict[int, Port]
    ofproto: Any = ofproto_v1_3
    ofproto_parser: Any = ofproto_v1_3_parser
    flow_mods: int = 0
    bundles: int = 0
    other: int = 0
    xid: int = 0
    log: list[str] = field(default_factory=list)

    def set_xid(self, msg: Any) -> None:
        self.xid += 1
        msg.xid = self.xid

    def send(self, buf: bytes) -> None:
        """Raw bytes: the controller writes bundle-adds of flow-mods itself (fast path), many
        messages per write; walk them by their length fields."""
        offset = 0
        while offset < len(buf):
            length = int.from_bytes(buf[offset + 2:offset + 4], "big")
            exp_type = int.from_bytes(buf[offset + 12:offset + 16], "big")
            if buf[offset + 1] == 4 and exp_type == 2301:  # ONF bundle add
                self.flow_mods += 1
            else:
                self.other += 1
            offset += length

    def send_msg(self, msg: Any) -> None:
        kind = type(msg).__name__
        if kind == "ONFBundleAddMsg":
            self.flow_mods += 1
        elif kind == "ONFBundleCtrlMsg":
            if msg.type == self.ofproto.ONF_BCT_COMMIT_REQUEST:
                self.bundles += 1
        elif kind == "OFPFlowMod":
            self.flow_mods += 1  # a flow-mod outside a bundle (the controller never does)
        else:
            self.other += 1


# ---------------------------------------------------------------- synthetic pools


def topology(hosts: int, vifs: int) -> dict:
    """A pool of `hosts` hosts, each with `vifs` single-VIF VMs alternating between an
    external and a VXLAN private network (both kinds of bridge are exercised)."""
    data: dict = {
        "name": f"churn{hosts}",
        "prefix": "tb9",
        "management": "198.18.69.0/24",
        "networks": [
            {"name": "pool", "bridge": "xenbr0"},
            {"name": "priv", "bridge": "xapi1",
             "tunnel": {"protocol": "vxlan", "transport": "pool"}},
        ],
        "hosts": [],
        "switch": {"cables": []},
        "vms": [],
    }
    for h in range(hosts):
        name = f"h{h}"
        data["hosts"].append({
            "name": name,
            "nics": [{"device": "eth0", "network": "pool"}],
            "addresses": {"pool": {"ipv4": f"172.31.{h // 200}.{h % 200 + 1}/16"}},
        })
        data["switch"]["cables"].append({"host": name, "nic": "eth0"})
        for v in range(vifs):
            n = h * vifs + v + 1
            data["vms"].append({
                "name": f"v{h}x{v}",
                "host": name,
                "domid": v + 1,
                "vifs": [{
                    "network": "pool" if v % 2 == 0 else "priv",
                    "ipv4": [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}/8"],
                    "locking_mode": "locked",
                    "ipv4_allowed": [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"],
                }],
            })
    return data


def pool_state(hosts: int, vifs: int) -> PoolState:
    """The PoolState the xapi simulator holds for the generated pool (no sockets)."""
    sim = Simulator.from_topology(parse_data(topology(hosts, vifs), "<churn>"))
    user, password = next(iter(sim.users.items()))
    session = sim.call("session.login_with_password", [user, password])
    return state_from_records({c: sim.call(f"{c}.get_all_records", [session]) for c in CLASSES})


def switch_ports(state: PoolState, host_ref: str, bridge: str) -> dict[int, Port]:
    """Ports as the switch would report them: uplink, tunnels to every other host, VIFs."""
    ports: dict[int, Port] = {}
    if bridge == "xenbr0":
        ports[UPLINK] = Port(b"eth0")
    else:
        # named as the controller expects them (whatever the OVSDB side's naming is)
        for i, name in enumerate(sorted(tunnel_peers(state, host_ref, bridge))):
            ports[2 + i] = Port(name.encode())
    net = state.network_by_bridge(bridge)
    for vm in state.resident_vms(host_ref):
        for vif in state.vm_vifs(vm.ref):
            if net is not None and vif.network == net.ref:
                ports[FIRST_VIF_PORT + vm.domid] = Port(f"vif{vm.domid}.{vif.device}".encode())
    return ports


@dataclass
class Pool:
    state: PoolState
    core: FlowController
    dps: dict[tuple[str, str], RecordingDatapath]
    cold_flows: int
    cold_seconds: float


def connect(state: PoolState) -> Pool:
    """Every switch connects with an empty table; the controller installs everything."""
    core = FlowController()
    core.set_state(state)
    dps: dict[tuple[str, str], RecordingDatapath] = {}
    t0 = time.perf_counter()
    flows = 0
    for host in state.hosts.values():
        for bridge in ("xenbr0", "xapi1"):
            dp = RecordingDatapath(datapath_id(host.uuid, bridge),
                                   switch_ports(state, host.ref, bridge))
            dps[(host.ref, bridge)] = dp
            core.switch_ready(dp)
            # The switch already holds exactly the desired table (as after a controller
            # restart): equivalent to a flow dump returning it, without building ~700k os-ken
            # messages for the 64-host pool. The controller's state is then what it tracks.
            sw = core.switches[dp.id]
            core.assume_in_sync(sw)
            flows += len(sw.installed)
    return Pool(state, core, dps, flows, time.perf_counter() - t0)


# ---------------------------------------------------------------- changes


@dataclass
class Cost:
    flow_mods: int
    bundles: int
    compiled: int
    full: int
    incremental: int
    seconds: float


def measure(pool: Pool, change: Callable[[], None]) -> Cost:
    core = pool.core
    before = (sum(d.flow_mods for d in pool.dps.values()),
              sum(d.bundles for d in pool.dps.values()), core.stats.bridges_compiled,
              core.stats.full_recomputes, core.stats.incremental_recomputes)
    t0 = time.perf_counter()
    change()
    seconds = time.perf_counter() - t0
    after = (sum(d.flow_mods for d in pool.dps.values()),
             sum(d.bundles for d in pool.dps.values()), core.stats.bridges_compiled,
             core.stats.full_recomputes, core.stats.incremental_recomputes)
    d = [a - b for a, b in zip(after, before, strict=True)]
    return Cost(d[0], d[1], d[2], d[3], d[4], seconds)


def _with(state: PoolState, **objs: Any) -> PoolState:
    """A new snapshot with some VIFs/VMs replaced (keyword = collection name)."""
    changes = {}
    for coll, items in objs.items():
        m = dict(getattr(state, coll))
        for obj in items:
            m[obj.ref] = obj
        changes[coll] = m
    return state.replace(**changes)


def host_refs(state: PoolState) -> list[str]:
    return [h.ref for h in sorted(state.hosts.values(), key=lambda h: h.name_label)]


def subject(state: PoolState, network: str) -> VIF:
    """A VIF of host 0 on `network` (by name_label)."""
    h0 = host_refs(state)[0]
    net = next(n for n in state.networks.values() if n.name_label == network)
    return next(v for vm in state.resident_vms(h0) for v in state.vm_vifs(vm.ref)
                if v.network == net.ref)


def change_lock(pool: Pool, network: str) -> list[Cost]:
    vif = subject(pool.state, network)
    out = []
    for mode in ("unlocked", "locked"):
        new = replace(vif, locking_mode=mode)
        pool.state = _with(pool.state, vifs=[new])
        out.append(measure(pool, lambda: pool.core.set_state(pool.state, {vif.ref})))
    return out


def change_replug(pool: Pool, network: str) -> list[Cost]:
    vif = subject(pool.state, network)
    vm = pool.state.vms[vif.vm]
    bridge = pool.state.networks[vif.network].bridge
    dp = pool.dps[(vm.resident_on, bridge)]
    name = f"vif{vm.domid}.{vif.device}"
    old = next(no for no, p in dp.ports.items() if p.name.decode() == name)
    new = max(dp.ports) + 1

    def replug() -> None:
        del dp.ports[old]
        pool.core.port_changed(dp, name, old, deleted=True)
        dp.ports[new] = Port(name.encode())
        pool.core.port_changed(dp, name, new, deleted=False)

    return [measure(pool, replug)]


def change_migrate(pool: Pool, network: str) -> list[Cost]:
    """The VM of a host-0 VIF moves to host 1 (if any) and back."""
    hosts = host_refs(pool.state)
    if len(hosts) < 2:
        return []
    vif = subject(pool.state, network)
    bridge = pool.state.networks[vif.network].bridge
    out = []
    for src, dst in ((hosts[0], hosts[1]), (hosts[1], hosts[0])):
        vm = pool.state.vms[vif.vm]
        old_name = f"vif{vm.domid}.{vif.device}"
        domid = 1000 + vm.domid if dst == hosts[1] else vm.domid - 1000
        moved = replace(vm, resident_on=dst, domid=domid)
        new_name = f"vif{domid}.{vif.device}"
        src_dp, dst_dp = pool.dps[(src, bridge)], pool.dps[(dst, bridge)]

        def migrate(moved: Any = moved, src_dp: RecordingDatapath = src_dp,
                    dst_dp: RecordingDatapath = dst_dp, old_name: str = old_name,
                    new_name: str = new_name) -> None:
            # xapi: resident_on/domid change (the VIF record does not change)
            pool.state = _with(pool.state, vms=[moved])
            pool.core.set_state(pool.state, {moved.ref})
            # xenopsd: the port disappears on the source, appears on the destination
            old = next(no for no, p in src_dp.ports.items() if p.name.decode() == old_name)
            del src_dp.ports[old]
            pool.core.port_changed(src_dp, old_name, old, deleted=True)
            new = max(dst_dp.ports) + 1
            dst_dp.ports[new] = Port(new_name.encode())
            pool.core.port_changed(dst_dp, new_name, new, deleted=False)

        out.append(measure(pool, migrate))
    return out


def change_new_vif(pool: Pool, network: str) -> list[Cost]:
    """A second VIF (device 1) is created on a host-0 VM, plugged, then unplugged+destroyed."""
    base = subject(pool.state, network)
    vm = pool.state.vms[base.vm]
    bridge = pool.state.networks[base.network].bridge
    dp = pool.dps[(vm.resident_on, bridge)]
    fresh = replace(base, ref="OpaqueRef:bench-new-vif", uuid="00000000-bench-0000-0000-00000000",
                    device="1", mac="02:be:9c:00:00:01", ipv4_allowed=("10.255.255.1",))
    name = f"vif{vm.domid}.1"
    port_no = max(dp.ports) + 1

    def create() -> None:
        pool.state = _with(pool.state, vifs=[fresh])
        pool.core.set_state(pool.state, {fresh.ref})
        dp.ports[port_no] = Port(name.encode())
        pool.core.port_changed(dp, name, port_no, deleted=False)

    def destroy() -> None:
        del dp.ports[port_no]
        pool.core.port_changed(dp, name, port_no, deleted=True)
        vifs = dict(pool.state.vifs)
        del vifs[fresh.ref]
        pool.state = pool.state.replace(vifs=vifs)
        pool.core.set_state(pool.state, {fresh.ref})

    return [measure(pool, create), measure(pool, destroy)]


CHANGES: dict[str, Callable[[Pool, str], list[Cost]]] = {
    "lock": change_lock,
    "replug": change_replug,
    "migrate": change_migrate,
    "new-vif": change_new_vif,
}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,8,64", help="pool sizes (hosts), comma-separated")
    ap.add_argument("--vifs", type=int, default=100, help="VIFs per host")
    ap.add_argument("--repeat", type=int, default=3,
                    help="repetitions of each change (pools over 16 hosts: 1, for time)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    print("churn: flow-mods for one VIF change (recording stand-in datapaths: this measures "
          "the controller's own diff, not OVS)")
    print(f"pool: N hosts x {args.vifs} VIFs (half external xenbr0, half VXLAN private xapi1), "
          "2 switches per host; figures per change, median over repetitions")
    rows: list[tuple] = []
    for n in sizes:
        t0 = time.perf_counter()
        state = pool_state(n, args.vifs)
        built = time.perf_counter() - t0
        pool = connect(state)
        print(f"\n{n} host(s): PoolState built in {built:.1f}s; {len(pool.dps)} switches "
              f"holding {pool.cold_flows} flows in all (compiled in {pool.cold_seconds:.1f}s)")
        print(f"  {'change':<9} {'network':<8} {'flow-mods':>9} {'bundles':>7} "
              f"{'compiled':>8} {'full':>4} {'incr':>4} {'ms/change':>9}")
        for cname, fn in CHANGES.items():
            for network in ("pool", "priv"):
                costs: list[Cost] = []
                for _ in range(args.repeat if n <= 16 else 1):
                    costs += fn(pool, network)
                if not costs:
                    print(f"  {cname:<9} {network:<8} {'(needs 2 hosts)':>9}")
                    continue
                fm = statistics.median(c.flow_mods for c in costs)
                row = (n, cname, network, fm, statistics.median(c.bundles for c in costs),
                       statistics.median(c.compiled for c in costs),
                       sum(c.full for c in costs), sum(c.incremental for c in costs),
                       1000 * statistics.median(c.seconds for c in costs),
                       min(c.flow_mods for c in costs), max(c.flow_mods for c in costs))
                rows.append(row)
                spread = "" if row[9] == row[10] else f"  (min {row[9]}, max {row[10]})"
                print(f"  {cname:<9} {network:<8} {fm:>9g} {row[4]:>7g} {row[5]:>8g} "
                      f"{row[6]:>4} {row[7]:>4} {row[8]:>9.1f}{spread}")
    print("\nsummary (flow-mods per change, by pool size):")
    for cname in CHANGES:
        for network in ("pool", "priv"):
            figs = {r[0]: r[3] for r in rows if r[1] == cname and r[2] == network}
            if figs:
                same = "same at every size" if len(set(figs.values())) == 1 else "GROWS with size"
                text = ", ".join(f"{k} hosts: {v:g}" for k, v in figs.items())
                print(f"  {cname:<9} {network:<5} {text}  -> {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
