"""Bad intent costs only what is bad (issue 17), on the model: a bad field is a Problem naming the
object, the field and the allowed values, and the object is applied as if the field were
absent — except a security field, which is applied at its strictest reading; only a field
without which the object cannot be placed leaves it out. Every key netctl reads is declared
once (`netctl.model.keys`) and read and checked by that one declaration."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flows.locking import locking_of
from netctl.model import PIF, VIF, Bond, FrozenMap, Network, PoolState, validate
from netctl.model.keys import ALL_KEYS, BOND_OVERRIDES, LOCKING_OVERRIDE
from tests.unit.test_model import small_pool
from vlan.host import compile_host


def with_vif(state: PoolState, **changes) -> tuple[PoolState, list]:
    vif = replace(state.vifs["i1"], **changes)
    return validate(state.replace(vifs={**state.vifs, "i1": vif}))


def fields(problems: list, uuid: str) -> dict[str, str]:
    return {p.field: p.message for p in problems if p.uuid == uuid}


@pytest.mark.parametrize("changes,field,words", [
    ({"other_config": FrozenMap({"mtu": "abc"})}, "other_config:mtu", "68-65535"),
    ({"qos_algorithm_type": "ratelimit", "qos_algorithm_params": FrozenMap({"kbps": "-5"})},
     "qos_algorithm_params:kbps", "without a rate limit"),
    ({"qos_algorithm_type": "leaky"}, "qos_algorithm_type", "only ratelimit"),
    ({"trunks": (10, 5000)}, "trunks", "outside 0-4094"),
])
def test_a_bad_backend_field_keeps_the_vif_on_its_network(changes, field, words):
    kept, problems = with_vif(small_pool(), **changes)
    assert "i1" in kept.vifs  # placed, forwarded, locked as before
    assert words in fields(problems, "u-i1")[field]
    vif = kept.vifs["i1"]
    assert kept.vif_mtu(vif) == 9000  # the network's
    assert vif.qos_algorithm_type == "" and not vif.qos_algorithm_params or "qos" not in field
    assert locking_of(kept, vif).mode == "locked"


def test_trunks_keep_the_tags_that_are_vlans():
    kept, _ = with_vif(small_pool(), trunks=(10, 5000))
    assert kept.vifs["i1"].trunks == (10,)


@pytest.mark.parametrize("changes,field", [
    ({"network": "nowhere"}, "network"), ({"vm": "nobody"}, "VM"),
    ({"mac": "01:00:5e:00:00:01"}, "MAC"), ({"mac": "zz"}, "MAC"), ({"device": "x"}, "device"),
])
def test_a_vif_that_cannot_be_placed_is_left_out(changes, field):
    kept, problems = with_vif(small_pool(), **changes)
    assert "i1" not in kept.vifs and field in fields(problems, "u-i1")


def test_a_mistyped_locking_override_locks_never_unlocks():
    state = small_pool()
    kept, problems = with_vif(state, locking_mode="unlocked",
                              other_config=FrozenMap({"netctl-locking-mode": "lockd"}))
    message = fields(problems, "u-i1")["other_config:netctl-locking-mode"]
    assert "'lockd' is not one of locked, unlocked, disabled" in message
    assert "enforced as locked" in message
    locking = locking_of(kept, kept.vifs["i1"])
    assert (locking.mode, locking.ipv4) == ("locked", ("10.0.0.1",))  # its own addresses


def test_allowed_addresses_that_do_not_parse_are_left_out_the_vif_stays_locked():
    kept, problems = with_vif(small_pool(), ipv4_allowed=("10.0.0.1", "10.0.0.256"),
                              ipv6_allowed=("fd00::1", "fd00::zz"))
    vif = kept.vifs["i1"]
    assert (vif.ipv4_allowed, vif.ipv6_allowed) == (("10.0.0.1",), ("fd00::1",))
    assert locking_of(kept, vif).mode == "locked"
    assert {"ipv4_allowed", "ipv6_allowed"} <= fields(problems, "u-i1").keys()


def test_an_unknown_locking_mode_is_enforced_as_locked():
    kept, problems = with_vif(small_pool(), locking_mode="lockedd")
    assert locking_of(kept, kept.vifs["i1"]).mode == "locked"
    assert "enforced as locked" in fields(problems, "u-i1")["locking_mode"]


def test_a_network_keeps_its_vifs_when_its_mtu_or_default_is_bad():
    state = small_pool()
    bad = replace(state.networks["n1"], mtu=20000, default_locking_mode="weird")
    kept, problems = validate(state.replace(networks={**state.networks, "n1": bad}))
    assert "n1" in kept.networks and "i2" in kept.vifs and "p3" in kept.pifs
    assert kept.networks["n1"].mtu == 1500
    assert locking_of(kept, kept.vifs["i2"]).mode == "disabled"  # network_default: strictest
    assert {"MTU", "default_locking_mode"} <= fields(problems, "u-n1").keys()


@pytest.mark.parametrize("key,value", [
    ("vswitch-controller-fail-mode", "bogus"), ("vswitch-disable-in-band", "maybe")])
def test_a_bad_network_or_pool_key_is_ignored_and_said(key, value):
    state = small_pool()
    net = replace(state.networks["n2"], other_config=FrozenMap({key: value}))
    pool = replace(state.pool, other_config=FrozenMap({key: value}))
    kept, problems = validate(state.replace(networks={**state.networks, "n2": net}, pool=pool))
    assert "n2" in kept.networks
    for uuid in ("u-n2", "u-pool"):
        assert f"'{value}' is not one of" in fields(problems, uuid)[f"other_config:{key}"]


def test_a_pif_with_a_bad_mtu_still_builds_its_bridge():
    state = small_pool()
    pif = replace(state.pifs["p2"], other_config=FrozenMap({"mtu": "jumbo"}),
                  currently_attached=True)
    state = state.replace(pifs={**state.pifs, "p2": pif})
    kept, problems = validate(state)
    assert "p2" in kept.pifs and "9216" in fields(problems, "u-p2")["other_config:mtu"]
    config = compile_host(state, "h2")
    assert config.bridge("xenbr0").port("eth0").interfaces[0].mtu_request == 9000


def test_a_bad_bond_override_is_passed_over_and_the_bond_built():
    state = small_pool()
    p2 = replace(state.pifs["p2"], other_config=FrozenMap({"bond-downdelay": "soon"}))
    kept, problems = validate(state.replace(pifs={**state.pifs, "p2": p2}))
    assert "p2" in kept.pifs
    assert "non-negative integer" in fields(problems, "u-p2")["other_config:bond-downdelay"]


def test_a_bad_bond_property_is_dropped_not_the_bond():
    state = small_pool()
    p5 = PIF("p5", "u-p5", device="eth1", host="h2", network="n0", mac="02:00:00:00:00:05",
             physical=True)
    b = Bond("b1", "u-b1", master="p2", slaves=("p2", "p5"), mode="lacp",
             properties=FrozenMap({"lacp-time": "medium", "hashing_algorithm": "src_mac"}))
    kept, problems = validate(state.replace(pifs={**state.pifs, "p5": p5}, bonds={"b1": b}))
    assert "b1" in kept.bonds
    assert dict(kept.bonds["b1"].properties) == {"hashing_algorithm": "src_mac"}
    assert "one of fast, slow" in fields(problems, "u-b1")["properties:lacp-time"]


def test_every_key_has_words_for_what_a_bad_value_becomes():
    for cls, keys in ALL_KEYS.items():
        for key in keys:
            assert key.allowed and key.if_bad, (cls, key.name)
            assert key.value("\x00not a value\x00") is None
    assert {k.name for k in BOND_OVERRIDES} >= {"bond-updelay", "bond-lacp-time"}


def test_one_declaration_reads_and_checks():
    vif = VIF("v", "u", other_config=FrozenMap({"netctl-locking-mode": "Locked"}))
    assert LOCKING_OVERRIDE.read(vif) is None and LOCKING_OVERRIDE.finding(vif) is not None
    ok = replace(vif, other_config=FrozenMap({"netctl-locking-mode": "locked"}))
    assert LOCKING_OVERRIDE.read(ok) == "locked" and LOCKING_OVERRIDE.finding(ok) is None
    assert Network("n", "u").other_config == FrozenMap()
