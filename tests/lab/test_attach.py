"""Attaching netctl to a pool as xapi expects (issue 18): `netctl register` introduces it as the
pool's SDN controller, xapi's openvswitch-config-update (played by the lab agent) gives every
host its OVSDB manager `pssl:6640` with its SSL settings, and `netctl run` — whose
configuration names no OVSDB endpoint — connects to each host over SSL; a host whose
certificate another CA signed is refused with an error naming it; `netctl unregister` takes
the managers away and leaves the dataplane as it is.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.running import running_pool, until
from netctl.lab.config_update import HOST_CERT, PRESET_CA
from netctl.lab.expect import probes
from netctl.lab.ovs_instance import SCHEMA
from netctl.lab.probe import run_probes

pytestmark = pytest.mark.lab
PREFIX = "tat"
PORTS = (28621, 26821, 29621)  # xapi simulator, OpenFlow, metrics
HOSTS = ("host1", "host2", "host3")


def netctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netctl.cli", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """The operator's certificates: netctl's CA and certificate, one per host; and a host
    certificate from a CA netctl does not know."""
    d = tmp_path_factory.mktemp("pki")
    for args in (("pki", "init", "--dir", str(d / "ca")),
                 *(("pki", "host", h, "--dir", str(d / "ca")) for h in HOSTS + ("intruder",)),
                 ("pki", "init", "--dir", str(d / "rogue")),
                 ("pki", "host", "host2", "--dir", str(d / "rogue"))):
        done = netctl(*args)
        assert done.returncode == 0, done.stderr
    return d


@pytest.fixture(scope="module")
def pool(pki: Path):
    ca = pki / "ca"
    settings = {"ovsdb": {"ssl": {"private_key": str(ca / "controller-key.pem"),
                                  "certificate": str(ca / "controller-cert.pem"),
                                  "ca_cert": str(ca / "ca-cert.pem")}}}
    with running_pool("demo-pool.yaml", PREFIX, "198.18.53.0/24", PORTS, settings=settings,
                      attach=True, converge=False) as demo:
        yield demo


def install(pool, host: str, pem: Path, ca: Path) -> None:
    """What the operator does on a real host: its server certificate
    (`xe host-server-certificate-install`) and the controller CA in /etc/stunnel/certs."""
    rundir = pool.lab.ovs(host).rundir
    shutil.copy(pem, rundir / HOST_CERT)
    shutil.copy(ca, rundir / PRESET_CA)


def hosts(pool) -> dict[str, dict]:
    return {h["name"]: h for h in pool.status().get("hosts", [])}


def managers(pool) -> set[str]:
    return {pool.lab.ovs(host).vsctl("get-manager") for host in HOSTS}


def matrix(pool) -> list[str]:
    """The demo's connectivity matrix: what is wrong (nothing, when it holds)."""
    lab = pool.lab.reload()
    results = run_probes(lab, probes(lab.topology, lab.state.plugged))
    assert len(results) > 50
    return [f"{r.probe.src.label} -> {r.probe.address}: expected "
            f"{'reach' if r.probe.expected else 'isolated'}" for r in results if not r.ok]


def converge(pool, what: str) -> None:
    pool._wait(pool.converged, 120, what)
    assert pool.lab.wait_lacp(30)


def test_register_attach_over_ssl_refuse_a_stranger_and_unregister(pool, pki: Path) -> None:
    x = pool.session.xenapi
    login = ("--xapi", pool.xapi_url, "--password-file", str(pool.lab.state.dir / "password"))
    config = ("--config", str(pool.lab.state.dir / "netctl.yaml"))
    # before: the hosts' OVSDB is reachable from nowhere, and netctl says so per host
    assert until(lambda: len(hosts(pool)) == 3, 30), pool.status()
    assert all(not h["connected"] for h in hosts(pool).values())
    assert managers(pool) == {""}

    for host in HOSTS:
        install(pool, host, pki / "ca" / "hosts" / f"{host}.pem", pki / "ca" / "ca-cert.pem")
    install(pool, "host2", pki / "rogue" / "hosts" / "host2.pem", pki / "ca" / "ca-cert.pem")
    the_pool = x.pool.get_all()[0]
    x.pool.remove_from_other_config(the_pool, "vswitch-controller-fail-mode")
    x.pool.add_to_other_config(the_pool, "vswitch-controller-fail-mode", "secure")
    done = netctl("register", *login)
    assert done.returncode == 0, done.stderr
    assert "registered: protocol pssl" in done.stdout
    assert "netctl-locking-mode=locked" in done.stdout  # what registering changes for locking
    assert until(lambda: managers(pool) == {"pssl:6640"}, 10)

    # host1 is reached over SSL; host2's certificate is from another CA: refused, named
    assert until(lambda: hosts(pool)["host1"]["connected"], 30), hosts(pool)
    assert hosts(pool)["host1"]["endpoint"].startswith("ssl:198.18.53.")
    assert until(lambda: "not signed by the CA" in hosts(pool)["host2"]["error"], 30), \
        hosts(pool)["host2"]
    assert not hosts(pool)["host2"]["connected"]
    log = (pool.lab.state.dir / "netctl-run.log").read_text()
    assert "host2" in log and "not signed by the CA" in log

    # registering again: the same is a no-op, another controller is refused
    again = netctl("register", *login)
    assert again.returncode == 0 and "already registered" in again.stdout
    other = netctl("register", *login, "--protocol", "ssl", "--address", "198.18.53.1")
    assert other.returncode != 0 and "already has an SDN controller" in other.stderr

    # host2 gets a certificate from netctl's CA: connected, the pool converges and forwards
    install(pool, "host2", pki / "ca" / "hosts" / "host2.pem", pki / "ca" / "ca-cert.pem")
    converge(pool, "convergence over SSL")
    assert all(h["endpoint"].startswith("ssl:") for h in hosts(pool).values())
    assert matrix(pool) == []

    # xapi refuses an effective `locked` now; netctl's override is the way
    vif = pool.vif_ref("vm1", 0)
    with pytest.raises(Exception, match="vswitch controller is active"):
        x.VIF.set_locking_mode(vif, "locked")

    # unregister: the managers go, the dataplane stays
    done = netctl("unregister", *login, *config)
    assert done.returncode == 0, done.stderr
    assert "forgotten: protocol pssl" in done.stdout
    assert until(lambda: managers(pool) == {""}, 10)
    assert until(lambda: not any(h["connected"] for h in hosts(pool).values()), 30)
    assert matrix(pool) == []


