"""A pool whose master can move (issue 19): every host has its own xapi endpoint, the master
serves, slaves answer HOST_IS_SLAVE with the master's address; `pool.designate_new_master`,
`pool.emergency_transition_to_master` when the master's endpoint is gone, and
`pool.recover_slaves`, all through the official XenAPI client. Standalone the hosts get
127.0.0.10, .11, .12 so their endpoints share one port on loopback."""

from __future__ import annotations

import os
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import XenAPI

from netctl.topology import Topology
from netctl.xapisim.members import loopback_addresses, serve_members, stop_members
from netctl.xapisim.server import RunningServer, in_netns, serve
from netctl.xapisim.sim import Simulator
from tests.xapi.conftest import PASSWORD, USER, jsonrpc

ADDRESSES = {"host1": "127.0.0.10", "host2": "127.0.0.11", "host3": "127.0.0.12"}


@dataclass
class Pool:
    sim: Simulator
    plain: RunningServer  # serve(): the master's, whoever it is; has the simulator.* calls
    members: dict[str, RunningServer]  # by host ref
    refs: dict[str, str]  # host name -> ref

    def url(self, host: str) -> str:
        return self.members[self.refs[host]].url


@contextmanager
def running_members(demo: Topology) -> Iterator[Pool]:
    """The demo pool with an endpoint per host on 127.0.0.10-12 (and the plain one)."""
    sim = Simulator.from_topology(demo, users={USER: PASSWORD}, event_delay=0.0)
    loopback_addresses(sim)
    plain = serve(sim, "127.0.0.1", 0)
    members = serve_members(sim, 0)
    refs = {h.name: sim.store.find("host", name_label=h.name)[0] for h in demo.hosts}
    try:
        yield Pool(sim, plain, members, refs)
    finally:
        stop_members(members)
        plain.stop()


@pytest.fixture
def pool(demo: Topology) -> Iterator[Pool]:
    with running_members(demo) as running:
        yield running


def login(url: str) -> XenAPI.Session:
    session = XenAPI.Session(url)
    session.xenapi.login_with_password(USER, PASSWORD, "1.0", "netctl-tests")
    return session


def failure(call: Any) -> list[str]:
    with pytest.raises(XenAPI.Failure) as exc:
        call()
    return exc.value.details


def raw(url: str, method: str, *params: Any) -> dict[str, Any]:
    """One XML-RPC call without the XenAPI client (which re-logs in on SESSION_INVALID)."""
    proxy = xmlrpc.client.ServerProxy(url, allow_none=True)
    fn: Any = proxy
    for part in method.split("."):
        fn = getattr(fn, part)
    return fn(*params)


def test_members_share_one_port_on_their_addresses(pool):
    port = pool.members[pool.refs["host1"]].port
    for name, address in ADDRESSES.items():
        assert pool.url(name) == f"http://{address}:{port}/"
        assert pool.sim.store.get("host", pool.refs[name], "address") == address


