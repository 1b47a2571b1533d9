"""A VIF's xapi rate limit reaches its Interface's `ingress_policing_rate`/`_burst` through
netctl.sinks.ovsdb, against a real ovsdb-server + ovs-vswitchd: set, unchanged (nothing sent),
changed (two columns), removed (back to 0); the rest of the VIF port is left alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netctl.hostconfig import HostConfig
from netctl.model import FrozenMap
from netctl.sinks.ovsdb import HostOvsdb
from tests.ovs.test_ovsdb_apply import CONTROLLER, bond_pool
from vlan import compile_host

pytestmark = pytest.mark.lab


@pytest.fixture()
def box(sandbox):
    """An empty switch for each test."""
    sandbox.vsctl("clear", "Open_vSwitch", ".", "bridges")
    return sandbox


def limited(kbps: str | None) -> HostConfig:
    b, h = bond_pool()
    state = b.state()
    ref, vif = next(iter(state.vifs.items()))
    vif = replace(vif, qos_algorithm_type="ratelimit" if kbps else "",
                  qos_algorithm_params=FrozenMap({"kbps": kbps} if kbps else {}))
    return compile_host(state.replace(vifs={**state.vifs, ref: vif}), h.ref,
                        datapath_type="netdev", controllers=(CONTROLLER,))


def policing(box) -> tuple[str, str]:
    return (box.vsctl("get", "Interface", "vif5.0", "ingress_policing_rate"),
            box.vsctl("get", "Interface", "vif5.0", "ingress_policing_burst"))


def test_a_rate_limit_is_two_columns_on_the_vif_interface_and_nothing_when_unchanged(box):
    with HostOvsdb(box.unix) as db:
        db.apply(limited(None))
        box.vsctl("add-port", "xapi1", "vif5.0", "--", "set", "interface", "vif5.0",
                  "type=internal", "external_ids:xs-vif-uuid=uuid-vm1-vif0")
        assert db.apply(limited(None)).operations == ("set Port vif5.0 trunks=[10]",)
        assert policing(box) == ("0", "0")

        result = db.apply(limited("1000"))  # 1000 KiB/s = 8192 kbit/s, burst a tenth
        assert result.operations == ("set Interface vif5.0 ingress_policing_rate=8192",
                                     "set Interface vif5.0 ingress_policing_burst=819")
        assert policing(box) == ("8192", "819")
        before = box.versions()
        assert db.apply(limited("1000")).operations == ()  # unchanged intent: nothing sent
        assert box.versions() == before

        assert len(db.apply(limited("2000")).operations) == 2
        assert policing(box) == ("16384", "1638")

        assert db.apply(limited("abc")).operations  # a bad value: applied without a limit
        assert policing(box) == ("0", "0")
        db.apply(limited("2000"))
        result = db.apply(limited(None))  # qos_algorithm_type "": back to no policing
        assert result.operations == ("set Interface vif5.0 ingress_policing_rate=0",
                                     "set Interface vif5.0 ingress_policing_burst=0")
        assert policing(box) == ("0", "0")
        box.vsctl("del-port", "vif5.0")