def test_protocol_ssl_the_hosts_connect_to_netctl_and_a_stranger_is_refused(pool,
                                                                          pki: Path) -> None:
    """Protocol `ssl`: every host's manager is `ssl:NETCTL:PORT`; netctl listens there, tells
    the hosts apart by their system-id and drives each over its own connection."""
    x = pool.session.xenapi
    login = ("--xapi", pool.xapi_url, "--password-file", str(pool.lab.state.dir / "password"))
    for host in HOSTS:
        install(pool, host, pki / "ca" / "hosts" / f"{host}.pem", pki / "ca" / "ca-cert.pem")
    address, port = pool.mgmt, 26832
    done = netctl("register", *login, "--protocol", "ssl", "--address", address, "--port",
                  str(port))
    assert done.returncode == 0, done.stderr
    assert f"registered: protocol ssl, {address}:{port}" in done.stdout
    target = f"ssl:{address}:{port}"
    assert until(lambda: managers(pool) == {target}, 10)
    converge(pool, "convergence with the hosts connecting in")
    assert all(h["endpoint"].startswith("unix:") for h in hosts(pool).values())
    assert matrix(pool) == []
    # a connection with a certificate from another CA is refused and logged
    log = pool.lab.state.dir / "netctl-run.log"
    rogue = pki / "rogue"
    stranger = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:{port}", "-cert",
         str(rogue / "controller-cert.pem"), "-key", str(rogue / "controller-key.pem")],
        input="", capture_output=True, text=True, timeout=20)
    assert stranger.returncode is not None
    assert until(lambda: "its certificate is not signed by the CA" in log.read_text(), 10)
    # an OVSDB with a certificate from the CA but a system-id the pool does not have
    with intruder(pki, target):
        assert until(lambda: "system-id intruder is no host of the pool" in log.read_text(),
                     20)
    assert all(h["connected"] for h in hosts(pool).values())
    x.pool.remove_from_other_config(x.pool.get_all()[0], "vswitch-controller-fail-mode")
    done = netctl("unregister", *login, "--config", str(pool.lab.state.dir / "netctl.yaml"),
                  "--force")
    assert done.returncode == 0, done.stderr
    assert until(lambda: managers(pool) == {""}, 10)


class intruder:  # noqa: N801 - used as `with intruder(...)`
    """An ovsdb-server of this test's own (root namespace, its own directory, stopped by its
    PID) whose certificate netctl's CA signed, with system-id `intruder`, connecting to
    `target` as a host's manager would."""

    def __init__(self, pki: Path, target: str) -> None:
        self.pki, self.target = pki, target

    def __enter__(self) -> intruder:
        self.dir = Path(tempfile.mkdtemp(prefix="tat-intruder-"))
        d, sock = self.dir, self.dir / "db.sock"
        subprocess.run(["ovsdb-tool", "create", str(d / "conf.db"), str(SCHEMA)], check=True)
        subprocess.run(["ovsdb-server", str(d / "conf.db"), f"--remote=punix:{sock}",
                        "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                        "--private-key=db:Open_vSwitch,SSL,private_key",
                        "--certificate=db:Open_vSwitch,SSL,certificate",
                        "--ca-cert=db:Open_vSwitch,SSL,ca_cert", f"--pidfile={d / 'pid'}",
                        f"--unixctl={d / 'ctl'}", "--detach", f"--log-file={d / 'log'}"],
                       check=True)
        pem = str(self.pki / "ca" / "hosts" / "intruder.pem")
        subprocess.run(["ovs-vsctl", f"--db=unix:{sock}", "--no-wait", "init", "--", "set",
                        "Open_vSwitch", ".", "external_ids:system-id=intruder", "--",
                        "set-ssl", pem, pem, str(self.pki / "ca" / "ca-cert.pem"), "--",
                        "set-manager", self.target], check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        os.kill(int((self.dir / "pid").read_text()), signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)
