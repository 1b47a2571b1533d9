"""`/status` answers a summary, filtered queries and the full document (`netctl.service.status`),
over HTTP with the right codes (`netctl.service.metrics`), and `netctl status` prints them.

Why: at 64 hosts x 1000 VIFs the whole document is 70,000 rows and a second of work; a person
asks about the pool at a glance or about one host, VM or network, and each answer must hold
what is asked, no more (caps with totals), and say clearly when a name is unknown. The status
is read from the HTTP thread while the reconcile thread changes the pool: the last test runs
both at once. Costs at full size are figures, not assertions: `bench/status_query.py`.

The run is a stand-in for `netctl.service.run.Run` around a real `NetctlEngine` fed the demo
pool (3 hosts, LACP bonds, VLAN and private networks, 6 VMs), its switches connected.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from harness.engine_rig import RecordingSwitches
from harness.synthetic import PoolSpec
from harness.synthetic import pool_state as synthetic_state
from netctl.cli import views
from netctl.cli.main import main
from netctl.engine.core import NetctlEngine
from netctl.engine.hosts import HostSettings
from netctl.engine.pool import LivePool
from netctl.model import VM, Host, Network, PoolState, Problem
from netctl.service import status
from netctl.service.loop import RoundStats
from netctl.service.metrics import Metrics, serve
from netctl.service.ovsdb_workers import HostStatus
from netctl.service.status import QueryError, snapshot
from netctl.sinks.openflow import Stats
from netctl.sources.xapi.members import PoolMembers
from tests.unit.test_flows import pool_state

SETTINGS = HostSettings(controllers=("tcp:192.0.2.1:6653",), datapath_type="netdev")
ENGINE_KEYS = {"nodes", "rounds", "bridges_rebuilt", "vif_updates", "hosts_rebuilt"}


class StandInRun:
    """What status reads of a Run: the engine (real), xapi's connection, OVSDB workers' status
    per host, the reconcile loop's stats and problems, the flow sink's summary."""

    def __init__(self, state: PoolState) -> None:
        self.engine = NetctlEngine(SETTINGS)
        self.switches = RecordingSwitches()
        self.feed([(o.ref, None, o) for o in state.objects()])
        self.switches.connect_all(self.engine)
        self.engine.run()
        self.switches.apply(self.engine)
        self.engine.clear()
        self.sync = SimpleNamespace(url="http://xapi/", connected=True, full_syncs=1,
                                    reconnects=0, members=PoolMembers(["http://xapi/"]))
        self.loop = SimpleNamespace(stats=RoundStats(rounds=2), problems=self.engine.problems())
        self.sink_problems: list[Problem] = []
        tables = self.engine.desired  # the switches as the sink counts them (once: the sink
        self.switch_rows = [         # keeps counts, it does not walk tables per /status)
            {"dpid": dpid, "host": t.host_ref, "bridge": tables.identity(dpid)[1],
             "ports": len(self.switches.names.get(dpid, {})),
             "flows": sum(1 for _ in tables.entries(dpid))}
            for dpid, t in sorted(tables.tables.items())]
        self.sink = SimpleNamespace(stats=Stats(), problems=lambda: list(self.sink_problems),
                                    summary=lambda: [dict(r) for r in self.switch_rows],
                                    portconfig=None)
        self.workers = {ref: SimpleNamespace(db=None, status=HostStatus(
            h.name_label, h.uuid, f"tcp:{h.address}:6640", connected=True, applies=1,
            bridges=["xapi1"])) for ref, h in self.engine.view.hosts.items()}

    def feed(self, changes: list) -> None:
        self.engine.xapi(changes)
        self.engine.run()
        self.engine.clear()

    @property
    def view(self) -> LivePool:
        return self.engine.view

    @property
    def problems(self) -> list[Problem]:
        return self.loop.problems + self.sink.problems()


@pytest.fixture(scope="module")
def demo_state() -> PoolState:
    return pool_state("demo-pool.yaml")


@pytest.fixture
def run(demo_state: PoolState) -> StandInRun:
    return StandInRun(demo_state)


def without_query(answer: dict) -> dict:
    """An answer but for its echo of the query (which says how the name was given)."""
    return {k: v for k, v in answer.items() if k != "query"}


def named(run: StandInRun, cls: type, name: str) -> Any:
    (obj,) = run.view.named(cls, name)
    return obj


# ---------------------------------------------------------------------------- the summary


def test_summary_holds_what_the_pool_is_at_a_glance(run: StandInRun) -> None:
    st = snapshot(run)
    assert st["view"] == "summary"
    view = run.view
    c = st["counts"]
    assert (c["hosts"], c["vms"], c["vifs"], c["networks"]) == (
        len(view.hosts), len(view.vms), len(view.vifs), len(view.networks))
    assert c["hosts_connected"] == 3 and c["switches"] == len(st["switches"]) > 0
    assert c["flows"] == sum(s["flows"] for s in st["switches"]) > 0
    assert {h["name"] for h in st["hosts"]} == {"host1", "host2", "host3"}
    # per host: its VMs and VIFs, counted (vm1, vm2 on host1: 4 VIFs)
    host1 = next(h for h in st["hosts"] if h["name"] == "host1")
    assert host1["vifs"] == 4 and host1["vms"] >= 2
    assert sum(h["vifs"] for h in st["hosts"]) == len(view.vifs)
    assert len(st["bonds"]) == 3 and all(set(b["members"]) == {"eth0", "eth1"}
                                         for b in st["bonds"])
    assert {t["network"] for t in st["tunnels"]} == {"priva", "privb"}
    assert set(st["engine"]) == ENGINE_KEYS and st["problems"] == []
    assert st["problems_total"] == 0 and "flow_mods" in st["flows"]
    # a small pool: the VIFs are listed in the summary too (the lab tests and the demo read them)
    vm1 = next(v for v in st["vifs"] if v["vm"] == "vm1" and v["device"] == "0")
    assert vm1["locking"] == "locked" and vm1["port"] and vm1["flows"] > 10
    assert vm1["host"] == "host1" and vm1["network"] == "pool" and vm1["vm_kind"] == "guest"
    json.dumps(st)


def test_summary_of_a_large_pool_counts_vifs_instead_of_listing_them(
        run: StandInRun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "SUMMARY_VIFS", len(run.view.vifs) - 1)
    st = snapshot(run)
    assert "vifs" not in st and st["counts"]["vifs"] == len(run.view.vifs)


def test_problems_are_capped_with_their_total(run: StandInRun,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    vif = next(iter(run.view.vifs.values()))
    many = [Problem("VIF", vif.ref, vif.uuid, f"vm VIF {i}", "MAC", "bad") for i in range(7)]
    run.loop.problems = many
    monkeypatch.setattr(status, "PROBLEMS_SHOWN", 3)
    st = snapshot(run)
    assert st["problems"] == [str(p) for p in many[:3]] and st["problems_total"] == 7
    assert st["counts"]["problems"] == 7


# ---------------------------------------------------------------------------- filters


def test_vm_by_name_or_uuid_gives_its_vifs_and_what_carries_them(run: StandInRun) -> None:
    vm1 = named(run, VM, "vm1")
    by_name, by_uuid = snapshot(run, {"vm": "vm1"}), snapshot(run, {"vm": vm1.uuid})
    assert without_query(by_name) == without_query(by_uuid) and by_name["view"] == "query"
    assert by_name["match"] == {"vm": [{"name": "vm1", "uuid": vm1.uuid, "applied": True,
                                        "power_state": "Running"}]}
    assert [(v["vm"], v["device"], v["network"]) for v in by_name["vifs"]] == [
        ("vm1", "0", "pool"), ("vm1", "1", "priva")]
    assert by_name["vifs_total"] == 2 and not by_name["vifs_truncated"]
    # its host, the bond carrying "pool" there, the priva tunnel there, the switches of both
    assert [h["name"] for h in by_name["hosts"]] == ["host1"]
    assert [(b["host"], b["network"]) for b in by_name["bonds"]] == [("host1", "pool")]
    assert [(t["host"], t["network"]) for t in by_name["tunnels"]] == [("host1", "priva")]
    assert sorted((s["host"], s["bridge"]) for s in by_name["switches"]) == [
        ("host1", "xapi1"), ("host1", "xapi4")]


def test_host_gives_its_vifs_bonds_tunnels_and_switches(run: StandInRun) -> None:
    st = snapshot(run, {"host": "host2"})
    assert {v["vm"] for v in st["vifs"]} == {"vm3", "vm4"}
    assert st["vifs_total"] == 3 == st["hosts"][0]["vifs"]
    assert {b["host"] for b in st["bonds"]} == {"host2"}
    assert {(t["host"], t["network"]) for t in st["tunnels"]} == {("host2", "priva"),
                                                                  ("host2", "privb")}
    assert st["switches"] and {s["host"] for s in st["switches"]} == {"host2"}
    host2 = named(run, Host, "host2")
    assert snapshot(run, {"host": host2.uuid})["vifs"] == st["vifs"]


def test_network_by_name_bridge_or_uuid(run: StandInRun) -> None:
    vlan10 = named(run, Network, "vlan10")
    answers = [snapshot(run, {"network": n}) for n in ("vlan10", "xapi2", vlan10.uuid)]
    assert without_query(answers[0]) == without_query(answers[1]) == without_query(answers[2])
    st = answers[0]
    assert {(v["vm"], v["network"]) for v in st["vifs"]} == {("vm2", "vlan10"),
                                                             ("vm5", "vlan10")}
    # a VLAN rides the bond: every host's bond, and the switch of its parent bridge
    assert {b["host"] for b in st["bonds"]} == {"host1", "host2", "host3"}
    assert {s["bridge"] for s in st["switches"]} == {"xapi1"} and st["tunnels"] == []


def test_filters_combine(run: StandInRun) -> None:
    st = snapshot(run, {"host": "host1", "network": "priva"})
    assert [(v["vm"], v["network"]) for v in st["vifs"]] == [("vm1", "priva")]
    assert [(t["host"], t["network"]) for t in st["tunnels"]] == [("host1", "priva")]
    assert st["bonds"] == []
    st = snapshot(run, {"vm": "vm1", "network": "pool"})
    assert [v["device"] for v in st["vifs"]] == ["0"] and st["tunnels"] == []
    st = snapshot(run, {"vm": "vm1", "host": "host2"})  # vm1 is not on host2: nothing
    assert st["vifs"] == [] and st["vifs_total"] == 0 and st["hosts"] == []


def test_rows_are_capped_by_limit_and_counted(run: StandInRun) -> None:
    st = snapshot(run, {"network": "priva", "limit": "1"})
    assert len(st["vifs"]) == 1 and st["vifs_total"] == 3 and st["vifs_truncated"]
    assert st["query"] == {"network": "priva", "limit": 1}
    assert snapshot(run, {"network": "priva", "limit": "0"})["vifs"] == []
    big = snapshot(run, {"network": "priva", "limit": str(status.MAX_LIMIT * 10)})
    assert big["query"]["limit"] == status.MAX_LIMIT and len(big["vifs"]) == 3
    assert snapshot(run, {"network": "priva"})["query"]["limit"] == status.DEFAULT_LIMIT


@pytest.mark.parametrize(("query", "what"), [
    ({"vm": "nope"}, "vm"), ({"host": "host9"}, "host"), ({"network": "xapi99"}, "network"),
    ({"vm": "vm1", "network": "nope"}, "network")])
def test_a_name_nobody_has_is_a_404_naming_it(run: StandInRun, query: dict, what: str) -> None:
    with pytest.raises(QueryError) as err:
        snapshot(run, query)
    assert err.value.status == 404
    assert err.value.body["not_found"] == {what: query[what]}
    assert repr(query[what]) in err.value.body["error"]


@pytest.mark.parametrize("query", [
    {"vms": "vm1"}, {"vm": ""}, {"limit": "5"}, {"network": "pool", "limit": "x"},
    {"network": "pool", "limit": "-1"}, {"full": "1", "vm": "vm1"}, {"full": "maybe"},
    {"vm": ["vm1", "vm2"]}])
def test_a_malformed_query_is_a_400_saying_why(run: StandInRun, query: dict) -> None:
    with pytest.raises(QueryError) as err:
        snapshot(run, query)
    assert err.value.status == 400 and err.value.body["error"]


def test_an_invalid_vm_is_found_with_its_problems(demo_state: PoolState) -> None:
    """A VM xapi has but netctl does not apply (bad intent) is not unknown: its problems say
    why, rather than a 404."""
    vm4 = next(v for v in demo_state.vms.values() if v.name_label == "vm4")
    run = StandInRun(demo_state)
    run.feed([(vm4.ref, vm4, replace(vm4, domid=-1))])
    run.loop.problems = run.engine.problems()
    st = snapshot(run, {"vm": "vm4"})
    assert st["match"]["vm"][0]["applied"] is False and st["vifs"] == []
    assert st["problems"] and all("vm4" in p for p in st["problems"])
    assert any("domid" in p for p in st["problems"])
    # and only there: vm1's answer does not carry vm4's problems
    assert snapshot(run, {"vm": "vm1"})["problems"] == []
    assert snapshot(run, {"host": "host2"})["problems"] == st["problems"]
    assert snapshot(run, {"host": "host1"})["problems"] == []


def test_full_is_the_whole_document(run: StandInRun) -> None:
    st = snapshot(run, {"full": "1"})
    assert {"xapi", "hosts", "bonds", "tunnels", "vifs", "switches", "problems", "flows",
            "engine"} <= set(st)
    assert len(st["vifs"]) == len(run.view.vifs) and set(st["engine"]) == ENGINE_KEYS


def test_name_index_follows_renames_and_removals() -> None:
    """`LivePool.named`: names are not unique in xapi; one name, several objects, and back."""
    pool = LivePool([VM(f"OpaqueRef:{r}", f"u{r}", name_label="web") for r in "abc"])

    def refs(name: str) -> set[str]:
        return {vm.ref for vm in pool.named(VM, name)}

    assert refs("web") == {"OpaqueRef:a", "OpaqueRef:b", "OpaqueRef:c"}
    pool.upsert(VM("OpaqueRef:a", "ua", name_label="db"))  # renamed
    pool.remove("OpaqueRef:b")
    assert refs("web") == {"OpaqueRef:c"} and refs("db") == {"OpaqueRef:a"}
    pool.upsert(VM("OpaqueRef:c", "uc", name_label="web", power_state="Running"))  # changed
    assert [vm.power_state for vm in pool.named(VM, "web")] == ["Running"]
    pool.remove("OpaqueRef:c")
    assert refs("web") == set() and pool.named(Host, "db") == ()


# ---------------------------------------------------------------------------- HTTP and CLI


@pytest.fixture
def served(run: StandInRun):
    server = serve("127.0.0.1", 0, Metrics(), lambda query: snapshot(run, query))
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_http_codes_and_json_errors(served: str) -> None:
    assert get(served + "/status")[1]["view"] == "summary"
    code, body = get(served + "/status?vm=vm1&network=pool")
    assert code == 200 and [v["device"] for v in body["vifs"]] == ["0"]
    assert get(served + "/status?network=Bond%20x") == (404, {
        "error": "no network 'Bond x' (by name_label, bridge or uuid)",
        "not_found": {"network": "Bond x"}})
    assert get(served + "/status?vm=vm1&vm=vm2")[0] == 400
    assert get(served + "/status?full=1")[1]["view"] == "full"
    assert get(served + "/status/")[1]["view"] == "summary"


def test_a_failing_status_is_a_500_not_a_dropped_connection() -> None:
    def broken(_query: Any) -> dict:
        raise RuntimeError("boom")

    server = serve("127.0.0.1", 0, Metrics(), broken)
    try:
        code, body = get(f"http://127.0.0.1:{server.server_address[1]}/status")
        assert code == 500 and "boom" in body["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_cli_prints_summary_queries_and_errors(served: str) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["status", "--url", served])
    assert out.exit_code == 0, out.output
    assert "3 hosts (3 with OVSDB)" in out.output and "vm1" in out.output
    out = runner.invoke(main, ["status", "--url", served, "--network", "priva", "--limit", "1"])
    assert out.exit_code == 0, out.output
    assert "showing 1 of 3 VIFs" in out.output
    out = runner.invoke(main, ["status", "--url", served, "--vm", "nope"])
    assert out.exit_code != 0 and "no VM 'nope'" in out.output
    out = runner.invoke(main, ["status", "--url", served, "--vm", "vm1", "--json"])
    assert json.loads(out.output)["match"]["vm"][0]["name"] == "vm1"


def test_printed_summary_caps_long_tables_trouble_first(
        run: StandInRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    st = snapshot(run)
    st["hosts"][2]["connected"] = False
    monkeypatch.setattr(views, "SUMMARY_ROWS", 1)
    monkeypatch.setattr(views, "console", views.Console(width=200, emoji=False))
    views.show_status(st)
    out = capsys.readouterr().out
    assert f"{st['hosts'][2]['name']} " in out.split("Hosts")[1].split("\n")[4]  # first row
    assert "... 2 more hosts" in out


# ---------------------------------------------------------------------------- two threads


def test_status_reads_safely_while_the_pool_changes() -> None:
    """The HTTP thread answers every kind of query while the reconcile thread adds, removes
    and renames VIFs and VMs: never an exception (a walk over a live dict would see it change
    size). A pool big enough that a walk takes a while, and the interpreter switching threads
    every few microseconds, so that a walk over a live dict would be caught (it was, when
    tried)."""
    run = StandInRun(synthetic_state(PoolSpec(hosts=2, vifs_per_host=400)))
    vms = sorted((v for v in run.view.vms.values() if v.is_guest), key=lambda v: v.ref)
    vifs = sorted(run.view.vifs.values(), key=lambda v: v.ref)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            vm, vif = vms[i % len(vms)], vifs[i % len(vifs)]
            i += 1
            renamed = replace(vm, name_label=f"{vm.name_label}-{i}")
            run.feed([(vm.ref, vm, renamed), (vif.ref, vif, None)])
            run.feed([(vm.ref, renamed, vm), (vif.ref, None, vif)])

    def read() -> None:
        try:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                for query in ({}, {"network": "xapi0"}, {"host": "host01"}, {"full": "1"},
                              {"vm": vms[0].name_label}):
                    json.dumps(snapshot(run, query))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    writer = threading.Thread(target=churn)
    writer.start()
    try:
        read()
    finally:
        stop.set()
        writer.join()
        sys.setswitchinterval(interval)
    assert errors == []
