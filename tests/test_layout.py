"""The layout shows the design: no import cycles among corridor's modules (imports inside
functions count: a lazy import that only dodges a cycle is still a cycle), and the web pages read
through analytics and the store, never the API's private names nor SQL of their own.

Run as a script (``python tests/test_layout.py``) it prints the cycles it finds."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "corridor"

#: (importer, imported module, name): private names the web layer may still import
PRIVATE_ALLOWED = {}

SQL = re.compile(r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement run at some point (module level or in a function), leaving out
    those under ``if TYPE_CHECKING:`` (they never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                yield from _imports(child)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, str]]:
    """(imported corridor module, name or '') for each import in ``module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, ""
            continue
        base = _base(module, path, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in known:
                yield sub, ""
            elif base in known:
                yield base, alias.name


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for target, _name in imports_of(module, path, known):
            if target != module:
                edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(component: list[str], edges: dict[str, set[str]]) -> str:
    inside = set(component)
    links = [f"{a} -> {b}" for a in component for b in sorted(edges[a] & inside)]
    return "; ".join(links)


def test_no_import_cycles() -> None:
    edges = graph()
    found = cycles(edges)
    assert not found, "import cycles among corridor modules:\n" + "\n".join(
        describe(c, edges) for c in found
    )


def test_the_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert describe(["a", "b", "c"], edges) == "a -> b; b -> c; c -> a"


def _web() -> dict[str, Path]:
    return {m: p for m, p in modules().items() if m.split(".")[:2] == ["corridor", "web"]}


def test_web_imports_nothing_private_from_the_api() -> None:
    known = modules()
    private = [
        (module, target, name)
        for module, path in _web().items()
        for target, name in imports_of(module, path, known)
        if target.startswith("corridor.api")
        and (name.startswith("_") or any(p.startswith("_") for p in target.split(".")))
        and (module, target, name) not in PRIVATE_ALLOWED
    ]
    assert not private, f"corridor.web imports private names of corridor.api: {private}"


def _sql(node: ast.AST) -> bool:
    """A string (or f-string) that reads as SQL, or a call that runs a string as SQL."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(SQL.match(node.value))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        first = node.args[0]
        text = isinstance(first, ast.JoinedStr) or (
            isinstance(first, ast.Constant) and isinstance(first.value, str)
        )
        return text and node.func.attr in {"query", "execute", "fetchall", "sql", "raw_sql"}
    return False


def test_web_runs_no_sql_of_its_own() -> None:
    found = [
        f"{module}:{node.lineno}: {ast.unparse(node)[:70]}"
        for module, path in _web().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if _sql(node)
    ]
    assert not found, "SQL in corridor.web (read through analytics or the store):\n" + "\n".join(
        found
    )


if __name__ == "__main__":
    all_edges = graph()
    for component in cycles(all_edges):
        print(describe(component, all_edges))
