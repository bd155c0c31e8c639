"""One-way imports: no module of routing/ imports service/ other than service/core/, and no import cycle, neither
between modules nor between parts (service.core, service.pipeline, routing.receivers, ...: the first two names).

The check reads the source with `ast` (nothing is imported): every `import` and `from ... import` of our own
packages, at module level and inside functions alike (a function-level import that dodges a cycle is still a
cycle), except those under `if TYPE_CHECKING:`. A cycle is a strongly connected component of more than one module
in that graph (Tarjan). Run it as a script to print the violations:

    python3 tests/test_imports.py [ROOT]

The layout move (bench/house/layout_plan.md) and the fixes after it made it pass; it keeps it so.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "routing")
ALLOWED_FROM_ROUTING = ("service.core",)  # the only part of service/ that routing/ may import


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append(child)
            visit(child)

    visit(tree)
    return out


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module `name` refers to: itself, or the longest known module it starts with (a package re-export)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(root: Path) -> dict[str, set[str]]:
    """module -> the modules of our packages it imports (resolved to modules that exist)."""
    files = {module_name(root, p): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            for n in names:
                target = _resolve(n, modules)
                if target is not None and target != mod and target.split(".")[0] in PACKAGES:
                    deps.add(target)
        graph[mod] = deps
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for mod, deps in sorted(graph.items()):
        if not mod.startswith("routing"):
            continue
        for d in sorted(deps):
            if d.startswith("service") and not d.startswith(ALLOWED_FROM_ROUTING):
                out.append(f"{mod} -> {d}")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def collapsed(graph: dict[str, set[str]], depth: int = 2) -> dict[str, set[str]]:
    """The graph between parts (the first `depth` names: service.pipeline, routing.receivers, ...)."""
    def part(m: str) -> str:
        return ".".join(m.split(".")[:depth])

    out: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        out.setdefault(part(mod), set()).update(part(d) for d in deps if part(d) != part(mod))
    return out


def report(root: Path = ROOT) -> list[str]:
    graph = imports_of(root)
    lines = [f"routing imports service internals: {v}" for v in layer_violations(graph)]
    lines += [f"import cycle between modules: {' <-> '.join(c)}" for c in cycles(graph)]
    lines += [f"import cycle between parts: {' <-> '.join(c)}" for c in cycles(collapsed(graph))]
    return lines


def test_cycle_finder_finds_cycles_and_only_cycles() -> None:
    """The cycle check reports each strongly connected group of modules once, and nothing for a chain."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"a"}}) == [["a", "b"], ["c", "d"]]


def test_the_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """An import inside a function counts, a relative import resolves to its module, TYPE_CHECKING ones do not."""
    (tmp_path / "routing").mkdir()
    (tmp_path / "service").mkdir()
    (tmp_path / "routing" / "__init__.py").write_text("")
    (tmp_path / "service" / "__init__.py").write_text("")
    (tmp_path / "routing" / "a.py").write_text("from .b import x\ndef f():\n    from service.store import Keys\n")
    (tmp_path / "routing" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                               "    from service.engine import Engine\nx = 1\n")
    (tmp_path / "service" / "store.py").write_text("import routing.a\n")
    (tmp_path / "service" / "engine.py").write_text("")
    graph = imports_of(tmp_path)
    assert graph["routing.a"] == {"routing.b", "service.store"} and graph["routing.b"] == set()
    assert layer_violations(graph) == ["routing.a -> service.store"]
    assert cycles(graph) == [["routing.a", "service.store"]]


def test_imports_point_one_way() -> None:
    """routing/ imports nothing of service/ but service/core/, and no module imports itself through others."""
    problems = report()
    assert problems == [], "\n".join(problems)


if __name__ == "__main__":
    found = report(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
    print("\n".join(found) or "imports point one way: no violation")
    sys.exit(1 if found else 0)
