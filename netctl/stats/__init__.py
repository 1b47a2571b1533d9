"""Traffic statistics of the pool's switch ports (pure: no I/O).

A source beside the switch events, on its own schedule (`netctl.sources.stats_poller` reads the
switches); what it read never enters the engine's rounds. `table` keeps the latest counters
and rates per switch port, `labels` says whose port it is (a VIF of which VM, a NIC, a bond
member, a tunnel to which peer), from the pool as xapi describes it.
"""
