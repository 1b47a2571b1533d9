"""`harness.fakeswitch` against netctl's real OpenFlow side (`netctl openflow`, os-ken).

Why: `bench/process_path.py` times `netctl run` by the bundles these fake switches commit; if
they speak OpenFlow differently from OVS where netctl listens, that figure means nothing. One
small pool (2 hosts): every bridge connects, gets its table in one bundle and a barrier; the
flows a switch holds are as many as netctl says it sent; a locking change through XenAPI
arrives as one small bundle on the VIF's switch, touching its port; and a restarted netctl
reads every table back (FLOW_STATS) and sends nothing, as against OVS.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import XenAPI

from harness.fakeswitch import FakeSwitches, pool_switches
from harness.synthetic import PoolSpec, simulator
from netctl.xapisim.server import serve

ROOT = Path(__file__).resolve().parents[2]
SPEC = PoolSpec(hosts=2, vifs_per_host=6)
PASSWORD = "fakeswitch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_netctl(tmp: Path, url: str, port: int) -> subprocess.Popen:
    (tmp / "pw").write_text(PASSWORD)
    log = open(tmp / "netctl.log", "a")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "netctl.cli", "openflow", "--listen", f"127.0.0.1:{port}",
         "--xapi", url, "--password-file", str(tmp / "pw"), "--status-file",
         str(tmp / "status.json"), "--audit-interval", "0"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def status(tmp: Path) -> dict:
    try:
        return json.loads((tmp / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for(predicate, timeout: float) -> bool:  # noqa: ANN001 - any callable
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def installed(tmp: Path, switches: int) -> dict:
    """netctl's status once it counts every switch's table installed (else {})."""
    st = status(tmp)
    rows = st.get("switches", [])
    return st if len(rows) == switches and all(s["flows"] for s in rows) else {}


def test_fake_switches_take_netctl_tables_bundles_and_restart(tmp_path: Path) -> None:
    sim, _pool = simulator(SPEC, users={"root": PASSWORD}, event_delay=0.0)
    server = serve(sim, "127.0.0.1", 0)
    pool = pool_switches(SPEC)
    assert len(pool.specs) == 4 and len(pool.vifs) == 12  # 2 bridges per host, every VIF
    port = free_port()
    switches = FakeSwitches(pool.specs, "127.0.0.1", port).start()
    proc = start_netctl(tmp_path, server.url, port)
    try:
        assert switches.wait(switches.all_committed, 15), (tmp_path / "netctl.log").read_text()
        assert wait_for(lambda: installed(tmp_path, 4), 5)
        st = installed(tmp_path, 4)
        for sw in st["switches"]:  # what netctl counts as installed is what each switch holds
            fake = switches.switches[int(sw["dpid"], 16)]
            assert len(fake.flows) == sw["flows"] == fake.commits[0].flow_mods
            assert fake.counters.barriers >= 1 and fake.counters.connects == 1
        sent = switches.totals().flow_mods
        assert sent == st["stats"]["flow_mods"]

        vif = next(v for v in pool.vifs.values() if v.locking_mode == "network_default")
        x = XenAPI.Session(server.url)
        x.xenapi.login_with_password("root", PASSWORD, "1.0", "test-fakeswitch")
        t0 = time.monotonic()
        x.xenapi.VIF.set_locking_mode(vif.ref, "locked")
        commit = switches.wait_commit(vif.dpid, t0, lambda c: c.touches_port(vif.number), 5)
        assert commit is not None and 0 < commit.flow_mods < 50
        x.xenapi.session.logout()

        stop(proc)  # a restarted controller reads the tables back and sends nothing
        (tmp_path / "status.json").unlink()
        before = switches.totals()
        proc = start_netctl(tmp_path, server.url, port)
        assert wait_for(lambda: switches.totals().connects == before.connects + 4 and
                        installed(tmp_path, 4), 15)
        assert wait_for(lambda: switches.totals().flow_dumps >= before.flow_dumps + 4, 5)
        time.sleep(0.5)
        assert status(tmp_path)["stats"]["flow_mods"] == 0
        assert switches.totals().flow_mods == before.flow_mods
    finally:
        stop(proc)
        switches.stop()
        server.stop()
