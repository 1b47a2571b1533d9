"""Flow export (issue 22 part 4) on the demo pool, with real collectors: the pool's
other_config set through XenAPI puts NetFlow, IPFIX and sFlow rows on every bridge of every
host within a second; a known flow between two VMs (vm1 on host1 pings vm3 on host2) shows in
nfcapd's files (read with `nfdump`) for NetFlow and IPFIX and in an sFlow decoder's samples
(`harness.sflow`); a network's own keys override the pool's on its bridge; a bad value is a
Problem naming the object, the key and the reason while the rest applies; /status and /metrics
show the targets; a restart with unchanged intent sends 0 OVSDB operations; removing the keys
deletes the rows.

Where the collectors are: each lab host's ovs-vswitchd runs in the host's own namespace
(`reference/lab-recipes.md`), so 127.0.0.1 and ::1 in a target are that host's loopback. The
collectors run in host1's namespace, where vm1's frames enter the pool; IPFIX goes to ::1, so
an IPv6 collector is exercised end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.running import running_pool, until
from harness.sflow import read as read_sflow

pytestmark = pytest.mark.lab
PREFIX = "tfx"
MGMT = "198.18.85.0/24"
PORTS = (28771, 26971, 29771)  # xapi simulator, OpenFlow, metrics
ROOT = Path(__file__).resolve().parents[2]
NETFLOW, IPFIX, SFLOW, PRIV_NETFLOW = 29781, 29782, 29783, 29785
VM1, VM3 = "10.10.0.11", "10.10.0.13"  # network pool (xapi1)
VM1_PRIV, VM3_PRIV = "10.40.0.11", "10.40.0.13"  # network priva (xapi4, VXLAN)
EXPORT = {"netflow-targets": f"127.0.0.1:{NETFLOW}", "netflow-active-timeout": "1",
          "ipfix-targets": f"[::1]:{IPFIX}", "ipfix-sampling": "1",
          "ipfix-active-timeout": "1", "sflow-targets": f"127.0.0.1:{SFLOW}",
          "sflow-sampling": "1", "sflow-polling": "0"}
HOSTS = ("host1", "host2", "host3")


@pytest.fixture(scope="module")
def pool():
    with running_pool("demo-pool.yaml", PREFIX, MGMT, PORTS) as demo:
        yield demo


# ------------------------------------------------------------------ helpers
def pool_ref(pool) -> str:
    return pool.session.xenapi.pool.get_all()[0]


def set_pool_keys(pool, keys: dict[str, str], drop: tuple[str, ...] = ()) -> float:
    """Merge `keys` into pool.other_config (one XenAPI call), without `drop`; returns when."""
    x, ref = pool.session.xenapi, pool_ref(pool)
    other = {k: v for k, v in x.pool.get_other_config(ref).items() if k not in drop}
    started = time.monotonic()
    x.pool.set_other_config(ref, {**other, **keys})
    return started


def network_ref(pool, name: str) -> str:
    return pool.session.xenapi.network.get_by_name_label(name)[0]


def set_network_keys(pool, name: str, keys: dict[str, str], drop: tuple[str, ...] = ()
                     ) -> float:
    x, ref = pool.session.xenapi, network_ref(pool, name)
    other = {k: v for k, v in x.network.get_other_config(ref).items() if k not in drop}
    started = time.monotonic()
    x.network.set_other_config(ref, {**other, **keys})
    return started


def export_rows(pool, host: str) -> dict[str, dict[str, str]]:
    """bridge -> {kind: its targets as a JSON list, "" for none} on one host, read in one
    ovs-vsctl transaction (a consistent snapshot while netctl writes)."""
    tables = ("NetFlow", "IPFIX", "sFlow")
    out = pool.lab.ovs(host).vsctl(
        "--format=json", "--", "--columns=name,netflow,ipfix,sflow", "list", "Bridge",
        *(a for t in tables for a in ("--", "--columns=_uuid,targets", "list", t)))
    bridges, *rest = (json.loads(line)["data"] for line in out.splitlines())
    targets = {uuid: json.dumps(sorted(t[1] if t[0] == "set" else [t]))
               for rows in rest for (_, uuid), t in rows}
    return {name: {kind: targets.get(ref[1], "?") if ref != ["set", []] else ""
                   for kind, ref in zip(("netflow", "ipfix", "sflow"), refs, strict=True)}
            for name, *refs in bridges}


def every_bridge(pool, predicate) -> bool:
    """`predicate(host, bridge, rows)` holds for every bridge netctl built on every host."""
    built = {h["name"]: h["bridges"] for h in pool.status()["hosts"]}
    for host in HOSTS:
        rows = export_rows(pool, host)
        if not all(b in rows and predicate(host, b, rows[b]) for b in built[host]):
            return False
    return True


def full_export(_host: str, _bridge: str, rows: dict[str, str]) -> bool:
    return rows == {"netflow": f'["127.0.0.1:{NETFLOW}"]', "ipfix": f'["[::1]:{IPFIX}"]',
                    "sflow": f'["127.0.0.1:{SFLOW}"]'}


def no_export(_host: str, _bridge: str, rows: dict[str, str]) -> bool:
    return rows == {"netflow": "", "ipfix": "", "sflow": ""}


def ovsdb_operations(pool) -> int:
    return sum(h["operations"] for h in pool.status()["hosts"])


def scrape() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[2]}/metrics", timeout=10) as resp:
        return resp.read().decode()


@contextmanager
def nfcapd(pool, listen: str, port: int, where: Path) -> Iterator[Path]:
    """nfcapd in host1's namespace on `listen`:`port`; stopped (SIGTERM: it writes its file)
    by its PID on leaving; yields the directory its files are in (under `where`)."""
    out = where / f"nfcapd-{port}"
    out.mkdir()
    argv = ["nfcapd", "-b", listen, "-p", str(port), "-w", str(out), "-t", "60"]
    if ":" in listen:
        argv.insert(1, "-6")
    proc = pool.lab.popen("host1", argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert proc.poll() is None, f"nfcapd on {listen}:{port} did not start"
        yield out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def nfdump(directory: Path) -> list[tuple[str, str, str, int]]:
    """(protocol, source, destination, packets) of every record nfcapd wrote."""
    out = subprocess.run(["nfdump", "-R", str(directory), "-q", "-o",
                          "fmt:%pr,%sa,%da,%pkt"], capture_output=True, text=True,
                         timeout=30).stdout
    rows = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[3].isdigit():
            rows.append((parts[0], parts[1], parts[2], int(parts[3])))
    return rows


@contextmanager
def sflow_collector(pool, port: int, where: Path) -> Iterator[Path]:
    """harness.sflow in host1's namespace on 127.0.0.1:`port`, stopped by its PID; yields
    the file of its decoded samples."""
    out = where / f"sflow-{port}.jsonl"
    proc = pool.lab.popen("host1", [sys.executable, "-m", "harness.sflow", "--listen",
                                    f"127.0.0.1:{port}", "--out", str(out)], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def ping(pool, src: str, dst: str, count: int = 20) -> None:
    out = pool.lab.exec(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.05", dst],
                        timeout=30).stdout
    assert " 0% packet loss" in out, out


# ------------------------------------------------------------------ tests
def test_pool_wide_export_reaches_every_bridge_and_the_collectors_see_the_flow(pool, tmp_path):
    assert every_bridge(pool, no_export)
    with nfcapd(pool, "127.0.0.1", NETFLOW, tmp_path) as nf, \
            nfcapd(pool, "::1", IPFIX, tmp_path) as ipfix, \
            sflow_collector(pool, SFLOW, tmp_path) as sflow:
        started = set_pool_keys(pool, EXPORT)
        assert until(lambda: every_bridge(pool, full_export), 5, step=0.02), \
            {h: export_rows(pool, h) for h in HOSTS}
        delay = time.monotonic() - started
        ping(pool, "vm1", VM3)
        time.sleep(3)  # NetFlow and IPFIX active timeouts are 1 s; sFlow samples at once
        flow = [s for s in read_sflow(str(sflow)) if s["type"] == "flow"]
    netflow_records, ipfix_records = nfdump(nf), nfdump(ipfix)
    known = {(p, s, d) for p, s, d, _ in netflow_records}
    print(f"\nrows on all 12 bridges {delay:.2f} s after the XenAPI call; NetFlow "
          f"{len(netflow_records)} records, IPFIX {len(ipfix_records)}, sFlow {len(flow)} "
          "flow samples")
    assert ("ICMP", VM1, VM3) in known and ("ICMP", VM3, VM1) in known, netflow_records
    assert sum(n for p, s, d, n in netflow_records if (p, s, d) == ("ICMP", VM1, VM3)) >= 20
    assert {("ICMP", VM1, VM3), ("ICMP", VM3, VM1)} <= {(p, s, d) for p, s, d, _ in
                                                         ipfix_records}, ipfix_records
    echo = [s for s in flow if (s.get("src"), s.get("dst"), s.get("proto")) == (VM1, VM3, 1)]
    assert len(echo) >= 20, flow[:5]  # sampling 1 in 1: every echo request vm1 sent
    assert delay < 1.0, delay


def test_status_and_metrics_show_the_targets(pool):
    set_pool_keys(pool, EXPORT)
    assert until(lambda: every_bridge(pool, full_export), 5)
    rows = {r["kind"]: r for r in pool.status()["export"]}
    assert rows["netflow"]["targets"] == [f"127.0.0.1:{NETFLOW}"]
    assert rows["ipfix"]["targets"] == [f"[::1]:{IPFIX}"]
    assert rows["ipfix"]["settings"] == {"sampling": 1, "cache_active_timeout": 1}
    assert rows["sflow"]["settings"] == {"sampling": 1, "polling": 0, "header": 128,
                                         "agent": ""}
    assert all(r["bridges"] == 12 and r["hosts"] == 3 and r["pending"] == 0
               for r in rows.values()), rows
    assert rows["netflow"]["networks"] == ["pool", "priva", "privb", "storage"]
    text = scrape()
    assert f'netctl_flow_export_bridges{{kind="ipfix",target="[::1]:{IPFIX}"}} 12.0' in text, \
        [ln for ln in text.splitlines() if "export" in ln]
    assert f'netctl_flow_export_pending_bridges{{kind="sflow",target="127.0.0.1:{SFLOW}"}} ' \
        '0.0' in text


def test_a_network_overrides_the_pool_on_its_own_bridge(pool, tmp_path):
    """priva (xapi4) turns sFlow off and adds a NetFlow collector of its own: its bridges on
    every host change, the other bridges do not; that collector sees priva's flow (vm1 to
    vm3 over VXLAN) and not the pool network's."""
    set_pool_keys(pool, EXPORT)
    assert until(lambda: every_bridge(pool, full_export), 5)
    with nfcapd(pool, "127.0.0.1", PRIV_NETFLOW, tmp_path) as priv:
        started = set_network_keys(pool, "priva", {
            "sflow-targets": "none", "netflow-targets": f"+127.0.0.1:{PRIV_NETFLOW}"})

        def overridden(_host: str, bridge: str, rows: dict[str, str]) -> bool:
            if bridge != "xapi4":
                return full_export(_host, bridge, rows)
            return rows == {"netflow": f'["127.0.0.1:{NETFLOW}", "127.0.0.1:{PRIV_NETFLOW}"]',
                            "ipfix": f'["[::1]:{IPFIX}"]', "sflow": ""}
        assert until(lambda: every_bridge(pool, overridden), 5, step=0.02), \
            {h: export_rows(pool, h) for h in HOSTS}
        delay = time.monotonic() - started
        ping(pool, "vm1", VM3_PRIV)
        ping(pool, "vm1", VM3)
        time.sleep(3)
    records = {(p, s, d) for p, s, d, _ in nfdump(priv)}
    print(f"\nnetwork override on 3 bridges in {delay:.2f} s; its collector: {sorted(records)}")
    assert ("ICMP", VM1_PRIV, VM3_PRIV) in records
    assert ("ICMP", VM1, VM3) not in records  # the pool network's bridge does not send there
    assert delay < 1.0
    set_network_keys(pool, "priva", {}, drop=("sflow-targets", "netflow-targets"))
    assert until(lambda: every_bridge(pool, full_export), 5)


