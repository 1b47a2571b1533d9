"""SIGHUP's reload (`netctl.service.reload`) on a real `Run` (engine, reconcile loop, OpenFlow
sink, OVSDB workers) holding the demo pool, not started: each reload is carried out as the
running process does it — the file read again, the changes for the sink and the OVSDB side run
on the reconcile loop's next round.

Why: an operator edits the file and reloads without a restart; each key either takes effect or
is named in a warning (never silently ignored), a bad file changes nothing, and a reload that
changes nothing relevant touches nothing (same OVSDB sessions, no flow-mods). The SIGHUP itself
and the dataplane are shown on a real lab in tests/lab/test_service_ops.py; the notify protocol
systemd reads is shown here over a real Unix socket.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import yaml

from netctl.service import logs
from netctl.service.config import load
from netctl.service.reload import LIVE, RESTART, Reloader, compare, key_of, sd_notify
from netctl.service.run import Run
from tests.unit.test_flows import pool_state

BASE = {
    "openflow": {"listen": "127.0.0.1:1", "target": "tcp:127.0.0.1:1", "audit_interval": 60},
    "ovsdb": {"endpoint": "tcp:127.0.0.1:1", "timeout": 0.5, "datapath_type": "netdev"},
    "metrics": {"listen": "127.0.0.1:9"},
}


def config(**sections: dict) -> str:
    """BASE with some sections' keys changed (None: removed), as YAML."""
    data = copy.deepcopy(BASE)
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return yaml.safe_dump(data)


@pytest.fixture
def run(tmp_path):
    """A real Run with the demo pool fed through its loop; every OVSDB endpoint on a port
    nothing listens on (the workers retry in the background)."""
    path = tmp_path / "netctl.yaml"
    path.write_text(config())
    r = Run(load(path), "http://127.0.0.1:1/", "root", "netctl")
    state = pool_state("demo-pool.yaml")
    r.loop.submit_xapi(SimpleNamespace(objects={o.ref: (None, o) for o in state.objects()}))
    r.loop.round()
    r.path = path  # type: ignore[attr-defined]
    yield r
    for worker in list(r.workers.values()):
        worker.stop(wait=False)


def reload(run, text: str | None = None):
    """Write the file (if given), reload it as SIGHUP does, and run the loop's next round
    (where the sink's and the workers' changes are applied)."""
    if text is not None:
        run.path.write_text(text)
    outcome = Reloader(run, str(run.path), notify=lambda _m: False).reload()
    run.loop.round()
    return outcome


def test_every_config_field_is_classified():
    """A field added to Config is not applied half-way: unknown fields need a restart, and
    every known field names the key an operator writes."""
    from dataclasses import fields

    from netctl.service.config import Config

    assert not set(LIVE) & set(RESTART)
    for f in fields(Config):
        assert "." in key_of(f.name) or f.name not in LIVE | RESTART
    old = Config()
    live, restart = compare(old, Config(audit_interval=5, hub="eventlet"))
    assert (live, restart) == (["audit_interval"], ["hub"])


def test_unchanged_file_changes_nothing(run, caplog):
    workers = dict(run.workers)
    config = run.config
    caplog.set_level(logging.INFO, "netctl.reload")
    outcome = reload(run)
    assert outcome.applied == [] and outcome.restart == [] and not outcome.error
    assert run.workers == workers  # the same sessions: no reconnect
    assert run.config == config
    assert "unchanged" in caplog.text
    assert run.sink.stats.flow_mods == 0


def test_live_keys_apply_and_the_others_are_named(run, caplog):
    caplog.set_level(logging.INFO, "netctl.reload")
    outcome = reload(run, config(
        openflow={"audit_interval": 5, "flow_monitor": False, "listen": "127.0.0.1:2"},
        metrics={"listen": "127.0.0.1:10"}, ovsdb={"datapath_type": "system"},
        xapi={"event_timeout": 7}))
    assert outcome.applied == ["openflow.audit_interval", "openflow.flow_monitor",
                               "xapi.event_timeout"]
    assert outcome.restart == ["openflow.listen", "ovsdb.datapath_type", "metrics.listen"]
    assert run.sink.audit_interval == 5 and run.sink.flow_monitor is False
    assert run.sync.timeout == 7
    # (the workers' background retries log too: only what the reload said counts)
    warning = next(r for r in caplog.records
                   if r.levelno == logging.WARNING and r.name == "netctl.reload")
    assert "openflow.listen, ovsdb.datapath_type, metrics.listen changed but cannot " \
           "change while netctl runs" in warning.getMessage()
    # what needs a restart keeps its running value, so a file that reverts it says nothing
    assert run.config.openflow_listen == "127.0.0.1:1" and run.config.datapath_type == "netdev"
    assert run.config.metrics_listen == "127.0.0.1:9" and run.config.audit_interval == 5
    caplog.clear()
    assert reload(run, config()).restart == []
    assert not [r for r in caplog.records
                if r.levelno >= logging.WARNING and r.name == "netctl.reload"]


