"""The import rules of docs/architecture.md, checked on the source (every import, also the ones
inside functions): host/ -> deploy/ -> device/, the emulated-board tool on its own, product code
never importing tests/, and no two modules importing each other (directly or round a cycle)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("host", "deploy", "device", "emuboard")
# what each product package may import from the project (besides itself)
ALLOWED = {"host": {"deploy", "device", "emuboard"}, "deploy": {"device"}, "device": set(), "emuboard": set()}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules (or packages) this file imports, relative imports resolved."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from device import params` imports the module device.contract.params when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES + ("tests",)}
    return found - {me}


def _graph() -> dict[str, set[str]]:
    modules = _project_modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_the_checker_sees_imports():
    """The check is only worth something if it finds the imports that are there."""
    graph = _graph()
    assert "device.contract.params" in graph["deploy.boards.profiles"]
    assert "deploy.targets.registry" in graph["deploy.boards.session"]
    assert any(m.startswith("emuboard.") for m in graph["emuboard.__main__"])   # relative imports


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package):
    bad = sorted(f"{mod} imports {dep}" for mod, deps in _graph().items() if mod.split(".")[0] == package
                 for dep in deps
                 if dep.split(".")[0] != package and dep.split(".")[0] not in ALLOWED[package])
    assert not bad, f"{package}/ may import only {sorted(ALLOWED[package]) or 'nothing'} of the project: {bad}"


def test_no_import_cycles():
    graph = _graph()
    nodes = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    # a package's __init__ importing its own submodules is how packages work: not a cycle
    nodes = {m: {d for d in deps if not (d.startswith(m + "."))} for m, deps in nodes.items()}
    cycles, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for d in sorted(nodes[m]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(nodes):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
