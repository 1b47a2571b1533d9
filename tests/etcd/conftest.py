"""A real etcd on loopback (Debian's etcd-server, `netctl/lab/etcd.py`), one cluster per test:
skipped where the binary is missing (`make setup` installs it)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from netctl.lab.etcd import EtcdCluster, etcd_available

with warnings.catch_warnings():
    # etcd3gw imports futurist, which imports eventlet (there for os-ken) only to warn that
    # eventlet is deprecated: imported once here, quietly.
    warnings.simplefilter("ignore")
    import netctl.service.coordination  # noqa: F401



@pytest.fixture
def etcd() -> Iterator[EtcdCluster]:
    if not etcd_available():
        pytest.skip("no /usr/bin/etcd (Debian's etcd-server; make setup installs it)")
    with EtcdCluster(1) as cluster:
        yield cluster


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    if not etcd_available():
        pytest.skip("no /usr/bin/etcd (Debian's etcd-server; make setup installs it)")
    with EtcdCluster(3) as cluster:
        yield cluster
