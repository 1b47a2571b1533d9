"""What a lab leaves behind: moved to `netctl.lab.footprint` (the experiment API needs it and
product-side code never imports the harness); named here for the tests and benchmarks.

`clear_dead_lab` lets a test start where a run that was killed (a CI job cut off, a session
stopped mid-test) left its namespaces: the lab's prefix is the test's own, so what carries it
and runs nothing is removed, from the lab's record where there is one; a lab that still runs
a process is another run's and is never touched."""

from __future__ import annotations

import sys

from netctl.lab import netns
from netctl.lab.footprint import NOTHING, lab_footprint
from netctl.lab.lab import teardown
from netctl.lab.state import LabState

__all__ = ["NOTHING", "clear_dead_lab", "lab_footprint"]


def clear_dead_lab(prefix: str) -> None:
    """Make sure nothing of lab `prefix` is on this machine: remove what a dead run of it left
    (saying so on stderr); fail if a process of it still runs (another run is going on)."""
    left = lab_footprint(prefix)
    if left == NOTHING:
        return
    assert not left["processes"], f"lab {prefix} is running (another run?): {left}"
    print(f"lab {prefix}: a run that died left {left}; removing it", file=sys.stderr)
    try:
        state = LabState.load(prefix)
    except (LookupError, ValueError, TypeError, OSError):
        state = None  # no (readable) record: removed by the prefix below
    if state is not None:
        running = [p.what for p in state.owned_processes() if p.alive()]
        assert not running, f"lab {prefix} is running (another run?): {running}"
        teardown(state)
    left = lab_footprint(prefix)
    for name in left["namespaces"]:
        netns.remove(name)
    for link in left["root links"]:
        netns.delete_link(None, link)
    assert lab_footprint(prefix) == NOTHING, "a previous run left this lab behind"
