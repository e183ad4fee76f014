"""The package's structure, read from its source: no private name crosses a module, the import graph has no
cycle, every module stays small, and the suite does not import from benchmarks/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 350


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for sg_stability and its adapters (installed as sg_stability.adapters)."""
    out = {}
    for path in sorted((ROOT / "sg_stability").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in sorted((ROOT / "adapters").glob("*.py")):
        name = "sg_stability.adapters" + ("" if path.stem == "__init__" else f".{path.stem}")
        out[name] = path
    return out


MODULES = _modules()


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import: statements anywhere (module level, inside a
    function, under ``if TYPE_CHECKING``) and ``importlib.import_module("...")`` calls with a literal name."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, [], node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, [], node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = ".".join(p for p in (base if node.level else "", node.module or "") if p)
            out.append((target, [a.name for a in node.names], node.lineno))
    return out


def _defined_private_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if _is_private(n)}


def test_no_private_name_is_imported_or_reached_across_modules():
    """``from x import _y`` is never used, and ``obj._y`` only where ``_y`` is defined in the same module
    (a class's own helpers, a subclass overriding its base's hooks), or belongs to a third party."""
    trees = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}
    defined = {name: _defined_private_names(tree) for name, tree in trees.items()}
    ours = set().union(*defined.values())
    problems = []
    for name, path in MODULES.items():
        for module, names, line in _imports(name, path):
            problems += [f"{name}:{line} imports {n} from {module}" for n in names if _is_private(n)]
        for node in ast.walk(trees[name]):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr) and node.attr in ours
                    and node.attr not in defined[name]):
                problems.append(f"{name}:{node.lineno} reaches {ast.unparse(node)}")
    assert not problems, "\n".join(problems)


def _graph() -> dict[str, set[str]]:
    """Every import between the package's modules (see :func:`_imports`); the implicit import of a parent package
    is not an edge."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in _imports(name, path):
            for target in [f"{module}.{n}" for n in names] + [module]:
                if target in MODULES and target != name:
                    graph[name].add(target)
                    break
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    cycle: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend([*stack[stack.index(nxt):], node, nxt] if nxt in stack else [node, nxt])
                return True
            if nxt not in state and visit(nxt, [*stack, node]):
                return True
        state[node] = 2
        return False

    any(visit(n, []) for n in sorted(graph) if n not in state)
    return cycle


def test_the_import_graph_has_no_cycle():
    """Type-checking imports, imports inside functions and ``import_module`` calls count too."""
    graph = _graph()
    cycle = _cycle(graph)
    assert not cycle, " -> ".join(cycle)
    assert graph["sg_stability.surrogates._registry"] == {"sg_stability._errors", "sg_stability.surrogates._base",
                                                          "sg_stability.surrogates._families"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it by responsibility"


def test_the_suite_neither_imports_nor_runs_benchmarks():
    """Benchmark scripts may change freely: the suite never imports or runs them (benchmarks/smoke.py does)."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: import {n}" for n in names if n.split(".")[0] == "benchmarks"]
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and "benchmarks" in node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert found == []


def test_benchmarks_and_tests_find_each_other_without_editing_sys_path():
    """The shared models are the package tests.zoo; benchmarks run as ``python -m benchmarks.<name>``."""
    files = [*(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    edits = [f"{path.relative_to(ROOT)}: {line.strip()}" for path in files if path.name != Path(__file__).name
             for line in path.read_text().splitlines() if "sys.path.insert" in line or "sys.path.append" in line]
    assert edits == []


def test_the_readme_architecture_names_every_part():
    """The architecture page keeps up with the code: every module and subpackage of sg_stability, and every module
    of its subpackages, is named there."""
    section = (ROOT / "docs" / "architecture.md").read_text()
    parts = [p.name + ("/" if p.is_dir() else "") for p in (ROOT / "sg_stability").iterdir()
             if p.name not in ("__init__.py", "py.typed", "__pycache__")]
    missing = [p for p in parts if f"`{p}`" not in section]
    missing += [f"{d.name}.{p.stem}" for d in (ROOT / "sg_stability").iterdir() if d.is_dir()
                for p in d.glob("*.py") if p.stem != "__init__" and f"`{p.stem}`" not in section]
    assert not missing, f"docs/architecture.md does not name {missing}"


def _package(module: str) -> str:
    """The layer a module belongs to: its subpackage of sg_stability, or ``core`` for the top-level modules."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (ROOT / "sg_stability" / parts[1]).is_dir()):
        return parts[1]
    return "base" if module in BASE else "core"


#: helpers every layer may use: errors, argument checks, display names, plots
BASE = {"sg_stability._errors", "sg_stability._validate", "sg_stability._names", "sg_stability._plotting"}


#: the layers, lowest first: a module imports only from its own layer and the ones below it (README: Architecture)
LAYERS = ["base", "exact", "surrogates", "neurons", "stability", "core", "adapters", "recording", "analysis", "init",
          "choosing", "lightning", "testing"]


def test_every_package_imports_only_from_the_layers_below_it():
    problems = []
    for name, targets in _graph().items():
        if name == "sg_stability":  # the public surface re-exports every layer
            continue
        for target in targets:
            low, high = _package(target), _package(name)
            if target != "sg_stability" and LAYERS.index(low) > LAYERS.index(high):
                problems.append(f"{name} ({high}) imports {target} ({low})")
    assert not problems, "\n".join(sorted(problems))


#: what a framework calls its own internals: the core must reach them only through an adapter's hooks
FRAMEWORK_NAMES = {"snntorch", "spikingjelly", "norse", "_memories", "spike_grad", "surrogate_function",
                   "surrogate_function1", "surrogate_function2"}


def _identifiers(path: Path) -> set[str]:
    """Names, attributes, imported modules and whole string constants of a module (not words inside a message)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            out.update(part for a in getattr(node, "names", []) for part in a.name.split("."))
            out.update((getattr(node, "module", None) or "").split("."))
    return out


def test_the_core_names_no_framework():
    """Framework knowledge lives in the adapters (reached through hooks such as ``sg_save_state``), never in the
    core. ``plugins`` registers the built-in adapters by name, as entry points do."""
    found = [f"{name}: {word}" for name, path in MODULES.items()
             if _package(name) not in ("adapters",) and name != "sg_stability.plugins"
             for word in sorted(FRAMEWORK_NAMES & _identifiers(path))]
    assert not found, "\n".join(found)


def test_the_checks_would_catch_a_violation(tmp_path, monkeypatch):
    """The scanners above find what they look for (a test that can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ._errors import _secret\nfrom . import bad\n")
    assert _imports("sg_stability.bad", bad) == [("sg_stability._errors", ["_secret"], 1),
                                                 ("sg_stability", ["bad"], 2)]
    hidden = tmp_path / "hidden.py"
    hidden.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n"
                      "def f():\n    import importlib\n    return importlib.import_module('sg_stability.b')\n")
    found = {m for m, _, _ in _imports("sg_stability.hidden", hidden)}
    assert {"sg_stability.a", "sg_stability.b"} <= found
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
    assert _identifiers(bad) >= {"_errors", "_secret", "bad"}
    spy = tmp_path / "spy.py"
    spy.write_text("def f(m):\n    return m.__dict__['_memories'], 'a message naming spike_grad'\n")
    assert "_memories" in _identifiers(spy) and "spike_grad" not in _identifiers(spy)
    assert _package("sg_stability.choosing.race") == "choosing" and _package("sg_stability._handle") == "core"
    assert _defined_private_names(ast.parse("class A:\n    def _x(self): self._y = 1\n_z = 2\n")) == {"_x", "_y", "_z"}
