"""Synthetic pools of any size for the xapi simulator: H hosts x V VIFs per host, deterministic.

Why: the lab tops out at a handful of hosts on this machine, but netctl must keep up with a
64-host pool running a thousand VIFs per host (issue 9). Benchmarks of the sync, the compilers
and the controller's diff need such pools in xapi's own shapes, built the same way every time
(same spec -> same records, refs and uuids included), without a topology file or a lab.

What one pool holds (xapi's shapes, as `netctl.xapisim.seed` writes them for a topology):
- a `pool` whose master is the first host; per host a `host` (name_label `hostNN`, address,
  `software_version` with `network_backend=openvswitch`), its `host_metrics` (live) and its
  control domain (a `VM` with `is_control_domain`, domid 0);
- per host, NICs `eth0` and `eth1` (physical PIFs with PIF_metrics). The *external* network
  (role "external") is carried by an LACP bond of both NICs (`spec.uplink="bond"`: bond master
  PIF `bond0`, `Bond` mode lacp with xapi's default properties) or by `eth0` alone
  (`spec.uplink="nic"`; `eth1` then has the pool-wide network of its device, unattached). That
  PIF is the host's management PIF with a static IPv4 address (`172.16.H.1/12`-style, below);
- a VLAN network (role "vlan", tag `spec.vlan_tag`) on every host's external PIF: an untagged
  PIF (xapi's `fe:ff:ff:ff:ff:ff` MAC) and a `VLAN` object per host;
- a private network (role "private", `spec.private_protocol`, vxlan by default) with a tunnel
  on every host over its management PIF: access PIF `tunnel0`, `tunnel` with status active;
- per host, VMs (Running, `resident_on` the host, domids from 1, realistic `name_label`,
  `other_config`, `platform`, memory and VCPUs) holding a few VIFs each (the counts in
  `spec.vifs_per_vm` are used in turn), `spec.vifs_per_host` VIFs in all on each host. A VM's
  VIF k is on `spec.networks[(vm index + k) % len(spec.networks)]`; every
  `spec.locked_every`-th VIF of the pool is `locked` with one IPv4 and one IPv6 address in
  `ipv4_allowed`/`ipv6_allowed` (0: none locked, 1: all), the others `network_default`.

Addresses: host h (0-based) has management IP `172.16.{h // 250}.{h % 250 + 1}/16`. The n-th
VIF of the pool (0-based, m = n + 1), if locked, on the network of role index r (external 0,
vlan 1, private 2) is allowed `10.{r * 64 + (m >> 16)}.{m >> 8 & 255}.{m & 255}` and
`fd00:{r}::{m:x}` (unique per network up to 4M VIFs). MACs are `02:` + n on 5 bytes (unique,
locally administered). Uuids and refs come from `random.Random(spec.seed)`.

API (a benchmark such as `bench/scale.py` needs nothing else):

    from harness.synthetic import PoolSpec, simulator, seed, pool_state, records

    spec = PoolSpec(hosts=64, vifs_per_host=1000)        # defaults: bond, 3 networks, 1-3 VIFs
    sim, pool = simulator(spec, users={"root": "pw"}, event_delay=0.0)   # a seeded Simulator
    # or seed(existing_sim, spec) -> SyntheticPool
    pool.hosts                    # host refs, in order (pool.hosts[0] is the master)
    pool.network["private"]       # network ref by role ("external", "vlan", "private")
    pool.bridge["private"]        # its bridge name
    pool.vms[host_ref]            # that host's guest VM refs, in order
    pool.vifs[host_ref]           # that host's VIF refs, in order
    pool.locked                   # refs of the locked VIFs
    pool.add_vm(sim.store, host_ref, ["external", "private"], running=True)
                                  # -> (vm ref, [VIF refs]): a new VM in the same style
                                  #    (for "new VIF" / boot-storm events; deterministic too)
    state = pool_state(spec)      # the netctl.model.PoolState (through get_all_records)
    recs = records(spec)          # {class: {ref: record}}, as get_all_records returns them
    apart = SimulatorProcess(spec, users={"root": "pw"}, event_delay=0.0)
                                  # the same, served from a process of its own (fork):
    apart.url, apart.pool         # its XenAPI URL on loopback, the SyntheticPool; .stop()

Cost: 64 x 1000 (about 32k VMs and 64k VIFs) seeds in seconds; `pool_state` adds the
conversion. Building the same spec twice gives equal records.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import time
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netctl.model import PoolState
from netctl.sources.xapi.convert import state_from_records
from netctl.sources.xapi.sync import SYNC_CLASSES
from netctl.xapisim.methods import LACP_DEFAULTS, VLAN_PIF_MAC
from netctl.xapisim.sim import Simulator
from netctl.xapisim.store import Store

ROLES = ("external", "vlan", "private")
SOFTWARE_VERSION = {"product_brand": "XCP-ng", "product_version": "8.3.0",
                    "platform_name": "XCP", "xapi": "26.21", "network_backend": "openvswitch"}
# What guests of a real pool look like (name prefix, template, VCPUs, memory in GiB).
KINDS = (("web", "Debian Bookworm 12", 2, 2), ("db", "Rocky Linux 9", 4, 8),
         ("cache", "Ubuntu Noble Numbat 24.04", 2, 4), ("build", "Debian Bookworm 12", 8, 16),
         ("win", "Windows Server 2022 (64-bit)", 4, 8))


@dataclass(frozen=True)
class PoolSpec:
    """The shape of a synthetic pool (see the module docstring for what each field builds)."""

    hosts: int = 8
    vifs_per_host: int = 100
    vifs_per_vm: tuple[int, ...] = (1, 2, 3)  # used in turn: "a few VIFs each"
    networks: tuple[str, ...] = ROLES  # roles VIFs are spread over (in turn)
    uplink: str = "bond"  # "bond" (LACP, eth0+eth1) or "nic" (eth0) for the external network
    vlan_tag: int = 100
    private_protocol: str = "vxlan"
    locked_every: int = 4  # every n-th VIF is locked (0: none, 1: all)
    seed: int = 0
    name: str = "synthetic"

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.vifs_per_host < 0:
            raise ValueError(f"a pool needs hosts >= 1 and vifs_per_host >= 0: {self}")
        if not self.vifs_per_vm or min(self.vifs_per_vm) < 1:
            raise ValueError(f"vifs_per_vm must list counts >= 1: {self.vifs_per_vm}")
        unknown = set(self.networks) - set(ROLES)
        if unknown or not self.networks:
            raise ValueError(f"networks must be roles among {ROLES}: {self.networks}")
        if self.uplink not in ("bond", "nic"):
            raise ValueError(f"uplink must be 'bond' or 'nic', not {self.uplink!r}")


@dataclass
class SyntheticPool:
    """Handles on what `seed` inserted, for benchmarks to pick objects and make changes."""

    spec: PoolSpec
    rng: random.Random
    pool: str = ""
    hosts: list[str] = field(default_factory=list)
    network: dict[str, str] = field(default_factory=dict)  # role -> network ref
    bridge: dict[str, str] = field(default_factory=dict)  # role -> bridge
    management_pif: dict[str, str] = field(default_factory=dict)  # host ref -> PIF ref
    vms: dict[str, list[str]] = field(default_factory=dict)  # host ref -> guest VM refs
    vifs: dict[str, list[str]] = field(default_factory=dict)  # host ref -> VIF refs
    locked: list[str] = field(default_factory=list)
    next_domid: dict[str, int] = field(default_factory=dict)
    vm_count: int = 0
    vif_count: int = 0

    # --------------------------------------------------------------- deterministic identities
    def uuid(self) -> str:
        return str(uuidlib.UUID(int=self.rng.getrandbits(128), version=4))

    def ref(self) -> str:
        return f"OpaqueRef:{self.uuid()}"

    # --------------------------------------------------------------- guests
    def add_vm(self, store: Store, host: str, roles: Sequence[str], running: bool = True
               ) -> tuple[str, list[str]]:
        """A new guest VM on `host` with one VIF per role in `roles` (attached if running).
        Returns (VM ref, VIF refs). Same spec and same call sequence -> same refs."""
        kind, template, vcpus, gib = KINDS[self.vm_count % len(KINDS)]
        number = self.vm_count
        self.vm_count += 1
        domid = self.next_domid.get(host, 1) if running else -1
        if running:
            self.next_domid[host] = domid + 1
        vm_uuid = self.uuid()
        memory = gib << 30
        with store.lock:
            metrics = store.insert("VM_metrics", {
                "uuid": self.uuid(), "memory_actual": memory if running else 0,
                "VCPUs_number": vcpus if running else 0, "hvm": True,
                "current_domain_type": "hvm" if running else "unspecified"}, ref=self.ref())
            vm = store.insert("VM", {
                "metrics": metrics,
                "uuid": vm_uuid, "name_label": f"{kind}-{number:05d}",
                "name_description": f"{template} guest (synthetic pool {self.spec.name})",
                "power_state": "Running" if running else "Halted",
                "resident_on": host if running else "OpaqueRef:NULL", "domid": domid,
                "user_version": 1, "VCPUs_max": vcpus, "VCPUs_at_startup": vcpus,
                "memory_static_max": memory, "memory_dynamic_max": memory,
                "memory_dynamic_min": memory, "memory_static_min": memory >> 1,
                "HVM_boot_policy": "BIOS order",
                "HVM_boot_params": {"order": "cdn", "firmware": "uefi"},
                "platform": {"timeoffset": "0", "device-model": "qemu-upstream-uefi",
                             "viridian": "true" if kind == "win" else "false", "nx": "true",
                             "acpi": "1", "apic": "true", "pae": "true", "hpet": "true",
                             "secureboot": "false", "cores-per-socket": str(min(vcpus, 2))},
                "other_config": {"base_template_name": template, "mac_seed": self.uuid(),
                                 "install-methods": "cdrom,nfs,http,ftp",
                                 "linux_template": "false" if kind == "win" else "true",
                                 "import_task": "OpaqueRef:NULL"},
                "xenstore_data": {"vm-data": "", "vm-data/mmio-hole-size": "268435456"},
                "tags": [kind], "domain_type": "hvm",
                "allowed_operations": ["pool_migrate", "clean_shutdown", "hard_shutdown"]
                if running else ["start", "destroy"],
            }, ref=self.ref())
            vif_refs = [self._add_vif(store, vm, device, role, running)
                        for device, role in enumerate(roles)]
        self.vms.setdefault(host, []).append(vm)
        self.vifs.setdefault(host, []).extend(vif_refs)
        return vm, vif_refs

    def _add_vif(self, store: Store, vm: str, device: int, role: str, attached: bool) -> str:
        n = self.vif_count
        self.vif_count += 1
        mac = ":".join(f"{b:02x}" for b in (2, *(n & (2**40 - 1)).to_bytes(5, "big")))
        every = self.spec.locked_every
        locked = every > 0 and n % every == 0
        r = ROLES.index(role)
        metrics = store.insert("VIF_metrics", {"uuid": self.uuid()}, ref=self.ref())
        values: dict[str, Any] = {
            "uuid": self.uuid(), "metrics": metrics, "device": str(device),
            "network": self.network[role],
            "VM": vm, "MAC": mac, "MAC_autogenerated": True, "MTU": 1500,
            "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
            "currently_attached": attached,
            "allowed_operations": ["unplug"] if attached else ["attach", "plug"],
            "locking_mode": "locked" if locked else "network_default",
        }
        if locked:  # host numbers from 1: no address ends in .0
            m = n + 1
            values["ipv4_allowed"] = [f"10.{r * 64 + (m >> 16)}.{(m >> 8) & 255}.{m & 255}"]
            values["ipv6_allowed"] = [f"fd00:{r}::{m:x}"]
        ref = store.insert("VIF", values, ref=self.ref())
        if locked:
            self.locked.append(ref)
        return ref


def seed(sim: Simulator, spec: PoolSpec) -> SyntheticPool:
    """Insert the pool `spec` describes into `sim`'s store; returns handles on what it made."""
    pool = SyntheticPool(spec, random.Random(spec.seed))
    store = sim.store
    with store.lock:
        _networks(store, pool)
        for h in range(spec.hosts):
            _host(store, pool, h)
        _guests(store, pool)
        pool.pool = store.insert("pool", {
            "uuid": pool.uuid(), "name_label": spec.name, "master": pool.hosts[0],
            "name_description": f"synthetic pool: {spec.hosts} hosts x {spec.vifs_per_host} "
                                "VIFs", "other_config": {"auto_poweron": "false"}},
            ref=pool.ref())
    return pool


