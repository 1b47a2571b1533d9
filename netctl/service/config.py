"""`netctl run` configuration: a YAML file, every key optional, with defaults that work in the lab.

```yaml
openflow:
  listen: 0.0.0.0:6653          # where the bridges connect (the controller's side);
                                # IPv6 in brackets: "[fd00::1]:6653"
  target: tcp:198.18.10.1:6653  # what each bridge is told to connect to (default: from listen)
  hub: native                   # os-ken hub: native | eventlet
  ssl: {private_key: ctl-privkey.pem, certificate: ctl-cert.pem, ca_cert: switchca.pem}
                                # TLS only on the listen port; targets become ssl:
  audit_interval: 60            # seconds between dump-and-diff rounds that repair drift (0: off)
  flow_monitor: true            # OVS >= 3.0 reports flows other clients change: repaired at once
  port_config: true             # external bridges also connect to the OpenFlow port + 1 in
                                # OpenFlow 1.0, only to keep VIFs with traffic rules out of
                                # NORMAL's flooding (NO_FLOOD); false: they are not (their
                                # to-VM rules then miss broadcast, multicast, unknown unicast)
ovsdb:
  endpoint: "tcp:{address}:6640"  # per host; {address} = xapi host.address, {name} = name_label
                                  # (an IPv6 host.address is put in brackets: tcp:[fd00::b]:6640)
                                  # (default: as the pool's SDN_controller says: pssl ->
                                  # ssl:{address}:6640; no controller -> tcp:{address}:6640)
  hosts: {host1: "ssl:10.0.0.5:6640"}   # overrides, by host name_label or uuid
  ssl: {private_key: key.pem, certificate: cert.pem, ca_cert: ca.pem}
  datapath_type: system         # netdev where there is no OVS kernel module (the lab)
  timeout: 20
metrics:
  listen: 127.0.0.1:9464        # /metrics (Prometheus) and /status (JSON, read by netctl status)
                                # and the web view at / (netctl.web); not loopback: a login
                                # against the pool's xapi, and tls is required
  tls: {certificate: web-cert.pem, private_key: web-key.pem}   # HTTPS on metrics.listen
log:
  level: info                   # debug | info | warning | error (--log-level overrides)
  file: /var/log/netctl/netctl.log   # also log here, with timestamps (stderr always)
xapi:
  ca_file: /etc/stunnel/xapi-pool-ca-bundle.pem   # verify an https pool master against this CA
  insecure: false               # true: do not verify the pool master's certificate (explicit)
  event_timeout: 30             # seconds one event.from may wait for changes on the server
  rpc_timeout: 30               # ... and how much longer a silent connection is given
  members: [https://10.0.0.2/]  # more pool members to try when the master is gone (each
                                # host's address is learnt from xapi too; HOST_IS_SLAVE is
                                # followed to the master)
coordination:                   # several instances, one master per host (high availability)
  url: etcd3+http://10.0.0.9:2379,10.0.0.10:2379,10.0.0.11:2379   # etcd's members (--coordination)
  instance_id: ctl-a            # unique per instance (default: hostname-openflow port)
  ttl: 3                        # seconds: a dead instance's hosts are taken after this
  controllers: [tcp:10.0.0.9:6653, tcp:10.0.0.10:6653]   # every instance's openflow.target:
                                # each bridge is told to connect to all of them (the same
                                # list on every instance; it must hold this one's target)
stats:
  interval: 5                   # seconds between reads of every switch's port and drop
                                # counters (xapi's RRD step; 0: no statistics)
```
Unknown keys are errors that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netctl.model.hostport import bracketed, ovs_active, split_host_port

SCHEMA = {
    "openflow": {"listen", "target", "hub", "ssl", "audit_interval", "flow_monitor",
                 "port_config"},
    "ovsdb": {"endpoint", "hosts", "ssl", "datapath_type", "timeout"},
    "metrics": {"listen", "tls"},
    "xapi": {"ca_file", "insecure", "event_timeout", "rpc_timeout", "members"},
    "log": {"level", "file"},
    "coordination": {"url", "instance_id", "ttl", "controllers"},
    "stats": {"interval"},
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    openflow_listen: str = "0.0.0.0:6653"
    openflow_target: str | None = None
    hub: str = "native"
    ovsdb_endpoint: str | None = None  # None: from the pool's SDN_controller (service.endpoints)
    ovsdb_hosts: dict[str, str] = field(default_factory=dict)
    ssl: dict[str, str] | None = None
    datapath_type: str = "system"
    ovsdb_timeout: float = 20.0
    metrics_listen: str | None = "127.0.0.1:9464"
    openflow_ssl: dict[str, str] | None = None
    audit_interval: float = 60.0
    flow_monitor: bool = True
    port_config: bool = True  # the OpenFlow 1.0 session for NO_FLOOD (netctl.sinks.portconfig)
    xapi_ca_file: str | None = None
    xapi_insecure: bool = False
    xapi_event_timeout: float = 30.0
    xapi_rpc_timeout: float = 30.0
    xapi_members: tuple[str, ...] = ()  # more pool members' URLs (sources.xapi.members)
    log_level: str = "info"  # netctl.service.logs
    log_file: str | None = None
    coordination_url: str | None = None  # None: this instance runs alone (no etcd)
    instance_id: str | None = None  # None: hostname-openflow port
    coordination_ttl: float = 3.0
    controllers: tuple[str, ...] = ()  # every instance's target; () with no coordination
    stats_interval: float = 5.0  # seconds between reads of the switches' counters (0: off)
    metrics_tls: dict[str, str] | None = None  # HTTPS on metrics.listen (netctl.web.wiring)

    @property
    def controller_targets(self) -> tuple[str, ...]:
        """What each bridge is told to connect to: this instance's target, or with
        coordination every instance's (`coordination.controllers`)."""
        return self.controllers or (self.target,)

    @property
    def port_config_targets(self) -> tuple[str, ...]:
        """The OpenFlow 1.0 targets of the external bridges' NO_FLOOD session
        (`netctl.sinks.portconfig`): each controller target's port + 1; () when off."""
        if not self.port_config:
            return ()
        return tuple(_next_port(t) for t in self.controller_targets)

    @property
    def port_config_listen(self) -> tuple[str, int]:
        """(address, port) the NO_FLOOD session listens on: openflow.listen's port + 1."""
        host, port = split_host_port(self.openflow_listen)
        return host, port + 1

    @property
    def instance(self) -> str:
        if self.instance_id:
            return self.instance_id
        import socket

        return f"{socket.gethostname()}-{self.openflow_listen.rpartition(':')[2]}"

    @property
    def openflow_tls(self) -> Any:
        from netctl.service.osken import TlsFiles

        return TlsFiles(**self.openflow_ssl) if self.openflow_ssl else None

    @property
    def target(self) -> str:
        if self.openflow_target:
            return self.openflow_target
        try:
            host, port = split_host_port(self.openflow_listen)
        except ValueError as exc:
            raise ConfigError(f"openflow.listen: {exc}") from None
        if host in ("", "0.0.0.0", "::"):
            raise ConfigError("openflow.target is needed when openflow.listen is a wildcard "
                              "(the bridges must be told an address)")
        return ovs_active("ssl" if self.openflow_ssl else "tcp", host, port)

    def endpoint(self, name_label: str, uuid: str, address: str) -> str | None:
        """The host's OVSDB endpoint as this configuration gives it, None when it leaves it to
        the pool (`netctl.service.endpoints`)."""
        for key in (uuid, name_label):
            if key in self.ovsdb_hosts:
                return self.ovsdb_hosts[key]
        if self.ovsdb_endpoint is None:
            return None
        # {address} always stands before a port (tcp:{address}:6640): an IPv6 host.address
        # (an IPv6-only pool) goes in brackets there
        return self.ovsdb_endpoint.format(address=bracketed(address), name=name_label,
                                          uuid=uuid)


