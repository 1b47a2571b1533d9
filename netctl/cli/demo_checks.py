"""The demo's checks and live changes on any topology, as `netctl.cli.scenario` derived them.

Why separate from `netctl.cli.demo`: the pool's life cycle (DemoPool) is one concern, what the
demo does on it is another; each step here works on the VMs, addresses and hosts the scenario
picked, so nothing is pinged that nobody has, and a step the topology cannot have is printed
as skipped, with why, instead of failing.
"""

from __future__ import annotations

import time

from netctl.cli.demo import Change, DemoPool, _lost, ping_ok, timed
from netctl.cli.scenario import BondCut, Migrate, Relock, Replug, Scenario, Skip, Spoof
from netctl.lab.lab import Lab
from netctl.lab.spoof import expected_frames, spoof_check


def say_skipped(scenario: Scenario, console) -> None:  # noqa: ANN001 - rich Console
    """One line per check the topology does not allow, so a reader knows it was not run."""
    for skip in scenario.skipped:
        console.print(f"[yellow]skipped: {skip.check}: {skip.why}[/yellow]")


def spoofing(lab: Lab, step: Spoof | Skip, console) -> bool:  # noqa: ANN001 - rich Console
    """The locked VIF sends the crafted frames; none of the spoofed ones may arrive, all the
    legitimate ones must (else the capture, not the locking, failed). Skipped: True."""
    if isinstance(step, Skip):
        return True
    legit, spoofed = expected_frames(step.ipv6)
    seen = spoof_check(lab, step.sender.vm, step.sender.device, step.receiver.vm,
                       step.receiver.device, ipv6=step.ipv6)
    kinds = "MAC, IPv4, ARP sender, DHCP server reply" + (
        ", IPv6, NA target, NS link-layer address, RA, redirect" if step.ipv6 else
        f"; IPv4 only: {step.sender.label} or {step.receiver.label} has no allowed IPv6")
    console.print(
        f"locked VIF {step.sender.label} sends {len(spoofed)} kinds of spoofed frames ({kinds}): "
        + ("[green]none reached " if not seen & spoofed else f"[red]{sorted(seen & spoofed)} "
           "reached ") + f"{step.receiver.label}[/]"
        + ("" if legit <= seen else f"; [red]legitimate frames missing: "
           f"{sorted(legit - seen)}[/red]"))
    return legit <= seen and not seen & spoofed


def _ping(lab: Lab, src_vm: str, ifname: str, address: str, *extra: str) -> bool:
    return ping_ok(lab.reload(), src_vm, address, "-I", ifname, *extra)


def replug(pool: DemoPool, step: Replug) -> list[Change]:
    lab, x = pool.lab, pool.session.xenapi  # type: ignore[union-attr]
    assert lab is not None
    vif = pool.vif_ref(step.vif.vm, step.vif.device)
    where = f"VLAN {step.vlan}" if step.vlan else step.vif.network
    peer = step.peer
    t = timed(lambda: x.VIF.unplug(vif),
              lambda: not _ping(lab, peer.vm, peer.ifname, step.address))
    out = [Change(f"VIF.unplug {step.vif.label} ({where})",
                  f"{peer.vm} no longer reaches {step.vif.vm}", t)]
    t = timed(lambda: x.VIF.plug(vif), lambda: _ping(lab, peer.vm, peer.ifname, step.address))
    out.append(Change(f"VIF.plug {step.vif.label} ({where})",
                      f"{peer.vm} reaches {step.vif.vm} again", t))
    return out


def migrate(pool: DemoPool, step: Migrate) -> Change:
    lab, x = pool.lab, pool.session.xenapi  # type: ignore[union-attr]
    assert lab is not None
    target = pool.ref("host", pool.topology.host(step.target).uuid)
    vm = pool.ref("VM", pool.topology.vm(step.vm).uuid)
    t = timed(
        lambda: x.VM.pool_migrate(vm, target, {}),
        lambda: lab.reload().vm_host(step.vm) == step.target
        and all(_ping(lab, p.vm, p.ifname, address) for p, address in step.checks),
    )
    nets = sorted({p.network for p, _ in step.checks})
    return Change(f"VM.pool_migrate {step.vm} {step.source} -> {step.target}",
                  f"reached again on {', '.join(nets)}", t)


