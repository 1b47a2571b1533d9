"""The map keys netctl reads from xapi objects, each with its allowed values, in one place.

xapi accepts any string in `other_config` (and in a bond's `properties`, a VIF's
`qos_algorithm_params`), so a typo reaches netctl as it was typed. Every key netctl reads is
declared here once, with what it accepts and what netctl does with a value it cannot use; the
same declaration reads the value (`Key.read`: the value as netctl uses it, or None when the key
is absent or its value is not allowed) and checks it (`Key.finding`: a Problem's field and
words, the allowed values in them). What is accepted is therefore exactly what is applied, and
a bad value is never applied in silence.

A bad value costs only itself: it is read as if it were absent (the next source applies: the
network's MTU, the bridge's default), except where absence would be less safe than what was
asked for. The one such key is `netctl-locking-mode` (VIF): a mode netctl cannot read is
enforced as `locked` (`BAD_LOCKING_OVERRIDE`), never as the VIF's own, possibly unlocked, mode
(see `flows.locking`).

Keys netctl does not read stay xapi's business: they are neither checked nor reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from netctl.model import rules
from netctl.model.export import ValueReason, parse_targets, sflow_agent
from netctl.model.mirror import DIRECTIONS, parse_target

# The mode a VIF whose netctl-locking-mode override cannot be read is enforced in: what the
# operator most likely meant (the override exists to ask for locking), and the strictest mode
# that keeps the VIF's allowed addresses working. Never `unlocked`.
BAD_LOCKING_OVERRIDE = "locked"


@dataclass(frozen=True)
class Key:
    """One map key netctl reads: where (`source`: the object's map field), what it accepts
    (`allowed`, in the words of a Problem; `parse` raises ValueError for anything else) and
    what a bad value becomes (`if_bad`, in the words of a Problem)."""

    name: str
    source: str  # "other_config", "properties" or "qos_algorithm_params"
    allowed: str
    parse: Callable[[str], Any]
    if_bad: str

    @property
    def field(self) -> str:
        """The key as a Problem names it: `other_config:mtu`."""
        return f"{self.source}:{self.name}"

    def raw(self, obj: Any) -> str | None:
        return getattr(obj, self.source).get(self.name)

    def value(self, raw: str | None) -> Any | None:
        """A raw value as netctl uses it; None when it is absent or not allowed."""
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except ValueError:
            return None

    def read(self, obj: Any) -> Any | None:
        """The object's value as netctl uses it; None when absent or not allowed."""
        return self.value(self.raw(obj))

    def finding(self, obj: Any) -> tuple[str, str] | None:
        """(field, message) when the object holds a value this key does not allow."""
        raw = self.raw(obj)
        if raw is None or self.read(obj) is not None:
            return None
        return self.field, f"'{raw}' is not {self.allowed}{self.reason(raw)}; {self.if_bad}"

    def reason(self, raw: str) -> str:
        """Why a bad value is bad, when its parser says more than "not allowed" (a list's
        parser names the entry that is wrong: `ValueReason`), as " (...)"; else ""."""
        try:
            self.parse(raw)
        except ValueReason as exc:
            return f" ({exc})"
        except ValueError:
            pass
        return ""


def one_of(*values: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in values:
            raise ValueError(raw)
        return raw
    return parse


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(raw)
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError(raw)
        return value
    return parse


def first_read(key: Key, objs: Iterable[Any]) -> Any | None:
    """The first object (in priority order) that holds a good value for `key`: a bad value
    is passed over, as if it were absent, and the next source applies."""
    for obj in objs:
        if obj is not None:
            value = key.read(obj)
            if value is not None:
                return value
    return None


def key_findings(obj: Any, keys: Iterable[Key]) -> list[tuple[str, str]]:
    """Every bad value of these keys in one object, in the order the keys are declared."""
    return [f for key in keys if (f := key.finding(obj)) is not None]


# --------------------------------------------------------------------------------- the keys
# A PIF's MTU is what a host NIC carries (xapi/networkd accept 68-9216); a VIF's is its
# backend's (netback: up to 65535).
PIF_MTU = Key("mtu", "other_config", "an MTU a host NIC can carry (an integer 68-9216)",
              integer(68, 9216), "ignored: the network's MTU applies")
VIF_MTU = Key("mtu", "other_config", "an MTU (an integer 68-65535)", integer(68, 65535),
              "ignored: the network's MTU applies")
LOCKING_OVERRIDE = Key(
    "netctl-locking-mode", "other_config", "one of locked, unlocked, disabled",
    one_of("locked", "unlocked", "disabled"),
    f"the VIF is enforced as {BAD_LOCKING_OVERRIDE} (to its allowed addresses) until it is "
    "corrected, never as its own locking_mode")
FAIL_MODE = Key("vswitch-controller-fail-mode", "other_config", "one of secure, standalone",
                one_of("secure", "standalone"),
                "ignored: the next of PIF, network, pool that sets it decides, else secure")
DISABLE_IN_BAND = Key("vswitch-disable-in-band", "other_config", "one of true, false",
                      one_of("true", "false"),
                      "ignored: the next of PIF, network, pool that sets it decides, else OVS's "
                      "default")
# xapi hands `kbps` to netback as kilobytes (1024 bytes) per second; 0 would be no limit at all
# (netback and OVS alike), never what a "ratelimit" asks for. Enforced by `flows.qos`.
QOS_KBPS = Key("kbps", "qos_algorithm_params", "a rate in KiB/s (a positive integer)",
               integer(1), "the VIF is applied without a rate limit")

# Flow export (NetFlow, IPFIX, sFlow; `netctl.model.export`, built by `vlan.export`): pool-wide
# on the pool, per bridge on a network (a network's value replaces the pool's, key by key; a
# network's target list starting with "+" adds to the pool's; "none" turns the kind off).
_TARGETS = ("a comma-separated list of collectors IPv4:PORT or [IPv6]:PORT, optionally "
            "starting with + on a network, or none")
_FROM_POOL = "ignored: on a network the pool's value applies; on the pool, OVS's default"
NETFLOW_TARGETS = Key("netflow-targets", "other_config", _TARGETS, parse_targets,
                      "ignored: on a network the pool's collectors apply; on the pool, none")
NETFLOW_ACTIVE_TIMEOUT = Key("netflow-active-timeout", "other_config",
                             "seconds (an integer 1-86400)", integer(1, 86400), _FROM_POOL)
IPFIX_TARGETS = Key("ipfix-targets", "other_config", _TARGETS, parse_targets,
                    "ignored: on a network the pool's collectors apply; on the pool, none")
IPFIX_SAMPLING = Key("ipfix-sampling", "other_config",
                     "1 in N packets (an integer 1-4294967295)", integer(1, 2 ** 32 - 1),
                     "ignored: on a network the pool's value applies; else 1 in 400")
IPFIX_ACTIVE_TIMEOUT = Key("ipfix-active-timeout", "other_config",
                           "seconds (an integer 0-4200)", integer(0, 4200), _FROM_POOL)
SFLOW_TARGETS = Key("sflow-targets", "other_config", _TARGETS, parse_targets,
                    "ignored: on a network the pool's collectors apply; on the pool, none")
SFLOW_SAMPLING = Key("sflow-sampling", "other_config",
                     "1 in N packets (an integer 1-4294967295)", integer(1, 2 ** 32 - 1),
                     "ignored: on a network the pool's value applies; else 1 in 400")
SFLOW_POLLING = Key("sflow-polling", "other_config",
                    "seconds between counter samples (an integer 0-3600; 0: none)",
                    integer(0, 3600),
                    "ignored: on a network the pool's value applies; else 30 s")
SFLOW_HEADER = Key("sflow-header", "other_config", "bytes of each sampled packet (an integer "
                   "18-512)", integer(18, 512),
                   "ignored: on a network the pool's value applies; else 128")
SFLOW_AGENT = Key("sflow-agent", "other_config", "a device name or an IP address", sflow_agent,
                  "ignored: on a network the pool's value applies; else OVS names the address "
                  "it reaches the collector from")
EXPORT_KEYS = (NETFLOW_TARGETS, NETFLOW_ACTIVE_TIMEOUT, IPFIX_TARGETS, IPFIX_SAMPLING,
               IPFIX_ACTIVE_TIMEOUT, SFLOW_TARGETS, SFLOW_SAMPLING, SFLOW_POLLING, SFLOW_HEADER,
               SFLOW_AGENT)

# Port mirroring (`netctl.model.mirror`, placed by `vlan.mirror`): on a VIF (that VIF) or a
# network (each of its VIFs), where the copies go and which way.
MIRROR_TO = Key("netctl-mirror-to", "other_config",
                "a monitoring VIF's uuid or vlan:N (an RSPAN VLAN 1-4094)", parse_target,
                "nothing is mirrored")
MIRROR_DIRECTION = Key("netctl-mirror-direction", "other_config",
                       f"one of {', '.join(DIRECTIONS)}", one_of(*DIRECTIONS),
                       "both directions are mirrored")
MIRROR_KEYS = (MIRROR_TO, MIRROR_DIRECTION)

# Traffic rules (`netctl.model.rules`: the syntax, what a bad rule becomes; `flows.rules`: the
# flows): a VIF's own, then its network's. Never unreadable as a whole: each bad rule is its
# own Problem (`rules.parse(...).bad`, reported by `validation.rule_findings`), the rest apply.
@dataclass(frozen=True)
class RulesKey(Key):
    """`read` gives a list only when every rule reads (else None, as for any key); netctl
    enforces `rules.parse` (the good rules, and bad ones as that module says), and reports
    one Problem per bad rule (`validation.rule_findings`) rather than one for the key."""

    def finding(self, obj: Any) -> tuple[str, str] | None:
        return None


RULES = RulesKey(rules.KEY, "other_config", rules.SYNTAX, rules.parse_strict,
                 "each bad rule is its own Problem, saying what it is enforced as; the other "
                 "rules apply")

# A bond's properties (xapi `Bond.properties`, for mode lacp) and the bond master PIF's
# `other_config:bond-<k>` overrides (what networkd passes OVS). Unknown bond-<k> keys go to
# OVS verbatim (`other_config:bond-<k>`), as networkd does: they are OVS's to read.
BOND_PROPERTIES = (  # for mode lacp; xapi accepts no property for the other modes
    Key("hashing_algorithm", "properties", "one of src_mac, tcpudp_ports",
        one_of("src_mac", "tcpudp_ports"), "ignored: the bond hashes by tcpudp_ports"),
    Key("lacp-time", "properties", "one of fast, slow", one_of("fast", "slow"),
        "ignored: LACP runs at OVS's default (slow)"),
    Key("lacp-aggregation-key", "properties", "an integer", integer(-(2 ** 31)),
        "ignored: OVS chooses the key"),
    Key("lacp-fallback-ab", "properties", "one of true, false", one_of("true", "false"),
        "ignored: OVS's default (false) applies"),
)
_BOND_OVERRIDE_RULES: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "updelay": ("a non-negative integer (ms)", integer(0), "ignored: networkd's 31000 applies"),
    "downdelay": ("a non-negative integer (ms)", integer(0), "ignored: networkd's 200 applies"),
    "miimon": ("a non-negative integer (ms)", integer(0), "ignored: networkd's 100 applies"),
    "use_carrier": ("a non-negative integer", integer(0), "ignored: carrier detection applies"),
    "rebalance-interval": ("a non-negative integer (ms)", integer(0),
                           "ignored: networkd's 1800000 applies"),
    "lacp-time": ("one of fast, slow", one_of("fast", "slow"), "ignored"),
    "lacp-fallback-ab": ("one of true, false", one_of("true", "false"), "ignored"),
    "lacp-aggregation-key": ("an integer", integer(-(2 ** 31)), "ignored"),
    "lacp-actor-key": ("an integer", integer(-(2 ** 31)), "ignored"),
    "mode": ("one of balance-slb, active-backup, lacp",
             one_of("balance-slb", "active-backup", "lacp"), "ignored: the bond's mode applies"),
    "hashing-algorithm": ("one of src_mac, tcpudp_ports", one_of("src_mac", "tcpudp_ports"),
                          "ignored: the bond's own hashing algorithm applies"),
}
BOND_OVERRIDES = tuple(Key(f"bond-{name}", "other_config", allowed, parse, if_bad)
                       for name, (allowed, parse, if_bad) in _BOND_OVERRIDE_RULES.items())
BOND_OVERRIDE = {key.name: key for key in BOND_OVERRIDES}

# Which keys each class's object is checked for (what netctl reads of it).
POOL_KEYS = (FAIL_MODE, DISABLE_IN_BAND, *EXPORT_KEYS)
NETWORK_KEYS = (FAIL_MODE, DISABLE_IN_BAND, *EXPORT_KEYS, *MIRROR_KEYS, RULES)
PIF_KEYS = (PIF_MTU, FAIL_MODE, DISABLE_IN_BAND, *BOND_OVERRIDES)
VIF_KEYS = (VIF_MTU, LOCKING_OVERRIDE, *MIRROR_KEYS, RULES)
ALL_KEYS: Mapping[str, tuple[Key, ...]] = {
    "pool": POOL_KEYS, "network": NETWORK_KEYS, "PIF": PIF_KEYS, "VIF": VIF_KEYS,
    "Bond": BOND_PROPERTIES,
}
