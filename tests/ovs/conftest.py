"""Real ovsdb-server + ovs-vswitchd per test module (harness/sandbox.py)."""

from __future__ import annotations

import os

import pytest

from harness.sandbox import OvsSandbox

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def sandbox():
    if os.geteuid() != 0:
        pytest.skip("real OVS needs root")
    box = OvsSandbox()
    yield box
    box.close()
