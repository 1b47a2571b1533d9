"""Per-VIF QoS (issue 22 part 1), the pure part: xapi's `ratelimit`/`kbps` (KiB/s, as xenopsd
hands it to netback) becomes an OpenFlow meter on what the VM sends (kbit/s of 1000 bits, a
drop band with a quarter second's burst), carried by the VIF's classify flows; a bad value is a
Problem naming the VIF, the key and the reason, and the VIF is compiled as before, without a
limit."""

from __future__ import annotations

import struct

import pytest
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from flows import wire
from flows.compile import BridgePorts, bridge_intent, compile_bridge, compile_meters
from flows.pipeline import CLASSIFY, FlowError, flow
from flows.qos import MIN_BURST_KBIT, MeterBand, vif_band, vif_kbps
from netctl.model import FrozenMap, validate
from tests.unit.test_flows import host, pool_state, vif_of, with_vif


def limited(kbps: str | None, algorithm: str = "ratelimit"):
    state = pool_state("demo-pool.yaml")
    vm1 = vif_of(state, "vm1")
    params = FrozenMap({"kbps": kbps}) if kbps is not None else FrozenMap()
    return with_vif(state, vm1, qos_algorithm_type=algorithm, qos_algorithm_params=params), vm1


def host1_pool_bridge(state):
    h = host(state, "host1")
    intent = bridge_intent(state, h, "xapi1")
    ports = BridgePorts(vifs={v.uuid: 10 + i for i, v in enumerate(intent.local_vifs)},
                        uplinks=(1, 2))
    return compile_bridge(state, h, "xapi1", ports), compile_meters(state, h, "xapi1", ports), \
        ports


@pytest.mark.parametrize("kbps,rate,burst", [
    ("2441", 19997, 9998),   # ~20 Mbit/s: 2441 KiB/s x 8.192; half a second's burst
    ("1000", 8192, 4096),
    ("10", 82, MIN_BURST_KBIT),  # a tiny rate still lets a jumbo frame through
    ("125000", 1024000, 512000),
])
def test_kbps_is_kibibytes_per_second_metered_in_kbit(kbps, rate, burst):
    state, vm1 = limited(kbps)
    assert vif_band(state.vifs[vm1.ref]) == MeterBand(rate, burst)
    flows, meters, ports = host1_pool_bridge(state)
    port = ports.vifs[vm1.uuid]
    assert meters == {port: MeterBand(rate, burst)}  # one meter, its id the VIF's port
    metered = {f.note: f.meter for f in flows if f.meter is not None}
    assert metered == {f"from VIF {vm1.uuid}": port}, metered  # all the VM sends, nothing else


def test_no_limit_compiles_the_same_flows_as_before():
    with_limit, _ = limited("1000")
    without, _ = limited(None, algorithm="")
    flows, meters, _ = host1_pool_bridge(without)
    assert meters == {} and not [f for f in flows if f.meter is not None]
    limited_flows, _, _ = host1_pool_bridge(with_limit)
    # the limit changes the VIF's classify flow's body (its meter), not its key nor any other
    assert {f.key for f in limited_flows} == {f.key for f in flows}
    assert len(limited_flows - flows) == 1


@pytest.mark.parametrize("kbps,algorithm,field,words", [
    ("-5", "ratelimit", "qos_algorithm_params:kbps", "'-5' is not a rate in KiB/s"),
    ("0", "ratelimit", "qos_algorithm_params:kbps", "a positive integer"),
    ("20M", "ratelimit", "qos_algorithm_params:kbps", "'20M' is not"),
    (None, "ratelimit", "qos_algorithm_params:kbps", "'' is not a rate"),
    ("1000", "leaky", "qos_algorithm_type", "only ratelimit"),
])
def test_a_bad_limit_is_a_problem_and_the_vif_still_works(kbps, algorithm, field, words):
    state, vm1 = limited(kbps, algorithm)
    kept, problems = validate(state)
    mine = {p.field: p.message for p in problems if p.uuid == vm1.uuid}
    assert words in mine[field], mine
    assert "without a rate limit" in mine[field]
    assert vm1.ref in kept.vifs and vif_kbps(kept.vifs[vm1.ref]) is None
    flows, meters, _ = host1_pool_bridge(kept)  # compiled as without a limit
    assert meters == {} and f"from VIF {vm1.uuid}" in {f.note for f in flows}


def test_a_meter_id_outside_netctls_range_is_refused():
    with pytest.raises(FlowError, match="meter"):
        flow(CLASSIFY, 100, in_port=3, goto=1, meter=0xFF00)


def test_the_meter_instruction_is_oskens_and_reads_back_the_same():
    """The bytes sent for a metered flow equal os-ken's, and the flow as the switch reports it
    (meter first, as OVS orders instructions) compares equal: a restart sends nothing."""
    f = flow(CLASSIFY, 100, "from VIF u", in_port=12, vlan_vid=0, write_metadata=(0, 0x1FFFF),
             goto=1, meter=12)
    key, body = wire.canon_flow(f)
    parser, ofp = ofproto_v1_3_parser, ofproto_v1_3

    class Dp:
        ofproto, ofproto_parser, id = ofp, parser, 1

    msg = parser.OFPFlowMod(Dp(), cookie=f.cookie, table_id=f.table, command=ofp.OFPFC_ADD,
                            priority=f.priority, match=parser.OFPMatch(in_port=12, vlan_vid=0),
                            instructions=[parser.OFPInstructionMeter(12, ofp.OFPIT_METER),
                                          parser.OFPInstructionWriteMetadata(0, 0x1FFFF),
                                          parser.OFPInstructionGotoTable(1)])
    msg.set_xid(5)
    msg.serialize()
    assert wire.flow_mod_bytes(key, body, ofp.OFPFC_ADD, 5) == bytes(msg.buf)
    table, priority, match = key
    instructions, cookie = body
    entry = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(match) + len(instructions), table, 12, 0,
                        priority, 0, 0, 0, cookie, 5, 600) + match + instructions
    stat = parser.OFPFlowStats.parser(entry, 0)
    assert wire.canon_stats(stat, ofp) == (key, body)
    unmetered = wire.canon_flow(flow(CLASSIFY, 100, in_port=12, vlan_vid=0,
                                     write_metadata=(0, 0x1FFFF), goto=1))
    assert unmetered[0] == key and unmetered[1] != body  # same flow, another body: a modify
