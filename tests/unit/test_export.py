"""Flow export (NetFlow, IPFIX, sFlow): the collector-list syntax, the keys' validation (a bad
value is a Problem naming the object, the key and why; the rest applies) and the pure builder
(pool-wide on every bridge, a network's keys for its own bridge, key by key)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from harness.hostnet_builders import PoolBuilder
from netctl.cli import views
from netctl.model import validate
from netctl.model.export import (
    BridgeExport,
    IpfixExport,
    NetFlowExport,
    SflowExport,
    Targets,
    ValueReason,
    parse_targets,
    sflow_agent,
)
from netctl.model.keys import ALL_KEYS, IPFIX_TARGETS, NETFLOW_TARGETS
from netctl.service.export_view import ExportCollector, rows
from vlan import compile_host
from vlan.export import bridge_export


# ------------------------------------------------------------------ collector lists
@pytest.mark.parametrize("raw, targets", [
    ("192.0.2.1:2055", ("192.0.2.1:2055",)),
    (" 192.0.2.1:2055 , 127.0.0.1:9995 ", ("127.0.0.1:9995", "192.0.2.1:2055")),
    ("[2001:DB8:0:0::1]:2055", ("[2001:db8::1]:2055",)),  # as OVS spells it, normalised
    ("[2001:db8::1]:2055,[2001:db8::1]:2055", ("[2001:db8::1]:2055",)),  # no duplicates
    ("[::1]:6343,10.0.0.1:6343", ("10.0.0.1:6343", "[::1]:6343")),
    ("none", ()), ("", ()), ("None", ()),
])
def test_a_collector_list_is_normalised_as_ovs_stores_it(raw, targets):
    assert parse_targets(raw) == Targets(targets)


def test_a_plus_adds_to_the_pools_list():
    assert parse_targets("+192.0.2.9:6343") == Targets(("192.0.2.9:6343",), add=True)


@pytest.mark.parametrize("raw, why", [
    ("192.0.2.1", "expected ADDRESS:PORT"),
    ("2001:db8::1:2055", "an IPv6 address goes in brackets"),
    ("192.0.2.1:0", "is not a port"),
    ("192.0.2.1:70000", "is not a port"),
    ("collector.example:2055", "is not an IP address"),
    ("[192.0.2.1]:2055", "is not an IPv6 address"),
    ("224.0.0.1:2055", "cannot be a collector"),
    ("0.0.0.0:2055", "cannot be a collector"),
    ("192.0.2.1:2055,,192.0.2.2:2055", "an empty entry"),
    ("192.0.2.1:2055,", "an empty entry"),
    ("+", "must be followed by collectors"),
    ("192.0.2.1:2055,[fe80::1:2055", "expected [IPV6]:PORT"),
])
def test_a_bad_list_says_which_entry_and_why(raw, why):
    with pytest.raises(ValueReason, match=why.replace("[", r"\[")):
        parse_targets(raw)


def test_sflow_agent_is_a_device_or_an_address():
    assert sflow_agent("xenbr0") == "xenbr0"
    assert sflow_agent("2001:DB8::5") == "2001:db8::5"
    with pytest.raises(ValueReason):
        sflow_agent("not a device")


# ------------------------------------------------------------------ validation
def test_every_export_key_is_read_on_pool_and_network():
    names = {k.name for k in ALL_KEYS["pool"]}
    assert {"netflow-targets", "netflow-active-timeout", "ipfix-targets", "ipfix-sampling",
            "ipfix-active-timeout", "sflow-targets", "sflow-sampling", "sflow-polling",
            "sflow-header", "sflow-agent"} <= names
    assert names <= {k.name for k in ALL_KEYS["network"]}


def pool(pool_keys: dict[str, str] | None = None, net_keys: dict[str, str] | None = None):
    """host1: eth0 on xenbr0 (network 'ext'), eth1 on xenbr1 (network 'lan') with VLAN 10
    (network 'v10') on it, a private network 'priv' tunnelled to host2."""
    b = PoolBuilder(**(pool_keys or {}))
    h1, h2 = b.host("host1"), b.host("host2")
    ext = b.network("ext", "xenbr0", **(net_keys or {}))
    lan = b.network("lan", "xenbr1")
    e0 = b.nic(h1, "eth0", ext, ip="172.30.0.1/24")
    b.nic(h2, "eth0", ext, ip="172.30.0.2/24")
    e1 = b.nic(h1, "eth1", lan)
    b.vlan(e1, 10, b.network("v10", "xapi10", **{"sflow-targets": "192.0.2.99:6343"}))
    priv = b.network("priv", "xapi4")
    b.tunnel(e0, priv)
    b.tunnel(b.objs[next(r for r, o in b.objs.items() if getattr(o, "uuid", "")
                         == "uuid-host2-eth0")], priv)
    return b, h1


def test_a_bad_value_is_a_problem_naming_object_key_and_reason_and_the_rest_applies():
    b, h1 = pool({"netflow-targets": "192.0.2.1:2055", "ipfix-targets": "192.0.2.1",
                  "sflow-sampling": "zero", "sflow-targets": "[2001:db8::1]:6343"},
                 {"netflow-targets": "+2001:db8::7:2055"})
    _, problems = validate(b.state())
    said = sorted((p.object_class, p.name_label, p.field) for p in problems)
    assert said == [("network", "ext", "other_config:netflow-targets"),
                    ("pool", "pool", "other_config:ipfix-targets"),
                    ("pool", "pool", "other_config:sflow-sampling")]
    words = {p.field: p.message for p in problems}
    assert "'192.0.2.1': expected ADDRESS:PORT" in words["other_config:ipfix-targets"]
    assert "an IPv6 address goes in brackets" in words["other_config:netflow-targets"]
    assert "the pool's collectors apply" in words["other_config:netflow-targets"]

    cfg = compile_host(b.state(), h1.ref, datapath_type="netdev")
    xenbr0 = cfg.bridge("xenbr0").export
    # the network's bad list is passed over: the pool's collectors apply; the pool's bad
    # ipfix list: no IPFIX; its bad sampling: sFlow at the default 1 in 400
    assert xenbr0 == BridgeExport(
        netflow=NetFlowExport(("192.0.2.1:2055",)),
        sflow=SflowExport(("[2001:db8::1]:6343",), 400, 30, 128))
    assert {p.field for p in cfg.problems} >= {"other_config:ipfix-targets"}


def test_an_error_names_the_key():
    b, _ = pool({"ipfix-targets": "x"})
    assert IPFIX_TARGETS.finding(b.pool)[0] == "other_config:ipfix-targets"
    assert NETFLOW_TARGETS.finding(b.pool) is None


# ------------------------------------------------------------------ the builder
def test_pool_wide_export_is_on_every_bridge_the_host_has():
    b, h1 = pool({"netflow-targets": "192.0.2.1:2055", "netflow-active-timeout": "60",
                  "ipfix-targets": "192.0.2.1:4739", "ipfix-sampling": "64",
                  "ipfix-active-timeout": "10", "sflow-targets": "192.0.2.1:6343",
                  "sflow-sampling": "100", "sflow-polling": "0", "sflow-header": "64",
                  "sflow-agent": "xenbr0"})
    cfg = compile_host(b.state(), h1.ref, datapath_type="netdev")
    assert cfg.bridge_names() == ("xapi4", "xenbr0", "xenbr1")
    want = BridgeExport(NetFlowExport(("192.0.2.1:2055",), 60),
                        IpfixExport(("192.0.2.1:4739",), 64, 10),
                        SflowExport(("192.0.2.1:6343",), 100, 0, 64, "xenbr0"))
    assert {br.name: br.export for br in cfg.bridges} == dict.fromkeys(cfg.bridge_names(), want)


def test_no_intent_no_export():
    b, h1 = pool()
    cfg = compile_host(b.state(), h1.ref, datapath_type="netdev")
    assert all(not br.export for br in cfg.bridges)


def test_a_network_overrides_key_by_key_adds_or_turns_off():
    b, h1 = pool({"netflow-targets": "192.0.2.1:2055", "ipfix-targets": "192.0.2.1:4739",
                  "ipfix-sampling": "64", "sflow-targets": "192.0.2.1:6343"},
                 {"netflow-targets": "+[2001:db8::1]:2055", "ipfix-sampling": "8",
                  "sflow-targets": "none"})
    cfg = compile_host(b.state(), h1.ref, datapath_type="netdev")
    ext = cfg.bridge("xenbr0").export
    assert ext.netflow == NetFlowExport(("192.0.2.1:2055", "[2001:db8::1]:2055"))
    assert ext.ipfix == IpfixExport(("192.0.2.1:4739",), 8)  # the pool's collectors, its rate
    assert ext.sflow is None
    lan = cfg.bridge("xenbr1").export  # the pool's, untouched by ext's keys
    assert lan.ipfix == IpfixExport(("192.0.2.1:4739",), 64)
    assert lan.sflow == SflowExport(("192.0.2.1:6343",), 400, 30, 128)


def test_a_network_alone_exports_from_its_own_bridge_and_a_vlan_network_is_its_parents():
    b, h1 = pool(None, {"sflow-targets": "192.0.2.5:6343"})
    cfg = compile_host(b.state(), h1.ref, datapath_type="netdev")
    exports = {br.name: br.export for br in cfg.bridges}
    assert exports["xenbr0"].sflow == SflowExport(("192.0.2.5:6343",), 400, 30, 128)
    # v10 (a fake bridge on xenbr1) sets sflow-targets: OVS samples per bridge, and xenbr1 is
    # lan's: v10's keys are not read for it, and a Problem says so and where to set them
    assert not exports["xenbr1"] and not exports["xapi4"]
    said = [p for p in cfg.problems if p.name_label == "v10"]
    assert [(p.object_class, p.field) for p in said] == [("network", "other_config:sflow-targets")]
    assert "VLAN on bridge xenbr1" in said[0].message and "network lan" in said[0].message


def test_bridge_export_of_no_intent_is_falsy():
    assert not bridge_export(None, None)


# -------------------------------------------------- /status, netctl status, /metrics
def fake_run(applied_too: bool):
    """What export_view reads of a Run: workers (desired, status.applied) and the view."""
    b, h1 = pool({"netflow-targets": "192.0.2.1:2055", "sflow-targets": "[::1]:6343"},
                 {"sflow-targets": "none"})
    cfg = compile_host(b.state(), h1.ref, datapath_type="netdev")
    status = SimpleNamespace(name="host1", applied=cfg if applied_too else None)
    return SimpleNamespace(workers={h1.ref: SimpleNamespace(desired=cfg, status=status)},
                           view=b.state())


def test_status_rows_group_bridges_by_kind_and_setting():
    assert rows(fake_run(True)) == [
        {"kind": "netflow", "targets": ["192.0.2.1:2055"], "settings": {"active_timeout": 0},
         "bridges": 3, "pending": 0, "hosts": 1, "networks": ["ext", "lan", "priv"]},
        {"kind": "sflow", "targets": ["[::1]:6343"],
         "settings": {"sampling": 400, "polling": 30, "header": 128, "agent": ""},
         "bridges": 2, "pending": 0, "hosts": 1, "networks": ["lan", "priv"]}]
    assert {r["pending"] for r in rows(fake_run(False))} == {3, 2}  # not applied yet


def test_metrics_count_bridges_per_collector_and_the_cli_prints_a_table(capsys):
    registry = CollectorRegistry()
    registry.register(ExportCollector(fake_run(True)))
    text = generate_latest(registry).decode()
    assert 'netctl_flow_export_bridges{kind="netflow",target="192.0.2.1:2055"} 3.0' in text
    assert 'netctl_flow_export_pending_bridges{kind="sflow",target="[::1]:6343"} 0.0' in text
    views._export(rows(fake_run(False)), None, False)
    out = capsys.readouterr().out
    assert "Flow export" in out and "192.0.2.1:2055" in out and "pending" in out
