"""netctl: the control plane for the Open vSwitch bridges of a Xen pool."""

__version__ = "0.1.0"
