"""The latest counters of every switch port, and rates from the two latest readings.

Written by one thread (the poller, a switch at a time: a reading replaces that switch's ports
in one assignment), read by any (the HTTP views, `netctl top`): a reader sees each switch as
one reading left it, never half of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

COUNTERS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_dropped", "tx_dropped",
            "rx_errors", "tx_errors")
RATES = ("rx_bps", "tx_bps", "rx_pps", "tx_pps")  # bits and packets per second
UNSET = 0xFFFF_FFFF_FFFF_FFFF  # OpenFlow's "this counter is not available"


class PortReading(NamedTuple):
    """One port's counters as the switch counts them (OpenFlow/OVS: rx = what the port
    received, so for a VIF what its VM sent), its rates since the reading before, and for a
    VIF the packets VIF locking dropped, by kind (`flows.drops`). A named tuple: a round at
    64 x 1000 makes ~80,000 of them, and a frozen dataclass costs three times as much."""

    name: str
    counters: tuple[int, ...]  # in COUNTERS' order
    rates: tuple[float, ...]  # in RATES' order
    drops: Mapping[str, int] | None = None
    drop_pps: float = 0.0  # locking's drops per second since the reading before

    def as_dict(self) -> dict:
        out: dict = dict(zip(COUNTERS, self.counters, strict=False))
        out.update(zip(RATES, (round(r, 1) for r in self.rates), strict=False))
        out["drops"] = dict(self.drops) if self.drops is not None else None
        out["drop_pps"] = round(self.drop_pps, 1)
        return out

    @property
    def bps(self) -> float:
        """Both directions, bits per second."""
        return self.rates[0] + self.rates[1]


@dataclass(frozen=True)
class SwitchReading:
    at: float  # when the port statistics were read (wall clock)
    ports: Mapping[int, PortReading]  # port number -> reading


def counters_of(values: Iterable[int]) -> tuple[int, ...]:
    """Counters as the switch sent them, an unavailable one (all ones) as 0."""
    return tuple(0 if v == UNSET else int(v) for v in values)


def rates_between(old: tuple[int, ...], new: tuple[int, ...], seconds: float) -> tuple[float, ...]:
    """Bits and packets per second between two readings. A counter that went down (the port
    was recreated, the switch restarted) starts again from zero: its rate is what it counts
    now over the interval, never negative."""
    if seconds <= 0:
        return (0.0, 0.0, 0.0, 0.0)
    rx_b, tx_b, rx_p, tx_p = new[0], new[1], new[2], new[3]
    return ((rx_b - old[0] if rx_b >= old[0] else rx_b) * 8 / seconds,
            (tx_b - old[1] if tx_b >= old[1] else tx_b) * 8 / seconds,
            (rx_p - old[2] if rx_p >= old[2] else rx_p) / seconds,
            (tx_p - old[3] if tx_p >= old[3] else tx_p) / seconds)


_IDLE = (0.0, 0.0, 0.0, 0.0)


class StatsTable:
    """Per switch (datapath id): its latest reading."""

    def __init__(self) -> None:
        self._switches: dict[int, SwitchReading] = {}
        self.rounds = 0  # poll rounds completed
        self.last_round: float | None = None  # wall clock of the last completed round

    def ports(self, dpid: int, at: float, entries: Iterable[tuple[int, str, tuple[int, ...]]],
              drops: Mapping[int, Mapping[str, int]] | None = None) -> None:
        """A switch's port statistics read at `at`: (port number, name, counters) per port,
        and the drop counters by port number and kind (None: not read this time; the last
        ones are kept). The mappings handed in are kept as they are: not to be changed after."""
        old = self._switches.get(dpid)
        before_ports = old.ports if old is not None else {}
        seconds = at - old.at if old is not None else 0.0
        ports: dict[int, PortReading] = {}
        for number, name, counters in entries:
            before = before_ports.get(number)
            same = before is not None and before.name == name
            if same and before.counters == counters:
                rates = _IDLE  # nothing moved (most ports of a quiet pool)
            elif same:
                rates = rates_between(before.counters, counters, seconds)
            else:
                rates = _IDLE
            if drops is not None:
                port_drops = drops.get(number)
            else:
                port_drops = before.drops if before is not None else None
            drop_pps = 0.0
            if same and port_drops and before.drops and seconds > 0 \
                    and port_drops != before.drops:
                grew = sum(port_drops.values()) - sum(before.drops.values())
                drop_pps = max(grew, 0) / seconds
            ports[number] = PortReading(name, counters, rates, port_drops, drop_pps)
        self._switches[dpid] = SwitchReading(at, ports)

    def round_done(self, at: float) -> None:
        self.rounds += 1
        self.last_round = at

    def forget(self, dpid: int) -> None:
        """The switch is gone (or another instance masters it): its figures would go stale."""
        self._switches.pop(dpid, None)

    def switches(self) -> dict[int, SwitchReading]:
        """A copy of the per-switch readings (each reading is immutable)."""
        return dict(self._switches)