def test_a_bad_file_keeps_the_configuration_in_effect(run, caplog):
    config = run.config
    said = []
    for bad in ("openflow: {audit_interval: -1}\n", "openflow: [\n", "ovsdb: {endpont: x}\n",
                "log: {level: loud}\n"):
        caplog.clear()
        outcome = reload(run, bad)
        assert outcome.error and run.config is config, bad
        assert "the configuration in effect is unchanged" in caplog.text
        said.append(caplog.text)
    assert "unknown key 'endpont'" in said[2] and "log: level must be" in said[3]


def test_an_ovsdb_endpoint_change_reconnects_only_the_hosts_it_moves(run):
    by_name = {w.status.name: (ref, w) for ref, w in run.workers.items()}
    ref2, host2 = by_name["host2"]
    outcome = reload(run, config(ovsdb={"hosts": {"host2": "tcp:127.0.0.1:2"}}))
    assert outcome.applied == ["ovsdb.hosts"]
    assert run.workers[ref2] is not host2 and run.workers[ref2].status.endpoint == \
        "tcp:127.0.0.1:2"
    assert run.workers[ref2].desired == host2.desired  # the same configuration, reapplied
    for name in ("host1", "host3"):
        ref, worker = by_name[name]
        assert run.workers[ref] is worker  # untouched
    assert not host2.thread.is_alive() or host2._stop.is_set()  # the old session ends
    # TLS files or the timeout: every host's session differs, every worker is replaced
    before = dict(run.workers)
    assert reload(run, config(ovsdb={"timeout": 0.7})).applied == \
        ["ovsdb.hosts", "ovsdb.timeout"]
    assert all(run.workers[r] is not w for r, w in before.items())
    assert {w.config.ovsdb_timeout for w in run.workers.values()} == {0.7}


def test_log_level_and_file_follow_the_file(run, tmp_path):
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        logs.configure("info")
        log_file = tmp_path / "netctl.log"
        reload(run, config(log={"level": "debug", "file": str(log_file)}))
        assert root.level == logging.DEBUG
        # the root logger: once Mininet is imported (lab tests, same process) every logger
        # made afterwards is a MininetLogger with a level of its own (logging.setLoggerClass)
        root.debug("written at debug")
        assert "DEBUG written at debug" in log_file.read_text()
        reload(run, config(log={"level": "warning"}))
        assert root.level == logging.WARNING
    finally:
        for h in [h for h in root.handlers if h not in saved[1]]:
            root.removeHandler(h)
            h.close()
        root.setLevel(saved[0])


def test_sighup_is_only_noted_by_the_handler_and_carried_out_beside_os_ken(run):
    """The handler (main thread) notes the request; `watch` reloads it and tells systemd:
    READY=1 once listening, RELOADING=1/READY=1 around the reload, STATUS= the health."""
    said: list[str] = []
    reloader = Reloader(run, str(run.path), notify=lambda m: said.append(m) or True)
    previous = signal.signal(signal.SIGHUP, reloader.request)
    try:
        threading.Thread(target=reloader.watch, args=(lambda: True,), daemon=True).start()
        deadline = time.monotonic() + 5
        while "READY=1" not in said and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)
        while reloader.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert reloader.reloads == 1
    deadline = time.monotonic() + 2
    while said.count("READY=1") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert said[0] == "READY=1"
    assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in said)
    assert said.count("READY=1") == 2
    status = next(m for m in said if m.startswith("STATUS="))
    assert status.startswith("STATUS=down: xapi http://127.0.0.1:1/: not connected")


def test_sd_notify_speaks_to_systemds_socket(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sd_notify("READY=1")
        assert sock.recv(100) == b"READY=1"
        monkeypatch.delenv("NOTIFY_SOCKET")
        assert not sd_notify("READY=1")  # not under systemd: nothing to say
    finally:
        sock.close()
