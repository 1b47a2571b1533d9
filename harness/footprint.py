"""What a lab leaves behind: moved to `netctl.lab.footprint` (the experiment API needs it and
product-side code never imports the harness); named here for the tests and benchmarks."""

from netctl.lab.footprint import NOTHING, lab_footprint

__all__ = ["NOTHING", "lab_footprint"]
