"""What the poller asks a switch for to read VIF locking's drop counters (`flows.drops`):
the flow-stats filter of the drop flows, and the kind each one's cookie names. Here so the
poller (a source) reads the compilers' cookies through the statistics room."""

from __future__ import annotations

from flows.drops import DROP_MASK, DROP_TAG, KINDS, kind_of
from flows.pipeline import COOKIE, PORT_SECURITY

DROP_COOKIE = COOKIE | DROP_TAG  # every drop flow's cookie, under DROP_MASK
DROP_TABLE = PORT_SECURITY  # where locking's drop flows are

__all__ = ["DROP_COOKIE", "DROP_MASK", "DROP_TABLE", "KINDS", "kind_of"]
