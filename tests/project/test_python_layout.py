"""The Python half stays readable: no file a reader must scroll through for long, and no two
modules that need each other to be read (an import cycle). The import graph is built with the
standard library's `ast` from the source files themselves, so it holds without importing them."""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where the packages live: the extract's (neon_api_source, neon_elt, neon_simulator) and the benchmarks.
PACKAGE_DIRS = (ROOT / "extract", ROOT)
PACKAGES = ("neon_api_source", "neon_elt", "neon_simulator", "bench")
MAX_LINES = 500
# The simulator's data generator is one long recipe of tables read top to bottom.
LONG_BY_DESIGN = {"extract/neon_simulator/generate.py"}
# Folders of output, not source (.gitignore names them): caches, dbt's, marimo's and npm's.
NOT_SOURCE = {"__pycache__", "target", "dbt_packages", "logs", "__marimo__", "node_modules"}


def python_files() -> list[Path]:
    """Every Python file of the repository (the packages, tests, notebooks, scripts), found by a
    walk that skips hidden folders (.venv, .git) and output folders: the files git tracks."""
    found = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name not in NOT_SOURCE]
        found += [Path(folder) / name for name in names if name.endswith(".py")]
    return sorted(found)


def package_files() -> dict[str, Path]:
    """Module name -> file, for every module of the packages (a package is its `__init__`)."""
    modules = {}
    for base in PACKAGE_DIRS:
        for package in PACKAGES:
            for path in sorted((base / package).rglob("*.py")) if (base / package).is_dir() else ():
                parts = list(path.relative_to(base).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that module `name` imports at its top level (including those it
    imports only for type checking: a cycle there is a cycle for the reader too). `from P import
    x` counts as importing P.x where that is a module, else P (P's package is not counted: Python
    has it half-imported already when P's own imports run)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:  # a submodule if there is one, else the module's symbol
                    submodule = f"{base}.{alias.name}"
                    found.add(submodule if submodule in modules else base)
            elif isinstance(node, ast.If | ast.Try):  # `if TYPE_CHECKING:`, `try: import x`
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return {target for target in found if target in modules and target != name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def test_no_python_module_is_longer_than_a_reader_can_hold():
    files = python_files()
    assert set(package_files().values()) <= set(files)
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in files
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
        and str(path.relative_to(ROOT)) not in LONG_BY_DESIGN
    }
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_no_two_modules_import_each_other_even_through_others():
    modules = package_files()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert import_cycles(graph) == []


def test_the_cycle_check_sees_a_cycle_through_a_relative_and_a_type_checking_import(tmp_path):
    """The check itself: `from . import b` reaches module b, `from pkg.a import b` module a."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"
    )
    (package / "c.py").write_text("from pkg.a import b\n")
    modules = {"pkg": package / "__init__.py", **{f"pkg.{m}": package / f"{m}.py" for m in "abc"}}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph["pkg.c"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]


def test_every_folder_of_tests_is_one_the_suite_collects():
    """pyproject's testpaths lists the areas one by one (their order is the suite's schedule): a
    new folder of tests left off that list would never run."""
    import tomllib

    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"][
        "testpaths"
    ]
    areas = {str(path.parent.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")}
    assert len(areas) > 1
    assert sorted(testpaths) == sorted(areas)
