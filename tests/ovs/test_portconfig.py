"""The OpenFlow 1.0 port-config session (`netctl.sinks.portconfig`) against a real
ovs-vswitchd (a netdev bridge): it comes up only where the bridge allows OpenFlow 1.0, reports
which ports are NO_FLOOD (as OVS's own `ovs-ofctl -O OpenFlow10 show` does), sets and clears
NO_FLOOD as asked, re-applies it to a port that comes back, and a new session (a restart of
netctl) finds the state the switch kept."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from pyroute2 import netns

from harness.ofctl import no_flood_ports
from harness.running import until
from harness.sandbox import OvsSandbox, free_port
from netctl.sinks.portconfig import PortConfigServer, tls_context

pytestmark = pytest.mark.lab

BRIDGE = "tpc0"
DPID = 0x1000_0000_0000_0abc


@pytest.fixture(scope="module")
def box():
    if os.geteuid() != 0:
        pytest.skip("real OVS needs root")
    sandbox = OvsSandbox("tpc")
    sandbox.vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev",
                  f"other-config:datapath-id={DPID:016x}", "fail_mode=secure",
                  "protocols=OpenFlow10,OpenFlow13")
    for name, number in (("tpc-a", 5), ("tpc-b", 6)):
        sandbox.vsctl("add-port", BRIDGE, name, "--", "set", "interface", name,
                      "type=internal", f"ofport_request={number}")
    yield sandbox
    sandbox.close()


class Reports:
    """What the server hands the reconcile loop: dpid -> the ports last reported NO_FLOOD."""

    def __init__(self) -> None:
        self.last: dict[int, frozenset[int]] = {}
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, dpid: int, ports: frozenset[int]) -> None:
        with self.lock:
            self.last[dpid] = ports
            self.count += 1


def shown_no_flood(box: OvsSandbox) -> set[int]:
    """The ports OVS itself says are NO_FLOOD (`ovs-ofctl -O OpenFlow10 show`)."""
    return no_flood_ports(box.nsexec(["ovs-ofctl", "-O", "OpenFlow10", "show", BRIDGE],
                                     env=box.env()).stdout)


def serve(box: OvsSandbox, tls: bool = False) -> tuple[PortConfigServer, Reports]:
    """A server listening on the sandbox namespace's loopback, where its vswitchd runs (the
    listening socket is made on a thread moved into that namespace: setns is per thread)."""
    reports = Reports()
    port = free_port()
    d = box.dir
    context = tls_context(f"{d}/server.key", f"{d}/server.crt", f"{d}/ca.crt") if tls else None
    server = PortConfigServer("127.0.0.1", port, reports, context)

    def start() -> None:
        netns.setns(box.ns, flags=0)
        server.start()

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    box.vsctl("set-controller", BRIDGE, f"{'ssl' if tls else 'tcp'}:127.0.0.1:{port}")
    box.vsctl("set", "controller", BRIDGE, "max_backoff=1000")
    return server, reports


def test_sets_clears_and_reports_no_flood(box):
    server, reports = serve(box)
    try:
        assert until(lambda: reports.last.get(DPID) == frozenset(), 10), reports.last
        assert server.connected() == [DPID]
        server.want(DPID, 5, True)
        assert until(lambda: reports.last.get(DPID) == {5}, 5), reports.last
        assert shown_no_flood(box) == {5}
        server.want(DPID, 6, True)
        server.want(DPID, 5, False)
        assert until(lambda: reports.last.get(DPID) == {6}, 5), reports.last
        assert shown_no_flood(box) == {6}
        # a port that goes and comes back (the same number) has OVS's default config: the
        # server reports it gone and sets it again, as netctl still wants it
        box.vsctl("del-port", BRIDGE, "tpc-b")
        assert until(lambda: reports.last.get(DPID) == frozenset(), 5), reports.last
        box.vsctl("add-port", BRIDGE, "tpc-b", "--", "set", "interface", "tpc-b",
                  "type=internal", "ofport_request=6")
        assert until(lambda: reports.last.get(DPID) == {6} and shown_no_flood(box) == {6}, 5), \
            (reports.last, shown_no_flood(box))
    finally:
        server.stop()
    # a new session (netctl restarted) reads what the switch kept, and sends nothing for it
    again, reports = serve(box)
    try:
        assert until(lambda: reports.last.get(DPID) == {6}, 10), reports.last
        again.want(DPID, 6, True)
        assert again.port_mods == 0
        again.want(DPID, 6, False)
        assert until(lambda: reports.last.get(DPID) == frozenset(), 5), reports.last
        assert shown_no_flood(box) == set() and again.port_mods == 1
    finally:
        again.stop()


def test_a_bridge_without_openflow10_is_named_and_not_touched(box, caplog):
    box.vsctl("set", "bridge", BRIDGE, "protocols=OpenFlow13")
    caplog.set_level(logging.WARNING, logger="netctl.sinks.portconfig")
    server, reports = serve(box)
    try:
        assert until(lambda: "protocols must include OpenFlow10" in caplog.text, 10), \
            caplog.text
        server.want(DPID, 5, True)
        assert reports.count == 0 and server.connected() == []
    finally:
        server.stop()
        box.vsctl("set", "bridge", BRIDGE, "protocols=OpenFlow10,OpenFlow13")
    assert shown_no_flood(box) == set()  # (ovs-ofctl too needs OpenFlow10 for the bit)


def test_over_tls_as_the_openflow_port(box):
    """With `openflow.ssl` the session speaks TLS: the switch's certificate (the sandbox CA's)
    is checked, and the session works as over TCP."""
    d = box.dir
    box.vsctl("set-ssl", f"{d}/client.key", f"{d}/client.crt", f"{d}/ca.crt")
    server, reports = serve(box, tls=True)
    try:
        assert until(lambda: DPID in reports.last, 10), reports.last
        server.want(DPID, 5, True)
        assert until(lambda: reports.last.get(DPID) == {5} and shown_no_flood(box) == {5}, 5)
        server.want(DPID, 5, False)
        assert until(lambda: reports.last.get(DPID) == frozenset(), 5), reports.last
    finally:
        server.stop()
