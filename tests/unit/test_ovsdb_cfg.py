"""netctl.sinks.ovsdb_cfg on a fake clock: written vs in effect (issue 24), the pure record
the IDL's thread feeds (`written` after the reply, `cur_cfg` on every change)."""

from __future__ import annotations

import threading

from pytest import approx

from netctl.sinks.ovsdb_cfg import CfgProgress, CfgState


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def progress() -> tuple[CfgProgress, Clock, list[tuple[str, CfgState]]]:
    clock = Clock()
    p = CfgProgress(monotonic=clock, wall=lambda: 1_000_000 + clock.t)
    events: list[tuple[str, CfgState]] = []
    p.listener = lambda event, state: events.append((event, state))
    return p, clock, events


def test_nothing_written_is_not_pending():
    p, _, events = progress()
    p.cur_cfg(7)  # the row loaded
    s = p.state()
    assert not s.written and not s.in_effect and not s.pending
    assert s.as_dict(0)["waiting_seconds"] is None
    assert events == []


def test_written_then_cur_cfg_reaches_it():
    p, clock, events = progress()
    p.cur_cfg(4)
    started = clock.t
    clock.t += 11.8
    p.written(5, started)
    s = p.state()
    assert s.written and s.pending and s.write_seconds == approx(11.8) and s.next_cfg == 5
    clock.t += 40
    assert p.state().as_dict(clock.t)["waiting_seconds"] == approx(51.8)
    p.cur_cfg(4)  # another change of the row, not vswitchd's progress: still pending
    assert p.state().pending
    clock.t += 53
    p.cur_cfg(5)
    s = p.state()
    assert s.in_effect and not s.pending and s.effect_seconds == approx(11.8 + 40 + 53)
    assert s.in_effect_at == 1_000_000 + clock.t
    d = s.as_dict(clock.t)
    assert d["written"] and d["in_effect"] and d["write_seconds"] == approx(11.8)
    assert d["next_cfg"] == 5 and d["cur_cfg"] == 5 and d["waiting_seconds"] is None
    assert [e for e, _ in events] == ["written", "in_effect"]
    p.cur_cfg(6)  # someone else's later change applied: no second in-effect event
    assert [e for e, _ in events] == ["written", "in_effect"]


def test_cur_cfg_seen_before_the_reply_is_in_effect_at_once():
    """vswitchd's cur_cfg may be parsed in the same IDL run as the transaction's reply."""
    p, clock, events = progress()
    started = clock.t
    p.cur_cfg(9)
    clock.t += 0.2
    p.written(9, started)
    s = p.state()
    assert s.in_effect and s.effect_seconds == s.write_seconds == approx(0.2)
    assert [e for e, _ in events] == ["written", "in_effect"]


def test_a_new_write_replaces_the_pending_one():
    p, clock, _ = progress()
    p.cur_cfg(1)
    p.written(2, clock.t)
    clock.t += 1
    start2 = clock.t
    clock.t += 0.5
    p.written(3, start2)
    p.cur_cfg(2)  # the first reached: the last is still pending
    assert p.state().pending and p.state().next_cfg == 3
    clock.t += 2
    p.cur_cfg(3)
    s = p.state()
    assert s.in_effect and s.effect_seconds == approx(2.5) and s.writes == 2


def test_a_wiped_database_makes_the_record_pending_until_rewritten():
    """ovsdb-server restarted without its database: cur_cfg comes back 0 (the IDL reloads
    the row); the reapply writes next_cfg 1, which vswitchd then reaches."""
    p, clock, _ = progress()
    p.written(8, clock.t)
    p.cur_cfg(8)
    p.cur_cfg(0)
    assert p.state().pending
    p.written(1, clock.t)
    p.cur_cfg(1)
    assert p.state().in_effect


def test_wait_in_effect_blocks_until_cur_cfg_or_timeout():
    p, clock, _ = progress()
    assert p.wait_in_effect(0)  # nothing written: nothing to wait for
    p.written(2, clock.t)
    assert not p.wait_in_effect(0.05)
    threading.Timer(0.05, p.cur_cfg, args=(2,)).start()
    assert p.wait_in_effect(5)


def test_a_failing_listener_never_breaks_the_caller():
    p, clock, _ = progress()

    def boom(event: str, state: CfgState) -> None:
        raise RuntimeError(event)

    p.listener = boom
    p.written(1, clock.t)
    p.cur_cfg(1)
    assert p.state().in_effect
