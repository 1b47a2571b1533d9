"""`python -m netctl.cli`: the `netctl` command."""

from netctl.cli.main import main

main()
