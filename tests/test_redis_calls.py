"""Redis is called only from service/store/ and the incident store (service/incidents/store.py); everything else
goes through the store objects the engine builds once and passes down.

The check reads the source with `ast` (nothing of ours is imported) and reports, outside those modules:

1. an import of redis-py other than `redis.exceptions` (catching its errors is how the doors answer 503), except
   under `if TYPE_CHECKING:`;
2. a call of a Redis command method: any method name of redis-py's client or pipeline (taken from redis-py
   itself: `hset`, `evalsha`, `pipeline`, `xadd`, `execute`, `register_script`, ...). A name that our own code also
   defines as a method or function (`get`, `delete`, `expire`, ...: a store facade's or the silences'), or that
   everyday Python objects have (`append`, `info`, `wait`, ...), counts only on a receiver that reads as a Redis
   client (`redis`, `client`, `pipe`, `pipeline`, ... as the last name); closing a client is no data call;
3. a call of a registered Lua script (`<...>.scripts.<name>(...)`) or of `queue_script`, and an import of
   `queue_script`.

Run it as a script to print the findings:

    python3 tests/test_redis_calls.py [ROOT]
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "routing")
ALLOWED = ("service/store/", "service/incidents/store.py")
CLIENT_NAME = re.compile(r"(^|_)(redis|client|pipe|pipeline|conn|cluster)$")
LIFECYCLE = {"close", "aclose"}  # closing a client is not a data call (the process that opened it closes it)


def redis_commands() -> set[str]:
    """Every public method name of redis-py's asyncio client and pipeline (commands and pipeline verbs)."""
    from redis.asyncio import Redis, RedisCluster
    from redis.asyncio.client import Pipeline

    names: set[str] = set()
    for cls in (Redis, Pipeline, RedisCluster):
        names |= {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None))}
    return names


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, except what is under `if TYPE_CHECKING:`."""
    out: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            out.append(child)
            visit(child)

    visit(tree)
    return out


def _last_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _last_name(node.func)
    return ""


def common_names() -> set[str]:
    """Method names of everyday Python objects that are also Redis commands (`append`, `copy`, `sort`, `info`,
    `wait`, `time`, `get`, `json`...)."""
    import asyncio
    import logging
    import subprocess
    import time

    names: set[str] = {"json", "quit"}  # an HTTP response's body, an SMTP session's end
    for obj in (list, dict, set, str, bytes, asyncio, asyncio.Event, logging.Logger, time, subprocess.Popen):
        names |= set(dir(obj))
    return names


def ambiguous_names(trees: dict[str, ast.AST]) -> set[str]:
    """Redis command names that also name our own functions and methods (anywhere) or everyday objects' ones:
    they count only on a receiver that reads as a Redis client."""
    return common_names() | {n.name for tree in trees.values() for n in ast.walk(tree)
                             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def findings_in(rel: str, tree: ast.AST, commands: set[str], ours: set[str]) -> list[str]:
    out: list[str] = []
    for node in _nodes(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "redis" and not a.name.startswith("redis.exceptions"):
                    out.append(f"{where}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] == "redis" and not node.module.startswith("redis.exceptions"):
                out.append(f"{where}: from {node.module} import ...")
            if any(a.name == "queue_script" for a in node.names):
                out.append(f"{where}: imports queue_script")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "queue_script":
                out.append(f"{where}: queue_script(...)")
            if not isinstance(f, ast.Attribute):
                continue
            if _last_name(f.value) == "scripts":
                out.append(f"{where}: a Lua script call: {ast.unparse(f)}(...)")
            elif f.attr in commands and f.attr not in LIFECYCLE and \
                    (f.attr not in ours or CLIENT_NAME.search(_last_name(f.value))):
                out.append(f"{where}: a Redis command: {ast.unparse(f)}(...)")
    return out


def report(root: Path = ROOT) -> list[str]:
    trees = {p.relative_to(root).as_posix(): ast.parse(p.read_text(), str(p))
             for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}
    commands, ours = redis_commands(), ambiguous_names(trees)
    out: list[str] = []
    for rel, tree in trees.items():
        if not rel.startswith(ALLOWED):
            out += findings_in(rel, tree, commands, ours)
    return out


def test_the_check_sees_commands_scripts_and_imports(tmp_path: Path) -> None:
    """It flags a command on any client-like receiver, a script call, a redis import; not our own methods of the
    same names on other objects, nor redis' exceptions, nor TYPE_CHECKING imports, nor code in service/store/."""
    for d in ("service/store", "service/pipeline", "routing"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "service/pipeline/bad.py").write_text(
        "from redis.asyncio import Redis\n"
        "from service.store.keys import queue_script\n"
        "async def f(self, redis, silences, d):\n"
        "    pipe = self.redis.pipeline(transaction=False)\n"
        "    pipe.hset('k', 'f', 'v')\n"
        "    await redis.delete('k')\n"
        "    await self.store.redis.zscore('k', 'm')\n"
        "    await self.scripts.commit_flush(keys=[], args=[])\n"
        "    queue_script(pipe, None, [], [])\n"
        "    await silences.expire('id', 0)\n"
        "    d.get('x')\n")
    (tmp_path / "routing/ok.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from redis.exceptions import RedisError\n"
        "if TYPE_CHECKING:\n"
        "    from redis.asyncio import Redis\n"
        "async def f(store, silences, d):\n"
        "    await store.delete(['a'])\n"
        "    await silences.expire('id', 0)\n"
        "    return d.get('x')\n")
    (tmp_path / "service/store/groups.py").write_text(
        "from redis.asyncio import Redis\n"
        "async def delete(redis):\n"
        "    await redis.hdel('k', 'f')\n"
        "async def expire(x):\n"
        "    pass\n")
    found = report(tmp_path)
    assert [f.split(": ", 1)[0] for f in found] == [f"service/pipeline/bad.py:{n}" for n in (1, 2, 4, 5, 6, 7, 8, 9)]


def test_redis_is_called_only_from_the_stores() -> None:
    """No module outside service/store/ and the incident store calls Redis or imports its client."""
    problems = report()
    assert problems == [], "\n".join(problems)


if __name__ == "__main__":
    found = report(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
    print("\n".join(found) or "Redis is called only from service/store/ and the incident store")
    sys.exit(1 if found else 0)
