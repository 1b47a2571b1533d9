"""The OpenFlow controller over TLS: switches with certificates from the switch CA connect to
an `ssl:` target, the controller proves itself with one from the controller CA (ovs-pki)."""

from __future__ import annotations

import subprocess

import pytest

from harness.sdn import ControllerProcess
from netctl.lab.lab import Lab
from netctl.topology import parse_file
from netctl.xapisim.server import serve
from netctl.xapisim.sim import Simulator
from tests.conftest import TOPOLOGIES, lab_footprint
from tests.lab.conftest import NOTHING

pytestmark = pytest.mark.lab
PREFIX = "ttl"


def test_bridges_connect_over_tls_and_forward(tmp_path):
    pki = tmp_path / "pki"
    subprocess.run(["ovs-pki", f"--dir={pki}", "init"], check=True, capture_output=True,
                   cwd=tmp_path)
    for kind, name in (("controller", "ctl"), ("switch", "sc")):
        subprocess.run(["ovs-pki", f"--dir={pki}", "req+sign", name, kind], check=True,
                       capture_output=True, cwd=tmp_path)
    topo = parse_file(TOPOLOGIES / "mini-pool.yaml").relabel(PREFIX, "198.18.37.0/24")
    sim = Simulator.from_topology(topo)
    server = serve(sim, "127.0.0.1", 0)
    listen = f"{topo.management_address(None)}:26655"
    lab = Lab.up(topo, controller=f"ssl:{listen}")
    ctl = ControllerProcess(listen, server.url, tmp_path, extra_args=(
        "--tls-key", str(tmp_path / "ctl-privkey.pem"), "--tls-cert",
        str(tmp_path / "ctl-cert.pem"), "--tls-ca", str(pki / "switchca" / "cacert.pem")))
    try:
        for host in topo.hosts:
            ovs = lab.ovs(host.name)
            ovs.vsctl("set-ssl", str(tmp_path / "sc-privkey.pem"), str(tmp_path / "sc-cert.pem"),
                      str(pki / "controllerca" / "cacert.pem"))
            ovs.vsctl("set", "controller", "xenbr0", "max_backoff=1000")
        ctl.start()
        ctl.wait_converged(len(topo.hosts))
        assert ctl.status()["stats"]["flow_mods"] > 0
        for host in topo.hosts:
            target = lab.ovs(host.name).vsctl("get", "controller", "xenbr0", "target")
            assert target.strip('"').startswith("ssl:")
        ping = lab.exec("vm1", ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "10.50.0.2"],
                        check=False)
        assert ping.returncode == 0, ping.stdout
    finally:
        ctl.stop()
        lab.down()
        server.stop()
    assert lab_footprint(PREFIX) == NOTHING
