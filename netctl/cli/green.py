"""Entry point of the OpenFlow controller with os-ken's eventlet hub.

eventlet must patch the standard library before anything else imports it (threading, queue,
socket), or a thread started by the xapi sync blocks the whole hub. So this module is run as
the program (`python -m netctl.cli.green COMMAND ...`, which `netctl openflow --hub
eventlet` and `netctl run` with `hub: eventlet` do for you) and patches first, then hands over
to the normal command.
"""

import os
import sys

os.environ["OSKEN_HUB_TYPE"] = "eventlet"

import eventlet  # noqa: E402 - must come before every other import

eventlet.monkey_patch()

from netctl.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
