"""Starting os-ken 4.x in-process (it has no `osken-manager`), with either of its hubs.

Order matters: the hub type must be chosen before the first `os_ken` import, the hub patched,
the controller module imported (it registers the listen options), the config parsed, and only
then the apps run. Both native-hub bugs of os-ken 4.x are repaired here (`fix_native_hub`).
os-ken also swallows a failed bind() of its listening socket, so the port is checked first.

`run_controller()` runs os-ken's app manager in the main thread and the given tasks on hub
threads (real threads with the native hub, green ones with eventlet: the hub's own primitive,
so both hubs work); `start()` runs it on a thread of its own (tests, benchmarks). Stopping
(SIGTERM/SIGINT) never touches the dataplane: the flows stay installed and the bridges'
fail_mode decides what happens while no controller is connected (`secure`: keep forwarding
with the installed flows).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netctl.model.hostport import is_ipv6, ovs_active
from netctl.sources.switches import SwitchFeed

LOG = logging.getLogger("netctl.openflow")
HUBS = ("native", "eventlet")
DEFAULT_PORT = 6653


class LaunchError(RuntimeError):
    pass


def select_hub(hub: str) -> None:
    """Choose os-ken's hub; must run before os_ken is first imported."""
    if hub not in HUBS:
        raise LaunchError(f"hub must be one of {', '.join(HUBS)}, not {hub!r}")
    if "os_ken.lib.hub" in sys.modules:
        current = sys.modules["os_ken.lib.hub"].HUB_TYPE
        if current != hub:
            raise LaunchError(f"os-ken is already loaded with the {current} hub")
    os.environ["OSKEN_HUB_TYPE"] = hub


