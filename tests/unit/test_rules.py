"""Traffic rules: the syntax (`netctl.model.rules`), bad rules as Problems, the flows
(`flows.rules`), their wire form, and a pool without rules compiling exactly as before."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace

import pytest
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from flows import wire
from flows.compile import BridgePorts, bridge_intent, compile_bridge
from flows.pipeline import (
    FORWARD,
    FROM_VM,
    FROM_VM_RULES,
    TO_VM,
    TO_VM_RULES,
    Ct,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetReg,
)
from flows.rules import cookie_of, port_masks, rule_of
from netctl.model import FrozenMap, PoolState, validate
from netctl.model.keys import RULES, VIF_KEYS
from netctl.model.rules import parse
from tests.unit.test_flows import host, pool_state, vif_of

RULE_TABLES = {FROM_VM, FROM_VM_RULES, TO_VM, TO_VM_RULES}


# ------------------------------------------------------------------------------ the syntax
def test_good_rules_read_in_any_word_order():
    found = parse("allow arp; allow tcp out 443; ALLOW udp 53-60 out 10.0.0.0/8\n"
                  "drop icmpv6 in fd00::/8; allow icmp; drop any")
    assert not found.bad
    r = found.rules
    assert [(x.action, x.protocol, x.direction) for x in r] == [
        ("allow", "arp", "both"), ("allow", "tcp", "out"), ("allow", "udp", "out"),
        ("drop", "icmpv6", "in"), ("allow", "icmp", "both"), ("drop", "any", "both")]
    assert r[1].ports == (443, 443) and r[2].ports == (53, 60)
    assert r[2].peer == ipaddress.ip_network("10.0.0.0/8")
    assert r[3].peer == ipaddress.ip_network("fd00::/8")
    assert parse("").rules == () and parse(" ; ;").rules == ()


@pytest.mark.parametrize("text, enforced, reason", [
    # an allow that does not read: left out (opens nothing)
    ("allow tcp out 44x", None, "'44x' is not a port"),
    ("allow tcp 70000", None, "'70000' is not a port"),
    ("allow icmp fd00::/8", None, "icmp takes an IPv4"),
    ("allow udp in 53 10.0.0.300", None, "'10.0.0.300' is not a direction"),
    # a drop keeps its widest readable meaning
    ("drop tcp in 22x", "drop tcp in", "'22x' is not a port"),
    ("drop tcp in 30-20", "drop tcp in", "'30-20' is not a port"),
    ("drop udp inn 53", "drop udp both 53", "'inn' is not a direction"),
    ("drop tcp in out 22", "drop tcp both 22", "a second direction"),
    ("drop icmp 22", "drop icmp both", "a port ('22') needs tcp or udp"),
    # an unreadable action reads as drop, within a readable protocol...
    ("alow tcp in 22", "drop tcp in 22", "'alow' is not an action"),
    # ... but a typo never drops every frame
    ("drpo any", None, "'drpo' is not an action"),
    ("drop tpc in 22", None, "'tpc' is not a protocol"),
    ("drop", None, "a rule needs a protocol"),
])
def test_a_bad_rule_costs_only_itself_and_never_opens_what_a_drop_closed(text, enforced,
                                                                        reason):
    found = parse(f"allow arp; {text}; drop any in 192.0.2.0/24")
    assert len(found.bad) == 1
    bad = found.bad[0]
    assert bad.number == 2 and bad.text == text and reason in bad.reason
    assert (str(bad.enforced) if bad.enforced else None) == enforced
    kept = [str(r) for r in found.rules]
    assert kept[0] == "allow arp both" and kept[-1] == "drop any in 192.0.2.0/24"
    assert len(kept) == (3 if enforced else 2)
    assert text in bad.message() and ("enforced as" in bad.message() or
                                      "left out" in bad.message())


def test_the_key_is_declared_and_reads_only_whole_lists():
    assert RULES in VIF_KEYS
    assert RULES.field == "other_config:netctl-rules"
    assert RULES.value("allow tcp out 443").rules[0].ports == (443, 443)
    assert RULES.value("allow tcp out 443x") is None


def test_every_bad_rule_is_a_problem_naming_the_object_and_the_key(demo):
    vif = vif_of(demo, "vm1")
    net = demo.networks[vif.network]
    state = demo.replace(
        vifs={**demo.vifs, vif.ref: replace(vif, other_config=FrozenMap(
            {"netctl-rules": "allow tcp out 443; drop tpc in 22; alow udp 53"}))},
        networks={**demo.networks, net.ref: replace(net, other_config=FrozenMap(
            {**net.other_config, "netctl-rules": "drop any in 10.0.0.0/33"}))})
    kept, problems = validate(state)
    mine = [p for p in problems if p.field == "other_config:netctl-rules"]
    assert {(p.object_class, p.ref) for p in mine} == {("VIF", vif.ref), ("network", net.ref)}
    vif_words = sorted(p.message for p in mine if p.object_class == "VIF")
    assert vif_words[0].startswith("rule 2 'drop tpc in 22': 'tpc' is not a protocol")
    assert vif_words[1].startswith("rule 3 'alow udp 53': 'alow' is not an action")
    assert "enforced as 'drop udp both 53'" in vif_words[1]
    assert vif.ref in kept.vifs and net.ref in kept.networks  # nothing else is left out


# ------------------------------------------------------------------------------ the flows
@pytest.fixture(scope="module")
def demo() -> PoolState:
    return pool_state("demo-pool.yaml")


def tables(state: PoolState, hostname: str, bridge: str):
    h = host(state, hostname)
    intent = bridge_intent(state, h, bridge)
    ports = BridgePorts(vifs={v.uuid: 10 + i for i, v in enumerate(intent.local_vifs)},
                        uplinks=(1,), tunnels={h2.uuid: 50 + i for i, h2 in
                                               enumerate(state.hosts.values())},
                        internal={0xFFFFFFFE: 0})
    return compile_bridge(state, h, bridge, ports), ports


def ruled(state: PoolState, vm: str, rules: str | None = None, net_rules: str | None = None
          ) -> PoolState:
    vif = vif_of(state, vm)
    net = state.networks[vif.network]
    vifs, nets = dict(state.vifs), dict(state.networks)
    if rules is not None:
        vifs[vif.ref] = replace(vif, other_config=FrozenMap({**vif.other_config,
                                                             "netctl-rules": rules}))
    if net_rules is not None:
        nets[net.ref] = replace(net, other_config=FrozenMap({**net.other_config,
                                                             "netctl-rules": net_rules}))
    return state.replace(vifs=vifs, networks=nets)


def bridge_of(state: PoolState, vm: str) -> tuple[str, str]:
    vif = vif_of(state, vm)
    return (state.hosts[state.vif_host(vif)].name_label, state.networks[vif.network].bridge)


@pytest.mark.parametrize("vm", ["vm1", "vm3"])
def test_rules_add_only_the_vifs_own_flows_and_removing_them_restores_the_table(demo, vm):
    where = bridge_of(demo, vm)
    before, ports = tables(demo, *where)
    assert not any(f.table in RULE_TABLES for f in before)
    after, _ = tables(ruled(demo, vm, "allow tcp out 443; drop any"), *where)
    added, gone = after - before, before - after
    port = ports.vifs[vif_of(demo, vm).uuid]
    # what changes: the new tables' flows, the hook, and forward's outputs to this port
    assert all(f.table in RULE_TABLES or f.table == FORWARD for f in added)
    assert all(f.table == FORWARD and Output(port) in f.actions for f in gone)
    assert all(Output(port) not in f.actions and f.table == FORWARD
               for f in added if f.table == FORWARD and f.priority != 1000)
    # the same rules on the network (none on the VIF) give the same flows, other cookies
    via_net, _ = tables(ruled(demo, vm, net_rules="allow tcp out 443; drop any"), *where)
    assert len(via_net) >= len(after)
    # and no rules again: exactly the table of before
    again, _ = tables(ruled(demo, vm, ""), *where)
    assert again == before


def test_vif_rules_come_before_network_rules_and_order_is_priority(demo):
    state = ruled(demo, "vm1", "allow tcp out 22; drop tcp out", "allow tcp out; drop any")
    flows, ports = tables(state, *bridge_of(demo, "vm1"))
    out = sorted((f for f in flows if f.table == FROM_VM_RULES and f.cookie >> 44 & 0xF == 0xA
                  and rule_of(f.cookie)[0] in ("vif", "network")),
                 key=lambda f: -f.priority)
    order = [(rule_of(f.cookie), dict(f.match).get("tcp_dst"), bool(f.actions)) for f in out]
    assert order[0] == (("vif", 0), 22, True) and order[1] == (("vif", 0), 22, True)  # v4, v6
    assert [o[0] for o in order] == [("vif", 0)] * 2 + [("vif", 1)] * 2 + \
        [("network", 0)] * 2 + [("network", 1)] * 3
    assert all(f.priority < 30001 for f in out)


def test_port_ranges_become_exact_masks():
    for low, high in ((1, 1), (1, 65535), (1000, 1999), (53, 60), (443, 444), (8000, 8080)):
        covered = set()
        for value, mask in port_masks(low, high):
            covered |= {p for p in range(65536) if p & mask == value}
        assert covered == set(range(low, high + 1)), (low, high)


def test_cookies_name_the_rule_and_say_they_are_netctls():
    for origin in ("vif", "network", "reply", "default"):
        for index in (0, 7, 999):
            c = cookie_of(origin, index)
            assert c & wire.COOKIE_MASK == wire.COOKIE and rule_of(c) == (origin, index)
    from flows.drops import cookie_of as drop_cookie
    assert rule_of(drop_cookie("mac")) is None and rule_of(wire.COOKIE) is None


# ------------------------------------------------------------------------------ wire form
def oskens_actions(parser, ofp, actions):
    out = []
    for a in actions:
        if isinstance(a, Output):
            out.append(parser.OFPActionOutput(a.port, ofp.OFPCML_NO_BUFFER))
        elif isinstance(a, PushVlan):
            out += [parser.OFPActionPushVlan(0x8100),
                    parser.OFPActionSetField(vlan_vid=0x1000 | a.vid)]
        elif isinstance(a, PopVlan):
            out.append(parser.OFPActionPopVlan())
        elif isinstance(a, SetReg):
            out.append(parser.OFPActionSetField(**{a.reg: a.value}))
        elif isinstance(a, Resubmit):
            out.append(parser.NXActionResubmitTable(in_port=0xFFF8, table_id=a.table))
        elif isinstance(a, Ct):
            out.append(parser.NXActionCT(flags=1 if a.commit else 0, zone_src=None,
                                         zone_ofs_nbits=a.zone,
                                         recirc_table=255 if a.table is None else a.table,
                                         alg=0, actions=[]))
    return out


def every_rule_flow(demo):
    state = ruled(demo, "vm1", "allow arp; allow tcp out 443; allow udp in 5000-5010 "
                               "fd00::/64; drop icmp in 10.0.0.0/8; allow any 10.1.0.0/16; "
                               "drop any")
    state = ruled(state, "vm3", "drop icmpv6 out fd00::1; allow udp; drop tcp in 22",
                  net_rules="allow icmp; drop any in")
    flows = set()
    for vm in ("vm1", "vm3"):
        flows |= tables(state, *bridge_of(demo, vm))[0]
    return {f for f in flows if f.table in RULE_TABLES or f.table == FORWARD}


def test_rule_flows_are_byte_identical_to_oskens_and_read_back_the_same(demo):
    flows = every_rule_flow(demo)
    assert sum(f.table in RULE_TABLES for f in flows) > 40
    parser, ofp = ofproto_v1_3_parser, ofproto_v1_3

    class Dp:
        ofproto, ofproto_parser, id = ofp, parser, 1

    for f in flows:
        key, body = wire.canon_flow(f)
        instructions = []
        actions = oskens_actions(parser, ofp, f.actions)
        if actions:
            instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
        if f.write_metadata is not None:
            instructions.append(parser.OFPInstructionWriteMetadata(*f.write_metadata))
        if f.goto is not None:
            instructions.append(parser.OFPInstructionGotoTable(f.goto))
        msg = parser.OFPFlowMod(Dp(), cookie=f.cookie, cookie_mask=0, table_id=f.table,
                                command=ofp.OFPFC_ADD, priority=f.priority,
                                match=parser.OFPMatch(**dict(f.match)),
                                instructions=instructions)
        msg.set_xid(9)
        msg.serialize()
        assert wire.flow_mod_bytes(key, body, ofp.OFPFC_ADD, 9) == bytes(msg.buf), f
        # as a flow-stats entry the switch reports back
        table, priority, match = key
        instr, cookie = body
        entry = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(match) + len(instr), table, 12, 0,
                            priority, 0, 0, 0, cookie, 5, 600) + match + instr
        stat = parser.OFPFlowStats.parser(entry, 0)
        assert wire.canon_stats(stat, ofp) == (key, body), f
        assert "oxm" not in wire.match_text(match)


def test_hit_counters_are_read_from_the_reply_bytes_as_os_ken_reads_them(demo):
    """The poller's reading of a rule flow-stats reply (`netctl.stats.rules`): packets per
    VIF port and (direction, list, rule number), equal to what os-ken parses of it."""
    from netctl.stats.rules import rule_entries

    entries, expected = [], {}
    for i, f in enumerate(sorted(every_rule_flow(demo), key=lambda f: (f.table, f.priority,
                                                                       str(f.match)))):
        (table, priority, match), (_instr, cookie) = wire.canon_flow(f)
        packets = i % 3  # some counted nothing
        entry = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(match), table, 1, 0, priority, 0, 0,
                            0, cookie, packets, 100 * packets) + match
        entries.append(entry)
        stat = ofproto_v1_3_parser.OFPFlowStats.parser(entry, 0)  # os-ken's reading
        which = rule_of(stat.cookie)
        if stat.packet_count and which is not None and \
                stat.table_id in (FROM_VM_RULES, TO_VM_RULES):
            out = stat.table_id == FROM_VM_RULES
            port = stat.match["in_port"] if out else stat.match["reg5"]
            per = expected.setdefault(port, {})
            key = ("out" if out else "in", *which)
            per[key] = per.get(key, 0) + stat.packet_count
    assert expected and rule_entries(b"".join(entries)) == expected


def test_status_names_each_rule_with_its_packets_in_order():
    from flows.rules import VifRules
    from netctl.service.stats_view import rule_rows

    rules = VifRules(parse("drop icmp in; allow udp in 5401").rules,
                     parse("drop any in 10.0.0.0/8").rules)
    hits = {("in", "vif", 0): 3, ("out", "vif", 1): 1, ("in", "vif", 1): 2,
            ("in", "network", 0): 5, ("out", "reply", 0): 7, ("in", "default", 0): 9}
    shown = rule_rows(rules, hits)
    assert shown["rules"] == [
        {"from": "vif", "number": 1, "rule": "drop icmp in", "packets": 3},
        {"from": "vif", "number": 2, "rule": "allow udp in 5401", "packets": 3},
        {"from": "network", "number": 1, "rule": "drop any in 10.0.0.0/8", "packets": 5}]
    assert (shown["replies"], shown["unmatched"]) == (7, 9)
    assert rule_rows(rules, None)["rules"][0]["packets"] == 0  # not read yet


def test_the_pipeline_refuses_what_the_rule_tables_may_not_do():
    from flows.pipeline import FlowError, flow

    ok = flow(FROM_VM, 100, in_port=3, eth_type=0x0800, actions=(Ct(3, table=FROM_VM_RULES),))
    assert ok.actions[0].table == FROM_VM_RULES
    with pytest.raises(FlowError, match="ct\\(\\) needs eth_type"):
        flow(FROM_VM, 50, in_port=3, actions=(Ct(3, table=FROM_VM_RULES),))
    with pytest.raises(FlowError, match="cannot set reg1"):
        flow(TO_VM_RULES, 1, reg5=3, eth_type=0x0800, actions=(SetReg("reg1", 1),))
    with pytest.raises(FlowError, match="no table 9"):
        flow(FROM_VM_RULES, 1, in_port=3, actions=(Resubmit(9),))
    with pytest.raises(FlowError, match="tcp_dst needs ip_proto"):
        flow(FROM_VM_RULES, 1, in_port=3, eth_type=0x0800, tcp_dst=22)
    with pytest.raises(FlowError, match="does not match on reg5"):
        flow(FROM_VM_RULES, 1, reg5=3)
    with pytest.raises(FlowError, match="cannot go to table"):
        flow(TO_VM_RULES, 1, reg5=3, goto=FORWARD)
