"""Reading a pool run by several `netctl run` instances (`DemoPool(instances=...)`) as an
operator does, through each instance's /status: who masters which host, whether they agree
and the switches acknowledged it, what each instance wrote. Shared by tests/lab/test_ha.py and
bench/failover.py."""

from __future__ import annotations

from netctl.cli.demo import DemoPool


def alive(pool: DemoPool) -> list[int]:
    """The instances whose /status answers."""
    return [i for i in range(pool.instances) if pool.status(i)]


def masters(pool: DemoPool, i: int) -> dict[str, str]:
    """host name -> instance id, as instance i last read etcd (pseudo-hosts left out)."""
    c = pool.status(i).get("coordination") or {}
    return {h: m["instance"] for h, m in c.get("masters", {}).items() if not h.startswith("@")}


def settled(pool: DemoPool, live: list[int]) -> bool:
    """Every host has one master among the live instances, every live instance agrees, and
    each master's switches acknowledged it and had their table read and written."""
    ids = {pool.instance_id(i) for i in live}
    views = [masters(pool, i) for i in live]
    hosts = {h.name for h in pool.topology.hosts}
    if not views or any(v != views[0] for v in views) or set(views[0]) != hosts:
        return False
    if not set(views[0].values()) <= ids:
        return False
    for i in live:
        mine = {h for h, inst in views[0].items() if inst == pool.instance_id(i)}
        for sw in pool.status(i).get("switches", []):
            if (sw["host"] in mine) != (sw["role"] == "master") or (
                    sw["host"] in mine and sw["flows"] is None):
                return False
    return True


def master_of(pool: DemoPool, host: str) -> int:
    """The index of the instance mastering `host` (as the first live instance reads it)."""
    owner = masters(pool, alive(pool)[0])[host]
    return next(i for i in range(pool.instances) if pool.instance_id(i) == owner)


def writes(pool: DemoPool, live: list[int]) -> dict[int, tuple[int, int, int]]:
    """Per instance: flow-mods, port-mods and OVSDB operations it sent since it started."""
    out = {}
    for i in live:
        st = pool.status(i)
        out[i] = (st["flows"]["flow_mods"], st["flows"]["port_mods"],
                  sum(h["operations"] for h in st["hosts"]))
    return out


def pid_of(pool: DemoPool, i: int) -> int:
    """Instance i's PID, as the lab recorded it when it last started it (a restarted instance
    has an older record too, of a process that is gone)."""
    assert pool.lab is not None
    name = pool.instance_name(i)
    return [p.pid for p in pool.lab.reload().state.owned_processes()
            if p.what == name and p.alive()][-1]
