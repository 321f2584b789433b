"""The shape of the code, checked: no import cycle, no oversized module, tooling on public names
only, and every test that starts processes marked out of the fast tier (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "gradcheck_cli"
MAX_LINES = 600
FAST_EXEMPT_MARKS = {"slow", "distributed", "gpu"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(tree: ast.AST) -> Iterator[tuple[ast.ImportFrom | ast.Import, list[str]]]:
    """Every import statement anywhere in the file (inside functions and ``TYPE_CHECKING``
    blocks too), with the dotted names it may load."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            yield node, [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports. Importing ``a.b.c`` from outside ``a.b`` also
    runs ``a/b/__init__.py``: that edge is counted. Relative imports are not used here."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node, targets in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            assert not (isinstance(node, ast.ImportFrom) and node.level), (
                f"{name}: relative import; write gradcheck_cli.... in full"
            )
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if not target or target == name:
                    continue
                graph[name].add(target)
                parent = target.rpartition(".")[0]
                while parent.count(".") and not (name + ".").startswith(parent + "."):
                    graph[name].add(parent)
                    parent = parent.rpartition(".")[0]
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_of_the_package_imports_its_way_back_to_itself() -> None:
    graph = import_graph()
    assert len(graph) > 90 and "gradcheck_cli.inputs.calling" in graph["gradcheck_cli.measure"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    # the package's own modules only reach the root through the root's lazy attributes
    assert not any("gradcheck_cli" in targets for targets in import_graph().values())


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def _private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node, _ in _imports(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gradcheck_cli"):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
            if any(part.startswith("_") for part in (node.module or "").split(".")):
                found.append(node.module or "")
    aliases = {
        a.asname or a.name
        for node, _ in _imports(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gradcheck_cli")
        for a in node.names
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_tooling_uses_public_names_of_the_package_only() -> None:
    tools = sorted([*(ROOT / "scripts").glob("*.py"), *(ROOT / "bench").rglob("*.py")])
    assert len(tools) > 10
    used = {str(p.relative_to(ROOT)): _private_uses(p) for p in tools}
    assert {p: names for p, names in used.items() if names} == {}


def test_the_private_name_check_sees_imports_and_attributes(tmp_path: Path) -> None:
    script = tmp_path / "tool.py"
    script.write_text(
        "from gradcheck_cli.api import _passes\nfrom gradcheck_cli import hooks\n"
        "hooks._kind(None)\nhooks.Recorder.__name__\n"
    )
    assert _private_uses(script) == ["gradcheck_cli.api._passes", "hooks._kind"]


def _marks(decorators: list[ast.expr]) -> set[str]:
    names = set()
    for d in decorators:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute):
            if target.value.attr == "mark":
                names.add(target.attr)
    return names


def _module_marks(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            value = node.value
            items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            return _marks(list(items))
    return set()


def _starts_directly(fn: ast.AST) -> bool:
    """Calls ``subprocess.*`` or the suite's ``run_in_new_process``."""
    for sub in ast.walk(fn):
        if not isinstance(sub, ast.Call):
            continue
        f = sub.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            if f.value.id == "subprocess":
                return True
        elif isinstance(f, ast.Name) and f.id == "run_in_new_process":
            return True
    return False


def _called_names(fn: ast.AST) -> set[str]:
    return {
        sub.func.id
        for sub in ast.walk(fn)
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name)
    }


def unmarked_process_tests(path: Path) -> list[str]:
    """Test functions of ``path`` that start a process (directly or through a helper of the same
    file) without a ``slow``, ``distributed`` or ``gpu`` mark."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if _module_marks(tree) & FAST_EXEMPT_MARKS:
        return []
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    starts = {name for name, fn in functions.items() if _starts_directly(fn)}
    while True:  # helpers that call helpers that start processes
        more = {n for n, fn in functions.items() if n not in starts and _called_names(fn) & starts}
        if not more:
            break
        starts |= more
    return [
        name
        for name, fn in functions.items()
        if name.startswith("test_")
        and name in starts
        and not _marks(fn.decorator_list) & FAST_EXEMPT_MARKS
    ]


def test_every_test_that_starts_a_process_is_out_of_the_fast_tier() -> None:
    found = {
        str(p.relative_to(ROOT)): unmarked_process_tests(p)
        for p in sorted((ROOT / "tests").glob("test_*.py"))
    }
    assert {p: names for p, names in found.items() if names} == {}


def test_the_process_check_follows_helpers(tmp_path: Path) -> None:
    tests = tmp_path / "test_x.py"
    tests.write_text(
        "import subprocess\nimport pytest\n"
        "def _cli(*a):\n    return subprocess.run(a)\n"
        "def test_a():\n    _cli('x')\n"
        "@pytest.mark.slow\ndef test_b():\n    _cli('x')\n"
        "def test_c():\n    runner.invoke(main, [])\n"
    )
    assert unmarked_process_tests(tests) == ["test_a"]


@pytest.mark.parametrize("mark", sorted(FAST_EXEMPT_MARKS))
def test_the_marks_that_leave_the_fast_tier_are_declared(mark: str) -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"{mark}:' in text