def test_a_bad_value_is_a_problem_and_the_rest_applies(pool):
    set_pool_keys(pool, {**EXPORT, "sflow-polling": "soon"})
    set_network_keys(pool, "storage", {"ipfix-targets": "2001:db8::1:4739"})

    def said() -> list[str]:
        return [p for p in pool.status()["problems"] if "other_config:" in p
                and ("sflow-polling" in p or "ipfix-targets" in p)]
    assert until(lambda: len(said()) == 2, 5), pool.status()["problems"]
    pool_problem = next(p for p in said() if "sflow-polling" in p)
    net_problem = next(p for p in said() if "ipfix-targets" in p)
    assert pool_problem.startswith("pool ") and "'soon' is not seconds" in pool_problem
    assert net_problem.startswith("network storage ") and "in brackets" in net_problem \
        and "the pool's collectors apply" in net_problem, net_problem
    # the rest applies: every bridge exports (storage's bridge to the pool's IPFIX collector),
    # sFlow polls at the default 30 s
    assert every_bridge(pool, full_export)
    polling = pool.lab.ovs("host2").vsctl("--bare", "--columns=polling", "list", "sFlow")
    assert set(polling.split()) == {"30"}, polling
    set_network_keys(pool, "storage", {}, drop=("ipfix-targets",))
    set_pool_keys(pool, EXPORT)
    assert until(lambda: not said(), 5)


def test_a_restart_with_unchanged_intent_sends_nothing(pool):
    set_pool_keys(pool, EXPORT)
    assert until(lambda: every_bridge(pool, full_export), 5)
    pool.restart("netctl-run")
    assert until(lambda: pool.status().get("hosts") and all(
        h["connected"] and h["applies"] for h in pool.status()["hosts"]), 60)
    time.sleep(1)
    assert ovsdb_operations(pool) == 0, pool.status()["hosts"]
    assert every_bridge(pool, full_export)


def test_removing_the_keys_deletes_the_rows(pool):
    set_pool_keys(pool, EXPORT)
    assert until(lambda: every_bridge(pool, full_export), 5)
    started = set_pool_keys(pool, {}, drop=tuple(EXPORT))
    assert until(lambda: every_bridge(pool, no_export), 5, step=0.02)
    delay = time.monotonic() - started
    for host in HOSTS:  # unreferenced, OVSDB deleted them
        ovs = pool.lab.ovs(host)
        assert [ovs.vsctl("list", t) for t in ("NetFlow", "IPFIX", "sFlow")] == ["", "", ""]
    assert pool.status()["export"] == []
    print(f"\nrows removed from 12 bridges in {delay:.2f} s")
    assert delay < 1.0
