"""Tunnel liveness, the pure part (issue 21): BFD states of the tunnel ends -> per-peer verdicts
-> tunnel.status:active, and when the writer has anything to do."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Gauge

from netctl.hostconfig import TUNNEL_BFD, HostConfig, InterfaceConfig, TunnelLink
from netctl.service.tunnel_liveness import (
    BfdEnd,
    PeerLink,
    TunnelLiveness,
    peer_state,
    tunnel_active,
)
from netctl.service.tunnel_status import PeerGauges, TunnelStatus, describe_peers
from vlan.tunnels import tunnel_port_name_for

UP = {"state": "up", "forwarding": "true", "remote_state": "up",
      "diagnostic": "No Diagnostic"}
DOWN = {"state": "down", "forwarding": "false", "remote_state": "down",
        "diagnostic": "Control Detection Time Expired"}
NET = "net-uuid"
HOSTS = ("h1", "h2", "h3")  # host refs; uuids are "u" + ref


def port(host: str, peer: str) -> str:
    """The port on `host` towards `peer` (as vlan/host.py names it)."""
    return tunnel_port_name_for("vxlan", NET, "u" + peer)


def config(host: str, hosts: tuple[str, ...] = HOSTS) -> HostConfig:
    links = tuple(TunnelLink(f"tun-{host}", NET, port(host, peer), "vxlan", 7, "192.0.2.1",
                             "u" + peer) for peer in hosts if peer != host)
    return HostConfig(host_ref=host, host_uuid="u" + host, tunnels=links)


def end(status: dict, since: float = 1.0) -> BfdEnd:
    return BfdEnd.from_status(status, since)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def mesh(live: TunnelLiveness, status: dict = UP, hosts: tuple[str, ...] = HOSTS) -> None:
    for host in hosts:
        for peer in hosts:
            if peer != host:
                live.update("u" + host, port(host, peer), status)


def applied() -> dict[str, HostConfig]:
    return {h: config(h) for h in HOSTS}


# ------------------------------------------------------------------ the decision


def test_a_pair_is_up_only_while_both_ends_forward():
    link = PeerLink("u1", "p12", "u2", "p21")
    assert peer_state(link, end(UP), end(UP)).up
    assert not peer_state(link, end(UP), end(DOWN)).up
    assert not peer_state(link, end(DOWN), end(UP)).up
    assert not peer_state(link, end(UP), None).up  # the far end never reported
    assert not peer_state(link, None, None).up
    init = {**UP, "state": "init", "forwarding": "false"}
    assert not peer_state(link, end(UP), end(init)).up
    unknown = BfdEnd("up", True, "up", "", 5.0, known=False)  # its host's session is down
    assert not peer_state(link, end(UP), unknown).up


def test_since_is_when_the_verdict_last_changed():
    link = PeerLink("u1", "p12", "u2", "p21")
    assert peer_state(link, end(UP, 3.0), end(UP, 7.0)).since == 7.0  # the later came up
    assert peer_state(link, end(DOWN, 9.0), end(UP, 2.0)).since == 9.0  # the one down
    assert peer_state(link, end(DOWN, 9.0), end(DOWN, 8.0)).since == 8.0  # the first down
    assert peer_state(link, None, None).since is None


def test_active_needs_the_ports_applied_and_every_pair_up():
    link = PeerLink("u1", "p12", "u2", "p21")
    up, down = peer_state(link, end(UP), end(UP)), peer_state(link, end(UP), end(DOWN))
    assert tunnel_active(True, [up, up])
    assert not tunnel_active(True, [up, down])
    assert not tunnel_active(False, [up, up])
    assert tunnel_active(True, [])  # a host alone on its private network: nothing to prove


def test_tunnel_interfaces_carry_bfd_as_ovs_stores_it():
    vxlan = InterfaceConfig("vxl0123456789", type="vxlan")
    assert dict(vxlan.bfd) == {"enable": "true", "min_rx": "300", "min_tx": "300"}
    assert InterfaceConfig("gre0123456789", type="gre").bfd == TUNNEL_BFD
    assert not InterfaceConfig("eth0").bfd and not InterfaceConfig("xapi1", "internal").bfd
    # detected in 3 x min_rx: well under the 3 s promised
    assert 3 * int(TUNNEL_BFD["min_rx"]) / 1000 < 1.0


# ------------------------------------------------------------------ the store


def test_the_store_keeps_since_while_the_verdict_holds_and_tells_of_changes():
    clock, changes = Clock(), []
    live = TunnelLiveness(clock)
    live.subscribe(lambda: changes.append(clock.now))
    live.update("u1", "p", {})  # BFD enabled, nothing negotiated yet
    assert live.end("u1", "p").state == "" and not live.end("u1", "p").forwarding
    clock.now = 101.0
    live.update("u1", "p", UP)
    assert live.end("u1", "p").since == 101.0
    clock.now = 102.0
    live.update("u1", "p", {**UP, "diagnostic": "Neighbor Signaled Session Down"})
    assert live.end("u1", "p").since == 101.0  # still forwarding: since holds
    version = live.version
    live.update("u1", "p", {**UP, "diagnostic": "Neighbor Signaled Session Down"})
    assert live.version == version and len(changes) == 3  # the same state: no change
    live.update("u1", "p", None)
    assert live.end("u1", "p") is None and len(changes) == 4


def test_a_lost_session_makes_its_hosts_ends_unknown_and_not_forwarding():
    clock = Clock()
    live = TunnelLiveness(clock)
    worker, old_worker = object(), object()
    live.update("u1", "p", UP, source=old_worker)
    live.update("u1", "p", UP, source=worker)  # a new session reports the host now
    live.host_lost("u1", source=old_worker)  # the replaced worker ending: nothing
    assert live.end("u1", "p").known
    clock.now = 150.0
    live.host_lost("u1", source=worker)
    lost = live.end("u1", "p")
    assert not lost.known and lost.since == 150.0 and lost.as_dict()["state"] == "unknown"
    live.update("u1", "p", UP, source=worker)  # reconnected: reported again
    assert live.end("u1", "p").known and live.end("u1", "p").forwarding


# ------------------------------------------------------------------ tunnel.status


def test_active_follows_bfd_at_both_ends_of_every_pair():
    tunnels, live = TunnelStatus(), TunnelLiveness()
    live.subscribe(tunnels.touch)
    for h in HOSTS:
        tunnels.host_changed(h, config(h))
    valid = {f"ref-{h}": SimpleNamespace(uuid=f"tun-{h}") for h in HOSTS}

    def statuses() -> dict[str, bool]:
        return {u: s["active"] for u, s in tunnels.due(valid, applied(), [], live)}

    uuids = [t.uuid for t in valid.values()]
    assert statuses() == dict.fromkeys(uuids, False)  # applied, BFD not up yet
    mesh(live)
    assert statuses() == dict.fromkeys(uuids, True)
    assert tunnels.due(valid, applied(), [], live) == []  # nothing changed: no walk
    # h3's underlay cut: both ends of h1-h3 and h2-h3 time out
    for h, peer in (("h1", "h3"), ("h3", "h1"), ("h2", "h3"), ("h3", "h2")):
        live.update("u" + h, port(h, peer), DOWN)
    assert statuses() == {"tun-h1": False, "tun-h2": False, "tun-h3": False}
    # h3 back, one end at a time: a pair with one end still down is not up
    live.update("uh3", port("h3", "h1"), UP)
    live.update("uh1", port("h1", "h3"), UP)
    live.update("uh3", port("h3", "h2"), UP)
    assert statuses() == {"tun-h1": True, "tun-h2": False, "tun-h3": False}
    live.update("uh2", port("h2", "h3"), UP)
    assert statuses() == dict.fromkeys(uuids, True)


def test_bfd_without_the_ports_applied_is_not_active():
    tunnels, live = TunnelStatus(), TunnelLiveness()
    for h in HOSTS:
        tunnels.host_changed(h, config(h))
    mesh(live)
    valid = {f"ref-{h}": SimpleNamespace(uuid=f"tun-{h}") for h in HOSTS}
    got = dict(tunnels.due(valid, {**applied(), "h2": None}, [], live))
    assert not got["tun-h2"]["active"] and got["tun-h1"]["active"]


def test_per_peer_rows_and_gauges():
    class View:
        names = {"uh1": "host1", "uh2": "host2", "uh3": "host3", NET: "priv"}

        def by_uuid(self, uuid: str):  # noqa: ANN201 - a stand-in for the LivePool's lookup
            name = self.names.get(uuid)
            return type("Obj", (), {"name_label": name})() if name else None

    tunnels, live = TunnelStatus(), TunnelLiveness()
    for h in HOSTS:
        tunnels.host_changed(h, config(h))
    mesh(live)
    live.update("uh3", port("h3", "h1"), DOWN)
    rows = describe_peers(View(), tunnels.peers("tun-h1", live))
    assert [(r["peer"], r["up"]) for r in rows] == [("host2", True), ("host3", False)]
    assert rows[1]["remote"]["diagnostic"] == "Control Detection Time Expired"
    assert rows[1]["local"]["state"] == "up"

    registry = CollectorRegistry()
    gauge = Gauge("netctl_tunnel_peer_up", "test", ["network", "host", "peer"],
                  registry=registry)
    gauges = PeerGauges(gauge)

    def value(host: str, peer: str) -> float | None:
        return registry.get_sample_value("netctl_tunnel_peer_up",
                                         {"network": "priv", "host": host, "peer": peer})

    assert gauges.refresh(View(), tunnels, live)
    assert value("host1", "host3") == 0 and value("host3", "host1") == 0
    assert value("host1", "host2") == 1
    assert not gauges.refresh(View(), tunnels, live)  # idle: no walk
    live.update("uh3", port("h3", "h1"), UP)
    assert gauges.refresh(View(), tunnels, live) and value("host1", "host3") == 1
    tunnels.host_changed("h3", None)  # h3 leaves: its series go
    for h in ("h1", "h2"):
        tunnels.host_changed(h, config(h, ("h1", "h2")))
    assert gauges.refresh(View(), tunnels, live)
    assert value("host1", "host3") is None and value("host1", "host2") == 1
