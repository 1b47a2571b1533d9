"""The web view's assets ship in the package (machines running netctl may have no internet):
the wheel `pip install .` builds holds the page, its script and the vendored cytoscape.js with
its licence, and the page loads nothing from anywhere else."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT

ASSETS = ("index.html", "login.html", "app.js", "style.css", "cytoscape.min.js",
          "cytoscape.LICENSE")
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".ruff_cache", ".hypothesis", ".stamp-*")


def test_the_wheel_ships_the_page_and_vendored_cytoscape_with_its_licence(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED, symlinks=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path / "wheels"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wheel = next((tmp_path / "wheels").glob("netctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"netctl/web/static/{a}" for a in ASSETS} <= names
    licence = zipfile.ZipFile(wheel).read("netctl/web/static/cytoscape.LICENSE").decode()
    assert "The Cytoscape Consortium" in licence and "Permission is hereby granted" in licence


def test_the_page_loads_nothing_from_elsewhere():
    static = ROOT / "netctl" / "web" / "static"
    for name in ("index.html", "login.html", "app.js", "style.css"):
        text = (static / name).read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name
        assert "fetch('http" not in text and "cdn" not in text.lower(), name
