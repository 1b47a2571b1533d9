"""`coordination.*` in netctl.yaml (issue 20): what a mistyped HA configuration says, and what
a good one gives the bridges."""

from __future__ import annotations

import pytest
import yaml

from netctl.service.config import ConfigError, load


def config(tmp_path, **coordination):
    path = tmp_path / "netctl.yaml"
    path.write_text(yaml.safe_dump({"openflow": {"listen": "10.0.0.20:6653"},
                                    "coordination": coordination}))
    return load(path)


def test_alone_the_bridges_know_this_instance_only(tmp_path):
    path = tmp_path / "netctl.yaml"
    path.write_text(yaml.safe_dump({"openflow": {"listen": "10.0.0.20:6653"}}))
    c = load(path)
    assert c.coordination_url is None and c.controller_targets == ("tcp:10.0.0.20:6653",)


def test_with_coordination_every_instance_is_a_controller_of_every_bridge(tmp_path):
    c = config(tmp_path, url="etcd3+http://10.0.0.9:2379,10.0.0.10:2379", instance_id="ctl-a",
               ttl=5, controllers=["tcp:10.0.0.20:6653", "tcp:10.0.0.21:6653"])
    assert c.controller_targets == ("tcp:10.0.0.20:6653", "tcp:10.0.0.21:6653")
    assert (c.instance, c.coordination_ttl) == ("ctl-a", 5.0)


def test_every_instance_has_its_openflow10_port_config_target_the_next_port(tmp_path):
    """`openflow.port_config` (`netctl.sinks.portconfig`): each controller target's port + 1,
    IPv6 targets included; listened on at openflow.listen's port + 1; off: none."""
    c = config(tmp_path, url="etcd3+http://10.0.0.9:2379", instance_id="ctl-a",
               controllers=["tcp:10.0.0.20:6653", "tcp:[fd00::21]:7000"])
    assert c.port_config_targets == ("tcp:10.0.0.20:6654", "tcp:[fd00::21]:7001")
    assert c.port_config_listen == ("10.0.0.20", 6654)
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump({"openflow": {"listen": "10.0.0.20:6653",
                                                 "port_config": False}}))
    assert load(path).port_config_targets == ()


def test_the_instance_id_defaults_to_hostname_and_port(tmp_path):
    c = config(tmp_path, url="etcd3+http://10.0.0.9:2379")
    assert c.instance.endswith("-6653") and c.controller_targets == ("tcp:10.0.0.20:6653",)


@pytest.mark.parametrize("coordination, words", [
    ({"url": "http//10.0.0.9:2379"}, "expected etcd3+http://"),
    ({"url": "etcd3+http://10.0.0.9"}, "is not HOST:PORT"),
    ({"url": "etcd3+http://10.0.0.9:2379", "ttl": 0.5}, "at least 1 second"),
    ({"url": "etcd3+http://10.0.0.9:2379", "instance_id": "a/b"}, "without '/'"),
    ({"url": "etcd3+http://10.0.0.9:2379", "controllers": ["tcp:10.0.0.21:6653"]},
     "own target tcp:10.0.0.20:6653"),
    ({"url": "etcd3+http://10.0.0.9:2379", "controllers": ["10.0.0.20:6653"]},
     "tcp:HOST:PORT or ssl:HOST:PORT"),
    ({"controllers": ["tcp:10.0.0.20:6653"]}, "need coordination.url"),
    ({"urls": "etcd3+http://10.0.0.9:2379"}, "unknown key 'urls'"),
])
def test_a_mistyped_coordination_is_an_error_naming_the_key(tmp_path, coordination, words):
    with pytest.raises(ConfigError, match="coordination") as err:
        config(tmp_path, **coordination)
    assert words in str(err.value)
