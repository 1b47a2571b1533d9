"""A local VIF's flows from its shape's byte template (`flows.templates`) are exactly the
compiled ones (`flows.compile.local_vif_flows` + `wire.canon_flow`), for every VIF of the demo
pool on every bridge, in every locking mode and with the fields that change a VIF's flows —
and the shapes a template cannot stand for (rules, a rate limit, network entries, repeated
entries) are compiled as before."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from flows import templates
from flows.compile import BridgePorts, bridge_intent, local_vif_flows
from flows.locking import OVERRIDE_KEY
from flows.wire import canon_flow
from netctl.model import FrozenMap, PoolState
from tests.unit.test_flows import pool_state


@pytest.fixture(scope="module")
def demo() -> PoolState:
    return pool_state("demo-pool.yaml")


def variants(vif):
    """The VIF as it is, then with each thing that changes its flows (or its template)."""
    oc = dict(vif.other_config)
    yield "as is", vif
    yield "locked v4+v6", replace(vif, locking_mode="locked", ipv4_allowed=("10.9.0.7",),
                                  ipv6_allowed=("fd4e:9::7", "fd4e:9::8"))
    yield "locked, nothing allowed", replace(vif, locking_mode="locked", ipv4_allowed=(),
                                             ipv6_allowed=())
    yield "locked, a network entry", replace(vif, locking_mode="locked",
                                             ipv4_allowed=("10.9.0.0/24",))
    yield "locked, an entry twice", replace(vif, locking_mode="locked",
                                            ipv4_allowed=("10.9.0.7", "10.9.0.7"))
    yield "unlocked with addresses", replace(vif, locking_mode="unlocked",
                                             ipv4_allowed=("10.9.0.7",))
    yield "disabled", replace(vif, other_config=FrozenMap({**oc, OVERRIDE_KEY: "disabled"}))
    yield "trunks", replace(vif, trunks=(10, 20))
    yield "rules", replace(vif, other_config=FrozenMap({**oc, "netctl-rules": "drop tcp in"}))
    yield "rate limit", replace(vif, qos_algorithm_type="ratelimit",
                                qos_algorithm_params=FrozenMap({"kbps": "1000"}))
    yield "other MAC", replace(vif, mac="02:AB:CD:EF:00:99")


def port_sets(vif):
    yield "vif port", BridgePorts(vifs={vif.uuid: 17})
    yield "tap port", BridgePorts(taps={vif.uuid: 23})
    yield "both", BridgePorts(vifs={vif.uuid: 17}, taps={vif.uuid: 18})
    yield "none", BridgePorts()


def test_every_vif_shape_gives_the_compiled_bytes(demo):
    templates._cache.clear()
    checked = templated = 0
    for host in demo.hosts.values():
        bridges = {demo.networks[v.network].bridge for v in demo.vifs.values()}
        bridges |= {n.bridge for n in demo.networks.values()}
        for bridge in sorted(bridges):
            intent = bridge_intent(demo, host.ref, bridge)
            if intent.kind == "none":
                continue
            for vif in demo.vifs.values():
                if vif.network not in intent.vlans:
                    continue
                for what, changed in variants(vif):
                    state = demo.replace(vifs={**demo.vifs, vif.ref: changed})
                    for ports_what, ports in port_sets(changed):
                        want_taking: dict = {}
                        want_ruled: set = set()
                        want = dict(canon_flow(f) for f in local_vif_flows(
                            state, intent, ports, changed, want_taking, want_ruled))
                        taking: dict = {}
                        ruled: set = set()
                        got = templates.local_vif_canon(state, intent, ports, changed, taking,
                                                        ruled)
                        where = f"{host.name_label} {bridge} {changed.uuid} {what}, {ports_what}"
                        assert got == want, where
                        assert (taking, ruled) == (want_taking, want_ruled), where
                        checked += 1
                        found = templates._shape(state, intent, ports, changed)
                        templated += found is not None and \
                            templates._cache.get(found[0]) is not None
    # most shapes have a template; rules, rate limits, network and repeated entries do not
    assert checked > 500 and templated > checked // 2, (checked, templated)
    # and those that cannot be templated were compiled, not templated
    vif = next(iter(demo.vifs.values()))
    for what, changed in variants(vif):
        state = demo.replace(vifs={**demo.vifs, vif.ref: changed})
        intent = bridge_intent(demo, next(iter(demo.hosts)), "xapi1")
        if what in ("rules", "rate limit", "locked, a network entry", "locked, an entry twice"):
            assert templates._shape(state, intent, BridgePorts(vifs={vif.uuid: 17}),
                                    changed) is None, what


@pytest.mark.parametrize("text", ["10.9.0.7", "0.0.0.0", "255.255.255.255", "010.9.0.7",
                                  "256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.4/32",
                                  "1.2.3.0/24", "\u0661.2.3.4", " 1.2.3.4", "1.2.3.-4",
                                  "::1", "fe80::1/128", ""])
def test_an_allowed_ipv4_entry_reads_as_ipaddress_reads_it(text):
    """The fast dotted-quad path takes exactly what `ipaddress` takes as one address."""
    try:
        net = ipaddress.ip_network(text, strict=False)
        want = net.network_address.packed if net.version == 4 and \
            net.prefixlen == net.max_prefixlen else None
    except ValueError:
        want = None
    got = templates._addresses([text], 4)
    assert got == (None if want is None else (want,))
