"""A VIF's xapi rate limit as an OpenFlow meter on what the VM sends: pure arithmetic, no I/O.

xapi's intent is `VIF.qos_algorithm_type = "ratelimit"` with `qos_algorithm_params:kbps`. The
unit is xapi's own: xenopsd (`ocaml/xenopsd/xc/device.ml`, which reads the key in
`xapi_xenops.ml`) hands the value to netback as *kilobytes* per second: it writes
`rate=<kbps x 1024 bytes per timeslice>,<timeslice µs>` in the backend's xenstore, so
`kbps=1000` lets a VM send 1,024,000 bytes a second. netctl enforces the same figure, so a VM
gets the same limit under netctl as under xapi's scripts, on the direction netback limits:
what the VM *sends* (frames entering the switch from the VIF's port).

Why a meter, not `Interface.ingress_policing_rate`: measured (tests/lab/test_qos.py, OVS 3.1).
OVS polices an interface through a tc police action; the userspace datapath reads a port
through an AF_PACKET socket, which sees frames before tc ingress, so the limit is not enforced
there at all (60 Mbit/s offered arrives at 58-60 Mbit/s under a 20 Mbit/s policer). An
OpenFlow 1.3 meter is enforced by ovs-vswitchd itself in both datapaths (the kernel datapath
has meters since Linux 4.15), sits in netctl's own pipeline (the VIF's classify flows carry the
meter instruction) and is diffed like a flow. One meter per rate-limited VIF port: its id is
the port's OpenFlow number (so a bridge never needs more meters than ports; ids above
`flows.pipeline.MAX_METER` are never netctl's and never touched).

OpenFlow meters count kbit/s of 1000 bits, so the rate is `kbps x 1024 x 8 / 1000` (x 8.192),
rounded. The band drops (a policer: the userspace datapath cannot shape). Burst: half a
second's worth (`BURST_DIVISOR`), by measurement (tests/lab/test_qos.py, iperf3 through the
lab's meters at 20 Mbit/s): a policer drops rather than queues, and TCP backs off below the
rate when the bucket is small (a quarter second's bucket: TCP 17.9-18.6 Mbit/s, -7 to -10%;
half a second's: see the test's output), while UDP's steady rate does not depend on the bucket
(a full bucket only lets one burst through at the start). Never less than `MIN_BURST_KBIT`,
four jumbo frames: a bucket smaller than one frame would drop every frame of that size
whatever the rate.

A value netctl cannot use is reported by `netctl.model.validation` (`qos_algorithm_params:kbps`
not a positive integer, an algorithm other than ratelimit) and the VIF is applied without a
limit; this module therefore only sees good intent, and reads absent as "no limit".
"""

from __future__ import annotations

from typing import NamedTuple

from netctl.model import VIF
from netctl.model.keys import QOS_KBPS

KIB_BITS = 1024 * 8  # bits in one of xapi's kilobytes
MIN_BURST_KBIT = 8 * 9018 * 4 // 1000  # four 9000-byte frames (with their Ethernet header)
BURST_DIVISOR = 2  # burst = rate / 2: half a second's worth


class MeterBand(NamedTuple):
    """One meter's drop band as OpenFlow states it: rate in kbit/s, burst in kbit."""

    rate_kbit: int
    burst_kbit: int


def vif_kbps(vif: VIF) -> int | None:
    """The VIF's rate limit in xapi's kbps (KiB/s), or None when it has none (or a bad one)."""
    if vif.qos_algorithm_type != "ratelimit":
        return None
    kbps = QOS_KBPS.read(vif)
    return kbps if kbps else None


def rate_kbit(kbps: int) -> int:
    """xapi's KiB/s as OpenFlow's kbit/s (1000 bits), rounded; at least 1 for any positive
    rate."""
    return max(1, (kbps * KIB_BITS + 500) // 1000)


def burst_kbit(rate: int) -> int:
    return max(MIN_BURST_KBIT, rate // BURST_DIVISOR)


def vif_band(vif: VIF) -> MeterBand | None:
    """The meter band that enforces this VIF's limit, or None: no limit."""
    kbps = vif_kbps(vif)
    if kbps is None:
        return None
    rate = rate_kbit(kbps)
    return MeterBand(rate, burst_kbit(rate))
