"""Written vs in effect (issue 24) against a real ovsdb-server + ovs-vswitchd: an apply returns
once OVSDB has the change, without waiting for ovs-vswitchd; the host's record says when it
was written and when vswitchd's `cur_cfg` reached the transaction's `next_cfg`. With vswitchd
stopped (SIGSTOP of the sandbox's own vswitchd, by PID) a change is written but not in effect,
and becomes in effect, with its time, after SIGCONT. The worker's /metrics gauges follow."""

from __future__ import annotations

import os
import signal
import time

import pytest

from harness.hostnet_builders import PoolBuilder
from harness.sandbox import OvsSandbox
from netctl.hostconfig import HostConfig
from netctl.service.config import Config
from netctl.service.metrics import Metrics
from netctl.service.ovsdb_workers import HostStatus, HostWorker
from netctl.sinks.ovsdb import HostOvsdb
from vlan import compile_host

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def box():
    """A sandbox of this module's own (prefix tcf): its vswitchd is stopped and continued."""
    if os.geteuid() != 0:
        pytest.skip("real OVS needs root")
    sandbox = OvsSandbox("tcf")
    yield sandbox
    os.kill(sandbox.pids["vswitchd"], signal.SIGCONT)  # never leave it stopped
    sandbox.close()


@pytest.fixture()
def clean(box):
    box.vsctl("clear", "Open_vSwitch", ".", "bridges")  # waits for vswitchd too
    return box


def vlans(n: int) -> HostConfig:
    b = PoolBuilder()
    h = b.host("host1")
    _, master = b.bond(h, "bond0", b.network("pool", "xapi1"),
                       [b.nic(h, "eth0", None), b.nic(h, "eth1", None)], "lacp")
    for tag in range(1, n + 1):
        b.vlan(master, tag, b.network(f"v{tag}", f"xv{tag}"))
    return compile_host(b.state(), h.ref, datapath_type="netdev")


class Stopped:
    """ovs-vswitchd of the sandbox stopped (SIGSTOP by its PID) for the block's duration."""

    def __init__(self, box: OvsSandbox) -> None:
        self.pid = box.pids["vswitchd"]

    def __enter__(self) -> Stopped:
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def cur_cfg(box: OvsSandbox) -> int:
    return int(box.vsctl("--no-wait", "get", "Open_vSwitch", ".", "cur_cfg"))


def test_written_then_in_effect_with_both_times(clean):
    with HostOvsdb(clean.unix) as db:
        assert not db.progress.state().written  # nothing written by this session yet
        result = db.apply(vlans(3))
        assert result.count > 0
        assert db.wait_in_effect(20)
        s = db.progress.state()
        assert s.written and s.in_effect and not s.pending
        assert s.cur_cfg is not None and s.next_cfg is not None and s.cur_cfg >= s.next_cfg
        assert s.write_seconds is not None and s.effect_seconds is not None
        assert 0 < s.write_seconds <= s.effect_seconds < 20
        assert s.written_at is not None and s.in_effect_at is not None
        assert s.in_effect_at >= s.written_at
        assert clean.vsctl("br-to-vlan", "xv2") == "2"  # vswitchd really built it
        # unchanged intent: no transaction, the record stays as it was
        assert db.apply(vlans(3)).operations == ()
        assert db.progress.state() == s


def test_stopped_vswitchd_written_not_in_effect_then_in_effect_after_sigcont(clean):
    with HostOvsdb(clean.unix) as db:
        db.apply(vlans(2))
        assert db.wait_in_effect(20)
        first = db.progress.state()
        with Stopped(clean):
            t = time.monotonic()
            result = db.apply(vlans(5))  # three more VLAN fake bridges
            took = time.monotonic() - t
            assert result.count > 0
            assert took < 5, f"apply waited for the stopped vswitchd ({took:.1f} s)"
            s = db.progress.state()
            assert s.written and not s.in_effect and s.pending
            assert s.next_cfg == first.next_cfg + 1
            assert s.cur_cfg == first.cur_cfg  # vswitchd has not moved
            assert not db.wait_in_effect(1.0)  # still not, a second later
            assert cur_cfg(clean) < s.next_cfg
            assert s.as_dict(time.monotonic())["waiting_seconds"] >= 1.0
            assert "xv5" in clean.table("Port")  # written: the database has it
            stopped_for = time.monotonic() - t
        assert db.wait_in_effect(30), db.progress.state()
        done = db.progress.state()
        assert done.in_effect and done.cur_cfg >= done.next_cfg == s.next_cfg
        assert done.write_seconds == s.write_seconds < 5
        assert done.effect_seconds is not None and done.effect_seconds >= stopped_for - 0.05
        assert clean.vsctl("br-to-vlan", "xv5") == "5"


def test_worker_exposes_pending_and_both_times_on_metrics(clean):
    metrics = Metrics()
    status = HostStatus("host1", "uuid-host1", clean.unix)
    worker = HostWorker(status, Config(), metrics)
    try:
        with Stopped(clean):
            worker.want(vlans(2))
            deadline = time.monotonic() + 15
            while not status.cfg.state().written and time.monotonic() < deadline:
                time.sleep(0.05)
            s = status.cfg.state()
            assert s.written and s.pending
            text = metrics.render().decode()
            assert 'netctl_ovsdb_pending_config{host="host1"} 1.0' in text
            assert 'netctl_ovsdb_write_seconds_count 1.0' in text
            assert 'netctl_ovsdb_effect_seconds_count 0.0' in text
            time.sleep(0.5)
        deadline = time.monotonic() + 20
        while status.cfg.state().pending and time.monotonic() < deadline:
            time.sleep(0.05)
        s = status.cfg.state()
        assert s.in_effect and s.effect_seconds is not None and s.effect_seconds >= 0.5
        text = metrics.render().decode()
        assert 'netctl_ovsdb_pending_config{host="host1"} 0.0' in text
        assert 'netctl_ovsdb_effect_seconds_count 1.0' in text
        last = next(line for line in text.splitlines()
                    if line.startswith('netctl_ovsdb_last_effect_seconds{host="host1"}'))
        assert float(last.split()[-1]) == pytest.approx(s.effect_seconds)
    finally:
        worker.stop()
