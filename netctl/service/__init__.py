"""The process assembly of `netctl run` and `netctl openflow`: sources -> engine -> sinks."""
