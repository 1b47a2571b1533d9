"""The statistics replies read from their bytes (`netctl.stats.wire`) say what os-ken's own
parser says of the same bytes, and the wrapper hands the poller's replies to it unparsed."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from os_ken.ofproto import ofproto_parser as osken_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser

from flows.drops import cookie_of, kind_of
from flows.locking import Locking, port_security_flows
from flows.wire import canon_flow
from harness.stats_rig import FLOW_STATS, PORT_STATS, _replies, attach
from netctl.sources.stats_poller import StatsPoller
from netctl.stats.table import COUNTERS, StatsTable
from netctl.stats.wire import drop_entries, port_entries


class _Dp:
    id = 7
    ports: dict = {}


def session(dpid: int, send: Callable[[Any], object]) -> Any:
    """A switch's session as the poller uses os-ken's (`Datapath`): its id, ports, OpenFlow
    1.3 modules, and `send_msg` (here: `send`)."""
    return SimpleNamespace(id=dpid, ports={}, ofproto=ofp, ofproto_parser=ofproto_v1_3_parser,
                           send_msg=send)


def parsed(kind: int, entries: list[bytes]) -> list:
    raw = _replies(kind, entries, 1)[0]
    version, msg_type, length, xid = struct.unpack_from("!BBHI", raw)
    return osken_parser.msg(_Dp(), version, msg_type, length, xid, raw).body, raw[16:]


def test_port_entries_agree_with_os_ken() -> None:
    entries = [PORT_STATS.pack(no, *(no * 100 + i for i in range(12)), 60, 0)
               for no in (1, 2, 0xFFFFFFFE)]
    body, raw = parsed(ofp.OFPMP_PORT_STATS, entries)
    ours = port_entries(raw)
    for stat, (number, counters) in zip(body, ours, strict=True):
        assert number == stat.port_no
        assert dict(zip(COUNTERS, counters, strict=True)) == {
            name: getattr(stat, name) for name in COUNTERS}


def test_drop_entries_agree_with_os_ken_on_every_drop_flow_netctl_compiles() -> None:
    flows = port_security_flows(5, "02:00:00:00:00:01",
                                Locking("locked", ("10.0.0.1", "10.9.0.0/16"), ("fd00::/64",)))
    entries = []
    for i, f in enumerate(flows):
        (table, priority, match), (_instructions, cookie) = canon_flow(f)
        entries.append(FLOW_STATS.pack(48 + len(match), table, 1, 0, priority, 0, 0, 0,
                                       cookie, i, 100 * i) + match)
    body, raw = parsed(ofp.OFPMP_FLOW, entries)
    ours = drop_entries(raw)
    expected: dict[int, dict[str, int]] = {}  # os-ken's reading, summed by port and kind
    for stat in body:
        kind = kind_of(stat.cookie)
        if kind is not None and stat.packet_count:
            per = expected.setdefault(stat.match.get("in_port"), {})
            per[kind] = per.get(kind, 0) + stat.packet_count
    assert ours == expected
    assert set(ours[5]) == {"mac", "ipv4", "ipv6", "arp", "other", "router", "nd",
                            "dhcp_server"}


def test_the_pollers_replies_reach_it_as_bytes_and_os_ken_parses_none_of_them() -> None:
    poller = StatsPoller(StatsTable())
    attach(poller)
    sent = []
    dp = session(9, sent.append)
    poller.connected(dp)
    assert poller.poll() == 1 and len(sent) == 3  # ports, drop flows, rule flows
    port_xid, drop_xid, rules_xid = sent[0].xid, sent[1].xid, sent[2].xid
    ports = [PORT_STATS.pack(3, *range(12), 1, 0)]
    drops = [FLOW_STATS.pack(48 + 16, 1, 1, 0, 4000, 0, 0, 0, cookie_of("mac"), 4, 400)
             + struct.pack("!HHIIxxxx", 1, 12, 0x80000004, 3)]
    for kind, entries, xid in ((ofp.OFPMP_PORT_STATS, ports, port_xid),
                               (ofp.OFPMP_FLOW, drops, drop_xid),
                               (ofp.OFPMP_FLOW, [], rules_xid)):  # no traffic rules
        raw = _replies(kind, entries, xid)[0]
        version, msg_type, length, _ = struct.unpack_from("!BBHI", raw)
        msg = osken_parser.msg(dp, version, msg_type, length, xid, raw)
        assert msg.netctl_stats and msg.body == []
    reading = poller.table.switches()[9].ports[3]
    assert reading.counters[0] == 2 and reading.drops == {"mac": 4}  # rx_bytes, drops
    # a reply of the sink's (not the poller's xid) is parsed by os-ken as before
    raw = _replies(ofp.OFPMP_FLOW, drops, 12345)[0]
    msg = osken_parser.msg(dp, *struct.unpack_from("!BBHI", raw), raw)
    assert not getattr(msg, "netctl_stats", False) and len(msg.body) == 1


def test_a_running_poller_reads_the_replies_on_its_own_thread() -> None:
    """os-ken's threads only queue a reply (128 of them parsing at once starved the reconcile
    thread of the GIL): the poller's thread reads it and the counters appear."""
    poller = StatsPoller(StatsTable(), interval=3600).start()
    try:
        attach(poller)
        sent = []
        dp = session(7, sent.append)
        poller.connected(dp)
        assert poller.poll() == 1
        for msg, entries in zip(sent, ([PORT_STATS.pack(5, *range(12), 1, 0)], [], []),
                                strict=True):
            kind = ofp.OFPMP_PORT_STATS if entries else ofp.OFPMP_FLOW
            raw = _replies(kind, entries, msg.xid)[0]
            osken_parser.msg(dp, *struct.unpack_from("!BBHI", raw), raw)
        deadline = time.monotonic() + 5
        while 7 not in poller.table.switches() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert poller.table.switches()[7].ports[5].counters[0] == 2  # rx_bytes
        poller.gone(dp)  # a reply queued for a session that went is not stored
        assert poller.poll() == 0 and 7 not in poller.table.switches()
    finally:
        poller.stop()
    assert not poller._thread.is_alive()


def test_a_rounds_requests_are_spread_over_the_interval() -> None:
    """128 switches answering at once held a XenAPI change back (every receive thread wanting
    the GIL together): the running poller asks one switch at a time, STEP apart within SPREAD
    of the interval, and still every switch in each round."""
    from netctl.sources.stats_poller import SPREAD, STEP

    sent: list[tuple[int, float]] = []
    dps = [session(n, lambda _msg, n=n: sent.append((n, time.monotonic())))
           for n in range(1, 5)]
    poller = StatsPoller(StatsTable(), interval=1.0)
    for dp in dps:
        poller.connected(dp)
    start = time.monotonic()
    poller.start()
    try:
        while len({i for i, _ in sent}) < 4 and time.monotonic() < start + 5:
            time.sleep(0.01)
    finally:
        poller.stop()
    first = {}
    for dpid, at in sent:
        first.setdefault(dpid, at)
    assert sorted(first) == [1, 2, 3, 4]  # every switch asked in the first round
    times = sorted(first.values())
    step = min(STEP, SPREAD * 1.0 / 4)  # one switch at a time
    assert all(b - a >= step * 0.8 for a, b in zip(times, times[1:], strict=False)), times
    assert times[-1] - times[0] <= SPREAD * 1.0 + 0.1