def bond_cut(pool: DemoPool, step: BondCut) -> Change:
    """A bond member loses carrier at the switch under a 9 ms ping. The bond keeps the member
    for networkd's downdelay (200 ms) first; anything well under LACP's own fast timeout
    (3 s) is a failover on carrier loss, not a timeout."""
    lab = pool.lab
    assert lab is not None
    p = step.pinger
    family = "-6" if ":" in step.address else "-4"
    # -i 0.009: iputils paces -i 0.01 at 16 ms, not 10; this gives 9 ms
    ping = lab.reload().popen(p.vm, ["ping", family, "-n", "-i", "0.009", "-c", "400", "-W",
                                     "1", "-I", p.ifname, step.address])
    time.sleep(0.5)
    lab.set_cable(step.host, step.member, up=False)
    try:
        out_text, _ = ping.communicate(timeout=60)
    finally:
        lab.set_cable(step.host, step.member, up=True)
    lost = _lost(out_text)
    others = "the other members"
    return Change(f"bond member {step.host}/{step.member} cut (carrier lost)",
                  f"{p.vm} -> {step.address}: traffic continues on {others} ({lost} of 400 "
                  "pings lost at 9 ms)", lost * 0.009 if lost * 0.009 < 2.0 else None)


def relock(pool: DemoPool, step: Relock) -> list[Change]:
    """Unlock the locked VIF, see a source address it is not allowed get through, lock it
    again and see it dropped. The spare address is removed and the VIF left locked, as the
    topology has it, whatever happens."""
    lab, x = pool.lab, pool.session.xenapi  # type: ignore[union-attr]
    assert lab is not None
    v = step.vif
    plen = "/128" if ":" in step.spare else "/32"
    lab.exec(v.vm, ["ip", "addr", "add", step.spare + plen, "dev", v.ifname], check=False)
    ref = pool.vif_ref(v.vm, v.device)
    spoof = ("-I", step.spare)
    try:
        t = timed(lambda: x.VIF.set_locking_mode(ref, "unlocked"),
                  lambda: ping_ok(lab, v.vm, step.address, *spoof))
        out = [Change(f"VIF.set_locking_mode {v.label} unlocked",
                      f"{step.spare} gets through", t)]
        t = timed(lambda: x.VIF.set_locking_mode(ref, "locked"),
                  lambda: not ping_ok(lab, v.vm, step.address, *spoof))
        out.append(Change(f"VIF.set_locking_mode {v.label} locked",
                          f"{step.spare} is dropped again", t))
    finally:
        x.VIF.set_locking_mode(ref, "locked")
        lab.exec(v.vm, ["ip", "addr", "del", step.spare + plen, "dev", v.ifname], check=False)
    return out


def live_changes(pool: DemoPool, scenario: Scenario) -> list[Change]:
    """Each live change the scenario has, in the demo's order: a VIF unplug and plug, a
    migration, a bond member failure, a locking-mode change and back."""
    out: list[Change] = []
    if isinstance(scenario.replug, Replug):
        out += replug(pool, scenario.replug)
    if isinstance(scenario.migrate, Migrate):
        out.append(migrate(pool, scenario.migrate))
    if isinstance(scenario.bond, BondCut):
        out.append(bond_cut(pool, scenario.bond))
    if isinstance(scenario.relock, Relock):
        out += relock(pool, scenario.relock)
    return out


def not_converged(pool: DemoPool) -> str:
    """What is still missing when the pool does not converge, from /status: a clear message
    instead of a bare timeout."""
    st = pool.status()
    if not st:
        return "netctl run's /status does not answer"
    missing = [h["name"] for h in st.get("hosts", []) if not h["connected"]]
    out = [f"OVSDB not connected: {', '.join(missing)}"] if missing else []
    tables = [f"{s['host']}/{s['bridge']}" for s in st.get("switches", []) if s["flows"] is None]
    if tables:
        out.append(f"no flow table yet: {', '.join(tables[:8])}")
    tunnels = [f"{t['host']}/{t['network']}" for t in st.get("tunnels", [])
               if t["status"].get("active") != "true" and not t["status"].get("error")]
    if tunnels:
        out.append(f"tunnels not active: {', '.join(tunnels[:8])}")
    if pool.lab is not None:
        want = sum(len(vm.vifs) for vm in pool.topology.vms)
        have = sum(len(v) for v in pool.lab.reload().state.plugged.values())
        if have != want:
            out.append(f"{have} of {want} VIFs plugged")
    return "; ".join(out)
