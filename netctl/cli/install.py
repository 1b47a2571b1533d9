"""`netctl install-service`: install `netctl run` as a systemd service.

What it writes, under `--prefix` (`/` by default; another directory is a staging root, as a
package build's DESTDIR: the files inside still name /etc/netctl):

- the unit, `etc/systemd/system/netctl.service` (or `--unit-dir`), from the one shipped in the
  package (`netctl/cli/data/netctl.service`, also `packaging/systemd/netctl.service` in the
  repository), with ExecStart pointing at this netctl. It is netctl's file: installing again
  replaces it; an operator's changes live in drop-ins (`systemctl edit netctl`), never touched;
- `etc/netctl/netctl.yaml` and `etc/netctl/netctl.env` (mode 0600: the env file holds xapi's
  password) as examples, only when absent: an operator's files are never overwritten.

Then, only when installing into `/` on a machine that runs systemd (`/run/systemd/system`
exists, as sd_booted(3) checks), `systemctl daemon-reload` and, unless `--no-enable`,
`systemctl enable netctl`; it never starts the service, whose example files must be edited
first. Anywhere else it says what to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import click

UNIT = "netctl.service"
SHIPPED_EXEC = "/usr/local/bin/netctl"  # ExecStart's executable in the shipped unit
CONFIG_DIR = "/etc/netctl"
UNIT_DIR = "/etc/systemd/system"

EXAMPLE_CONFIG = """\
# netctl run's configuration; every key is optional and documented in netctl/service/config.py.
# `systemctl reload netctl` re-reads this file: what cannot change without a restart is named
# in the log (journalctl -u netctl).
openflow:
  listen: 0.0.0.0:6653
  # What each bridge is told to connect to: this machine's address as the hosts reach it.
  # netctl refuses to start without it while listen is a wildcard.
  # target: tcp:192.0.2.10:6653
  audit_interval: 60
ovsdb:
  # Default: as the pool's SDN_controller says (netctl register), else tcp:{address}:6640.
  # endpoint: "ssl:{address}:6640"
  # ssl: {private_key: /etc/netctl/pki/ctl-privkey.pem, certificate: /etc/netctl/pki/ctl-cert.pem,
  #       ca_cert: /etc/netctl/pki/cacert.pem}
  datapath_type: system
metrics:
  listen: 127.0.0.1:9464        # /metrics, /status (netctl status) and /healthz
log:
  level: info                   # debug | info | warning | error; stderr goes to the journal
  # file: /var/log/netctl/netctl.log
