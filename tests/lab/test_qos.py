"""Per-VIF QoS (issue 22 part 1) on the demo pool, with real traffic: a rate limit set through
XenAPI (`VIF.qos_algorithm_type = ratelimit`, `qos_algorithm_params:kbps`, KiB/s) is an
OpenFlow meter on vm1's VIF port within a second (its classify flow carries it), iperf3 from
the VM then measures the limit (within 10%, UDP and TCP), a change is one meter-mod, removing
it restores the full rate, and a restart with the limit in place sends nothing.

vm1 (host1, network pool) sends to vm3 (host2, pool) across the bond.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from flows.qos import burst_kbit, rate_kbit
from harness.running import running_pool, until

pytestmark = pytest.mark.lab
PREFIX = "tqo"
PORTS = (28741, 26941, 29741)  # xapi simulator, OpenFlow, metrics
KBPS = 2441  # KiB/s: 2441 x 1024 x 8 = 19.997 Mbit/s
SERVER = "10.10.0.13"
BRIDGE = "xapi1"


@pytest.fixture(scope="module")
def pool():
    with running_pool("demo-pool.yaml", PREFIX, "198.18.67.0/24", PORTS) as demo:
        yield demo


def vif(pool) -> tuple[str, str]:
    ref = pool.vif_ref("vm1", 0)
    return ref, pool.session.xenapi.VIF.get_uuid(ref)


def ofport(pool, uuid: str) -> int:
    """vm1's VIF port number on host1's bridge (the id of its meter)."""
    out = pool.lab.ovs("host1").vsctl("--bare", "--columns=ofport", "find", "Interface",
                                      f"external_ids:xs-vif-uuid={uuid}", "type=\"\"")
    return int(out.split()[0])


def meters(pool) -> dict[int, tuple[int, int]]:
    """host1's meters on the pool bridge, as OVS holds them: id -> (kbit/s, burst kbit)."""
    out = pool.lab.ovs("host1").ofctl("-O", "OpenFlow13", "dump-meters", BRIDGE)
    found = {}
    for m in re.finditer(r"meter=(\d+) kbps burst.*?type=drop rate=(\d+) burst_size=(\d+)", out,
                         re.S):
        found[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return found


def classify_meter(pool, port: int) -> int | None:
    """The meter vm1's classify flow (table 0, from its port) applies, None: none."""
    out = pool.lab.ovs("host1").ofctl("-O", "OpenFlow13", "dump-flows", BRIDGE,
                                      f"table=0,in_port={port}")
    hits = re.findall(r"priority=100.*?actions=(?:meter:(\d+),)?", out)
    assert hits, out
    return int(hits[0]) if hits[0] else None


def limit_of(pool) -> tuple[int, int] | None:
    port = ofport(pool, vif(pool)[1])
    band = meters(pool).get(port)
    return band if band is not None and classify_meter(pool, port) == port else None


def set_limit(pool, kbps: str | None, algorithm: str = "ratelimit") -> float:
    """Set (or, kbps None, remove) vm1's limit through XenAPI; returns when it was sent."""
    ref, _ = vif(pool)
    x = pool.session.xenapi
    started = time.monotonic()
    x.VIF.set_qos_algorithm_params(ref, {"kbps": kbps} if kbps is not None else {})
    x.VIF.set_qos_algorithm_type(ref, algorithm if kbps is not None else "")
    return started


def applied_within(pool, want_kbps: int | None, started: float) -> float:
    want = None if want_kbps is None else (rate_kbit(want_kbps),
                                           burst_kbit(rate_kbit(want_kbps)))
    assert until(lambda: limit_of(pool) == want, 5, step=0.02), (limit_of(pool), want)
    return time.monotonic() - started


def udp_mbit(pool, offered: str = "60M", seconds: int = 5, port: str = "5241") -> float:
    """What vm3 received of vm1's UDP (iperf3's receiver figure), in Mbit/s of payload."""
    lab = pool.lab
    server = lab.popen("vm3", ["iperf3", "-s", "-1", "-B", SERVER, "-p", port])
    try:
        time.sleep(0.5)
        # -O 1: the first second left out (a full bucket lets one burst through at the start)
        out = lab.exec("vm1", ["iperf3", "-c", SERVER, "-p", port, "-u", "-b", offered,
                               "-l", "1400", "-t", str(seconds), "-O", "1", "-J"],
                       timeout=60).stdout
    finally:
        server.kill()
        server.communicate()
    end = json.loads(out)["end"]
    received = end.get("sum_received") or end["sum"]
    return received["bits_per_second"] / 1e6


def tcp_mbit(pool, seconds: int = 5, port: str = "5242") -> float:
    lab = pool.lab
    server = lab.popen("vm3", ["iperf3", "-s", "-1", "-B", SERVER, "-p", port])
    try:
        time.sleep(0.5)
        out = lab.exec("vm1", ["iperf3", "-c", SERVER, "-p", port, "-t", str(seconds), "-O",
                               "1", "-J"], timeout=60).stdout
    finally:
        server.kill()
        server.communicate()
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


def status_qos(pool) -> object:
    url = f"http://127.0.0.1:{PORTS[2]}/status?vm=vm1"
    with urllib.request.urlopen(url, timeout=10) as resp:
        rows = json.load(resp)["vifs"]
    return next(r for r in rows if r["device"] == "0")["qos"]


def scrape() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics", timeout=10) as resp:
        return resp.read().decode()


def sent(pool) -> tuple[int, int, int]:
    """(flow-mods, meter-mods, OVSDB operations) netctl sent so far, as /status counts them."""
    st = pool.status()
    return (st["flows"]["flow_mods"], st["flows"]["meter_mods"],
            sum(h["operations"] for h in st["hosts"]))


def test_a_limit_set_through_xenapi_reaches_the_switch_within_a_second(pool) -> None:
    """Set, change, remove through XenAPI: each is on the switch within 1 s (a meter, and the
    VIF's classify flow using it), a rate change is one meter-mod and no flow-mod, and /status
    shows the VIF's limit in xapi's unit and the meter's."""
    assert limit_of(pool) is None and status_qos(pool) is None
    delay = applied_within(pool, KBPS, set_limit(pool, str(KBPS)))
    assert limit_of(pool) == (19997, 9998)  # 2441 KiB/s = 19,997 kbit/s; burst half a second
    assert until(lambda: status_qos(pool) == {"kbps": KBPS, "rate_kbit": 19997,
                                              "burst_kbit": 9998}, 2), status_qos(pool)
    assert 'netctl_vif_rate_limit_kbits{device="0",host="host1",network="pool",vm="vm1"} ' \
        '19997.0' in scrape(), [ln for ln in scrape().splitlines() if "rate_limit" in ln]
    before = sent(pool)
    changed = applied_within(pool, KBPS // 2, set_limit(pool, str(KBPS // 2)))
    assert until(lambda: sent(pool)[1] == before[1] + 1, 2), (before, sent(pool))
    assert sent(pool)[0] == before[0], "a rate change sent flow-mods"
    removed = applied_within(pool, None, set_limit(pool, None))
    assert until(lambda: status_qos(pool) is None, 2), status_qos(pool)
    assert meters(pool) == {}  # the meter went with its flow's last use
    print(f"\napplied in {delay:.2f} s, changed in {changed:.2f} s, removed in {removed:.2f} s")
    assert delay < 1.0 and changed < 1.0 and removed < 1.0


def test_iperf3_from_the_vm_measures_the_limit_and_full_rate_without(pool) -> None:
    limit = KBPS * 1024 * 8 / 1e6
    free = udp_mbit(pool, offered="200M")
    applied_within(pool, KBPS, set_limit(pool, str(KBPS)))
    try:
        limited = udp_mbit(pool)
        tcp = tcp_mbit(pool)
    finally:
        applied_within(pool, None, set_limit(pool, None))
    again = udp_mbit(pool, offered="200M")
    print(f"\nlimit {limit:.2f} Mbit/s: UDP {limited:.2f}, TCP {tcp:.2f}; unlimited before "
          f"{free:.1f}, after removal {again:.1f}")
    assert free > 2 * limit and again > 2 * limit, (free, again)
    assert abs(limited - limit) <= 0.10 * limit, (limited, limit)
    assert abs(tcp - limit) <= 0.10 * limit, (tcp, limit)


def test_a_restart_with_a_limit_in_place_sends_nothing(pool) -> None:
    applied_within(pool, KBPS, set_limit(pool, str(KBPS)))
    try:
        pool.restart("netctl-run")
        assert until(pool.converged, 60), pool.status()
        time.sleep(1)
        assert sent(pool) == (0, 0, 0), "a restart with unchanged intent sent something"
        assert limit_of(pool) == (19997, 9998)
    finally:
        applied_within(pool, None, set_limit(pool, None))


def test_a_bad_limit_is_a_problem_and_the_vif_still_forwards(pool) -> None:
    _, uuid = vif(pool)
    started = set_limit(pool, "20M")
    try:
        def problem() -> list[str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/status?vm=vm1",
                                        timeout=10) as resp:
                return [p for p in json.load(resp)["problems"]
                        if uuid in p and "qos_algorithm_params:kbps" in p]
        assert until(lambda: bool(problem()), 5), "no Problem for kbps=20M"
        assert "'20M' is not a rate in KiB/s" in problem()[0]
        assert time.monotonic() - started < 5
        assert limit_of(pool) is None
        pool.lab.exec("vm1", ["ping", "-c", "2", "-W", "2", SERVER])
    finally:
        set_limit(pool, None)