def simulator(spec: PoolSpec, **kwargs: Any) -> tuple[Simulator, SyntheticPool]:
    """A new `Simulator(**kwargs)` (users, event_delay, ...) holding the pool of `spec`."""
    sim = Simulator(**kwargs)
    return sim, seed(sim, spec)


class SimulatorProcess:
    """A simulator seeded with `spec`, built and served (XML-RPC and JSON-RPC on loopback,
    an ephemeral port) in a child process, so that a benchmark's figures are its client's
    alone: a real pool's xapi is another process (OCaml), and a simulator in the benchmark's
    own process would add its encoding under the same GIL and its records to the RSS.
    `stop()` ends it (also on the parent's exit: the child waits on a pipe).

    `wait=False` returns at once (the child seeds while the caller goes on); `ready()` then
    waits for it. `start` is multiprocessing's start method: "spawn" gives a child that
    holds nothing of a parent's memory (a benchmark that measures a process beside it)."""

    def __init__(self, spec: PoolSpec, *, wait: bool = True, start: str = "fork",
                 **kwargs: Any) -> None:
        ctx = multiprocessing.get_context(start)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_apart, args=(spec, kwargs, child), daemon=True,
                                 name="synthetic-xapi")
        self._proc.start()
        child.close()
        self.pid: int = self._proc.pid  # type: ignore[assignment]
        self.url = ""
        self.pool: SyntheticPool | None = None
        self.seeded = 0.0  # seconds the child took to seed the pool
        self.event_delay = 0.0  # the simulator's event delay, seconds
        if wait:
            self.ready()

    def ready(self, timeout: float = 600) -> SimulatorProcess:
        """Wait until the child serves (at once when it already does); raise if it failed."""
        if self.url:
            return self
        started = self._conn.recv() if self._conn.poll(timeout) else \
            ("error", f"no answer in {timeout:.0f} s")
        if started[0] == "error":
            self.stop()
            raise RuntimeError(f"the simulator process did not start: {started[1]}")
        self.url, self.pool, self.seeded, self.event_delay = started
        return self

    def stop(self) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _serve_apart(spec: PoolSpec, kwargs: dict[str, Any], conn: Any) -> None:
    from netctl.xapisim.server import serve  # the child's only import of the server

    try:
        t0 = time.perf_counter()
        sim, pool = simulator(spec, **kwargs)
        seeded = time.perf_counter() - t0
        gc.freeze()  # the seeded pool lives as long as the process: no collection walks it
        server = serve(sim, "127.0.0.1", 0)
    except Exception as exc:  # noqa: BLE001 - told to the parent, which raises it
        conn.send(("error", repr(exc)))
        return
    conn.send((server.url, pool, seeded, sim.event_delay))
    try:
        conn.recv()  # "stop", or EOF when the parent is gone
    except EOFError:
        pass
    server.stop()