def test_a_slave_answers_host_is_slave_with_the_masters_address(pool):
    master = login(pool.url("host1"))
    assert master.xenapi.pool.get_master(master.xenapi.pool.get_all()[0]) == pool.refs["host1"]
    for slave in ("host2", "host3"):
        s = XenAPI.Session(pool.url(slave))
        assert failure(lambda s=s: s.xenapi.login_with_password(USER, PASSWORD)) == [
            "HOST_IS_SLAVE", "127.0.0.10"]
        # a pool session (the master's) is not one a slave holds
        reply = raw(pool.url(slave), "VM.get_all", master._session)
        assert reply["ErrorDescription"] == ["HOST_IS_SLAVE", "127.0.0.10"]
        # what a slave answers itself: a slave-local login, its logout, listMethods
        local = XenAPI.Session(pool.url(slave))
        local.slave_local_login_with_password(USER, PASSWORD)
        assert failure(lambda x=local.xenapi: x.network.get_all()) == [
            "HOST_IS_SLAVE", "127.0.0.10"]
        assert failure(lambda x=local.xenapi, r=local._session: x.session.get_this_host(r)) == [
            "HOST_IS_SLAVE", "127.0.0.10"]
        local.xenapi.session.local_logout()
        assert "VM.get_all" in raw(pool.url(slave), "system.listMethods")
        # JSON-RPC is answered the same way
        assert jsonrpc(pool.url(slave), "session.login_with_password", [USER, PASSWORD]
                       )["error"] == ["HOST_IS_SLAVE", "127.0.0.10"]
    # a slave-local session is its host's only
    local = XenAPI.Session(pool.url("host2"))
    local.slave_local_login_with_password(USER, PASSWORD)
    assert raw(pool.url("host1"), "VM.get_all", local._session)["ErrorDescription"] == [
        "SESSION_INVALID", local._session]
    # the master's local session works on the master and says which host it is
    own = XenAPI.Session(pool.url("host1"))
    own.slave_local_login_with_password(USER, PASSWORD)
    assert own.xenapi.session.get_this_host(own._session) == pool.refs["host1"]
    # the plain endpoint is no member: it is the master's
    assert login(pool.plain.url).xenapi.host.get_all()


def test_designate_new_master_moves_the_master(pool):
    host2 = pool.refs["host2"]
    s = login(pool.url("host1"))
    x = s.xenapi
    token = x.event_from(["pool"], "", 0.0)["token"]
    # a watcher blocked in event.from on the old master: it ends with its session
    watcher = login(pool.url("host1"))
    ended: list[Any] = []

    def watch() -> None:
        ended.append(raw(pool.url("host1"), "event.from", watcher._session, ["pool"], token,
                         30.0))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.2)
    plain = login(pool.plain.url)
    assert x.pool.designate_new_master(pool.refs["host1"]) == ""  # the master already: no-op
    started = time.monotonic()
    assert x.pool.designate_new_master(host2) == ""
    thread.join(5)
    assert time.monotonic() - started < 2
    assert ended[0]["ErrorDescription"] == ["SESSION_INVALID", watcher._session]
    # every session ended; the XenAPI client logs in again where it was and is told to go
    assert failure(lambda: x.pool.get_all()) == ["HOST_IS_SLAVE", "127.0.0.11"]
    for old in ("host1", "host3"):
        assert failure(lambda old=old: login(pool.url(old))) == ["HOST_IS_SLAVE", "127.0.0.11"]
    # the new master serves, and event.from from the old token shows pool.master moving
    n = login(pool.url("host2")).xenapi
    pool_ref = n.pool.get_all()[0]
    assert n.pool.get_master(pool_ref) == host2
    events = n.event_from(["pool"], token, 5.0)["events"]
    assert [(e["class"], e["operation"], e["snapshot"]["master"]) for e in events] == [
        ("pool", "mod", host2)]
    # the plain endpoint follows the master: old session gone, a new one sees host2
    assert raw(pool.plain.url, "pool.get_all", plain._session)["ErrorDescription"][0] == \
        "SESSION_INVALID"
    assert login(pool.plain.url).xenapi.pool.get_master(pool_ref) == host2
    # and back, over the plain endpoint
    login(pool.plain.url).xenapi.pool.designate_new_master(pool.refs["host1"])
    assert login(pool.url("host1")).xenapi.pool.get_master(pool_ref) == pool.refs["host1"]


def test_designate_needs_every_host_reachable(pool):
    x = login(pool.url("host1")).xenapi
    pool.members[pool.refs["host3"]].stop()
    assert failure(lambda: x.pool.designate_new_master(pool.refs["host2"])) == [
        "CANNOT_CONTACT_HOST", pool.refs["host3"]]
    assert failure(lambda: x.pool.designate_new_master("OpaqueRef:NULL")) == [
        "HANDLE_INVALID", "host", "OpaqueRef:NULL"]
    pool.members[pool.refs["host3"]].start()
    x.pool.designate_new_master(pool.refs["host2"])
    assert pool.sim.master() == pool.refs["host2"]


