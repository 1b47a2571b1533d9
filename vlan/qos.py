"""A VIF's xapi rate limit as OVS ingress policing on its interface: pure arithmetic, no I/O.

xapi's intent is `VIF.qos_algorithm_type = "ratelimit"` with `qos_algorithm_params:kbps`. The
unit is xapi's own: xenopsd (`ocaml/xenopsd/xc/device.ml`, which reads the key in
`xapi_xenops.ml`) hands the value to netback as *kilobytes* per second: it writes
`rate=<kbps x 1024 bytes per timeslice>,<timeslice µs>` in the backend's xenstore, so
`kbps=1000` lets a VM send 1,024,000 bytes a second. netctl enforces the same figure, so a VM
gets the same limit under netctl as under xapi's scripts, on the direction netback limits:
what the VM *sends* (traffic *into* the switch from the VIF, which is what OVS's
`Interface.ingress_policing_*` polices).

OVS counts `ingress_policing_rate` in kbit/s of 1000 bits and `ingress_policing_burst` in kbit,
so the rate is `kbps x 1024 x 8 / 1000` (x 8.192), rounded to the nearest kbit/s.

Burst. xapi's scripts accept no burst key (only `kbps` and `timeslice_us`, netback's refill
interval, which netctl does not read: OVS's token bucket refills continuously). netctl sets
the burst to 10% of the rate, the usual floor for a policer (a policer drops, it does not
queue: with a smaller bucket TCP backs off well below the rate; OVS's own default, 8000 kbit
whatever the rate, is 40% of a second at 20 Mbit/s and lets a VM burst far past a small
limit), and never less than `MIN_BURST_KBIT`, which holds four jumbo frames: a bucket smaller
than one frame would drop every frame of that size whatever the rate. Not yet measured: OVS
polices a netdev-linux port with a tc ingress action, which the lab's userspace datapath (veth
ports read through AF_PACKET, ahead of tc) does not enforce; see tests/lab/test_qos.py.

A value netctl cannot use is reported by `netctl.model.validation` (`qos_algorithm_params:kbps`
not a positive integer, an algorithm other than ratelimit) and the VIF is applied without a
limit; this module therefore only sees good intent, and reads absent as "no limit" (rate 0,
which is how OVS spells "no policing").
"""

from __future__ import annotations

from dataclasses import dataclass

from netctl.model import VIF
from netctl.model.keys import QOS_KBPS

KIB_BITS = 1024 * 8  # bits in one of xapi's kilobytes
MIN_BURST_KBIT = 8 * 9018 * 4 // 1000  # four 9000-byte frames (with their Ethernet header)
BURST_FRACTION = 10  # burst = rate / 10: a tenth of a second's worth


@dataclass(frozen=True)
class Policing:
    """`Interface.ingress_policing_rate` (kbit/s) and `ingress_policing_burst` (kbit), as
    OVS stores them; (0, 0) is no policing."""

    rate_kbit: int = 0
    burst_kbit: int = 0

    @property
    def enabled(self) -> bool:
        return self.rate_kbit > 0


NO_POLICING = Policing()


def vif_kbps(vif: VIF) -> int | None:
    """The VIF's rate limit in xapi's kbps (KiB/s), or None when it has none (or a bad one)."""
    if vif.qos_algorithm_type != "ratelimit":
        return None
    kbps = QOS_KBPS.read(vif)
    return kbps if kbps else None


def rate_kbit(kbps: int) -> int:
    """xapi's KiB/s as OVS's kbit/s (1000 bits), rounded; at least 1 for any positive rate."""
    return max(1, (kbps * KIB_BITS + 500) // 1000)


def burst_kbit(rate: int) -> int:
    return max(MIN_BURST_KBIT, rate // BURST_FRACTION)


def vif_policing(vif: VIF) -> Policing:
    """What OVS should police on this VIF's interface."""
    kbps = vif_kbps(vif)
    if kbps is None:
        return NO_POLICING
    rate = rate_kbit(kbps)
    return Policing(rate, burst_kbit(rate))
