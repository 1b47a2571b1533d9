"""The pure part of coordination (issue 20): who should master which host, and until when an
instance may still consider itself a writer. No etcd, no clock of its own, no threads: the
coordinator (`service/coordination.py`) feeds it the live instances, the hosts and the times
it measured, and the unit tests feed it numbers.

**The share: rendezvous (highest random weight) hashing.** Each host goes to the live instance
with the highest `weight(instance, host)`, a hash of both. An instance that leaves takes only
its own hosts with it (every other host's highest weight is unchanged); an instance that joins
takes exactly the hosts where it now weighs most, about 1/N of them, each from whichever
instance had it. Every instance computes the same answer from the same (sorted) list, with no
message between them, and a host's master moves only when the set of instances does: moving a
host is a role change on its switches, which the issue wants rare and without churn.

**The writer deadline.** etcd expires a lease no earlier than TTL after the leader processes
the keepalive that last renewed it, and the leader processes it after the client sent it. So
if a keepalive *sent* at local monotonic time `t` succeeded, the lease — and every mastership
key bound to it — lives on the server at least until `t + TTL` (the server's and the client's
clocks advance at the same rate to well within a few percent; etcd also never expires a lease
early on a leader change: a new leader extends every lease). Another instance can claim a host
only after the key is gone. An instance therefore stops considering itself a writer at
`t + TTL - margin`: the margin (TTL/3 by default) covers clock-rate drift, the time between
`is_writer()` answering True and the write it allowed reaching the switch, and a thread
scheduled late. Measuring from the *send* time, not the reply, is what makes a slow reply
harmless. The deadline only moves forward, so a late success of an older keepalive never
shortens or falsely extends it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit


def parse_url(url: str) -> list[tuple[str, int]]:
    """`etcd3+http://H1:P1,H2:P2` (or `etcd3gw+http://...`, tooz's spelling) -> the members'
    (host, port), in order."""
    parts = urlsplit(url)
    if parts.scheme not in ("etcd3+http", "etcd3gw+http", "http"):
        raise ValueError(f"coordination URL {url!r}: expected etcd3+http://HOST:PORT[,...]")
    out = []
    for item in parts.netloc.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"coordination URL {url!r}: {item!r} is not HOST:PORT")
        out.append((host.strip("[]"), int(port)))
    return out


def weight(instance: str, host: str) -> int:
    """The rendezvous weight of `instance` for `host`: 64 bits of BLAKE2b over both names
    (stable across processes and Python versions, unlike `hash()`)."""
    digest = hashlib.blake2b(f"{instance}\0{host}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(instances: Sequence[str], host: str) -> str | None:
    """The instance that should master `host`: the highest weight, ties (practically never)
    broken by the instance's name so every instance agrees. None without instances."""
    if not instances:
        return None
    return max(instances, key=lambda i: (weight(i, host), i))


def desired_share(instances: Iterable[str], hosts: Iterable[str]) -> dict[str, frozenset[str]]:
    """Every live instance -> the hosts it should master (an instance with none maps to an
    empty set). Each host goes to exactly one instance; the order of the inputs does not
    matter (duplicates neither)."""
    live = sorted(set(instances))
    out: dict[str, set[str]] = {i: set() for i in live}
    if live:
        for host in sorted(set(hosts)):
            out[owner(live, host)].add(host)  # type: ignore[index]
    return {i: frozenset(h) for i, h in out.items()}


def moved(before: Mapping[str, frozenset[str]], after: Mapping[str, frozenset[str]]
          ) -> set[str]:
    """The hosts whose owner differs between two shares (a host present in only one of them
    counts as moved). What a rebalance costs, in role changes."""
    def owners(share: Mapping[str, frozenset[str]]) -> dict[str, str]:
        return {h: i for i, hosts in share.items() for h in hosts}

    a, b = owners(before), owners(after)
    return {h for h in a.keys() | b.keys() if a.get(h) != b.get(h)}


class WriterDeadline:
    """Until when this instance may write, from the send times of its successful keepalives
    (see the module's docstring). Pure: every time is passed in (time.monotonic() values)."""

    def __init__(self, ttl: float, margin: float | None = None) -> None:
        if ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        self.ttl = ttl
        self.margin = ttl / 3 if margin is None else margin
        if not 0 <= self.margin < ttl:
            raise ValueError("the margin must be at least 0 and below the TTL")
        self._sent: float | None = None  # send time of the latest successful keepalive

    def renewed(self, sent_at: float, granted_ttl: float | None = None) -> None:
        """A keepalive (or the grant) sent at `sent_at` succeeded, the server granting
        `granted_ttl` seconds (never trusted beyond the TTL asked for: a shorter grant
        shortens the deadline, a longer one does not lengthen it)."""
        ttl = self.ttl if granted_ttl is None else min(self.ttl, granted_ttl)
        if ttl < self.ttl:  # rare (etcd grants at least what it is asked): keep it exact
            sent_at -= self.ttl - ttl
        if self._sent is None or sent_at > self._sent:
            self._sent = sent_at

    def lost(self) -> None:
        """The lease is gone (expired or revoked on the server): no deadline at all."""
        self._sent = None

    def deadline(self) -> float | None:
        """The monotonic time at which writing must have stopped; None: never allowed."""
        return None if self._sent is None else self._sent + self.ttl - self.margin

    def fresh(self, now: float) -> bool:
        d = self.deadline()
        return d is not None and now < d
