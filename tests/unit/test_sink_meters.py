"""The OpenFlow sink and VIF rate limits (`flows.qos`): a meter is on the switch before the
first flow that uses it and leaves after the last one (OVS refuses a flow whose meter does not
exist, and deleting a meter deletes its flows); a rate change alone is one meter-mod; a switch
that already holds the meters gets none; meters that are not netctl's are never touched."""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netctl.sinks.openflow import FlowSink
from tests.unit.test_sink_ports import Datapath, Port, Round, Tables


class MeteredTables(Tables):
    def __init__(self) -> None:
        self.want_meters = {}


def meter_stats(meter_id: int, rate: int, burst: int) -> parser.OFPMeterConfigStats:
    return parser.OFPMeterConfigStats(
        flags=ofp.OFPMF_KBPS | ofp.OFPMF_BURST, meter_id=meter_id,
        bands=[parser.OFPMeterBandDrop(rate=rate, burst_size=burst)])


def sink_with(held: list, want: dict) -> tuple[FlowSink, Datapath, MeteredTables]:
    tables = MeteredTables()
    tables.want_meters = want
    sink, dp = FlowSink(tables, audit_interval=0, flow_monitor=False), Datapath()
    sink.connected(dp, [Port(10), Port(11)])
    sink.meter_config(dp, held, more=False)  # the meters' reply comes before the flows'
    sink.flow_stats(dp, [], more=False)
    return sink, dp, tables


def sent(dp: Datapath) -> list[str]:
    """What the switch was sent, in order, by kind (flow-mods are in bundles: raw bytes)."""
    out = []
    for m in dp.sent:
        if isinstance(m, parser.OFPMeterMod):
            command = {ofp.OFPMC_ADD: "add", ofp.OFPMC_MODIFY: "modify",
                       ofp.OFPMC_DELETE: "delete"}[m.command]
            band = f" {m.bands[0].rate}/{m.bands[0].burst_size}" if m.bands else ""
            out.append(f"meter {command} {m.meter_id}{band}")
        elif isinstance(m, parser.ONFBundleCtrlMsg):
            out.append("bundle " + {ofp.ONF_BCT_OPEN_REQUEST: "open",
                                    ofp.ONF_BCT_COMMIT_REQUEST: "commit"}[m.type])
        elif isinstance(m, parser.OFPBarrierRequest):
            out.append("barrier")
    return out


def test_a_connect_puts_the_missing_meters_and_deletes_only_netctls_unused_ones():
    held = [meter_stats(10, 8192, 2048), meter_stats(12, 100, 100),
            meter_stats(0xFF00, 5, 5)]  # 0xFF00 and above: not netctl's
    _sink, dp, _ = sink_with(held, {10: (8192, 2048), 11: (19997, 4999)})
    assert sent(dp) == ["meter add 11 19997/4999", "meter delete 12"]


def test_a_switch_holding_the_meters_is_sent_nothing():
    _sink, dp, _ = sink_with([meter_stats(10, 8192, 2048)], {10: (8192, 2048)})
    assert sent(dp) == []


def test_a_meter_before_its_flow_and_after_its_last_flow():
    sink, dp, tables = sink_with([], {})
    key, body = (0, 100, b"k"), (b"i", 1)
    tables.want_meters = {10: (8192, 2048)}  # the VIF's limit set: a meter and its flow
    sink.flush(Round({}, deltas={0x1234: Delta({key: (body, True)})}, meters={0x1234}))
    assert sent(dp) == ["meter add 10 8192/2048", "bundle open", "bundle commit", "barrier"]
    dp.sent.clear()
    tables.want_meters = {}  # removed: the flow first, then its meter
    sink.flush(Round({}, deltas={0x1234: Delta({key: ((b"j", 1), True)})}, meters={0x1234}))
    assert sent(dp) == ["bundle open", "bundle commit", "barrier", "meter delete 10"]


def test_a_rate_change_alone_is_one_meter_mod():
    sink, dp, tables = sink_with([meter_stats(10, 8192, 2048)], {10: (8192, 2048)})
    tables.want_meters = {10: (4096, 2048)}
    sink.flush(Round({}, meters={0x1234}))
    assert sent(dp) == ["meter modify 10 4096/2048", "barrier"]
    assert sink.stats.meter_mods == 1 and sink.stats.flow_mods == 0


def test_a_refused_meter_is_a_problem_naming_the_port():
    sink, dp, tables = sink_with([], {11: (19997, 4999)})
    xid = next(m.xid for m in dp.sent if isinstance(m, parser.OFPMeterMod))
    sink.error(dp, "OFPMMFC_OUT_OF_METERS", xid)
    problems = [p for p in sink.problems() if "meter" in p.field]
    assert len(problems) == 1 and "port 11" in problems[0].message, problems
    assert "OFPMMFC_OUT_OF_METERS" in problems[0].message


class Delta:
    def __init__(self, ops: dict) -> None:
        self.ops, self.full = ops, False
