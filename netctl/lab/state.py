"""The lab's record of what it created, written before/after each step.

Teardown works only from this record: the namespaces, root-namespace links and processes named
here are the lab's own. A lab whose builder crashed is cleaned by `netctl lab down` from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from netctl.lab.processes import OwnedProcess


def lab_root() -> Path:
    """Where lab records live (one directory per lab prefix). Overridable for tests."""
    return Path(os.environ.get("NETCTL_LAB_DIR", "/run/netctl-lab"))


@dataclass
class LabState:
    prefix: str
    name: str
    source: str  # topology file the lab was built from
    topology_text: str  # its text, so the lab can be re-attached without the file
    host_networking: str  # "lab" (the lab plays xcp-networkd) or "none" (left to netctl)
    controller: str | None = None  # OpenFlow controller target of the lab's bridges, if any
    # hosts' OVSDB also listens on plain TCP 6640 (False: only what a manager opens, as on a
    # host attached through xapi's SDN_controller)
    ovsdb_tcp: bool = True
    namespaces: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    processes: list[dict] = field(default_factory=list)
    # The VMs running in the lab (each a namespace): topology VMs from the start, and any VM
    # xapi runs once the lab agent follows xapi. A VM that stops leaves these maps.
    vm_host: dict[str, str] = field(default_factory=dict)  # VM -> host it runs on
    vm_domid: dict[str, int] = field(default_factory=dict)
    vm_uuid: dict[str, str] = field(default_factory=dict)  # VM -> xapi VM uuid
    plugged: dict[str, list[int]] = field(default_factory=dict)  # VM -> plugged VIF devices
    # VM -> device -> what was plugged (netctl.lab.lab.VifSpec as a dict), so unplug, migrate
    # and views need neither the topology nor xapi.
    vifs: dict[str, dict[str, dict]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return lab_root() / self.prefix

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(self.path)

    @property
    def processes_path(self) -> Path:
        return self.dir / "processes.jsonl"

    def add_process(self, proc: OwnedProcess) -> None:
        """Record a process the lab (or a program running beside it) started. An append-only
        file of its own: several processes record theirs, and a writer of state.json holding
        an older copy must never drop one."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.processes_path.open("a") as f:
            f.write(json.dumps(proc.to_json()) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def owned_processes(self) -> list[OwnedProcess]:
        recorded = list(self.processes)
        if self.processes_path.exists():
            recorded += [json.loads(line) for line in
                         self.processes_path.read_text().splitlines() if line.strip()]
        return [OwnedProcess(**p) for p in recorded]

    @classmethod
    def load(cls, prefix: str) -> LabState:
        path = lab_root() / prefix / "state.json"
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise LookupError(f"no lab '{prefix}' is up (no {path})") from None

    @staticmethod
    def prefixes() -> list[str]:
        root = lab_root()
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "state.json").exists())
