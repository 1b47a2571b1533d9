"""The OpenFlow sink with several instances (issue 20), against a recording datapath: the role
it asks of a switch follows the masterships, and it writes only as the switch's master."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_3_parser as parser

from netctl.sinks.openflow import DISABLED_PORT, FlowSink
from tests.unit.test_sink_ports import Datapath, Port, Round, Tables

MASTER, SLAVE = 2, 3  # OFPCR_ROLE_*


@dataclass
class Recording(Datapath):
    def set_xid(self, msg: Any) -> None:
        self.xid += 1
        msg.set_xid(self.xid)

    def roles(self) -> list[tuple[int, int]]:
        return [(m.role, m.generation_id) for m in self.sent
                if isinstance(m, parser.OFPRoleRequest)]

    def dumps(self) -> int:
        return sum(isinstance(m, parser.OFPFlowStatsRequest) for m in self.sent)

    def writes(self) -> list[Any]:
        return [m for m in self.sent if not isinstance(
            m, parser.OFPRoleRequest | parser.OFPFlowStatsRequest
            | parser.OFPMeterConfigStatsRequest)]


class Roles:
    def __init__(self, master: bool, generation: int) -> None:
        self.now = (master, generation)

    def role(self, host_ref: str) -> tuple[bool, int]:
        return self.now


def sink_as(master: bool, generation: int) -> tuple[FlowSink, Recording, Roles]:
    roles = Roles(master, generation)
    sink = FlowSink(Tables(), audit_interval=0, flow_monitor=False, roles=roles)
    dp = Recording()
    sink.connected(dp, [Port(10)])
    return sink, dp, roles


def disable(sink: FlowSink) -> None:
    sink.flush(Round({0x1234: {10: True}}))


def test_a_slave_asks_slave_with_the_masters_generation_and_writes_nothing() -> None:
    sink, dp, _ = sink_as(False, 7)
    assert dp.roles() == [(SLAVE, 7)] and dp.dumps() == 0
    disable(sink)
    sink.tick()
    assert dp.writes() == [] and dp.roles() == [(SLAVE, 7)]


def test_a_new_master_asks_master_then_reads_and_diffs_the_table() -> None:
    sink, dp, roles = sink_as(False, 7)
    roles.now = (True, 9)
    sink.roles_changed()
    assert dp.roles() == [(SLAVE, 7), (MASTER, 9)] and dp.dumps() == 1
    sink.flow_stats(dp, [], more=False)  # nothing there, nothing desired: nothing sent
    assert dp.writes() == []
    disable(sink)
    assert dp.port_mods() == [(10, DISABLED_PORT)]


def test_a_master_whose_lease_may_have_expired_writes_nothing_and_steps_down() -> None:
    sink, dp, roles = sink_as(True, 9)
    sink.flow_stats(dp, [], more=False)
    roles.now = (False, 9)  # the writer deadline passed; nobody told the sink yet
    disable(sink)
    assert dp.port_mods() == [] and dp.roles() == [(MASTER, 9), (SLAVE, 9)]


def test_a_switch_that_refuses_a_master_fences_it_until_a_newer_generation() -> None:
    sink, dp, roles = sink_as(True, 9)
    sink.flow_stats(dp, [], more=False)
    sink.error(dp, "OFPET_BAD_REQUEST/OFPBRC_IS_SLAVE (1/10)", 99)
    disable(sink)
    sink.tick()
    assert dp.port_mods() == [] and dp.roles() == [(MASTER, 9)]
    assert sink.stats.fenced == 1 and "fenced" in sink.summary()[0]["role"]
    roles.now = (True, 12)  # mastership gained again, later
    sink.tick()
    assert dp.roles()[-1] == (MASTER, 12)
    sink.flow_stats(dp, [], more=False)
    disable(sink)
    assert dp.port_mods() == [(10, DISABLED_PORT)]
