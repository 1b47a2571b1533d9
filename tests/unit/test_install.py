"""`netctl install-service` into a temporary root, the unit it writes, `netctl --version`, and how
`netctl run` logs (`netctl.service.logs`).

Why: an operator installs netctl as a service with one command and must be able to run it
again (after an upgrade) without losing what they edited; the unit must be one systemd accepts
(checked by systemd's own `systemd-analyze verify` where it is installed); the credentials stay
off the command line; a service's log lines carry their level to journald.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from netctl.cli.install import install, render_unit, shipped_unit, systemd_running
from netctl.cli.main import main
from netctl.service import logs
from tests.conftest import ROOT

NETCTL = "/opt/netctl/bin/netctl"


def cli(*args: str, **env: str):
    return CliRunner().invoke(main, list(args), env=env or None, prog_name="netctl")


def test_version_comes_from_the_package_metadata():
    out = cli("--version")
    assert out.exit_code == 0
    assert out.output.strip() == f"netctl, version {importlib.metadata.version('netctl')}"


def test_install_into_a_temporary_root(tmp_path):
    out = cli("install-service", "--prefix", str(tmp_path), "--netctl", NETCTL)
    assert out.exit_code == 0, out.output
    unit = tmp_path / "etc/systemd/system/netctl.service"
    text = unit.read_text()
    assert f"ExecStart={NETCTL} run --config /etc/netctl/netctl.yaml\n" in text
    assert "EnvironmentFile=/etc/netctl/netctl.env" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text and "Restart=on-failure" in text
    assert "password" not in text.split("ExecStart=")[1].splitlines()[0].lower()
    for name in ("netctl.yaml", "netctl.env"):
        path = tmp_path / "etc/netctl" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert "NETCTL_PASSWORD=" in (tmp_path / "etc/netctl/netctl.env").read_text()
    # not this machine's root: says what to run, runs nothing
    assert f"installed under {tmp_path}; on the machine that runs netctl: systemctl " \
           "daemon-reload && systemctl enable netctl.service" in out.output
    assert "ran " not in out.output


def test_installing_again_keeps_the_operators_files(tmp_path):
    assert cli("install-service", "--prefix", str(tmp_path), "--netctl", NETCTL,
               "--no-enable").exit_code == 0
    env = tmp_path / "etc/netctl/netctl.env"
    env.write_text("NETCTL_XAPI=https://master/\n")
    os.chmod(env, 0o644)
    (tmp_path / "etc/netctl/netctl.yaml").write_text("log: {level: debug}\n")
    out = cli("install-service", "--prefix", str(tmp_path), "--netctl", NETCTL, "--no-enable")
    assert out.exit_code == 0, out.output
    assert env.read_text() == "NETCTL_XAPI=https://master/\n"
    assert (tmp_path / "etc/netctl/netctl.yaml").read_text() == "log: {level: debug}\n"
    assert f"kept     {env} (already there) (its mode is 644: chmod 600 it)" in out.output
    assert "same     " in out.output  # the unit is unchanged
    assert "systemctl daemon-reload\n" in out.output  # --no-enable: no enable to run
    # a new netctl (an upgrade elsewhere): the unit, netctl's own file, is replaced
    out = cli("install-service", "--prefix", str(tmp_path), "--netctl", "/usr/bin/netctl")
    assert "updated " in out.output
    assert "ExecStart=/usr/bin/netctl run" in (tmp_path /
                                               "etc/systemd/system/netctl.service").read_text()


def test_unit_dir_and_the_netctl_running(tmp_path):
    report = install(tmp_path / "root", tmp_path / "units", sys.executable, enable=True)
    assert (tmp_path / "units/netctl.service").is_file()
    assert not (tmp_path / "root/etc/systemd").exists()
    assert report.ran == [] and "the unit went to" in report.todo[0]
    out = cli("install-service", "--prefix", str(tmp_path / "r2"))  # default: this netctl
    assert out.exit_code == 0, out.output
    exec_start = next(line for line in (tmp_path / "r2/etc/systemd/system/netctl.service")
                      .read_text().splitlines() if line.startswith("ExecStart="))
    executable = exec_start.split("=", 1)[1].split()[0]
    assert Path(executable).is_file() and os.access(executable, os.X_OK), exec_start


def test_systemd_is_detected_as_sd_booted_does(tmp_path):
    assert not systemd_running(tmp_path)
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    assert systemd_running(tmp_path)


def test_the_repository_unit_is_the_packaged_one():
    assert (ROOT / "packaging/systemd/netctl.service").read_text() == shipped_unit()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path):
    """systemd's own parser: no unknown key, no bad value (it only warns: any output fails)."""
    unit = tmp_path / "netctl.service"
    unit.write_text(render_unit(str(Path(sys.executable).parent / "netctl")))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and str(unit) not in done.stdout + done.stderr, \
        done.stdout + done.stderr


def test_run_wants_a_password_from_a_file_or_the_environment(tmp_path):
    config = tmp_path / "netctl.yaml"
    config.write_text("openflow: {listen: 127.0.0.1:1, target: tcp:127.0.0.1:1}\n")
    out = cli("run", "--config", str(config), NETCTL_XAPI="http://127.0.0.1:1/")
    assert out.exit_code == 1
    assert "give --password-file (or NETCTL_PASSWORD_FILE), or set NETCTL_PASSWORD" in out.output


# ------------------------------------------------------------------------------ logging
@pytest.fixture
def root_logger():
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    yield root
    for h in [h for h in root.handlers if h not in saved[1]]:
        root.removeHandler(h)
        h.close()
    root.setLevel(saved[0])


def test_logs_to_a_file_with_timestamps_and_levels(tmp_path, root_logger):
    log_file = tmp_path / "sub" / "netctl.log"
    logs.configure("warning", str(log_file))
    logging.getLogger("netctl.run").info("not at info")
    logging.getLogger("netctl.run").warning("host2 unreachable")
    line = log_file.read_text().strip()
    assert "not at info" not in line
    assert line.endswith(" netctl.run WARNING host2 unreachable") and line[:4].isdigit()
    logs.configure("info")  # called again: replaces its handlers, no file, no double lines
    assert len([h for h in root_logger.handlers if isinstance(h, logs._Ours)]) == 1


def test_journald_gets_the_priority_and_no_timestamp(tmp_path, root_logger, monkeypatch):
    """Under systemd stderr is the journal's stream (JOURNAL_STREAM names its device and
    inode): each line starts with its syslog priority, which journald files it under."""
    with open(tmp_path / "stderr", "w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        monkeypatch.setattr(sys, "stderr", stream)
        logs.configure("debug")
        logging.getLogger("netctl.reload").warning("reload: metrics.listen changed")
        logging.getLogger("netctl.run").debug("detail")
        stream.flush()
        assert (tmp_path / "stderr").read_text().splitlines() == [
            "<4>netctl.reload WARNING reload: metrics.listen changed",
            "<7>netctl.run DEBUG detail"]
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # a stream that is not ours
        assert not logs.under_journald(stream)


def test_an_unknown_level_is_refused():
    with pytest.raises(logs.LogError, match="debug, info, warning, error"):
        logs.configure("loud")
