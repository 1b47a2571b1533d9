"""Per-VIF QoS (issue 22 part 1), the pure part: xapi's `ratelimit`/`kbps` (KiB/s, as xenopsd
hands it to netback) becomes OVS ingress policing on the VIF's interface (kbit/s of 1000
bits); a bad value is a Problem naming the VIF, the key and the reason, and the VIF is
compiled as before, without a limit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from netctl.model import FrozenMap, validate
from tests.unit.test_model import small_pool
from vlan.host import compile_host
from vlan.qos import MIN_BURST_KBIT, Policing, vif_kbps, vif_policing


def limited(kbps: str | None, algorithm: str = "ratelimit"):
    params = FrozenMap({"kbps": kbps}) if kbps is not None else FrozenMap()
    state = small_pool()
    vif = replace(state.vifs["i1"], qos_algorithm_type=algorithm, qos_algorithm_params=params)
    return state.replace(vifs={**state.vifs, "i1": vif})


def vif_port_of(state, uuid: str = "u-i1"):
    config = compile_host(state, "h1")
    return next(p for p in config.vif_ports if p.vif_uuid == uuid), config


@pytest.mark.parametrize("kbps,rate,burst", [
    ("2441", 19997, 1999),   # ~20 Mbit/s: 2441 KiB/s x 8.192
    ("1000", 8192, 819),
    ("10", 82, MIN_BURST_KBIT),  # a tiny rate still lets a jumbo frame through
    ("125000", 1024000, 102400),
])
def test_kbps_is_kibibytes_per_second_policed_in_kbit(kbps, rate, burst):
    state = limited(kbps)
    assert vif_policing(state.vifs["i1"]) == Policing(rate, burst)
    port, config = vif_port_of(state)
    assert (port.policing_rate, port.policing_burst) == (rate, burst)
    assert not [p for p in config.problems if p.uuid == "u-i1"]


def test_no_algorithm_is_no_policing():
    port, _ = vif_port_of(limited(None, algorithm=""))
    assert (port.policing_rate, port.policing_burst) == (0, 0)


@pytest.mark.parametrize("kbps,algorithm,field,words", [
    ("-5", "ratelimit", "qos_algorithm_params:kbps", "'-5' is not a rate in KiB/s"),
    ("0", "ratelimit", "qos_algorithm_params:kbps", "a positive integer"),
    ("20M", "ratelimit", "qos_algorithm_params:kbps", "'20M' is not"),
    (None, "ratelimit", "qos_algorithm_params:kbps", "'' is not a rate"),
    ("1000", "leaky", "qos_algorithm_type", "only ratelimit"),
])
def test_a_bad_limit_is_a_problem_and_the_vif_still_works(kbps, algorithm, field, words):
    state = limited(kbps, algorithm)
    kept, problems = validate(state)
    mine = {p.field: p.message for p in problems if p.uuid == "u-i1"}
    assert words in mine[field], mine
    assert "without a rate limit" in mine[field]
    assert "i1" in kept.vifs and vif_kbps(kept.vifs["i1"]) is None
    port, config = vif_port_of(state)  # the port is still configured: trunks, no policing
    assert port.name.startswith("vif") and (port.policing_rate, port.policing_burst) == (0, 0)
    assert any(p.uuid == "u-i1" and p.field == field for p in config.problems)


def test_removing_the_limit_changes_the_port_config():
    with_limit, _ = vif_port_of(limited("1000"))
    without, _ = vif_port_of(limited(None, algorithm=""))
    assert with_limit != without and without.policing_rate == 0
