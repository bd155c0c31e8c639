"""Move Tocsin's modules into the layout of bench/house/layout_plan.md, with `git mv`, and rewrite every import.

    python3 bench/house/move.py [--repo DIR] [--dry-run]

Run it in a clean checkout (it refuses a dirty tree). It
1. reads every .py file of service/, routing/, tests/ and bench/ and works out, with `ast`, each import of our
   packages (module level and inside functions; relative ones resolved against the file's old place);
2. moves the files (`git mv`; a module that becomes a package of the same name goes through a temporary name);
3. writes the imports again as absolute imports of the new names (`from service.core.clock import Clock`), each
   statement in place, on one line, with `as` where the module's last name changed; import lines inside
   multi-line string literals (scripts that tests run in a subprocess) are rewritten the same way;
4. adds an `__init__.py` with a docstring to every new package, and switches pyproject.toml to package discovery.

Nothing else changes: no code is edited but import statements, so the suite is the check (see layout_plan.md for
the result of running it on a throwaway clone). Standard library only.
"""
from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

# old path -> new path, in the order they are moved (files; directories marked with a trailing "/").
MOVES: list[tuple[str, str]] = [
    # core: imports nothing of ours
    ("service/clock.py", "service/core/clock.py"),
    ("service/errors.py", "service/core/errors.py"),
    ("service/models.py", "service/core/models.py"),
    ("service/logs.py", "service/core/logs.py"),
    ("service/metrics.py", "service/core/metrics.py"),
    # config
    ("service/config.py", "service/config/sections.py"),
    # store: every key, every Lua script, the embedded server
    ("service/store.py", "service/store/keys.py"),
    ("service/lua/", "service/store/lua/"),
    ("service/embedded_redis.py", "service/store/embedded.py"),
    # ingest: the doors' parsing and the alert store
    ("service/alerts.py", "service/ingest/alerts.py"),
    ("service/events.py", "service/ingest/events.py"),
    # pipeline: groups, scheduler, flush, outbox, and the engine that wires them
    ("service/dispatch.py", "service/pipeline/dispatch.py"),
    ("service/scheduler.py", "service/pipeline/scheduler.py"),
    ("service/notify_log.py", "service/pipeline/notify_log.py"),
    ("service/outbox.py", "service/pipeline/outbox.py"),
    ("service/regroup.py", "service/pipeline/regroup.py"),
    ("service/engine.py", "service/pipeline/engine.py"),
    ("service/replay.py", "service/pipeline/replay.py"),
    # incidents (service/incidents/ is already a package: store, correlation, lifecycle, scoring, rootcause)
    ("routing/escalation.py", "service/incidents/escalation.py"),
    # http: the app and its doors
    ("service/app.py", "service/http/app.py"),
    ("service/appkeys.py", "service/http/appkeys.py"),
    ("service/api.py", "service/http/api.py"),
    ("service/openapi.py", "service/http/openapi.py"),
    ("service/incident_api.py", "service/http/incident_api.py"),
    ("routing/slack_actions.py", "service/http/slack_actions.py"),
    ("routing/pagerduty_webhook.py", "service/http/pagerduty_webhook.py"),
    # receivers
    ("routing/ratelimit.py", "routing/receivers/ratelimit.py"),
]

PACKAGE_DOCS = {
    "service/core": "Clock, errors, models, logs and metrics: what every part uses; imports nothing of Tocsin's.",
    "service/config": "The configuration: one function per section, typed sub-configs, one secret resolver.",
    "service/store": "Redis: every key, every Lua script, the embedded server.",
    "service/ingest": "The doors' parsing (API v2 alerts, Alertmanager webhooks, detector events) and the alert store.",
    "service/pipeline": "Aggregation groups, the scheduler, the flush, the outbox, and the engine that wires them.",
    "service/incidents": "Incidents: the store and lifecycle, correlation, scoring, root causes, escalation.",
    "service/http": "The aiohttp app: the APIs, operations endpoints, and the Slack and PagerDuty doors.",
}
ROOTS = ("service", "routing", "tests", "bench")
OURS = ("service", "routing")


