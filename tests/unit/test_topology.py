"""Topology files: the shipped ones parse; every malformed field is named precisely."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from netctl.lab.expect import network_vlan, probes
from netctl.topology import TopologyError, parse_data, parse_file, parse_text
from netctl.topology_gen import pool_data
from tests.conftest import TOPOLOGIES, lab_footprint


def broken(mutate) -> TopologyError:
    data = yaml.safe_load((TOPOLOGIES / "mini-pool.yaml").read_text())
    mutate(data)
    with pytest.raises(TopologyError) as info:
        parse_data(data, "bad.yaml")
    return info.value


@pytest.mark.parametrize("name", ["demo-pool.yaml", "mini-pool.yaml"])
def test_shipped_topologies_parse(name):
    topo = parse_file(TOPOLOGIES / name)
    assert topo.hosts and topo.vms
    macs = [n.mac for h in topo.hosts for n in h.nics] + [v.mac for vm in topo.vms for v in vm.vifs]
    assert len(macs) == len(set(macs))


def test_demo_pool_is_what_the_issue_asks():
    topo = parse_file(TOPOLOGIES / "demo-pool.yaml")
    assert len(topo.hosts) == 3
    for host in topo.hosts:
        assert [b.mode for b in host.bonds] == ["lacp"] and len(host.bonds[0].members) == 2
        third = [n for n in host.nics if n.device not in host.bonds[0].members]
        cable = next(
            c for c in topo.switch.cables if c.host == host.name and c.nic == third[0].device
        )
        assert cable.vlan is not None and not cable.trunk  # an access VLAN
        assert sum(vm.host == host.name for vm in topo.vms) == 2
    assert len(topo.switch.bonds) == 3


def test_uuids_and_macs_are_stable_and_distinct():
    a = parse_file(TOPOLOGIES / "demo-pool.yaml")
    b = parse_file(TOPOLOGIES / "demo-pool.yaml").relabel("zz", "198.18.200.0/24")
    assert [v.uuid for v in a.vms] == [v.uuid for v in b.vms]
    assert a.vms[0].vifs[0].mac == b.vms[0].vifs[0].mac
    uuids = [a.pool_uuid] + [x.uuid for x in (*a.networks, *a.hosts, *a.vms)]
    assert len(uuids) == len(set(uuids))


def test_unknown_host_in_a_cable():
    err = broken(lambda d: d["switch"]["cables"].append({"host": "host9", "nic": "eth0"}))
    assert (err.source, err.obj, err.field) == ("bad.yaml", "switch cables[2]", "host")
    assert "host9" in str(err) and str(err).startswith("bad.yaml: switch cables[2]: field 'host'")


def test_duplicate_mac():
    def dup(d):
        d["vms"][1]["vifs"][0]["mac"] = "02:00:00:00:00:01"
        d["vms"][0]["vifs"][0]["mac"] = "02:00:00:00:00:01"

    err = broken(dup)
    assert err.obj == "VM 'vm2' VIF 0" and err.field == "mac"
    assert "already used by VM 'vm1' VIF 0" in err.message


def test_mac_shared_between_a_nic_and_a_vif():
    def dup(d):
        d["hosts"][0]["nics"][0]["mac"] = "02:aa:00:00:00:01"
        d["vms"][0]["vifs"][0]["mac"] = "02:aa:00:00:00:01"

    err = broken(dup)
    assert err.field == "mac" and "host 'host1' NIC eth0" in err.message


@pytest.mark.parametrize("value", ["10.50.0.300/24", "10.50.0.1", "fd4e::1/64", "nonsense"])
def test_bad_cidr(value):
    err = broken(lambda d: d["vms"][0]["vifs"][0].update(ipv4=[value]))
    assert (err.obj, err.field) == ("VM 'vm1' VIF 0", "ipv4[0]")
    assert repr(value) in err.message


@pytest.mark.parametrize(
    "mutate, obj, field, words",
    [
        (
            lambda d: d["switch"]["cables"][0].update(nic="eth7"),
            "switch cables[0]",
            "nic",
            "no NIC",
        ),
        (
            lambda d: d["switch"]["cables"][0].update(vlan=4095),
            "switch cable host1/eth0",
            "vlan",
            "outside 1..4094",
        ),
        (lambda d: d["vms"][0].update(host="nowhere"), "VM 'vm1'", "host", "unknown host"),
        (
            lambda d: d["vms"][0]["vifs"][0].update(network="lan"),
            "VM 'vm1' VIF 0",
            "network",
            "unknown network",
        ),
        (
            lambda d: d["hosts"][0].update(bonds=[{"members": ["eth0"], "network": "pool"}]),
            "host 'host1' bond bond0",
            "members",
            "at least two NICs",
        ),
        (
            lambda d: d["networks"].append({"name": "again", "bridge": "xenbr0"}),
            "network 'again'",
            "bridge",
            "already the bridge",
        ),
        (lambda d: d["networks"][0].update(mtu=20000), "network 'pool'", "mtu", "68..9216"),
        (
            lambda d: d["vms"][0]["vifs"][0].update(locking_mode="strict"),
            "VM 'vm1' VIF 0",
            "locking_mode",
            "not one of",
        ),
        (lambda d: d["hosts"][0].update(colour="blue"), "hosts[0]", "colour", "unknown field"),
        (lambda d: d.update(management="10.0.0.0/30"), "topology", "management", "/26 or larger"),
    ],
)
def test_malformed_fields(mutate, obj, field, words):
    err = broken(mutate)
    assert (err.obj, err.field) == (obj, field)
    assert words in err.message


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(TopologyError) as info:
        parse_text("name: x\nhosts: [\n", "bad.yaml")
    assert str(info.value).startswith("bad.yaml: line")


def test_expected_reachability_of_the_demo_pool():
    topo = parse_file(TOPOLOGIES / "demo-pool.yaml")
    assert network_vlan(topo, "pool") == 1 and network_vlan(topo, "vlan10") == 10
    assert network_vlan(topo, "priva") is None
    by_pair = {(p.src.node, p.address): p.expected for p in probes(topo)}
    assert by_pair[("vm1", "10.10.0.13")] is True  # same external network, two hosts
    assert by_pair[("vm1", "10.10.0.254")] is True  # the router, outside the pool
    assert by_pair[("vm2", "10.20.0.254")] is True  # server on VLAN 10
    assert by_pair[("vm2", "10.20.0.14")] is False  # same subnet, VLAN 20
    assert by_pair[("vm1", "10.40.0.13")] is True  # private network A across hosts
    assert by_pair[("vm1", "10.40.0.12")] is False  # same subnet, private network B
    assert by_pair[("vm2", "fd4e:40::15")] is True


@pytest.mark.lab
def test_cli_rejects_a_malformed_topology_before_creating_anything(tmp_path):
    data = yaml.safe_load((TOPOLOGIES / "mini-pool.yaml").read_text())
    data["prefix"] = "tbad"
    data["switch"]["cables"].append({"host": "ghost", "nic": "eth0"})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [sys.executable, "-m", "netctl.cli", "lab", "up", str(path)], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert f"{path}: switch cables[2]: field 'host': unknown host 'ghost'" in proc.stderr
    assert lab_footprint("tbad") == {"namespaces": [], "root links": [], "processes": []}


def test_topology_readme_documents_every_field():
    readme = (TOPOLOGIES / "README.md").read_text()
    for word in (
        "prefix",
        "management",
        "networks",
        "vlan",
        "tunnel",
        "hosts",
        "nics",
        "bonds",
        "addresses",
        "switch",
        "cables",
        "trunk",
        "native",
        "outside",
        "vms",
        "vifs",
        "locking_mode",
        "ipv4_allowed",
        "default_locking_mode",
    ):
        assert f"`{word}`" in readme, word


def test_pool_topo_is_the_same_pool_for_mininet():
    from netctl.lab.mininet_view import PoolTopo

    topo = parse_file(TOPOLOGIES / "demo-pool.yaml")
    mn = PoolTopo(topo)
    assert set(mn.hosts()) == {v.name for v in topo.vms} | {o.name for o in topo.switch.outside}
    assert set(mn.switches()) == {h.name for h in topo.hosts} | {"tor"}
    links = mn.links(withInfo=True)
    vif_links = [info for _a, _b, info in links if info.get("network")]
    assert len(vif_links) == sum(len(vm.vifs) for vm in topo.vms)
    cable = next(info for a, b, info in links
                 if {a, b} == {"host2", "tor"} and info.get("intfName1") == "eth2")
    assert cable["vlan"] == 30 and cable["intfName2"] == "h2-eth2"
    dpids = {mn.nodeInfo(s)["dpid"] for s in mn.switches()}
    assert len(dpids) == len(mn.switches())  # explicit, distinct (Mininet would derive them)


def test_a_topology_file_may_be_json_and_reads_the_same(tmp_path):
    text = (TOPOLOGIES / "demo-pool.yaml").read_text()
    as_json = tmp_path / "demo.json"
    as_json.write_text(json.dumps(yaml.safe_load(text)))
    assert parse_file(as_json) == parse_text(text, str(as_json))
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"name": "x",')  # neither JSON nor YAML: the YAML error says where
    with pytest.raises(TopologyError) as info:
        parse_file(broken_json)
    assert "not valid YAML" in str(info.value)


def test_domids_past_xens_range_are_per_host():
    """A pool of more VMs than Xen's 32767 domids (64 hosts x 1000 VMs): a VM without a domid
    gets its place in the file while that fits, then the lowest free domid on its host, and
    every VIF keeps a distinct port name on its host."""
    topo = parse_data(pool_data(40, 1000, vifs_per_vm=1), "gen")
    assert len(topo.vms) == 40_000
    by_name = {vm.name: vm for vm in topo.vms}
    assert by_name["vm32767"].domid == 32767
    assert by_name["vm32768"].host == "host33" and by_name["vm32768"].domid == 1
    seen = {(vm.host, vm.domid) for vm in topo.vms}
    assert len(seen) == len(topo.vms)


def test_the_generator_writes_big_pools_as_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "netctl.topology_gen", "3", "--vms-per-host",
                          "100", "--vifs-per-vm", "1", "--json"], capture_output=True,
                         text=True, check=True).stdout
    path = tmp_path / "pool.json"
    path.write_text(out)
    topo = parse_file(path)
    assert len(topo.vms) == 300 and all(len(vm.vifs) == 1 for vm in topo.vms)
    addresses = [vm.vifs[0].ipv4[0] for vm in topo.vms]
    assert addresses[0] == "10.60.0.1/16" and addresses[299] == "10.60.1.44/16"
    assert len(set(addresses)) == 300
    bad = subprocess.run([sys.executable, "-m", "netctl.topology_gen", "3", "--vifs-per-vm",
                          "3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
