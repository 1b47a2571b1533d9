"""netctl: the control plane for the Open vSwitch bridges of a Xen pool."""

import warnings

__version__ = "0.1.0"

# Debian's python3-openvswitch imports eventlet whenever it is installed (os-ken depends on it),
# and eventlet then prints a deprecation banner into every netctl log. netctl only runs on
# eventlet when its os-ken hub is chosen explicitly, and says so in its own log.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