def load(path: str | Path | None, **overrides: Any) -> Config:
    data: dict[str, Any] = {}
    where = str(path) if path else "<defaults>"
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping")
    for section, value in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"{where}: unknown section '{section}' "
                              f"(known: {', '.join(SCHEMA)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {section}: expected a mapping")
        for key in value:
            if key not in SCHEMA[section]:
                raise ConfigError(f"{where}: {section}: unknown key '{key}' "
                                  f"(known: {', '.join(sorted(SCHEMA[section]))})")
    of, db, me = data.get("openflow", {}), data.get("ovsdb", {}), data.get("metrics", {})
    xa = data.get("xapi", {})
    values: dict[str, Any] = {
        "openflow_listen": of.get("listen", Config.openflow_listen),
        "openflow_target": of.get("target"),
        "hub": of.get("hub", "native"),
        "ovsdb_endpoint": db.get("endpoint"),
        "ovsdb_hosts": dict(db.get("hosts", {})),
        "ssl": db.get("ssl"),
        "datapath_type": db.get("datapath_type", "system"),
        "ovsdb_timeout": float(db.get("timeout", 20.0)),
        "metrics_listen": me.get("listen", Config.metrics_listen),
        "openflow_ssl": of.get("ssl"),
        "audit_interval": _seconds(where, "openflow", "audit_interval",
                                   of.get("audit_interval", 60.0), zero_ok=True),
        "flow_monitor": _flag(where, "openflow", "flow_monitor", of.get("flow_monitor", True)),
        "port_config": _flag(where, "openflow", "port_config", of.get("port_config", True)),
        "xapi_ca_file": xa.get("ca_file"),
        "xapi_insecure": xa.get("insecure", False),
        "xapi_event_timeout": _seconds(where, "xapi", "event_timeout",
                                       xa.get("event_timeout", 30.0)),
        "xapi_rpc_timeout": _seconds(where, "xapi", "rpc_timeout", xa.get("rpc_timeout", 30.0)),
        "xapi_members": _urls(where, "xapi", "members", xa.get("members", [])),
        "log_level": str(data.get("log", {}).get("level", "info")).lower(),
        "log_file": data.get("log", {}).get("file"),
        "coordination_url": data.get("coordination", {}).get("url"),
        "instance_id": data.get("coordination", {}).get("instance_id"),
        "coordination_ttl": _seconds(where, "coordination", "ttl",
                                     data.get("coordination", {}).get("ttl", 3.0)),
        "controllers": _targets(where, data.get("coordination", {}).get("controllers", [])),
        "stats_interval": _seconds(where, "stats", "interval",
                                   data.get("stats", {}).get("interval", 5.0), zero_ok=True),
    }
    values["metrics_tls"] = _metrics_tls(where, me.get("tls"))
    values.update({k: v for k, v in overrides.items() if v is not None})
    _check_metrics_listen(where, values)
    if values["hub"] not in ("native", "eventlet"):
        raise ConfigError(f"{where}: openflow: hub must be native or eventlet")
    if values["log_level"] not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: log: level must be debug, info, warning or error")
    if values["datapath_type"] not in ("system", "netdev"):
        raise ConfigError(f"{where}: ovsdb: datapath_type must be system or netdev")
    if not isinstance(values["xapi_insecure"], bool):
        raise ConfigError(f"{where}: xapi: insecure must be true or false")
    if values["xapi_ca_file"] is not None and not Path(values["xapi_ca_file"]).is_file():
        raise ConfigError(f"{where}: xapi: ca_file {values['xapi_ca_file']} is not a file")
    if values["xapi_ca_file"] and values["xapi_insecure"]:
        raise ConfigError(f"{where}: xapi: ca_file and insecure contradict each other")
    for section, key in (("ovsdb", "ssl"), ("openflow", "openflow_ssl")):
        tls = values[key]
        if tls is not None and set(tls) != {"private_key", "certificate", "ca_cert"}:
            raise ConfigError(f"{where}: {section}: ssl needs private_key, certificate and "
                              "ca_cert")
    _check_coordination(where, values)
    return Config(**values)


