"""Lab fixtures: real namespaces, real OVS instances, real packets."""

from __future__ import annotations

import pytest

from harness.footprint import clear_dead_lab
from netctl.lab.lab import Lab
from netctl.topology import parse_file
from tests.conftest import TOPOLOGIES, lab_footprint

NOTHING = {"namespaces": [], "root links": [], "processes": []}


def normal_flows(lab: Lab) -> None:
    """What the tests of the lab rely on: each host bridge forwards with a plain NORMAL flow
    (no controller yet), set here explicitly rather than left to fail_mode."""
    for host in lab.topology.hosts:
        ovs = lab.ovs(host.name)
        for bridge in ovs.vsctl("list-br").split():
            if ovs.vsctl("br-to-parent", bridge) != bridge:
                continue  # a VLAN fake bridge: its flows live on the parent
            ovs.ofctl("del-flows", bridge)
            ovs.ofctl("add-flow", bridge, "priority=0,actions=NORMAL")


def up(topology: str, prefix: str, management: str) -> Lab:
    topo = parse_file(TOPOLOGIES / topology).relabel(prefix, management)
    clear_dead_lab(prefix)
    lab = Lab.up(topo)
    normal_flows(lab)
    return lab


@pytest.fixture(scope="module")
def mini_lab():
    lab = up("mini-pool.yaml", "tmin", "198.18.31.0/24")
    yield lab
    lab.down()
    assert lab_footprint("tmin") == NOTHING


@pytest.fixture(scope="module")
def demo_lab():
    lab = up("demo-pool.yaml", "tdem", "198.18.32.0/24")
    yield lab
    lab.down()
    assert lab_footprint("tdem") == NOTHING