def module_of(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_map() -> dict[str, str]:
    return {module_of(old): module_of(new) for old, new in MOVES if old.endswith(".py")}


def renamed(name: str, mapping: dict[str, str]) -> str:
    """`name` (a module, or a module's attribute path) under the new layout."""
    for old in sorted(mapping, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return mapping[old] + name[len(old):]
    return name


def _known(name: str, modules: set[str]) -> bool:
    return name in modules


def _absolute(node: ast.ImportFrom, mod: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def _alias(name: str, asname: str | None, bound: str) -> str:
    """`name as asname`, keeping the name the code uses (`bound`)."""
    return name if name == bound and asname is None else f"{name} as {asname or bound}"


def rewrite_from(node: ast.ImportFrom, mod: str, is_pkg: bool, modules: set[str], mapping: dict[str, str]) -> str | None:
    """The new text of one `from ... import ...` of our packages, or None when it does not change."""
    base = _absolute(node, mod, is_pkg)
    if base.split(".")[0] not in OURS:
        return None
    groups: dict[str, list[str]] = {}
    for a in node.names:
        sub = f"{base}.{a.name}"
        if _known(sub, modules):  # `from service import incidents`: a module imported by name
            new = renamed(sub, mapping)
            parent, _, last = new.rpartition(".")
            groups.setdefault(parent, []).append(_alias(last, a.asname, a.name))
        else:
            groups.setdefault(renamed(base, mapping), []).append(_alias(a.name, a.asname, a.asname or a.name))
    text = "; ".join(f"from {b} import {', '.join(names)}" for b, names in groups.items())
    return text


def rewrite_import(node: ast.Import, mapping: dict[str, str]) -> str | None:
    names = []
    changed = False
    for a in node.names:
        new = renamed(a.name, mapping) if a.name.split(".")[0] in OURS else a.name
        if new != a.name and a.asname is None:
            raise SystemExit(f"line {node.lineno}: `import {a.name}` would need its uses renamed; import it by name")
        changed |= new != a.name
        names.append(new if a.asname is None else f"{new} as {a.asname}")
    return f"import {', '.join(names)}" if changed else None


def rewrites(path: Path, rel: str, modules: set[str], mapping: dict[str, str]) -> list[tuple[int, int, int, int, str]]:
    """(line, col, end line, end col, new text) for every import statement of `path` that changes."""
    tree = ast.parse(path.read_text(), str(path))
    mod, is_pkg = module_of(rel), path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            new = rewrite_from(node, mod, is_pkg, modules, mapping)
        elif isinstance(node, ast.Import):
            new = rewrite_import(node, mapping)
        else:
            continue
        if new is not None and new != ast.get_source_segment(path.read_text(), node):
            out.append((node.lineno, node.col_offset, node.end_lineno or node.lineno, node.end_col_offset or 0, new))
    return out + _string_rewrites(tree, path.read_text(), modules, mapping)


_IMPORT_LINE = re.compile(r"^(\s*)((?:from|import) (?:service|routing)\b.*?)\s*$")


def _string_rewrites(tree: ast.AST, text: str, modules: set[str],
                     mapping: dict[str, str]) -> list[tuple[int, int, int, int, str]]:
    """Import lines inside string literals (code that a test runs in a subprocess), absolute imports only."""
    lines = text.splitlines()
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" in node.value):
            continue
        for n in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            m = _IMPORT_LINE.match(lines[n - 1])
            if not m:
                continue
            stmt = ast.parse(m.group(2)).body[0]
            if isinstance(stmt, ast.ImportFrom):
                new = rewrite_from(stmt, "", False, modules, mapping)
            elif isinstance(stmt, ast.Import):
                new = rewrite_import(stmt, mapping)
            else:
                continue
            if new is not None and new != m.group(2):
                col = len(m.group(1).encode())
                out.append((n, col, n, col + len(m.group(2).encode()), new))
    return out


def apply(text: str, edits: list[tuple[int, int, int, int, str]]) -> str:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for line, col, end_line, end_col, new in sorted(edits, reverse=True):
        start = offsets[line - 1] + len(lines[line - 1].encode()[:col].decode())
        end = offsets[end_line - 1] + len(lines[end_line - 1].encode()[:end_col].decode())
        text = text[:start] + new + text[end:]
    return text


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def move_files(repo: Path) -> None:
    for old, new in MOVES:
        src, dst = repo / old.rstrip("/"), repo / new.rstrip("/")
        if src.with_suffix("") == dst.parent:  # service/incidents.py -> service/incidents/store.py
            tmp = src.with_name(f"_moving_{src.name}")
            git(repo, "mv", str(src), str(tmp))
            src = tmp
        dst.parent.mkdir(parents=True, exist_ok=True)
        git(repo, "mv", str(src), str(dst))


def add_packages(repo: Path) -> None:
    dirs = {str(Path(new).parent) for _, new in MOVES} | set(PACKAGE_DOCS)
    for d in sorted(dirs):
        init = repo / d / "__init__.py"
        if not init.exists() and not d.endswith("/lua"):
            init.write_text(f'"""{PACKAGE_DOCS.get(d, "")}"""\n' if d in PACKAGE_DOCS else "")
            git(repo, "add", str(init))


def fix_pyproject(repo: Path) -> None:
    """Package discovery instead of the fixed package list, and ruff's per-file ignores under the new paths."""
    p = repo / "pyproject.toml"
    text = p.read_text()
    old = '[tool.setuptools]\npackages = ["service", "service.summaries", "routing", "routing.receivers"]\n'
    text = text.replace(old, '[tool.setuptools.packages.find]\ninclude = ["service*", "routing*"]\n')
    for old_path, new_path in MOVES:
        text = text.replace(f'"{old_path}" = ', f'"{new_path}" = ')
    p.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path.cwd())
    ap.add_argument("--dry-run", action="store_true", help="print the moves and import rewrites, change nothing")
    args = ap.parse_args()
    repo = args.repo.resolve()
    if not args.dry_run and git(repo, "status", "--porcelain", "--untracked-files=no").strip():
        print("the work tree has uncommitted changes: commit or stash them first", file=sys.stderr)
        return 2
    mapping = module_map()
    files = sorted(p for r in ROOTS if (repo / r).exists() for p in (repo / r).rglob("*.py"))
    modules = {module_of(str(p.relative_to(repo))) for p in files if str(p.relative_to(repo)).startswith(OURS)}
    plan = {p: rewrites(p, str(p.relative_to(repo)), modules, mapping) for p in files}
    plan = {p: e for p, e in plan.items() if e}
    if args.dry_run:
        for old, new in MOVES:
            print(f"git mv {old} {new}")
        for p, edits in plan.items():
            for line, _, _, _, new in edits:
                print(f"{p.relative_to(repo)}:{line}: {new}")
        return 0
    texts = {p: apply(p.read_text(), e) for p, e in plan.items()}
    old_to_new = {str(repo / old): str(repo / new) for old, new in MOVES if old.endswith(".py")}
    move_files(repo)
    for p, text in texts.items():
        Path(old_to_new.get(str(p), str(p))).write_text(text)
    add_packages(repo)
    fix_pyproject(repo)
    n = sum(len(e) for e in plan.values())
    print(f"moved {len(MOVES)} paths; rewrote {n} import statements in {len(plan)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