def records(spec: PoolSpec) -> dict[str, dict[str, dict[str, Any]]]:
    """`{class: {ref: record}}` for the classes netctl syncs, as `get_all_records` returns
    them (through the simulator's own API, so the records are what a client would see)."""
    sim, _pool = simulator(spec, users={"root": "synthetic"}, event_delay=0.0)
    session = sim.call("session.login_with_password", ["root", "synthetic"])
    return {c: sim.call(f"{c}.get_all_records", [session]) for c in SYNC_CLASSES}


def pool_state(spec: PoolSpec) -> PoolState:
    """The `PoolState` a full sync of the pool gives (records -> `state_from_records`)."""
    return state_from_records(records(spec))


# ------------------------------------------------------------------------------- builders


def _networks(store: Store, pool: SyntheticPool) -> None:
    spec = pool.spec
    bridges = {"external": "xenbr0" if spec.uplink == "nic" else "xapi0", "vlan": "xapi1",
               "private": "xapi2"}
    labels = {"external": "Pool-wide network associated with eth0" if spec.uplink == "nic"
              else "Bond 0+1", "vlan": f"VLAN {spec.vlan_tag}",
              "private": f"Private {spec.private_protocol} network"}
    for role in ROLES:
        pool.bridge[role] = bridges[role]
        pool.network[role] = store.insert("network", {
            "uuid": pool.uuid(), "name_label": labels[role], "bridge": bridges[role],
            "name_description": f"synthetic {role} network", "MTU": 1500,
            "other_config": {"automatic": "false"} if role != "external" else {}},
            ref=pool.ref())
    # eth1's own network: what xapi gives a NIC with no network of its own (bond member or
    # unused), so every PIF points at a network as in xapi.
    pool.network["eth1"] = store.insert("network", {
        "uuid": pool.uuid(), "name_label": "Pool-wide network associated with eth1",
        "bridge": "xenbr1", "MTU": 1500, "other_config": {}}, ref=pool.ref())
    if spec.uplink == "bond":
        pool.network["eth0"] = store.insert("network", {
            "uuid": pool.uuid(), "name_label": "Pool-wide network associated with eth0",
            "bridge": "xenbr0", "MTU": 1500, "other_config": {}}, ref=pool.ref())