def _metrics_tls(where: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"certificate", "private_key"}:
        raise ConfigError(f"{where}: metrics: tls needs certificate and private_key (PEM "
                          f"files), not {value!r}")
    for key in ("certificate", "private_key"):
        if not isinstance(value[key], str) or not Path(value[key]).is_file():
            raise ConfigError(f"{where}: metrics: tls: {key} {value[key]!r} is not a file")
    return {"certificate": value["certificate"], "private_key": value["private_key"]}


def _check_metrics_listen(where: str, values: dict[str, Any]) -> None:
    """Off loopback the web view, /status and /stats ask for the pool's passwords: never in
    clear over a network, so metrics.tls is required there."""
    from netctl.web.access import is_loopback

    listen = values["metrics_listen"]
    if listen is None:
        return
    try:
        host, _ = split_host_port(str(listen))
    except ValueError as exc:
        raise ConfigError(f"{where}: metrics: listen: {exc}") from None
    if not is_loopback(host) and values["metrics_tls"] is None:
        raise ConfigError(f"{where}: metrics: tls is required when metrics.listen ({listen}) "
                          "is not a loopback address: the web view, /status and /stats then "
                          "ask for a pool user's password, which must not cross the network "
                          "in clear (metrics.tls: {certificate: FILE, private_key: FILE})")


