"""Mastership per host on etcd (issue 20, groundwork): several `netctl run` instances, exactly
one master of a host at a time, a generation id that only grows, and an instance that loses
etcd stopping to write before anyone else can start. `netctl run --coordination` runs one
(`netctl.service.run`); the OpenFlow sink turns its masterships into role requests.

**Why etcd leases and transactions, through etcd3gw.** etcd is the engine (Raft, leases,
linearizable reads); netctl adds no consensus of its own. tooz's etcd3gw driver offers locks
and group membership but no leader election, and a lock is the wrong shape for "one master per
host, spread over the instances, fenced by a generation": so mastership is built directly on
the two primitives that give it, with the client tooz itself uses (etcd3gw: etcd's v3 JSON
gateway over plain HTTP, pure Python, no gRPC stack beside os-ken's eventlet):

- an instance *joins* with a lease (TTL, default 3 s) and a key `/netctl/instances/<id>`
  bound to it; a thread renews the lease every TTL/3. A process killed with -9 stops renewing;
  etcd deletes its keys TTL later.
- `claim(host)` is one transaction: if `/netctl/masters/<host>` does not exist
  (`create_revision == 0`), put it with the instance's id, bound to its lease. At most one
  instance can succeed; the key dies with the lease. The **generation** of a mastership is the
  key's create revision: etcd's revision only grows, so a later mastership of the same host
  always has a higher one (usable as the OpenFlow role request's `generation_id`).
- `release(host)` deletes the key only if its create revision is still the one held.

**Safety: never outlive the lease as a writer.** `is_writer(host)` is True only while the
host's key is held *and* the latest successful keepalive was sent less than TTL - margin ago
(`mastership.WriterDeadline`, which explains why that is before etcd can expire the lease).
It reads `time.monotonic()` at each call, so it turns False on time even if every thread of
this module is stuck in a request. `on_gained(host, generation)` / `on_lost(host)` are
notifications, fired from the coordinator's thread (`netctl-coord`) when it notices — the
writer must still ask `is_writer` before each write.

**Why polling, not etcd3gw's watch.** The coordinator thread reads the whole `/netctl/`
prefix (instances and masters: one small linearizable range request) every `poll_interval`
(TTL/12 by default, 0.25 s at TTL 3). etcd3gw's watcher is a streaming POST with no timeout
whose end (a member killed, the gateway closing it) is silent — no error, no reconnect, and it
shares the client's `requests` session across threads; a missed deletion would leave a host
without a master. A poll cannot miss state (it reads state, not events), doubles as a quorum
check, costs one loopback-sized request per interval, and bounds the reaction to a vanished
key by `poll_interval`: a takeover is lease expiry (TTL after the dead instance's last
keepalive, plus etcd's 0.5 s expiry sweep) plus at most one interval.

**Who claims what.** Given the hosts (`set_hosts`), each instance computes the same share of
them over the live instances (`mastership.desired_share`, rendezvous hashing) and claims the
hosts of its share that have no master; with `rebalance`, it releases a host it holds that
the share gives to another live instance, which claims it on its next poll. A host claimed
by hand (`claim`) and not among the hosts is left alone.

Endpoints: `etcd3+http://H1:P1[,H2:P2,...]`; each request goes to the member last answering
and, when that one does not, to the next, so one member down changes nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import (
    ConnectionFailedError,
    ConnectionTimeoutError,
    Etcd3Exception,
    InternalServerError,
)
from etcd3gw.utils import _decode, _encode, _increment_last_byte

from netctl.service.mastership import WriterDeadline, desired_share, owner, parse_url

log = logging.getLogger(__name__)

PREFIX = "/netctl/"
INSTANCES = PREFIX + "instances/"
MASTERS = PREFIX + "masters/"
# etcd 3.4 (Debian 12) serves the gateway at /v3/ (and the older /v3beta/); /v3alpha/ is gone.
# Fixed rather than discovered: discovery costs a request to one member per client and fails
# when that member is the one down.
API_PATH = "/v3/"

T = TypeVar("T")


class CoordinationError(Exception):
    """Coordination could not do what was asked (no endpoint answered, an id already live)."""


class Unavailable(CoordinationError):
    """No etcd member answered in time (down, or without a quorum)."""


class _Members:
    """One HTTP client per etcd member, for one thread (a `requests` session is not shared
    across threads): a call goes to the member that answered last and, if it does not answer
    (refused, timed out, 5xx: no leader), to the next, within `budget` seconds."""

    def __init__(self, endpoints: list[tuple[str, int]], timeout: float) -> None:
        self.clients = [Etcd3Client(h, p, timeout=timeout, api_path=API_PATH)
                        for h, p in endpoints]
        self.current = 0

    def call(self, fn: Callable[[Etcd3Client], T], budget: float) -> T:
        deadline = time.monotonic() + budget
        errors = []
        for k in range(len(self.clients)):
            i = (self.current + k) % len(self.clients)
            client = self.clients[i]
            try:
                result = fn(client)
            except (ConnectionFailedError, ConnectionTimeoutError, InternalServerError) as e:
                errors.append(f"{client.host}:{client.port}: {type(e).__name__} "
                              f"{(e.detail_text or '')[:120]}")
                if time.monotonic() >= deadline:
                    break
                continue
            self.current = i
            return result
        raise Unavailable("; ".join(errors) or "no etcd member")

    def close(self) -> None:
        for c in self.clients:
            c.session.close()


def _range(client: Etcd3Client, prefix: str) -> dict[str, Any]:
    return client.post(client.get_url("/kv/range"),
                       json={"key": _encode(prefix), "range_end": _encode(
                           _increment_last_byte(prefix))})


@dataclass(frozen=True)
class Mastership:
    instance: str
    generation: int
    lease: int


class Coordinator:
    """One netctl instance's part in coordination (see the module's docstring).

    `start()` (or `with`) joins and starts the threads; `close()` stops them and revokes the
    lease, which frees this instance's hosts at once for the others."""

    def __init__(self, url: str, instance_id: str, ttl: float = 3.0, *,
                 hosts: Iterable[str] = (), margin: float | None = None,
                 poll_interval: float | None = None, rebalance: bool = True,
                 on_gained: Callable[[str, int], None] | None = None,
                 on_lost: Callable[[str], None] | None = None) -> None:
        if "/" in instance_id or not instance_id:
            raise ValueError(f"instance id {instance_id!r}: non-empty, without '/'")
        self.url, self.instance_id, self.ttl = url, instance_id, float(ttl)
        self.endpoints = parse_url(url)
        self.writer = WriterDeadline(self.ttl, margin)
        self.poll_interval = poll_interval if poll_interval is not None else self.ttl / 12
        self.rebalance = rebalance
        self.on_gained, self.on_lost = on_gained, on_lost
        # Requests never block a thread for long: a member that does not answer is left for
        # the next within a fraction of the TTL.
        self.request_timeout = max(0.2, self.ttl / 6)
        self._hosts: frozenset[str] = frozenset(hosts)
        self._state = threading.Lock()  # guards the fields below; held for no I/O
        self._lease: int | None = None
        self._held: dict[str, int] = {}  # host -> generation, as etcd last said (or we did)
        self._local_rev = 0  # revision of our latest claim/release: older reads are ignored
        self._instances: list[str] = []
        self._masters: dict[str, Mastership] = {}
        self._ops = threading.RLock()  # claim, release and applying a read: one at a time
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._keepalive_paused = threading.Event()
        self._announced: dict[str, int] = {}  # what on_gained/on_lost last said
        self._threads: list[threading.Thread] = []
        self._api = _Members(self.endpoints, self.request_timeout)
        self.takeovers = 0  # hosts the loop claimed (masterless: at start, or a dead one's)
        self._polled: float | None = None  # wall time of the last successful poll
        self._taken_said = 0.0  # when "this id is live elsewhere" was last logged

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, join_timeout: float | None = None, block: bool = True) -> Coordinator:
        """Join (a lease, the instance key) and start the keepalive and coordinator threads.
        A previous incarnation's instance key (same id, killed less than TTL ago) is waited
        out; one still alive after `join_timeout` (2 TTL + 1 s) is another live instance with
        this id: CoordinationError. `block=False` (`netctl run`): start the threads at once
        and join from the keepalive thread, retrying for as long as it takes (etcd may come
        later); the instance masters nothing until then."""
        wait = 2 * self.ttl + 1 if join_timeout is None else join_timeout
        deadline = time.monotonic() + wait
        members = _Members(self.endpoints, self.request_timeout)
        while block and not self._join(members):
            if time.monotonic() > deadline:
                members.close()
                raise CoordinationError(f"instance id {self.instance_id!r} is live in etcd "
                                        f"({self.url}) after {wait:.1f} s")
            time.sleep(min(0.2, self.ttl / 10))
        self._threads = [
            threading.Thread(target=self._keepalive_loop, args=(members,), daemon=True,
                             name=f"netctl-coord-keepalive-{self.instance_id}"),
            threading.Thread(target=self._coord_loop, daemon=True,
                             name=f"netctl-coord-{self.instance_id}"),
        ]
        for t in self._threads:
            t.start()
        return self

    def close(self) -> None:
        """Stop writing (on_lost for every host announced), stop the threads, revoke the lease
        (the hosts are free for the others at once)."""
        self._stop.set()  # first: the keepalive thread must not join again meanwhile
        with self._state:
            self._held.clear()
            self.writer.lost()
        self._wake.set()
        for t in self._threads:
            t.join(10)
        with self._state:
            lease, self._lease = self._lease, None
        if lease is not None:
            try:
                self._api.call(lambda c: c.post(c.get_url("/kv/lease/revoke"),
                                                json={"ID": lease}), self.request_timeout * 3)
            except (Etcd3Exception, CoordinationError) as e:
                log.info("revoking lease %x: %s (it expires by itself)", lease, e)
        self._api.close()

    def __enter__(self) -> Coordinator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the instance asks --------------------------------------------------------------
    def is_writer(self, host: str) -> bool:
        """Whether this instance masters `host` now and may write to it: it holds the key and
        its lease is surely still alive on the server (`WriterDeadline`)."""
        with self._state:
            return (host in self._held and not self._stop.is_set()
                    and self.writer.fresh(time.monotonic()))

    def mine(self) -> dict[str, int]:
        """The hosts this instance masters now (host -> generation); empty when not fresh."""
        with self._state:
            fresh = self.writer.fresh(time.monotonic()) and not self._stop.is_set()
            return dict(self._held) if fresh else {}

    def masters(self) -> dict[str, tuple[str, int]]:
        """host -> (instance, generation), read from etcd now (linearizable)."""
        _, masters, _ = self._read(self._api)
        return {h: (m.instance, m.generation) for h, m in masters.items()}

    def instances(self) -> list[str]:
        """The live instances (sorted), read from etcd now."""
        instances, _, _ = self._read(self._api)
        return instances

    def set_hosts(self, hosts: Iterable[str]) -> None:
        """The hosts to share among the instances (the pool's, from xapi)."""
        with self._state:
            self._hosts = frozenset(hosts)
        self._wake.set()

    def share(self) -> frozenset[str]:
        """The hosts this instance should master by the last read of the live instances."""
        with self._state:
            instances, hosts = list(self._instances), self._hosts
        return desired_share(instances or [self.instance_id], hosts).get(
            self.instance_id, frozenset())

    def generation(self, host: str) -> int | None:
        """The generation of this instance's mastership of `host` if it may write to it now
        (as `is_writer`), else None."""
        with self._state:
            if self._stop.is_set() or not self.writer.fresh(time.monotonic()):
                return None
            return self._held.get(host)

    def master_of(self, host: str) -> Mastership | None:
        """`host`'s master as the last poll read it (no request)."""
        with self._state:
            return self._masters.get(host)

    def snapshot(self) -> dict[str, Any]:
        """What `netctl status` shows, from the last poll (no request): this instance, the
        live instances, every host's master and generation."""
        with self._state:
            now = time.monotonic()
            deadline = self.writer.deadline()
            return {
                "url": self.url, "instance": self.instance_id, "ttl": self.ttl,
                "joined": self._lease is not None,
                "writer": self._lease is not None and self.writer.fresh(now)
                and not self._stop.is_set(),
                "writer_for": round(deadline - now, 3) if deadline is not None else None,
                "instances": list(self._instances),
                "masters": {h: {"instance": m.instance, "generation": m.generation}
                            for h, m in sorted(self._masters.items())},
                "mine": dict(self._held), "takeovers": self.takeovers,
                "polled": self._polled,
            }

    @property
    def lease_id(self) -> int | None:
        with self._state:
            return self._lease

    # --- claim and release -------------------------------------------------------------------
    def claim(self, host: str) -> int | None:
        """Become master of `host` if it has none: the generation (the key's create revision)
        if this instance holds it now, None if another does or etcd is unavailable."""
        key = MASTERS + host
        with self._ops:
            lease = self.lease_id
            if lease is None:
                return None
            txn = {
                "compare": [{"key": _encode(key), "result": "EQUAL", "target": "CREATE",
                             "create_revision": 0}],
                "success": [{"request_put": {"key": _encode(key),
                                             "value": _encode(self.instance_id),
                                             "lease": lease}}],
                "failure": [{"request_range": {"key": _encode(key)}}],
            }
            try:
                r = self._api.call(lambda c: c.transaction(txn), self.request_timeout * 3)
            except Unavailable as e:
                log.info("claim %s: %s", host, e)
                return None
            except Etcd3Exception as e:  # "requested lease not found": the lease expired
                log.warning("claim %s: %s", host, e.detail_text)
                self._lease_gone(lease)
                return None
            if r.get("succeeded"):
                generation = int(r["header"]["revision"])
            else:
                kvs = r["responses"][0]["response_range"].get("kvs", [])
                if not kvs or int(kvs[0].get("lease", 0)) != lease:
                    return None
                generation = int(kvs[0]["create_revision"])  # ours already
            with self._state:
                if self._lease != lease:
                    return None
                self._held[host] = generation
                self._local_rev = max(self._local_rev, int(r["header"]["revision"]))
            self._wake.set()
            return generation

    def release(self, host: str) -> bool:
        """Stop mastering `host` and delete its key (only if it is still the mastership held:
        same create revision). Writing stops before the key goes, so nobody else can hold
        the host while this instance still thinks it does."""
        key = MASTERS + host
        with self._ops:
            with self._state:
                generation = self._held.pop(host, None)
            if generation is None:
                return False
            self._wake.set()
            txn = {
                "compare": [{"key": _encode(key), "result": "EQUAL", "target": "CREATE",
                             "create_revision": generation}],
                "success": [{"request_delete_range": {"key": _encode(key)}}],
                "failure": [],
            }
            try:
                r = self._api.call(lambda c: c.transaction(txn), self.request_timeout * 3)
            except (Etcd3Exception, CoordinationError) as e:
                log.info("release %s: %s (its key dies with the lease)", host, e)
                return False
            with self._state:
                self._local_rev = max(self._local_rev, int(r["header"]["revision"]))
            return bool(r.get("succeeded"))

    # --- for tests: a hung process -----------------------------------------------------------
    def pause_keepalive(self, paused: bool = True) -> None:
        """Stop (or resume) renewing the lease while everything else runs: what a process
        whose keepalive thread hangs looks like. Tests use it to watch `is_writer` turn False
        before etcd expires the lease."""
        if paused:
            self._keepalive_paused.set()
        else:
            self._keepalive_paused.clear()

    # --- the keepalive thread ----------------------------------------------------------------
    def _join(self, members: _Members) -> bool:
        """Grant a lease and create the instance key on it (only if absent). False when the
        key exists (a previous incarnation not yet expired) or etcd is unavailable."""
        sent = time.monotonic()
        try:
            grant = members.call(lambda c: c.post(c.get_url("/lease/grant"), json={
                "TTL": math.ceil(self.ttl), "ID": 0}), self.request_timeout * 3)
            lease = int(grant["ID"])
            key = _encode(INSTANCES + self.instance_id)
            r = members.call(lambda c: c.transaction({
                "compare": [{"key": key, "result": "EQUAL", "target": "CREATE",
                             "create_revision": 0}],
                "success": [{"request_put": {"key": key, "value": _encode(self.instance_id),
                                             "lease": lease}}],
                "failure": []}), self.request_timeout * 3)
        except (Etcd3Exception, CoordinationError) as e:
            log.info("joining %s: %s", self.url, e)
            return False
        if not r.get("succeeded"):
            now = time.monotonic()
            if now - self._taken_said > 10 * self.ttl:
                self._taken_said = now
                log.warning("instance id %s is live in etcd (%s): another instance with this "
                            "id, or this one's previous run not yet expired; waiting",
                            self.instance_id, self.url)
            try:
                members.call(lambda c: c.post(c.get_url("/kv/lease/revoke"),
                                              json={"ID": lease}), self.request_timeout * 3)
            except (Etcd3Exception, CoordinationError):
                pass  # it expires by itself
            return False
        with self._state:
            self._lease = lease
            self._held.clear()
            self.writer.lost()
            self.writer.renewed(sent, float(grant.get("TTL", self.ttl)))
        log.info("joined %s as %s (lease %x)", self.url, self.instance_id, lease)
        self._wake.set()
        return True

    def _lease_gone(self, lease: int) -> None:
        with self._state:
            if self._lease != lease:
                return
            self._lease = None
            self._held.clear()
            self.writer.lost()
        log.warning("lease %x of %s expired: every mastership is lost; joining again",
                    lease, self.instance_id)
        self._wake.set()

    def _keepalive_loop(self, members: _Members) -> None:
        """Renew every TTL/3; after a failure retry every TTL/10 (one lost request must not
        let the deadline pass). A lease etcd no longer knows means every key on it is gone:
        join again with a new one."""
        interval, retry = self.ttl / 3, self.ttl / 10
        try:
            while not self._stop.wait(0 if self.lease_id is None else interval):
                while not self._stop.is_set():
                    if self._keepalive_paused.is_set():
                        self._stop.wait(retry)
                        continue
                    lease = self.lease_id
                    if lease is None:
                        if self._stop.is_set() or self._join(members):
                            break
                        self._stop.wait(retry)
                        continue
                    sent = time.monotonic()
                    try:
                        r = members.call(lambda c, lease=lease: c.post(
                            c.get_url("/lease/keepalive"), json={"ID": lease}),
                            self.request_timeout * 2)
                    except (Etcd3Exception, CoordinationError) as e:
                        log.info("keepalive of %s: %s", self.instance_id, e)
                        self._stop.wait(retry)
                        continue
                    left = int(r.get("result", {}).get("TTL", -1))
                    if left <= 0:
                        self._lease_gone(lease)
                        continue
                    with self._state:
                        if self._lease == lease:
                            self.writer.renewed(sent, float(left))
                    break
        finally:
            members.close()

    # --- the coordinator thread --------------------------------------------------------------
    def _read(self, members: _Members) -> tuple[list[str], dict[str, Mastership], int]:
        """One linearizable range read of `/netctl/`: the live instances (sorted), the
        masters, and the revision read at."""
        r = members.call(lambda c: _range(c, PREFIX), self.request_timeout * 2)
        instances, masters = [], {}
        for kv in r.get("kvs", []):
            key = _decode(kv["key"]).decode()
            value = _decode(kv.get("value", "")).decode()
            if key.startswith(INSTANCES):
                instances.append(key[len(INSTANCES):])
            elif key.startswith(MASTERS):
                masters[key[len(MASTERS):]] = Mastership(value, int(kv["create_revision"]),
                                                         int(kv.get("lease", 0)))
        return sorted(instances), masters, int(r["header"]["revision"])

    def _poll(self, members: _Members) -> None:
        """Read instances and masters; take what etcd says we hold; claim the hosts of our
        share that have no master; with `rebalance`, hand over what the share moved."""
        with self._ops:
            instances, masters, revision = self._read(members)
            with self._state:
                lease, hosts = self._lease, self._hosts
                self._instances, self._masters = instances, masters
                self._polled = time.time()
                if lease is not None and revision >= self._local_rev:
                    self._held = {h: m.generation for h, m in masters.items()
                                  if m.lease == lease}
                fresh = self.writer.fresh(time.monotonic())
        if lease is None or not fresh or self.instance_id not in instances:
            return
        for host in sorted(hosts):
            want = owner(instances, host)
            if want == self.instance_id and host not in masters:
                if self.claim(host) is not None:
                    self.takeovers += 1
                    log.info("%s masters %s", self.instance_id, host)
            elif (self.rebalance and want != self.instance_id and host in masters
                  and masters[host].lease == lease):
                log.info("%s hands %s over to %s", self.instance_id, host, want)
                self.release(host)

    def _announce(self) -> None:
        """Fire on_lost / on_gained for the difference between what was announced and what
        is true now (held and fresh)."""
        with self._state:
            fresh = self.writer.fresh(time.monotonic()) and not self._stop.is_set()
            now = dict(self._held) if fresh else {}
        before, self._announced = self._announced, now
        for host, generation in sorted(before.items()):
            if now.get(host) != generation and self.on_lost is not None:
                self._callback(self.on_lost, host)
        for host, generation in sorted(now.items()):
            if before.get(host) != generation and self.on_gained is not None:
                self._callback(self.on_gained, host, generation)

    def _callback(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("coordination callback %s%r", getattr(fn, "__name__", fn), args)

    def _coord_loop(self) -> None:
        members = _Members(self.endpoints, self.request_timeout)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                self._announce()
                try:
                    self._poll(members)
                except (Etcd3Exception, CoordinationError) as e:
                    log.info("coordination poll of %s: %s", self.instance_id, e)
                self._announce()
                # Wake for the next poll, or at the writer deadline if something is announced
                # (on_lost on time even when no poll happens), or when claim/release says.
                timeout = self.poll_interval
                with self._state:
                    deadline = self.writer.deadline()
                if self._announced and deadline is not None:
                    timeout = min(timeout, max(0.0, deadline - time.monotonic()) + 0.001)
                self._wake.wait(timeout)
            self._announce()  # closing: everything held is gone
        finally:
            members.close()
