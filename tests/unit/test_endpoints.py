"""Where `netctl run` reaches a host's OVSDB (netctl.service.endpoints): the configuration
first, then the pool's SDN_controller; SSL asked for is never downgraded."""

from __future__ import annotations

import pytest

from netctl.model import Host, SDNController
from netctl.service.config import Config
from netctl.service.endpoints import EndpointError, join, ovsdb_endpoint

SSL = {"private_key": "k.pem", "certificate": "c.pem", "ca_cert": "ca.pem"}
HOST = Host("OpaqueRef:h1", "uuid-h1", "host1", address="10.0.0.5")
PSSL = SDNController("OpaqueRef:c", "uuid-c", "pssl", "", 0)
ACTIVE = SDNController("OpaqueRef:c", "uuid-c", "ssl", "10.0.0.1", 6632)


def test_no_controller_and_no_configuration_is_plain_tcp_on_6640() -> None:
    assert ovsdb_endpoint(Config(), HOST, None) == "tcp:10.0.0.5:6640"


def test_a_pssl_controller_means_ssl_to_each_host() -> None:
    assert ovsdb_endpoint(Config(ssl=SSL), HOST, PSSL) == "ssl:10.0.0.5:6640"


def test_ipv6_host_addresses_are_bracketed() -> None:
    host = Host("OpaqueRef:h6", "uuid-h6", "host6", address="fd00:18::5")
    assert ovsdb_endpoint(Config(ssl=SSL), host, PSSL) == "ssl:[fd00:18::5]:6640"
    assert join("fd00:18::5", 6653) == "[fd00:18::5]:6653"
    assert join("pool.example", 6640) == "pool.example:6640"


def test_ssl_without_certificates_is_an_error_never_tcp() -> None:
    with pytest.raises(EndpointError, match="ovsdb.ssl .* not configured: not connecting"):
        ovsdb_endpoint(Config(), HOST, PSSL)


def test_explicit_configuration_overrides_the_pool() -> None:
    config = Config(ssl=SSL, ovsdb_endpoint="tcp:{address}:16640",
                    ovsdb_hosts={"host1": "unix:/run/h1.sock"})
    assert ovsdb_endpoint(config, HOST, PSSL) == "unix:/run/h1.sock"
    other = Host("OpaqueRef:h2", "uuid-h2", "host2", address="10.0.0.6")
    assert ovsdb_endpoint(config, other, PSSL) == "tcp:10.0.0.6:16640"


def test_an_active_ssl_controller_needs_certificates_and_the_listening_port() -> None:
    with pytest.raises(EndpointError, match="protocol ssl, 10.0.0.1:6632.* not configured"):
        ovsdb_endpoint(Config(), HOST, ACTIVE)
    with pytest.raises(EndpointError, match="not listening on port 6632"):
        ovsdb_endpoint(Config(ssl=SSL), HOST, ACTIVE)


def test_a_host_without_address_is_named() -> None:
    with pytest.raises(EndpointError, match="host hostx: xapi gives it no address"):
        ovsdb_endpoint(Config(), Host("OpaqueRef:x", "uuid-x", "hostx"), None)
