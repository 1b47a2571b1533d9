"""Where the engine's results go: each host's OVSDB (`ovsdb`) and each bridge's flow table
(`openflow`)."""