def fix_native_hub(hub_module: Any) -> None:
    """(1) In native mode `TaskExit` is `Exception`, so any handler exception is taken for a
    normal exit and silently ends the app's event loop: give it a private class. (2) Native
    `Event.wait(timeout)` never times out: wait on the underlying threading.Event instead."""
    if hub_module.HUB_TYPE != "native":
        return

    class TaskExit(Exception):  # noqa: N818 - os-ken's name
        pass

    hub_module.TaskExit = TaskExit

    def wait(self: Any, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._cond:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self._ev.wait(remaining)
        return self._cond

    hub_module.Event.wait = wait


def fix_native_disconnect(controller: Any, hub: str) -> None:
    """(3) With the native hub `hub.kill` does nothing, so when a switch's connection ends,
    `Datapath.serve` waits forever for its send thread (blocked on an empty queue) and os-ken
    never reports the switch gone (netctl would count a lost session as up, /healthz too).
    When the receive loop ends, hand the send thread a last, closing message: it ends, serve
    returns and os-ken closes the datapath (DEAD_DISPATCHER), as with eventlet."""
    datapath = controller.Datapath
    if hub != "native" or getattr(datapath._recv_loop, "netctl_fixed", False):
        return
    receive = datapath._recv_loop

    def _recv_loop(self: Any) -> None:
        try:
            receive(self)
        finally:
            if self.send_q is not None:
                self.send(b"", close_socket=True)

    _recv_loop.netctl_fixed = True  # type: ignore[attr-defined]
    datapath._recv_loop = _recv_loop


def check_port_free(host: str, port: int) -> None:
    host = host.strip("[]")  # an IPv6 listen address may come as written next to its port
    with socket.socket(socket.AF_INET6 if is_ipv6(host) else socket.AF_INET,
                       socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise LaunchError(f"cannot listen for OpenFlow on {host}:{port}: {exc.strerror}") \
                from None


class RunningController:
    """os-ken running the netctl app on a thread of this process, feeding `feed`."""

    def __init__(self, feed: SwitchFeed, host: str, port: int, thread: threading.Thread,
                 hub: str) -> None:
        self.feed, self.host, self.port, self.thread, self.hub = feed, host, port, thread, hub

    @property
    def target(self) -> str:
        return ovs_active("tcp", self.host, self.port)


@dataclass(frozen=True)
class TlsFiles:
    """The controller's key and certificate, and the CA that signed the switches' certificates
    (switches without a certificate from it are refused)."""

    private_key: str
    certificate: str
    ca_cert: str


def prepare(host: str, port: int, hub: str | None = None, tls: TlsFiles | None = None) -> Any:
    """Everything before running apps, in the order os-ken needs; returns its AppManager class.
    With eventlet, threading is monkey-patched too, so every thread of the process is green
    and may safely hand work to os-ken's queues. With `tls` the port speaks TLS only."""
    hub = hub or os.environ.get("OSKEN_HUB_TYPE", "native")
    select_hub(hub)
    check_port_free(host, port)
    oshub = importlib.import_module("os_ken.lib.hub")
    fix_native_hub(oshub)
    oshub.patch(thread=(hub == "eventlet"))
    # app_manager first: os-ken's own imports are circular the other way round.
    manager = importlib.import_module("os_ken.base.app_manager").AppManager
    controller = importlib.import_module("os_ken.controller.controller")  # ofp-listen-* options
    fix_native_disconnect(controller, hub)
    cfg = importlib.import_module("os_ken.cfg")
    args = ["--ofp-listen-host", host.strip("[]")]  # os-ken listens on IPv6 unbracketed
    if tls is None:
        args += ["--ofp-tcp-listen-port", str(port)]
    else:
        for path in (tls.private_key, tls.certificate, tls.ca_cert):
            if not Path(path).is_file():
                raise LaunchError(f"OpenFlow TLS: no such file {path}")
        args += ["--ofp-ssl-listen-port", str(port), "--ctl-privkey", tls.private_key,
                 "--ctl-cert", tls.certificate, "--ca-certs", tls.ca_cert]
    cfg.CONF(args=args, project="os_ken", default_config_files=[])
    return manager


def start(feed: SwitchFeed, host: str, port: int = DEFAULT_PORT,
          hub: str = "native") -> RunningController:
    """Start os-ken on a thread of this process, listening on host:port, feeding `feed`.
    One per process (os-ken's configuration and app manager are process-wide); native hub
    only (eventlet wants the app manager on the main thread: see `service.serve`)."""
    if hub != "native":
        raise LaunchError("an in-thread controller needs the native hub")
    manager = prepare(host, port, hub)
    from netctl.sources import osken_app

    osken_app.FEED = feed
    thread = threading.Thread(target=manager.run_apps, args=([osken_app.APP],),
                              name="os-ken", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not _listening(host, port):
        if time.monotonic() > deadline or not thread.is_alive():
            raise LaunchError(f"os-ken did not start listening on {host}:{port}")
        time.sleep(0.02)
    return RunningController(feed, host, port, thread, hub)


def wait_listening(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _listening(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _listening(host: str, port: int) -> bool:
    """Is something listening there? Read from /proc, not by connecting: a probe connection
    would look like a switch to os-ken."""
    host = host.strip("[]")
    if is_ipv6(host):  # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
        raw = socket.inet_pton(socket.AF_INET6, host)
        table, wildcard = "/proc/net/tcp6", "::"
        addresses = {"".join(w[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4))
                     + f":{port:04X}" for w in (raw, socket.inet_pton(socket.AF_INET6, wildcard))}
    else:
        table = "/proc/net/tcp"
        addresses = {f"{socket.inet_aton(h)[::-1].hex().upper()}:{port:04X}"
                     for h in (host or "0.0.0.0", "0.0.0.0")}
    for line in Path(table).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] in addresses and fields[3] == "0A":
            return True
    return False


def run_controller(feed: SwitchFeed, listen_host: str, port: int, hub: str,
                   beside: list[Callable[[], None]], tls: TlsFiles | None = None,
                   on_stop: Callable[[], None] | None = None) -> None:
    """Run os-ken (blocking, main thread) feeding `feed`, with `beside` on hub threads;
    `on_stop` runs at SIGTERM/SIGINT before the process ends."""
    manager = prepare(listen_host, port, hub, tls)
    from os_ken.lib import hub as oshub

    from netctl.sources import osken_app

    osken_app.FEED = feed

    def stop(signum: int, _frame: object) -> None:
        LOG.info("signal %d: stopping (flows stay installed)", signum)
        if on_stop is not None:
            try:
                on_stop()
            except Exception:  # noqa: BLE001 - stopping anyway
                LOG.exception("stopping")
        os._exit(0)  # the dataplane keeps its flows; nothing to undo

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for task in beside:
        oshub.spawn(task)
    LOG.info("OpenFlow controller on %s:%d (%s hub)", listen_host, port, hub)
    manager.run_apps([osken_app.APP])
