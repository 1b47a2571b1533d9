"""Bad intent costs only what is bad (issue 17): a bad value written through XenAPI — each row of
the issue's table and each key netctl reads — is a Problem in `netctl status` within a second,
while a ping between vm1 (host1) and vm2 (host2) loses no reply and vm1's locking stays at least
as strict as before; corrected, the Problem goes and the intended setting applies.

Bad values xapi itself refuses (allowed addresses that do not parse, an unknown locking mode, a
network MTU out of range) cannot be written here; what netctl does with them is proven on the
model (tests/unit/test_bad_intent.py) and in the engine's random change sequences.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from harness.running import Ping, running_pool, until
from netctl.lab.spoof import LEGIT, SPOOFED, spoof_check

pytestmark = pytest.mark.lab
PREFIX = "tbi"
PORTS = (28493, 26703, 29514)  # xapi simulator, OpenFlow, metrics
BRIDGE = "xenbr0"


@pytest.fixture(scope="module")
def pool():
    with running_pool("mini-pool.yaml", PREFIX, "198.18.48.0/24", PORTS, lacp=False) as demo:
        x = demo.session.xenapi
        vif = demo.vif_ref("vm1", 0)
        x.VIF.set_ipv4_allowed(vif, ["10.50.0.1"])
        x.VIF.set_ipv6_allowed(vif, ["fd4e:50::1"])
        assert until(lambda: demo.status()["problems"] == [], 10), demo.status()["problems"]
        yield demo


@dataclass
class Refs:
    vif: str
    network: str
    pool: str
    pif: str  # host1's eth0


def refs(pool) -> Refs:
    x = pool.session.xenapi
    pif = next(r for r, p in x.PIF.get_all_records().items()
               if p["device"] == "eth0" and x.host.get_name_label(p["host"]) == "host1")
    return Refs(pool.vif_ref("vm1", 0), x.network.get_by_name_label("pool")[0],
                x.pool.get_all()[0], pif)


def problems(pool, field: str) -> list[str]:
    return [p for p in pool.status()["problems"] if f": {field}: " in p]


def bridge_column(pool, host: str, column: str) -> str:
    return pool.lab.ovs(host).vsctl("get", "bridge", BRIDGE, column).strip()


def locking_holds(pool) -> bool:
    """vm1 sends every kind of spoofed frame: none reaches vm2, the legitimate ones do."""
    seen = spoof_check(pool.lab, "vm1", 0, "vm2", 0)
    return not (seen & SPOOFED) and LEGIT <= seen


@dataclass
class Case:
    name: str
    field: str  # the Problem's field
    bad: Callable  # (xenapi, Refs) -> None
    good: Callable  # (xenapi, Refs) -> None: corrected (or removed)
    applied: Callable | None = None  # (pool) -> bool: the corrected setting is in effect


def other_config(cls: str, attr: str, key: str, value: str | None) -> Callable:
    def write(x, r: Refs) -> None:
        api, ref = getattr(x, cls), getattr(r, attr)
        api.remove_from_other_config(ref, key)
        if value is not None:
            api.add_to_other_config(ref, key, value)
    return write


def qos(kbps: str | None) -> Callable:
    def write(x, r: Refs) -> None:
        x.VIF.set_qos_algorithm_type(r.vif, "ratelimit" if kbps is not None else "")
        x.VIF.set_qos_algorithm_params(r.vif, {"kbps": kbps} if kbps is not None else {})
    return write


CASES = [
    # the table
    Case("vif-mtu", "other_config:mtu", other_config("VIF", "vif", "mtu", "abc"),
         other_config("VIF", "vif", "mtu", None)),
    Case("vif-ratelimit", "qos_algorithm_params:kbps", qos("-5"), qos(None)),
    Case("network-in-band", "other_config:vswitch-disable-in-band",
         other_config("network", "network", "vswitch-disable-in-band", "maybe"),
         other_config("network", "network", "vswitch-disable-in-band", "true"),
         lambda p: bridge_column(p, "host1", "other_config:disable-in-band") == '"true"'),
    Case("pool-fail-mode", "other_config:vswitch-controller-fail-mode",
         other_config("pool", "pool", "vswitch-controller-fail-mode", "bogus"),
         other_config("pool", "pool", "vswitch-controller-fail-mode", None),
         lambda p: bridge_column(p, "host1", "fail_mode") == "secure"),
    # every other key netctl reads, on the objects of this pool
    Case("network-fail-mode", "other_config:vswitch-controller-fail-mode",
         other_config("network", "network", "vswitch-controller-fail-mode", "maybe"),
         other_config("network", "network", "vswitch-controller-fail-mode", "secure"),
         lambda p: bridge_column(p, "host1", "fail_mode") == "secure"),
    Case("pool-in-band", "other_config:vswitch-disable-in-band",
         other_config("pool", "pool", "vswitch-disable-in-band", "yes"),
         other_config("pool", "pool", "vswitch-disable-in-band", None)),
    Case("pif-mtu", "other_config:mtu", other_config("PIF", "pif", "mtu", "jumbo"),
         other_config("PIF", "pif", "mtu", "1400"),
         lambda p: p.lab.ovs("host1").vsctl("get", "interface", "eth0",
                                            "mtu_request").strip() == "1400"),
    Case("pif-fail-mode", "other_config:vswitch-controller-fail-mode",
         other_config("PIF", "pif", "vswitch-controller-fail-mode", "closed"),
         other_config("PIF", "pif", "vswitch-controller-fail-mode", None)),
    Case("pif-in-band", "other_config:vswitch-disable-in-band",
         other_config("PIF", "pif", "vswitch-disable-in-band", "0"),
         other_config("PIF", "pif", "vswitch-disable-in-band", None)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_value_is_a_problem_and_nothing_else_changes(pool, case: Case) -> None:
    x, r = pool.session.xenapi, refs(pool)
    with Ping(pool.lab, "vm1", "10.50.0.2", 0.05) as ping:
        case.bad(x, r)
        written = time.monotonic()
        assert until(lambda: problems(pool, case.field), 5, 0.05), pool.status()["problems"]
        seen = time.monotonic() - written
        time.sleep(1.0)  # what a change of the applied setting would cost, it would cost now
        case.good(x, r)
        assert until(lambda: not problems(pool, case.field), 5, 0.05), problems(pool, case.field)
    assert seen <= 1.0, f"the Problem showed {seen:.2f} s after the write"
    assert ping.sent >= 30 and ping.lost == 0, f"{ping.lost} of {ping.sent} replies lost"
    if case.applied is not None:
        assert until(lambda: case.applied(pool), 10), f"{case.name}: not applied once corrected"
    case.good(x, r)  # leave the pool as it was for the next case
    other_config("pool", "pool", "vswitch-controller-fail-mode", None)(x, r)
    other_config("network", "network", "vswitch-controller-fail-mode", None)(x, r)
    other_config("network", "network", "vswitch-disable-in-band", None)(x, r)
    other_config("PIF", "pif", "mtu", None)(x, r)
    assert until(lambda: pool.status()["problems"] == [], 10), pool.status()["problems"]


def test_a_mistyped_locking_override_locks_the_vif_and_says_so(pool) -> None:
    """vm1 is unlocked; `netctl-locking-mode = lockd` (meant: locked) is a Problem and vm1 is
    enforced as locked to its allowed addresses — spoofed frames stop, its own traffic flows —
    never left unlocked in silence. Corrected to `unlocked`, the Problem goes and vm1 may send
    anything again."""
    x, r = pool.session.xenapi, refs(pool)
    x.VIF.set_locking_mode(r.vif, "unlocked")
    field = "other_config:netctl-locking-mode"
    try:
        with Ping(pool.lab, "vm1", "10.50.0.2", 0.05) as ping:
            x.VIF.add_to_other_config(r.vif, "netctl-locking-mode", "lockd")
            assert until(lambda: problems(pool, field), 5, 0.05)
            assert "enforced as locked" in problems(pool, field)[0]
        assert ping.lost == 0, f"{ping.lost} of {ping.sent} replies lost"
        assert locking_holds(pool)
        x.VIF.remove_from_other_config(r.vif, "netctl-locking-mode")
        x.VIF.add_to_other_config(r.vif, "netctl-locking-mode", "unlocked")
        assert until(lambda: not problems(pool, field), 5, 0.05)
        assert SPOOFED & spoof_check(pool.lab, "vm1", 0, "vm2", 0)  # unlocked, as corrected
    finally:
        x.VIF.remove_from_other_config(r.vif, "netctl-locking-mode")
        x.VIF.set_locking_mode(r.vif, "network_default")