def test_emergency_transition_when_the_master_is_gone(pool):
    host1, host2, host3 = (pool.refs[h] for h in ("host1", "host2", "host3"))
    control = login(pool.plain.url).xenapi
    token = control.event_from(["pool"], "", 0.0)["token"]
    slave = XenAPI.Session(pool.url("host2"))
    slave.slave_local_login_with_password(USER, PASSWORD)
    # while the master answers, a slave does not take over
    assert failure(lambda: slave.xenapi.pool.emergency_transition_to_master()) == [
        "OPERATION_NOT_ALLOWED",
        "the pool master 127.0.0.10 is reachable: use pool.designate_new_master"]
    # the master dies (from outside, as a lab test would)
    control.simulator.stop_member("host1")
    with pytest.raises(OSError):
        XenAPI.Session(pool.url("host1")).xenapi.login_with_password(USER, PASSWORD)
    members = control.simulator.get_members()
    assert members["host1"]["running"] is False and members["host1"]["master"] is True
    assert slave.xenapi.pool.emergency_transition_to_master() == ""
    # host2 restarted as master: its local session ended; a login there works now
    assert raw(pool.url("host2"), "pool.get_all", slave._session)["ErrorDescription"] == [
        "SESSION_INVALID", slave._session]
    n = login(pool.url("host2")).xenapi
    pool_ref = n.pool.get_all()[0]
    assert n.pool.get_master(pool_ref) == host2
    events = n.event_from(["pool"], token, 5.0)["events"]
    assert [(e["operation"], e["snapshot"]["master"]) for e in events] == [("mod", host2)]
    # host3 was not told: it still points at the dead master until recover_slaves
    assert failure(lambda: login(pool.url("host3"))) == ["HOST_IS_SLAVE", "127.0.0.10"]
    assert n.pool.recover_slaves() == [host3]
    assert failure(lambda: login(pool.url("host3"))) == ["HOST_IS_SLAVE", "127.0.0.11"]
    # the old master comes back as a slave of the new one
    login(pool.plain.url).xenapi.simulator.start_member("host1")
    assert failure(lambda: login(pool.url("host1"))) == ["HOST_IS_SLAVE", "127.0.0.11"]
    assert n.pool.recover_slaves() == [host3, host1]  # xapi's order: prepended
    members = login(pool.plain.url).xenapi.simulator.get_members()
    assert {name: (m["running"], m["master"]) for name, m in members.items()} == {
        "host1": (True, False), "host2": (True, True), "host3": (True, False)}


def test_emergency_reset_master_points_a_slave_elsewhere(pool):
    local = XenAPI.Session(pool.url("host3"))
    local.slave_local_login_with_password(USER, PASSWORD)
    assert local.xenapi.pool.emergency_reset_master("127.0.0.10") == ""  # already: nothing
    assert local.xenapi.pool.emergency_reset_master("127.0.0.99") == ""
    assert failure(lambda: login(pool.url("host3"))) == ["HOST_IS_SLAVE", "127.0.0.99"]
    # the master tells it again
    assert login(pool.url("host1")).xenapi.pool.recover_slaves() == [
        pool.refs["host3"], pool.refs["host2"]]
    assert failure(lambda: login(pool.url("host3"))) == ["HOST_IS_SLAVE", "127.0.0.10"]


def test_stopping_a_member_ends_only_its_calls(pool):
    s = login(pool.url("host1"))
    token = s.xenapi.event_from(["pool"], "", 0.0)["token"]
    cut: list[BaseException] = []

    def watch() -> None:
        try:
            raw(pool.url("host1"), "event.from", s._session, ["pool"], token, 30.0)
        except (OSError, xmlrpc.client.ProtocolError) as exc:
            cut.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.2)
    pool.members[pool.refs["host1"]].stop()
    thread.join(5)
    assert cut and not thread.is_alive()  # the client saw the connection cut
    # an event.from on the plain endpoint still waits its full timeout (not woken for good)
    plain = login(pool.plain.url)
    started = time.monotonic()
    assert plain.xenapi.event_from(["pool"], token, 0.5)["events"] == []
    assert time.monotonic() - started >= 0.45
    pool.members[pool.refs["host1"]].start()
    assert login(pool.url("host1")).xenapi.pool.get_all()


