"""The house's import rules (docs/architecture.md, "Rooms and their doors"), read from the code.

Data flows one way — sources -> engine -> sinks — and the process assembly and the command
line sit above the rooms they wire. An import is how a room comes to depend on another, so the
rules are checked on imports: every `import` and `from ... import` anywhere in a module (in a
function too), found by walking its syntax tree. A rule broken names the module, the import
and the rule.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_TREES = ("netctl", "flows", "vlan", "bonding")

# Rooms, by module prefix (the longest prefix wins).
ROOMS = {
    "netctl.model": "model",
    "netctl.hostconfig": "model",
    "flows": "compilers",
    "vlan": "compilers",
    "bonding": "compilers",
    "netctl.topology": "pool description",
    "netctl.sources": "sources",
    "netctl.stats": "statistics",
    "netctl.engine": "engine",
    "netctl.sinks": "sinks",
    "netctl.service": "assembly",
    "netctl.cli": "entry points",
    "netctl.lab": "lab (rig)",
    "netctl.xapisim": "xapi simulator (rig)",
    "netctl.experiment": "experiments (rig)",
    "netctl.web": "web view",
    "netctl": "package root",
}
# What each room may import of the others (a room may always import itself).
MAY_IMPORT = {
    "package root": set(),
    "model": set(),
    "compilers": {"model"},
    "pool description": {"model"},
    "sources": {"model", "statistics"},
    # traffic statistics: counters, rates, whose port (pure; the poller is a source)
    "statistics": {"model", "compilers"},
    "engine": {"model", "compilers"},
    "sinks": {"model", "compilers"},
    "assembly": {"model", "compilers", "sources", "engine", "sinks", "statistics",
                 "web view"},
    # The web view (issue 21) is served by the assembly's metrics server and handed its data
    # as callables; it logs users in to xapi with the sources' transport.
    "web view": {"model", "sources"},
    "entry points": {"model", "compilers", "pool description", "sources", "engine", "sinks",
                     "statistics",
                     "assembly", "lab (rig)", "xapi simulator (rig)", "web view"},
    # The rigs stand beside the product: they read the model and the pool description, name
    # things as the product names them (port names, bond columns) and follow xapi with the
    # product's client, as a hypervisor's toolstack follows xapi.
    "lab (rig)": {"model", "compilers", "pool description", "sources", "xapi simulator (rig)"},
    "xapi simulator (rig)": {"model", "pool description", "sources"},
    # Experiments (issue 23) bring a pool up as `make demo` does (the entry points' DemoPool)
    # and drive it through the lab; nothing imports them but scripts and tests.
    "experiments (rig)": {"pool description", "lab (rig)", "entry points"},
}
# Pure rooms never do I/O: none of these libraries (the standard library's own I/O modules
# included) may be imported there.
IO_LIBRARIES = ("os_ken", "ovsdbapp", "ovs", "pyroute2", "XenAPI", "socket", "subprocess",
                "threading", "http", "urllib", "mininet", "scapy")
PURE_ROOMS = ("model", "compilers", "engine", "pool description", "statistics")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str | None:
    best = None
    for prefix in ROOMS:
        if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best)):
            best = prefix
    return ROOMS[best] if best is not None else None


def imports(path: Path) -> set[str]:
    """Every module a file imports (absolute; `from x import y` also yields x.y, which may
    be a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def product_files() -> list[Path]:
    return sorted(p for tree in PRODUCT_TREES for p in (ROOT / tree).rglob("*.py"))


def room_imports() -> list[tuple[str, str, str, str]]:
    """(module, its room, imported module, its room) for every import between rooms."""
    out = []
    for path in product_files():
        mod = module_name(path)
        room = room_of(mod)
        for target in imports(path):
            other = room_of(target)
            if other is not None and other != room and target != "netctl":
                out.append((mod, room, target, other))
    return out


def test_every_product_module_is_in_a_room() -> None:
    assert [module_name(p) for p in product_files() if room_of(module_name(p)) is None] == []


def test_rooms_import_only_what_their_rules_allow() -> None:
    broken = sorted({f"{mod} ({room}) imports {target} ({other})"
                     for mod, room, target, other in room_imports()
                     if other not in MAY_IMPORT[room]})
    assert broken == []


def test_pure_rooms_do_no_io() -> None:
    broken = []
    for path in product_files():
        mod = module_name(path)
        if room_of(mod) not in PURE_ROOMS:
            continue
        bad = {t for t in imports(path) if t.split(".")[0] in IO_LIBRARIES}
        if bad:
            broken.append(f"{mod}: {', '.join(sorted(bad))}")
    assert broken == []


def test_no_import_loops_between_packages() -> None:
    """Packages (netctl.engine, netctl.sinks, flows, ...) form no cycle through imports."""
    def package(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "netctl" and len(parts) > 1 else parts[0]

    files = {module_name(p): p for p in product_files()}
    packages = {package(m) for m in files}
    edges: dict[str, set[str]] = {p: set() for p in packages}
    for mod, path in files.items():
        for target in imports(path):
            other = package(target)
            if other in packages and other != package(mod):
                edges[package(mod)].add(other)
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(packages):
        if not state.get(node):
            visit(node)
    assert cycles == []


def test_the_model_imports_only_the_standard_library_and_netaddr() -> None:
    """The model (`netctl.model` and its modules) is the bottom of the house: besides itself,
    only the standard library and netaddr."""
    broken = []
    for path in sorted((ROOT / "netctl" / "model").rglob("*.py")):
        for target in imports(path):
            top = target.split(".")[0]
            if not (target == "netctl.model" or target.startswith("netctl.model.")
                    or top in sys.stdlib_module_names or top in ("__future__", "netaddr")):
                broken.append(f"{module_name(path)} imports {target}")
    assert broken == []


def test_nothing_outside_the_model_imports_its_private_names() -> None:
    """The model's public API is `netctl.model.__all__`; an underscore name of the model (or
    of one of its modules) imported from outside it is a broken rule."""
    broken = []
    for tree in ("netctl", "flows", "vlan", "bonding", "harness", "bench", "tests"):
        for path in sorted((ROOT / tree).rglob("*.py")):
            mod = module_name(path)
            if mod == "netctl.model" or mod.startswith("netctl.model."):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                        and (node.module == "netctl.model"
                             or node.module.startswith("netctl.model."))):
                    broken += [f"{mod}: from {node.module} import {a.name}"
                               for a in node.names if a.name.startswith("_")]
    assert broken == []


def test_the_model_exports_what_it_names() -> None:
    import netctl.model

    assert all(hasattr(netctl.model, name) for name in netctl.model.__all__)
    assert not [name for name in netctl.model.__all__ if name.startswith("_")]


def test_the_rules_catch_a_sink_importing_a_source() -> None:
    """The check itself can fail: a sink importing the switch feed is a broken rule."""
    assert room_of("netctl.sinks.openflow") == "sinks"
    assert room_of("netctl.sources.switches") == "sources"
    assert "sources" not in MAY_IMPORT["sinks"]
    assert "sinks" not in MAY_IMPORT["engine"]
