"""xapi's `openvswitch-config-update` host plugin, played on a lab host.

On a real host xapi runs this plugin when an `SDN_controller` is introduced or forgotten (and
at start-up). It compares the controller xapi has with the host's OVSDB managers and, when they
differ: resets OVS's configuration (`ovs-vsctl emer-reset`: bridge controllers, fail modes,
other_config keys), removes the managers and SSL settings, and for a controller sets
- `pssl` (the host listens, the controller connects): `set-ssl <xapi-ssl.pem> <xapi-ssl.pem>
  /etc/stunnel/certs/sdn-controller-ca.pem -- set-manager pssl:6640`;
- `ssl` (the host connects out): `--bootstrap set-ssl <xapi-ssl.pem> <xapi-ssl.pem>
  /etc/openvswitch/vswitchd.cacert -- set-manager ssl:ADDRESS:PORT` (the CA is learnt from
  the controller on first contact);
then sets every xapi network bridge's `fail_mode` (network, else pool
`vswitch-controller-fail-mode`; `secure`, else `standalone`) and
`other_config:disable-in-band`. The lab does the same on the host's own OVS instance; the
files a real host keeps in /etc live in the host's lab directory under the same names
(`xapi-ssl.pem`, `sdn-controller-ca.pem`, `vswitchd.cacert`), put there by whoever plays the
operator. The firewall step (opening TCP 6640) has no lab counterpart.
"""

from __future__ import annotations

import logging
from pathlib import Path

from netctl.lab.ovs_instance import OvsInstance
from netctl.model import PoolState, SDNController

LOG = logging.getLogger("netctl.lab.config_update")
HOST_CERT = "xapi-ssl.pem"  # /etc/xensource/xapi-ssl.pem: the host's key and certificate
PRESET_CA = "sdn-controller-ca.pem"  # /etc/stunnel/certs/sdn-controller-ca.pem (pssl)
BOOTSTRAP_CA = "vswitchd.cacert"  # /etc/openvswitch/vswitchd.cacert (ssl, learnt)


def manager_target(controller: SDNController | None) -> str:
    """The manager the plugin gives a host for the pool's controller ("" for none)."""
    if controller is None:
        return ""
    if controller.protocol == "pssl":
        return "pssl:6640"
    return f"ssl:{controller.address}:{controller.port}"


def update(ovs: OvsInstance, state: PoolState) -> str:
    """What the plugin's `update` does on one host; returns what it did (as the plugin does)."""
    controller = state.sdn_controller
    target = manager_target(controller)
    current = ovs.vsctl("get-manager").split()
    done: list[str] = []
    certs = ovs.rundir
    if not target and current:
        (certs / BOOTSTRAP_CA).unlink(missing_ok=True)
        ovs.vsctl("emer-reset")
        ovs.vsctl("--", "del-manager", "--", "del-ssl")
        done.append("Successfully removed controller config.")
    elif target and target not in current:
        (certs / BOOTSTRAP_CA).unlink(missing_ok=True)
        ovs.vsctl("emer-reset")
        key = str(certs / HOST_CERT)
        if controller is not None and controller.protocol == "ssl":
            ssl = ["--bootstrap", "set-ssl", key, key, str(certs / BOOTSTRAP_CA)]
        else:
            ssl = ["set-ssl", key, key, str(certs / PRESET_CA)]
        ovs.vsctl("--", "del-manager", "--", "del-ssl", "--", *ssl, "--", "set-manager", target)
        done.append(f"Successfully set controller to {target}.")
    done += _bridges(ovs, state)
    return " ".join(done) or "No change to configuration"


def _bridges(ovs: OvsInstance, state: PoolState) -> list[str]:
    pool_mode = (state.pool.other_config.get("vswitch-controller-fail-mode")
                 if state.pool else None)
    networks = {n.bridge: n for n in state.networks.values() if n.bridge}
    changed = []
    for bridge in ovs.vsctl("list-br").split():
        net = networks.get(bridge)
        if net is None:
            continue
        mode = net.other_config.get("vswitch-controller-fail-mode")
        if mode not in ("secure", "standalone"):
            mode = pool_mode
        mode = "secure" if mode == "secure" else "standalone"
        if ovs.vsctl("get", "Bridge", bridge, "fail_mode").strip('[]"') != mode:
            ovs.vsctl("set", "Bridge", bridge, f"fail_mode={mode}")
            changed.append(bridge)
        dib = net.other_config.get("vswitch-disable-in-band", "")
        if dib in ("true", "false"):
            ovs.vsctl("set", "Bridge", bridge, f"other_config:disable-in-band={dib}")
        else:
            ovs.vsctl("remove", "Bridge", bridge, "other_config", "disable-in-band")
    return ["Updated fail_mode."] if changed else []


def certificates_in_place(ovs: OvsInstance) -> bool:
    """The host has its own certificate (what `xe host-server-certificate-install` puts in
    place on a real host)."""
    return Path(ovs.rundir / HOST_CERT).is_file()