def _targets(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
            isinstance(v, str) and v.startswith(("tcp:", "ssl:")) for v in value):
        raise ConfigError(f"{where}: coordination: controllers must be a list of OpenFlow "
                          f"targets (tcp:HOST:PORT or ssl:HOST:PORT), not {value!r}")
    return tuple(value)


def _check_coordination(where: str, values: dict[str, Any]) -> None:
    """The coordination settings make sense together (and with this instance's target)."""
    url = values["coordination_url"]
    if url is None:
        if values["controllers"] or values["instance_id"]:
            raise ConfigError(f"{where}: coordination: controllers and instance_id need "
                              "coordination.url (or --coordination)")
        return
    from netctl.service.mastership import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigError(f"{where}: coordination: {exc}") from None
    instance = values["instance_id"]
    if instance is not None and (not instance or "/" in instance):
        raise ConfigError(f"{where}: coordination: instance_id must be non-empty, without '/'")
    if values["coordination_ttl"] < 1:
        raise ConfigError(f"{where}: coordination: ttl must be at least 1 second (etcd's "
                          "leases count whole seconds)")
    if values["controllers"]:
        own = Config(**values).target
        if own not in values["controllers"]:
            raise ConfigError(f"{where}: coordination: controllers must list this instance's "
                              f"own target {own} (every instance's, the same list on each)")


def _urls(where: str, section: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
            isinstance(v, str) and v.startswith(("http://", "https://")) for v in value):
        raise ConfigError(f"{where}: {section}: {key} must be a list of http(s):// URLs, "
                          f"not {value!r}")
    return tuple(value)


def _flag(where: str, section: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {section}: {key} must be true or false, not {value!r}")
    return value


def _seconds(where: str, section: str, key: str, value: Any, zero_ok: bool = False) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {section}: {key} must be a number of seconds, "
                          f"not {value!r}") from None
    if seconds < 0 or (seconds == 0 and not zero_ok):
        raise ConfigError(f"{where}: {section}: {key} must be more than 0 seconds")
    return seconds


def _next_port(target: str) -> str:
    """`tcp:10.0.0.9:6653` -> `tcp:10.0.0.9:6654` (also ssl:, and [IPv6])."""
    kind, _, rest = target.partition(":")
    host, port = split_host_port(rest)
    return ovs_active(kind, host, port + 1)