def test_control_calls_are_only_on_the_plain_endpoint(pool):
    master = login(pool.url("host1"))
    assert failure(lambda: master.xenapi.simulator.stop_member("host2")) == [
        "MESSAGE_METHOD_UNKNOWN", "simulator.stop_member"]
    assert not [m for m in raw(pool.plain.url, "system.listMethods")
                if m.startswith("simulator.")]
    control = login(pool.plain.url).xenapi
    assert failure(lambda: control.simulator.stop_member("host9")) == [
        "UUID_INVALID", "host", "host9"]
    control.simulator.stop_member(pool.refs["host2"])  # a ref works too
    assert pool.members[pool.refs["host2"]].running is False
    control.simulator.start_member("host2")
    assert pool.members[pool.refs["host2"]].running is True


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/run/netns"),
                    reason="needs root and ip netns")
def test_members_bind_inside_a_namespace(demo):
    """The lab's way: each host's socket is made in a namespace (here one of our own, with
    loopback only), so it is reachable there and not from the root namespace."""
    from netctl.lab import netns

    name = f"tms-{os.getpid()}"
    netns.create(name)
    sim = Simulator.from_topology(demo, users={USER: PASSWORD}, event_delay=0.0)
    loopback_addresses(sim, first=20)
    members: dict[str, RunningServer] = {}
    try:
        members = serve_members(sim, 0, netns=lambda ref: name)
        url = next(iter(members.values())).url
        with in_netns(name):
            assert login(url).xenapi.pool.get_all()
        with pytest.raises(OSError):
            login(url)  # not in the root namespace
    finally:
        stop_members(members)
        netns.remove(name)


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/run/netns"),
                    reason="needs root and ip netns")
def test_cli_serves_members_in_the_hosts_namespaces(mini, tmp_path):
    """`netctl xapi-sim --members-port 80 --members-netns P` as DemoPool(members=True) runs
    it: each host's xapi on its management address in namespace P-<host>, and the
    `simulator.*` calls on --listen stop and start one of them."""
    import signal
    import socket
    import subprocess
    import sys

    from netctl.lab import netns

    prefix = f"tms-{os.getpid()}"
    names = {h.name: f"{prefix}-{h.name}" for h in mini.hosts}
    topo = tmp_path / "topology.yaml"
    topo.write_text(mini.to_yaml())
    (tmp_path / "users.yaml").write_text(f"{USER}: {PASSWORD}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc: subprocess.Popen[bytes] | None = None
    try:
        for host, ns in names.items():
            netns.create(ns)
            netns.add_veth(ns, "mgmt0", ns, "mgmt0p")  # no dummy module here: a veth pair
            netns.configure(ns, "mgmt0", addresses=[f"{mini.management_address(host)}/24"])
        proc = subprocess.Popen(
            [sys.executable, "-m", "netctl.cli", "xapi-sim", "--topology", str(topo),
             "--listen", f"127.0.0.1:{port}", "--users", str(tmp_path / "users.yaml"),
             "--members-port", "80", "--members-netns", prefix],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        plain = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 20
        while True:
            try:
                control = login(plain).xenapi
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "xapi-sim died"
                time.sleep(0.1)
        master = f"http://{mini.management_address('host1')}:80/"
        slave = f"http://{mini.management_address('host2')}:80/"
        with in_netns(names["host1"]):
            assert login(master).xenapi.pool.get_all()
        with in_netns(names["host2"]):
            assert failure(lambda: login(slave)) == [
                "HOST_IS_SLAVE", mini.management_address("host1")]
        control.simulator.stop_member("host1")
        with in_netns(names["host1"]), pytest.raises(OSError):
            login(master)
        control.simulator.start_member("host1")
        with in_netns(names["host1"]):
            assert login(master).xenapi.pool.get_all()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        for ns in names.values():
            netns.remove(ns)
