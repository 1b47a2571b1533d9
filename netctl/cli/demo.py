"""`make demo`: the whole product on the embedded lab, checked as a person would check it.

1. The lab comes up with *empty* host OVS instances; a xapi simulator holds the pool; the lab
   agent plays xenopsd/networkd from xapi; `netctl run` does the rest: bridges, bonds, VLANs,
   tunnels over each host's OVSDB, every flow table over OpenFlow.
2. Connectivity, expected vs observed, IPv4 and IPv6, in one matrix; spoofing from a locked
   VIF, captured on another host.
3. Two `netctl run` instances share the hosts on etcd (one master per host); the one
   mastering host1 is killed (kill -9) and the other takes its hosts over.
4. Live changes through the official XenAPI client — a VIF plug, a VM migration, a bond member
   failure, a locking-mode change — each timed until the lab shows its effect, made after the
   failover: the surviving instance applies them.
Exits non-zero if anything is not as expected; leaves nothing behind unless `keep`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import XenAPI
import yaml

from netctl.lab.expect import probes
from netctl.lab.lab import Lab
from netctl.lab.probe import run_probes
from netctl.lab.processes import OwnedProcess
from netctl.model.hostport import join_host_port
from netctl.topology import Topology

XAPI_PORT = 18443
OPENFLOW_PORT = 16633
METRICS_PORT = 19464
MEMBERS_PORT = 80  # each host's own xapi (DemoPool members=True), as on a real host


@dataclass
class Change:
    what: str
    expected: str
    seconds: float | None  # None: did not converge in time

    @property
    def ok(self) -> bool:
        return self.seconds is not None


class DemoPool:
    """Lab + xapi simulator + lab agent + `netctl run`, as processes recorded in the lab, so
    `netctl lab down` stops them too (by PID) even if the demo itself dies."""

    def __init__(self, topology: Topology, log: Callable[[str], None] = print,
                 ports: tuple[int, int, int] = (XAPI_PORT, OPENFLOW_PORT, METRICS_PORT),
                 settings: dict[str, dict] | None = None, attach: bool = False,
                 members: bool = False, instances: int = 1, etcd_members: int = 0,
                 ttl: float = 3.0) -> None:
        """`settings`: extra `netctl run` configuration, by section (netctl/service/config.py).
        `attach`: the hosts' OVSDB listens on no port of its own and netctl's configuration
        names no endpoint: netctl reaches the hosts once it is the pool's SDN controller
        (`netctl register`), as in a real pool.
        `members`: every host also serves xapi on its management address, port 80, in its
        namespace (`member_url`): the master serves, the others answer HOST_IS_SLAVE.
        `instances` > 1: that many `netctl run` processes on an etcd cluster of
        `etcd_members` members (1 or 3; on loopback, started and stopped with the pool:
        `netctl.lab.etcd`), lease TTL `ttl`: instance i listens on OpenFlow port
        openflow_port + 2i (+ 2i + 1: its OpenFlow 1.0 port-config session) and serves
        /status on metrics_port + i; every bridge connects to all of them."""
        if instances > 1 and not etcd_members:
            raise ValueError("several instances need etcd (etcd_members 1 or 3)")
        self.instances = instances
        self.etcd_members = etcd_members
        self.ttl = ttl
        self.etcd = None  # netctl.lab.etcd.EtcdCluster, with etcd_members
        self.topology = topology
        self.members = members
        self.settings = settings or {}
        self.attach = attach
        self.log = log
        self.xapi_port, self.openflow_port, self.metrics_port = ports
        self.lab: Lab | None = None
        self.session: XenAPI.Session | None = None
        self._args: dict[str, list[str]] = {}

    @property
    def mgmt(self) -> str:
        return self.topology.management_address(None)

    @property
    def xapi_url(self) -> str:
        return f"http://127.0.0.1:{self.xapi_port}/"

    @property
    def run_xapi_url(self) -> str:
        """What `netctl run` is given: with `members`, the second host's own xapi — a slave
        when the pool starts, so netctl has to find the master itself."""
        if self.members and len(self.topology.hosts) > 1:
            return self.member_url(self.topology.hosts[1].name)
        return self.xapi_url

    def member_url(self, host_name: str) -> str:
        """The xapi of one host (with `members`): its management address, port 80."""
        address = self.topology.management_address(host_name)
        return f"http://{join_host_port(address, MEMBERS_PORT)}/"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/status"

    def instance_name(self, i: int) -> str:
        """Instance i's process name in the lab's records (and its log file's)."""
        return "netctl-run" if i == 0 else f"netctl-run-{i}"

    def instance_id(self, i: int) -> str:
        """Instance i's id in etcd (several instances)."""
        return f"ctl-{chr(ord('a') + i)}"

    def status_url_of(self, i: int) -> str:
        return f"http://127.0.0.1:{self.metrics_port + i}/status"

    def up(self) -> None:
        self.lab = lab = Lab.up(self.topology, host_networking="none",
                                ovsdb_tcp=not self.attach)
        work = lab.state.dir
        (work / "password").write_text("netctl\n")
        config: dict[str, dict] = {
            "openflow": {"listen": join_host_port(self.mgmt, self.openflow_port)},
            "ovsdb": {"datapath_type": "netdev"} if self.attach else
                     {"endpoint": "tcp:{address}:6640", "datapath_type": "netdev"},
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
        }
        for section, values in self.settings.items():
            config.setdefault(section, {}).update(values)
        if self.etcd_members:
            from netctl.lab.etcd import EtcdCluster

            self.etcd = EtcdCluster(self.etcd_members, name=f"{self.topology.prefix}-etcd")
        targets = [f"tcp:{join_host_port(self.mgmt, self.openflow_port + 2 * i)}"
                   for i in range(self.instances)]
        for i in range(self.instances):
            cfg = yaml.safe_load(yaml.safe_dump(config))
            if self.etcd is not None:
                cfg["openflow"]["listen"] = join_host_port(self.mgmt,
                                                           self.openflow_port + 2 * i)
                cfg["metrics"]["listen"] = f"127.0.0.1:{self.metrics_port + i}"
                cfg["coordination"] = {"url": self.etcd.url, "instance_id": self.instance_id(i),
                                       "ttl": self.ttl, "controllers": targets}
            name = "netctl.yaml" if i == 0 else f"netctl-{i}.yaml"
            (work / name).write_text(yaml.safe_dump(cfg))
        self._spawn(
            "xapi-sim",
            [
                "xapi-sim",
                "--topology",
                str(work / "topology.yaml"),
                "--listen",
                f"127.0.0.1:{self.xapi_port}",
                *(["--members-port", str(MEMBERS_PORT), "--members-netns",
                   self.topology.prefix] if self.members else []),
            ],
            topology=True,
        )
        self._wait(lambda: self._xapi_up(), 20, "the xapi simulator")
        for i in range(self.instances):
            self._spawn(
                self.instance_name(i),
                [
                    "run",
                    "--xapi",
                    self.run_xapi_url,
                    "--password-file",
                    str(work / "password"),
                    "--config",
                    str(work / ("netctl.yaml" if i == 0 else f"netctl-{i}.yaml")),
                ],
            )
        self._spawn(
            "lab-agent",
            [
                "lab",
                "agent",
                "--lab",
                self.topology.prefix,
                "--xapi",
                self.xapi_url,
                "--password-file",
                str(work / "password"),
            ],
        )
        self.session = XenAPI.Session(self.xapi_url)
        self.session.xenapi.login_with_password("root", "netctl", "1.0", "netctl-demo")

    def stop(self, name: str) -> None:
        """Stop one of the demo's processes (by the PID and start time it recorded)."""
        assert self.lab is not None
        for proc in self.lab.reload().state.owned_processes():
            if proc.what == name:
                proc.stop()

    def restart(self, name: str) -> None:
        self.stop(name)
        self._spawn(name, self._args[name])

    def _spawn(self, name: str, args: list[str], topology: bool = False) -> None:
        assert self.lab is not None
        self._args[name] = args
        if topology:
            (self.lab.state.dir / "topology.yaml").write_text(self.topology.to_yaml())
        log = open(self.lab.state.dir / f"{name}.log", "a")  # noqa: SIM115 - child keeps it
        proc = subprocess.Popen(
            [sys.executable, "-m", "netctl.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lab.reload().state.add_process(OwnedProcess.from_pid(proc.pid, name))

    def _xapi_up(self) -> bool:
        try:
            XenAPI.Session(self.xapi_url).xenapi.login_with_password("root", "netctl")
            return True
        except OSError:
            return False

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
            time.sleep(0.05)
        return time.monotonic() - start

    def status(self, instance: int = 0) -> dict:
        try:
            with urllib.request.urlopen(self.status_url_of(instance), timeout=5) as resp:
                return json.load(resp)
        except OSError:
            return {}

    def converged(self) -> bool:
        """Every host's OVSDB connected and its last change in effect (ovs-vswitchd applied
        it, not merely written, on every instance), every switch's table read and written
        (by its master, with several instances), every VIF plugged, every PIF address up,
        every tunnel active (BFD up between its ends) or in error."""
        st = self.status()
        hosts = st.get("hosts", [])
        if len(hosts) < len(self.topology.hosts) or not all(h["connected"] for h in hosts):
            return False
        if any(r.get("config", {}).get("pending") for r in self.host_configs(st).values()):
            return False
        sw = st.get("switches", [])
        if not sw:
            return False
        written = {s["dpid"] for s in sw if s["flows"] is not None}
        for i in range(1, self.instances):
            written |= {s["dpid"] for s in self.status(i).get("switches", [])
                        if s["flows"] is not None}
        if written != {s["dpid"] for s in sw}:
            return False
        assert self.lab is not None
        want = sum(len(vm.vifs) for vm in self.topology.vms)
        if sum(len(v) for v in self.lab.reload().state.plugged.values()) != want:
            return False
        if not all(self._has_address(h.name, self.topology.network(a.network).bridge, cidr)
                   for h in self.topology.hosts for a in h.addresses
                   for cidr in (a.ipv4, a.ipv6) if cidr):
            return False
        # every tunnel proven by BFD (tunnel.status active), or a Problem (its error)
        return all(t["status"].get("active") == "true" or t["status"].get("error")
                   for t in st.get("tunnels", []))

    def _host_rows_per_instance(self, first: dict | None = None) -> list[list[dict]]:
        """Each instance's /status host rows (instance 0's given when already read; an
        instance that does not answer — stopped, killed by the failover act — has none)."""
        st = first if first is not None else self.status()
        return [st.get("hosts", [])] + [self.status(i).get("hosts", [])
                                        for i in range(1, self.instances)]

    def host_configs(self, first: dict | None = None) -> dict[str, dict]:
        """Host name -> the /status host row of the instance that last wrote the host (its
        `config`: written vs in effect, issue 24); with several instances each host's master
        writes it, the other has nothing written there."""
        out: dict[str, dict] = {}
        for rows in self._host_rows_per_instance(first):
            for row in rows:
                cfg, seen = row.get("config") or {}, out.get(row["name"])
                seen_at = (seen or {}).get("config", {}).get("written_at") or 0
                if seen is None or (cfg.get("written") and (cfg.get("written_at") or 0)
                                    >= seen_at):
                    out[row["name"]] = row
        return out

    def _has_address(self, host: str, device: str, cidr: str) -> bool:
        """The lab agent (networkd's part) put the PIF's address on its bridge device."""
        assert self.lab is not None
        out = self.lab.exec(host, ["ip", "-o", "addr", "show", "dev", device], check=False)
        return f" {cidr} " in out.stdout

    def down(self) -> None:
        if self.session is not None:
            try:
                self.session.xenapi.session.logout()
            except Exception:  # noqa: BLE001 - the simulator may be gone
                pass
        if self.lab is not None:
            self.lab.reload().down()
        if self.etcd is not None:
            self.etcd.close()

    # ------------------------------------------------------------------ XenAPI helpers
    def ref(self, cls: str, uuid: str) -> str:
        assert self.session is not None
        return getattr(self.session.xenapi, cls).get_by_uuid(uuid)

    def vif_ref(self, vm: str, device: int) -> str:
        return self.ref(
            "VIF", next(v.uuid for v in self.topology.vm(vm).vifs if v.device == device)
        )


def ping_ok(lab: Lab, node: str, address: str, *extra: str, wait: float = 0.1) -> bool:
    family = "-6" if ":" in address else "-4"
    return (
        lab.exec(
            node, ["ping", family, "-n", "-c", "1", "-W", str(wait), *extra, address], check=False
        ).returncode
        == 0
    )


def timed(
    action: Callable[[], None], effect: Callable[[], bool], timeout: float = 30.0
) -> float | None:
    """Seconds from the action (a XenAPI call) to the first time the effect is observed."""
    start = time.monotonic()
    action()
    while time.monotonic() - start < timeout:
        if effect():
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def converge_timeout(topology: Topology) -> float:
    """How long the demo waits for convergence: 90 s, plus 5 s a host past 8 (measured: 16
    hosts converge in about 15-25 s on 2 cores; the margin is for a loaded machine)."""
    return 90.0 + 5.0 * max(0, len(topology.hosts) - 8)


def failover(pool: DemoPool) -> Change:
    """Kill -9 the instance mastering host1 and time until the other one masters every host
    and every switch acknowledged it as MASTER (its /status)."""
    import os
    import signal

    assert pool.lab is not None
    first = pool.topology.hosts[0].name
    owners = {h: m["instance"] for h, m in
              (pool.status(0).get("coordination") or {}).get("masters", {}).items()
              if not h.startswith("@")}
    victim = next(i for i in range(pool.instances) if pool.instance_id(i) == owners.get(first))
    survivor = next(i for i in range(pool.instances) if i != victim)
    mine = sorted(h for h, o in owners.items() if o == pool.instance_id(victim))
    pid = next(p.pid for p in pool.lab.reload().state.owned_processes()
               if p.what == pool.instance_name(victim) and p.alive())

    def took_over() -> bool:
        st = pool.status(survivor)
        c = st.get("coordination") or {}
        return set(c.get("mine", [])) >= set(owners) and all(
            sw["role"] == "master" and sw["flows"] is not None for sw in st.get("switches", []))

    t = timed(lambda: os.kill(pid, signal.SIGKILL), took_over, timeout=3 * pool.ttl + 10)
    return Change(f"kill -9 netctl instance {pool.instance_id(victim)} (master of "
                  f"{', '.join(mine)})", f"{pool.instance_id(survivor)} masters every host "
                  f"(lease TTL {pool.ttl:.0f} s)", t)


def _lost(ping_output: str) -> int:
    for line in ping_output.splitlines():
        if "packets transmitted" in line:
            sent = int(line.split()[0])
            received = int(line.split(", ")[1].split()[0])
            return sent - received
    return 10**6


def web_view_url(pool: DemoPool, instance: int = 0) -> str:
    """The web view of one `netctl run` instance (issue 21): on its metrics port."""
    return f"http://127.0.0.1:{pool.metrics_port + instance}/"


def show_web_view(pool: DemoPool, console) -> Path | None:  # noqa: ANN001 - rich Console
    """Print the web view's address and save a screenshot of it, taken by headless chromium
    (netctl.web.browser), in a file outside the lab (which is removed at the end). No
    chromium: say so and go on."""
    from netctl.web import browser

    url = web_view_url(pool)
    console.print(f"web view: {url}")
    why = browser.missing()
    if why:
        console.print(f"[yellow]no screenshot of the web view: {why}[/yellow]")
        return None
    path = Path(tempfile.gettempdir()) / f"netctl-demo-{pool.topology.prefix}" / "web-view.png"
    try:
        browser.screenshot(url, path)
    except Exception as exc:  # noqa: BLE001 - the demo goes on without its picture
        console.print(f"[yellow]no screenshot of the web view: {exc}[/yellow]")
        return None
    console.print(f"web view screenshot (headless chromium): {path}")
    return path


def run_demo(topology: Topology, keep: bool, console,  # noqa: ANN001 - rich Console
             ports: tuple[int, int, int] = (XAPI_PORT, OPENFLOW_PORT, METRICS_PORT)) -> bool:
    """The demo on any topology: its checks and live changes are the ones the topology
    allows (`netctl.cli.scenario`); the others are said to be skipped. `ports`: xapi,
    OpenFlow and metrics ports (another pool than `make demo`'s may run beside it)."""
    from rich.table import Table

    from netctl.cli import demo_checks
    from netctl.cli.scenario import derive
    from netctl.cli.views import show_host_configs, show_lab, show_probes, show_status
    from netctl.lab.etcd import etcd_available

    scenario = derive(topology)
    several = etcd_available()
    pool = DemoPool(topology, log=console.print, instances=2 if several else 1,
                    etcd_members=1 if several else 0, ports=ports)
    if not several:
        console.print("[yellow]no /usr/bin/etcd (make setup installs it): one netctl instance, "
                      "no failover act[/yellow]")
    ok = True
    try:
        started = time.monotonic()
        pool.up()
        assert pool.lab is not None
        console.print(
            "lab up with empty hosts; xapi simulator, lab agent and netctl run "
            + ("(2 instances on etcd) " if pool.instances > 1 else "")
            + f"started ({time.monotonic() - started:.1f}s)"
        )
        try:
            t = pool._wait(pool.converged, converge_timeout(topology), "netctl run convergence")
        except TimeoutError as exc:
            why = demo_checks.not_converged(pool) or "see the logs"
            console.print(f"[red]{exc}: {why}[/red] (logs: {pool.lab.state.dir}/*.log, kept "
                          "with --keep)")
            return False
        lacp = pool.lab.wait_lacp(20)
        console.print(
            f"netctl built every host and flow table: converged "
            f"{time.monotonic() - started:.1f}s after start ({t:.1f}s after launch); "
            + ((f"LACP {'negotiated' if lacp else '[red]NOT negotiated[/red]'}")
               if topology.switch.bonds else "no LACP bond in this pool")
        )
        ok &= lacp
        lab = pool.lab.reload()
        show_lab(lab)
        show_status(pool.status())
        show_host_configs(pool.host_configs())
        show_web_view(pool, console)
        expected = probes(topology, lab.state.plugged)
        if expected:
            results = run_probes(lab, expected)
            ok &= show_probes(results, "Connectivity under netctl (real ping / ping -6)")
        else:
            console.print("[yellow]skipped: connectivity: no two endpoints share a subnet"
                          "[/yellow]")
        ok &= demo_checks.spoofing(lab, scenario.spoof, console)
        changes = [failover(pool)] if pool.instances > 1 else []
        changes += demo_checks.live_changes(pool, scenario)
        table = Table(title="Live changes through the XenAPI client")
        for col in ("change", "observed", "converged in", ""):
            table.add_column(col)
        for c in changes:
            table.add_row(
                c.what,
                c.expected,
                f"{c.seconds * 1000:.0f} ms" if c.seconds is not None else "-",
                "[green]ok[/green]" if c.ok else "[red]FAIL[/red]",
            )
        console.print(table)
        demo_checks.say_skipped(scenario, console)
        ok &= all(c.ok for c in changes)
        verdict = "[green]everything as expected[/green]" if ok else "[red]NOT as expected[/red]"
        console.print(f"demo: {verdict}")
        return ok
    finally:
        if keep:
            console.print(
                f"lab '{topology.prefix}' kept: `netctl lab cli`, `netctl status "
                f"--url {pool.status_url[:-7]}`, `netctl lab down`"
            )
            live = next((i for i in range(pool.instances) if pool.status(i)), 0)
            console.print(f"web view: {web_view_url(pool, live)} (open it in a browser on "
                          "this machine: it listens on loopback)")
        else:
            pool.down()
            console.print(f"lab '{topology.prefix}' torn down")
