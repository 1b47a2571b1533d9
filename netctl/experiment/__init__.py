"""Experiments on the lab, scripted in Python (issue 23; docs/experiments.md).

    from netctl.experiment import Experiment, PoolBuilder

    topo = PoolBuilder("exp")
    topo.add_network("pool")
    for h in ("host1", "host2"):
        topo.add_host(h)
    ...
    with Experiment.up(topo, prefix="xp1", management="198.18.120.0/24",
                       ports=(27350, 27351, 27352)) as ex:
        ex.migrate("vm2", "host1")            # XenAPI
        ex.lab.set_cable("host1", "eth0", up=False)   # the lab

A rig beside the product (docs/architecture.md, "Rooms and their doors"): it brings a pool up
with `netctl.cli.demo.DemoPool`, drives it with XenAPI and `netctl.lab.lab.Lab`, and measures
with `measure`; the product never imports it.
"""

from netctl.experiment.measure import (
    FAST_PING,
    Ping,
    PingFigures,
    PingStream,
    Prober,
    pct,
    ping_figures,
    timed,
    until,
)
from netctl.experiment.pool import Experiment, as_topology
from netctl.experiment.report import save_plot, table
from netctl.experiment.topo import PoolBuilder

__all__ = ["FAST_PING", "Experiment", "Ping", "PingFigures", "PingStream", "PoolBuilder",
           "Prober", "as_topology", "pct", "ping_figures", "save_plot", "table", "timed",
           "until"]
