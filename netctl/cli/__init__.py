"""The `netctl` command and its entry points."""
