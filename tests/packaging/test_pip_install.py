"""`pip install .` gives a working `netctl` outside the repository (issue 18).

The project is built into a wheel from a copy of the work tree (so the build writes nothing
into the repository) and installed, without its dependencies, into a fresh venv in a temporary
directory; the dependencies come from the project's own .venv (a .pth line added after the
install, as they would come from the index: this machine may have no network), the rest from
Debian's site packages as `make setup` arranges. Then, from a directory outside the
repository, the installed command must answer `--version` and `run --help`, import netctl from
the venv (not from the work tree), and install its systemd unit from the package's own copy.

Slow (a wheel build and a venv, some 30 s), run by `make test` with the rest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import ROOT

IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".ruff_cache", ".hypothesis", ".stamp-*")


def sh(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


def test_pip_install_gives_a_working_netctl_outside_the_repository(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED, symlinks=True)
    wheels = tmp_path / "wheels"
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
       "-w", wheels, source, cwd=tmp_path)
    wheel = next(wheels.glob("netctl-*.whl"))

    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    sh(base, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path)
    sh(venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel,
       cwd=tmp_path)
    site = Path(sh(venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_path("
                   "'purelib'))", cwd=tmp_path).stdout.strip())
    (site / "netctl-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    netctl = venv / "bin/netctl"
    version = sh(netctl, "--version", cwd=elsewhere).stdout
    assert version.strip() == "netctl, version 0.1.0"
    assert "--password-file" in sh(netctl, "run", "--help", cwd=elsewhere).stdout
    where = sh(venv / "bin/python", "-c", "import netctl, flows, vlan, bonding, "
               "netctl.hostconfig, netctl.xapisim, netctl.lab; print(netctl.__file__)",
               cwd=elsewhere).stdout
    assert where.startswith(str(venv)), where
    out = sh(netctl, "install-service", "--prefix", tmp_path / "root", cwd=elsewhere).stdout
    unit = (tmp_path / "root/etc/systemd/system/netctl.service").read_text()
    assert f"ExecStart={netctl} run --config /etc/netctl/netctl.yaml" in unit, out