"""

EXAMPLE_ENV = """\
# The pool master netctl run follows, and its credentials (systemd's EnvironmentFile=: not on
# any command line). Keep this file mode 0600.
NETCTL_XAPI=https://pool-master.example.com/
NETCTL_USERNAME=root
NETCTL_PASSWORD=change-me
# or, instead of NETCTL_PASSWORD, a file holding it:
# NETCTL_PASSWORD_FILE=/etc/netctl/xapi-password
"""


class InstallError(click.ClickException):
    """Something the operator can fix (a path, a missing executable); no traceback."""


@dataclass
class Report:
    """What an install did, one line per file, and the commands it ran or leaves to run."""

    lines: list[str] = field(default_factory=list)
    ran: list[list[str]] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


def shipped_unit() -> str:
    """The unit as shipped in the package (the same file as packaging/systemd/)."""
    return resources.files("netctl.cli").joinpath("data", UNIT).read_text()


def render_unit(executable: str) -> str:
    """The shipped unit with ExecStart running `executable`."""
    text = shipped_unit()
    old = f"ExecStart={SHIPPED_EXEC} "
    if old not in text:
        raise InstallError(f"the shipped {UNIT} has no '{old.strip()}' line")
    return text.replace(old, f"ExecStart={executable} ")


def this_netctl() -> str | None:
    """The `netctl` executable of the installation running now: the script beside this
    interpreter (a venv's, or /usr/local/bin for a system-wide pip install), else on PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "netctl" and argv0.is_file():
        return os.path.abspath(argv0)
    beside = Path(sys.executable).parent / "netctl"
    if beside.is_file():
        return str(beside)
    return shutil.which("netctl")


def systemd_running(root: Path = Path("/")) -> bool:
    """Was this machine booted with systemd (sd_booted(3): /run/systemd/system exists)?"""
    return (root / "run/systemd/system").is_dir()


def _write_new(path: Path, text: str, mode: int, report: Report) -> None:
    """Write `text` to `path` with `mode` only if nothing is there (never an operator's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        extra = ""
        if path.suffix == ".env" and path.stat().st_mode & 0o077:
            extra = f" (its mode is {path.stat().st_mode & 0o777:o}: chmod 600 it)"
        report.lines.append(f"kept     {path} (already there){extra}")
        return
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, mode)  # whatever the umask
    report.lines.append(f"created  {path} (mode {mode:o})")


def install(prefix: Path, unit_dir: Path | None, executable: str, enable: bool,
            run_systemctl: bool | None = None) -> Report:
    """Install the unit and the example files (module docstring). `run_systemctl`: None
    decides (only into / on a machine running systemd)."""
    report = Report()
    prefix = prefix.resolve()
    unit_path = (unit_dir or prefix / UNIT_DIR.lstrip("/")) / UNIT
    unit_path.parent.mkdir(parents=True, exist_ok=True)
    text = render_unit(executable)
    before = unit_path.read_text() if unit_path.exists() else None
    if before == text:
        report.lines.append(f"same     {unit_path}")
    else:
        tmp = unit_path.with_name(f".{UNIT}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(unit_path)
        report.lines.append(f"{'updated ' if before is not None else 'created '} {unit_path}"
                            f" (ExecStart={executable} run ...)")
    conf = prefix / CONFIG_DIR.lstrip("/")
    _write_new(conf / "netctl.yaml", EXAMPLE_CONFIG, 0o600, report)
    _write_new(conf / "netctl.env", EXAMPLE_ENV, 0o600, report)
    if run_systemctl is None:
        run_systemctl = prefix == Path("/") and unit_dir is None and systemd_running()
    commands = [["systemctl", "daemon-reload"]] + (
        [["systemctl", "enable", UNIT]] if enable else [])
    if run_systemctl:
        for argv in commands:
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise InstallError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
            report.ran.append(argv)
    else:
        where = ("systemd is not running on this machine (no /run/systemd/system)"
                 if prefix == Path("/") and unit_dir is None
                 else f"installed under {prefix}" if unit_dir is None
                 else f"the unit went to {unit_path.parent}")
        report.todo.append(f"{where}; on the machine that runs netctl: "
                           + " && ".join(" ".join(a) for a in commands))
    report.todo.append(f"edit {CONFIG_DIR}/netctl.env (the pool master, its password) and "
                       f"{CONFIG_DIR}/netctl.yaml (openflow.target), then: "
                       "systemctl start netctl; journalctl -u netctl; "
                       "curl http://127.0.0.1:9464/healthz")
    return report


@click.command("install-service")
@click.option("--prefix", type=click.Path(file_okay=False), default="/", show_default=True,
              help="Install under this root (a staging directory: the unit still names "
                   "/etc/netctl).")
@click.option("--unit-dir", type=click.Path(file_okay=False),
              help="Where the unit goes (default: PREFIX/etc/systemd/system).")
@click.option("--netctl", "executable", type=click.Path(dir_okay=False),
              help="The netctl executable ExecStart runs (default: this one).")
@click.option("--no-enable", is_flag=True,
              help="Do not `systemctl enable` the unit (daemon-reload still runs).")
def install_service(prefix: str, unit_dir: str | None, executable: str | None,
                    no_enable: bool) -> None:
    """Install `netctl run` as the systemd service netctl.service (its unit, and example
    /etc/netctl/netctl.yaml and netctl.env when absent); never starts it."""
    executable = executable or this_netctl()
    if not executable:
        raise InstallError("cannot tell where the netctl executable is: give --netctl PATH")
    if not os.path.isabs(executable):
        raise InstallError(f"--netctl must be an absolute path, not {executable}")
    try:
        report = install(Path(prefix), Path(unit_dir) if unit_dir else None, executable,
                         enable=not no_enable)
    except OSError as exc:
        raise InstallError(f"{exc.filename or prefix}: {exc.strerror or exc}") from None
    for line in report.lines:
        click.echo(line)
    for argv in report.ran:
        click.echo(f"ran      {' '.join(argv)}")
    for line in report.todo:
        click.echo(f"next:    {line}")
