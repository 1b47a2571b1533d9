"""The OpenFlow sink's port-mods for `disabled` VIFs, against a recording datapath (no switch):
what a port status read late cannot undo. OVS reports a new port twice (added, then modified
when its link comes up); when netctl disables the port between the two, the second report still
says "not disabled" — it must not pass for the switch having undone netctl's port-mod, or the
VIF could never be enabled again (found by tests/lab/test_run.py, flaky before)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from netctl.sinks.openflow import DISABLED_PORT, FlowSink


@dataclass
class Port:
    number: int
    hw_addr: str | None = "02:00:00:00:00:0a"
    config: int = 0


@dataclass
class Datapath:
    id: int = 0x1234
    sent: list = field(default_factory=list)
    ofproto: Any = ofproto_v1_3
    ofproto_parser: Any = ofproto_v1_3_parser
    xid: int = 0

    def send_msg(self, msg: Any) -> None:
        self.sent.append(msg)

    def send(self, data: bytes) -> None:  # raw bytes (bundled flow-mods)
        self.sent.append(data)

    def set_xid(self, msg: Any) -> None:
        self.xid = (self.xid + 1) & 0xFFFFFFFF
        msg.set_xid(self.xid)

    def port_mods(self) -> list[tuple[int, int]]:
        return [(m.port_no, m.config) for m in self.sent
                if isinstance(m, ofproto_v1_3_parser.OFPPortMod)]


class Tables:
    """The engine's desired tables as the sink reads them: one pool switch, one VIF port."""

    def desired(self, dpid: int):
        return iter(())

    def port_modes(self, dpid: int) -> dict[int, bool]:
        return {10: False}

    def meters(self, dpid: int) -> dict[int, tuple[int, int]]:
        return self.want_meters

    want_meters: dict[int, tuple[int, int]] = {}  # noqa: RUF012 - a test's fixed answer

    def classifies(self, dpid: int, port: int) -> bool:
        return True

    def identity(self, dpid: int) -> tuple[str, str]:
        return ("OpaqueRef:host", "xapi1")

    def describe(self, dpid: int) -> str:
        return "host1 xapi1"

    def note(self, dpid: int, key: Any) -> str:
        return "a flow"


@dataclass
class Round:
    port_modes: dict
    deltas: dict = field(default_factory=dict)
    arrivals: dict = field(default_factory=dict)
    meters: frozenset = frozenset()


def connected_sink() -> tuple[FlowSink, Datapath]:
    sink, dp = FlowSink(Tables(), audit_interval=0, flow_monitor=False), Datapath()
    sink.connected(dp, [Port(1)])
    sink.flow_stats(dp, [], more=False)  # the table read: nothing there, nothing desired
    return sink, dp


def test_a_late_port_status_does_not_undo_netctls_port_mod() -> None:
    sink, dp = connected_sink()
    sink.port(dp, Port(10), deleted=False, fresh=True)  # the port came (OVS's first report)
    sink.flush(Round({0x1234: {10: True}}))  # its VIF is disabled
    assert dp.port_mods() == [(10, DISABLED_PORT)]
    sink.port(dp, Port(10, config=0), deleted=False)  # OVS's second report, sent before
    sink.flush(Round({0x1234: {10: False}}))  # the VIF is enabled again
    assert dp.port_mods() == [(10, DISABLED_PORT), (10, 0)]


def test_a_port_that_comes_again_is_compared_with_what_it_reports() -> None:
    sink, dp = connected_sink()
    sink.port(dp, Port(10), deleted=False, fresh=True)
    sink.flush(Round({0x1234: {10: True}}))
    sink.port(dp, Port(10), deleted=True)
    sink.port(dp, Port(10, config=0), deleted=False, fresh=True)  # a new port, same number
    sink.flush(Round({0x1234: {10: True}}))
    assert dp.port_mods() == [(10, DISABLED_PORT), (10, DISABLED_PORT)]
    sink.flush(Round({0x1234: {10: True}}))  # nothing changed: nothing sent
    assert len(dp.port_mods()) == 2


def test_a_refused_read_is_not_a_reason_to_read_and_send_the_table_again() -> None:
    """A switch that does not answer a statistics or meter request (BAD_MULTIPART) wrote
    nothing: no table re-read follows, however often it refuses (the statistics poller asks
    every few seconds). Any other error with no flow-mod of its own still re-reads the table
    after the back-off (a refused bundle commit: none of it was applied)."""
    import time

    sink, dp = connected_sink()

    def dumps() -> int:
        return sum(isinstance(m, ofproto_v1_3_parser.OFPFlowStatsRequest) for m in dp.sent)

    before = dumps()
    for xid in range(900, 910):
        sink.error(dp, "OFPET_BAD_REQUEST/OFPBRC_BAD_MULTIPART (1/2)", xid)
    sink.tick(time.monotonic() + 3600)
    assert dumps() == before
    sink.error(dp, "OFPET_BUNDLE_FAILED/OFPBFC_MSG_FAILED (17/16)", 950)
    sink.tick(time.monotonic() + 3600)
    assert dumps() == before + 1


def test_a_refused_flow_mod_is_found_by_its_xid_in_its_bundle() -> None:
    """The flow-mods of a bundle are kept as the bundle's list (their xids consecutive), not
    a dict entry each: an error names the right flow (key and body) even across the 32-bit
    xid wrap, and nothing is remembered once the barrier came back."""
    from netctl.sinks.openflow import Switch

    sw = Switch(dp=Datapath())
    first = [(0, (2, 200, b"a"), (b"x", 1)), (0, (2, 200, b"b"), (b"y", 1))]
    wrapping = [(3, (1, 100, b"c"), None), (0, (1, 100, b"d"), (b"z", 1)),
                (0, (1, 100, b"e"), (b"w", 1))]
    sw.inflight += [(7, first), (0xFFFFFFFF, wrapping)]
    assert sw.in_flight(8) == first[1]
    assert sw.in_flight(0xFFFFFFFF) == wrapping[0]
    assert sw.in_flight(1) == wrapping[2]
    assert sw.in_flight(9) is None and sw.in_flight(2) is None