def _pif(store: Store, pool: SyntheticPool, values: dict[str, Any]) -> str:
    metrics = store.insert("PIF_metrics", {"uuid": pool.uuid(), "carrier": True},
                           ref=pool.ref())
    return store.insert("PIF", {"uuid": pool.uuid(), "metrics": metrics, "MTU": 1500,
                                "VLAN": -1, **values}, ref=pool.ref())


def _host(store: Store, pool: SyntheticPool, h: int) -> None:
    spec = pool.spec
    name = f"host{h:02d}"
    address = f"172.16.{h // 250}.{h % 250 + 1}"
    href, dom0 = pool.ref(), pool.ref()
    metrics = store.insert("host_metrics", {"uuid": pool.uuid(), "live": True},
                           ref=pool.ref())
    store.insert("host", {
        "uuid": pool.uuid(), "name_label": name, "hostname": name, "address": address,
        "name_description": f"synthetic pool host {h}", "metrics": metrics,
        "software_version": {**SOFTWARE_VERSION, "hostname": name}, "control_domain": dom0,
        "other_config": {"agent_start_time": "1764400000.", "iscsi_iqn": f"iqn.2026-11.{name}"},
    }, ref=href)
    store.insert("VM", {
        "uuid": pool.uuid(), "name_label": f"Control domain on host: {name}",
        "power_state": "Running", "resident_on": href, "domid": 0, "is_control_domain": True,
        "other_config": {"storage_driver_domain": "OpaqueRef:NULL"}}, ref=dom0)
    pool.hosts.append(href)
    mac = f"00:16:3e:{h >> 8 & 255:02x}:{h & 255:02x}"
    bonded = spec.uplink == "bond"
    # eth0 carries the external network itself, or (bonded) keeps its own pool-wide network
    own = {"eth0": pool.network["eth0" if bonded else "external"], "eth1": pool.network["eth1"]}
    nic = {d: _pif(store, pool, {
        "device": d, "host": href, "MAC": f"{mac}:{i:02x}", "physical": True,
        "properties": {"gro": "on"}, "network": own[d],
        "currently_attached": d == "eth0" and not bonded}) for i, d in enumerate(own)}
    ip = {"ip_configuration_mode": "Static", "IP": address, "netmask": "255.255.0.0",
          "gateway": "172.16.0.254", "DNS": "172.16.0.254", "management": True}
    if bonded:
        master, bond = pool.ref(), pool.ref()
        metrics = store.insert("PIF_metrics", {"uuid": pool.uuid()}, ref=pool.ref())
        store.insert("PIF", {
            "uuid": pool.uuid(), "device": "bond0", "host": href,
            "network": pool.network["external"], "MAC": f"{mac}:00", "MTU": 1500, "VLAN": -1,
            "metrics": metrics, "physical": False, "currently_attached": True, "IPv6": [""],
            "properties": {"gro": "on"}, **ip}, ref=master)
        store.insert("Bond", {"uuid": pool.uuid(), "master": master, "mode": "lacp",
                              "properties": dict(LACP_DEFAULTS), "primary_slave": nic["eth0"],
                              "links_up": 2}, ref=bond)
        for member in nic.values():
            store.update("PIF", member, bond_slave_of=bond)
        external = master
    else:
        store.update("PIF", nic["eth0"], **ip)
        external = nic["eth0"]
    pool.management_pif[href] = external
    # The VLAN network on the external PIF.
    vlan, untagged = pool.ref(), pool.ref()
    ext = store.row("PIF", external).fields
    store.insert("PIF", {
        "uuid": pool.uuid(), "device": ext["device"], "host": href,
        "network": pool.network["vlan"], "MAC": VLAN_PIF_MAC, "MTU": 1500,
        "VLAN": spec.vlan_tag, "metrics": ext["metrics"], "physical": False,
        "currently_attached": True, "VLAN_master_of": vlan, "IPv6": [""]}, ref=untagged)
    store.insert("VLAN", {"uuid": pool.uuid(), "tagged_PIF": external, "untagged_PIF": untagged,
                          "tag": spec.vlan_tag, "other_config": {}}, ref=vlan)
    # The private network: a tunnel over the management PIF.
    access, tunnel = pool.ref(), pool.ref()
    store.insert("PIF", {
        "uuid": pool.uuid(), "device": "tunnel0", "host": href,
        "network": pool.network["private"], "MAC": f"02:ff:00:00:{h >> 8 & 255:02x}:"
        f"{h & 255:02x}", "MTU": 1500, "VLAN": -1, "metrics": ext["metrics"],
        "physical": False, "currently_attached": True, "IPv6": [""]}, ref=access)
    store.insert("tunnel", {"uuid": pool.uuid(), "access_PIF": access, "transport_PIF": external,
                            "protocol": spec.private_protocol,
                            "status": {"active": "true", "key": "0"}}, ref=tunnel)


def _guests(store: Store, pool: SyntheticPool) -> None:
    spec = pool.spec
    counts = spec.vifs_per_vm
    nets = spec.networks
    vm_index = 0
    for host in pool.hosts:
        left = spec.vifs_per_host
        pool.vms.setdefault(host, [])
        pool.vifs.setdefault(host, [])
        while left > 0:
            n = min(left, counts[vm_index % len(counts)])
            roles = [nets[(vm_index + k) % len(nets)] for k in range(n)]
            pool.add_vm(store, host, roles)
            vm_index += 1
            left -= n
