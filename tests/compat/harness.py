"""Run one scenario against two targets (Alertmanager 0.25 and Tocsin, or two Alertmanagers) side by side.

Each target is a real process in its own process group and temp dir. Its webhook receivers point at a
capture server in this process (aiohttp on 127.0.0.1:0, path `/<target label>/<receiver>`), which records
each notification's arrival offset and JSON body. Steps run at the same wall-clock offsets from a shared
T0 against both targets. Everything is torn down on the way out, failures included.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.proc_kit import die_with_parent

from .lang import Expire, Post, Scenario, Silence, Snapshot

REPO = Path(__file__).resolve().parents[2]
# Where `python -m service.cli serve` runs from (a patched checkout can be compared without touching this one).
TOCSIN_REPO = Path(os.environ.get("COMPAT_TOCSIN_REPO", str(REPO)))
ALERTMANAGER = os.environ.get("COMPAT_ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")
GENERATOR_URL = "http://prometheus.example:9090/graph?g0.expr=up"
READY_TIMEOUT = 20.0


def iso(t: float) -> str:
    """Epoch seconds -> RFC 3339 with milliseconds, UTC."""
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Captured:
    at: float  # arrival, seconds after T0
    receiver: str  # the capture path's last segment
    body: dict[str, Any]
    content_type: str = "application/json"


@dataclass
class TargetRun:
    label: str
    kind: str
    notifications: list[Captured] = field(default_factory=list)
    steps: list[tuple[float, str, int]] = field(default_factory=list)  # (offset, what, HTTP status)
    snapshots: list[tuple[str, Any, Any]] = field(default_factory=list)  # (name+query, alerts, silences|None)
    silence_names: dict[str, str] = field(default_factory=dict)  # silence id -> scenario name
    log_tail: str = ""
    late: float = 0.0  # the most any step reached the target after its offset, s (a loaded machine drifts)


@dataclass
class RunResult:
    scenario: Scenario
    t0: float
    runs: list[TargetRun]


class CaptureServer:
    """One aiohttp app on 127.0.0.1:0 recording every POST by target label and receiver path."""

    def __init__(self) -> None:
        self.t0 = 0.0
        self.by_label: dict[str, list[Captured]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.json()
        label, receiver = request.match_info["label"], request.match_info["receiver"]
        self.by_label.setdefault(label, []).append(
            Captured(round(arrived - self.t0, 3), receiver, body, request.content_type))
        return web.Response(text="ok")

    async def __aenter__(self) -> "CaptureServer":
        app = web.Application()
        app.router.add_post("/{label}/{receiver}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner:
            await self._runner.cleanup()


class Target:
    """A running Alertmanager-compatible process: `kind` is "alertmanager" or "tocsin"."""

    def __init__(self, kind: str, label: str, config: str, redis_url: str | None) -> None:
        if kind not in ("alertmanager", "tocsin"):
            raise ValueError(f"COMPAT target kind must be alertmanager or tocsin, not {kind!r}")
        self.kind, self.label, self.config, self.redis_url = kind, label, config, redis_url
        self.dir = Path(tempfile.mkdtemp(prefix=f"compat-{label}-"))
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.key_prefix = f"compat{uuid.uuid4().hex[:10]}"
        self._log = self.dir / "process.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self._log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _command(self, cfg: Path) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(k, None)
        if self.kind == "alertmanager":
            store = self.dir / "data"
            store.mkdir(exist_ok=True)
            return [ALERTMANAGER, f"--config.file={cfg}", f"--storage.path={store}",
                    f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                    "--log.level=warn"], env
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env["TOCSIN_KEY_PREFIX"] = self.key_prefix
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TOCSIN_REPO), env.get("PYTHONPATH", "")) if p)
        return [sys.executable, "-m", "service.cli", "serve", "--config", str(cfg),
                "--listen", f"127.0.0.1:{self.port}"], env

    async def start(self, session: aiohttp.ClientSession, attempts: int = 3) -> None:
        if self.kind == "alertmanager" and not os.access(ALERTMANAGER, os.X_OK):
            raise RuntimeError(f"no Alertmanager binary at {ALERTMANAGER}: apt-get install prometheus-alertmanager "
                               "(0.25), or set COMPAT_ALERTMANAGER_BIN")
        cfg = self.dir / "config.yml"
        cfg.write_text(self.config)
        last = ""
        for _attempt in range(attempts):  # a port picked by free_port() can be taken meanwhile: retry
            self.port = free_port()
            cmd, env = self._command(cfg)
            with open(self._log, "ab") as log:
                self.proc = await asyncio.create_subprocess_exec(
                    *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    cwd=str(TOCSIN_REPO if self.kind == "tocsin" else self.dir), start_new_session=True,
                    preexec_fn=die_with_parent)
            if await self._wait_ready(session):
                return
            last = self.log_tail()
            await self.stop()
        raise RuntimeError(f"{self.kind} ({self.label}) never became ready on /-/ready; log tail:\n{last}")

    async def _wait_ready(self, session: aiohttp.ClientSession) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(f"{self.base}/-/ready", timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status == 200:
                        return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after 5 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def cleanup(self) -> None:
        await self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.kind == "tocsin" and self.redis_url:
            with contextlib.suppress(Exception):
                import redis.asyncio as aioredis

                client = aioredis.from_url(self.redis_url)
                try:
                    async for k in client.scan_iter(match=f"{self.key_prefix}*", count=1000):
                        await client.delete(k)
                finally:
                    await client.aclose()


def _alert_json(a, t0: float) -> dict[str, Any]:
    out: dict[str, Any] = {"labels": a.labels, "annotations": a.annotations, "generatorURL": GENERATOR_URL}
    if a.starts is not None:
        out["startsAt"] = iso(t0 + a.starts)
    if a.ends is not None:
        out["endsAt"] = iso(t0 + a.ends)
    return out


async def _drive(target: Target, scenario: Scenario, t0: float, session: aiohttp.ClientSession,
                 run: TargetRun) -> None:
    """Run the scenario's steps against one target at their offsets from T0."""
    silences: dict[str, str] = {}
    timeout = aiohttp.ClientTimeout(total=5)
    for step in scenario.steps:
        delay = t0 + step.at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        act = step.action
        if isinstance(act, Post):
            body = [_alert_json(a, t0) for a in act.alerts]
            async with session.post(f"{target.base}/api/v2/alerts", json=body, timeout=timeout) as r:
                await r.read()
                run.steps.append((step.at, "post alerts", r.status))
        elif isinstance(act, Silence):
            body = {
                "matchers": [{"name": n, "value": v, "isRegex": op in ("=~", "!~"), "isEqual": op in ("=", "=~")}
                             for n, op, v in act.matchers],
                "startsAt": iso(t0 + (step.at if act.starts is None else act.starts)), "endsAt": iso(t0 + act.ends),
                "createdBy": "compat-suite", "comment": f"scenario {scenario.name}",
            }
            async with session.post(f"{target.base}/api/v2/silences", json=body, timeout=timeout) as r:
                data = await r.json(content_type=None) if r.status == 200 else {}
                run.steps.append((step.at, f"create silence {act.name}", r.status))
                if isinstance(data, dict) and "silenceID" in data:
                    silences[act.name] = data["silenceID"]
                    run.silence_names[data["silenceID"]] = act.name
        elif isinstance(act, Expire):
            # expire("raw:<id>") sends <id> as is; a name never created sends a well-formed unknown UUID.
            sid = act.name[4:] if act.name.startswith("raw:") else silences.get(
                act.name, "00000000-0000-4000-8000-000000000000")
            async with session.delete(f"{target.base}/api/v2/silence/{sid}", timeout=timeout) as r:
                await r.read()
                run.steps.append((step.at, f"expire silence {act.name}", r.status))
        elif isinstance(act, Snapshot):
            async with session.get(f"{target.base}/api/v2/silences", timeout=timeout) as r:
                sil = await r.json(content_type=None) if r.status == 200 else {"http_status": r.status}
            for i, q in enumerate(act.alert_queries):
                async with session.get(f"{target.base}/api/v2/alerts{q}", timeout=timeout) as r:
                    got = await r.json(content_type=None) if r.status == 200 else {"http_status": r.status}
                run.snapshots.append((f"{act.name}{q}", got, sil if i == 0 else None))
        else:  # pragma: no cover - the language has four actions
            raise TypeError(f"unknown step {act!r}")
        if not isinstance(act, Snapshot):  # the target had the change by the time it answered
            run.late = max(run.late, time.time() - (t0 + step.at))


async def run_scenario(scenario: Scenario, kinds: tuple[str, str], redis_url: str | None,
                       labels: tuple[str, str] = ("am", "other")) -> RunResult:
    """Start both targets with the scenario's config, drive the steps, collect notifications, tear down."""
    async with contextlib.AsyncExitStack() as stack:
        capture = await stack.enter_async_context(CaptureServer())
        session = await stack.enter_async_context(aiohttp.ClientSession())
        targets: list[Target] = []
        for kind, label in zip(kinds, labels):
            cfg = scenario.config.replace("CAPTURE", f"{capture.url}/{label}")
            t = Target(kind, label, cfg, redis_url)
            targets.append(t)
            stack.push_async_callback(t.cleanup)
        await asyncio.gather(*(t.start(session) for t in targets))
        t0 = time.time() + 0.3
        capture.t0 = t0
        runs = [TargetRun(t.label, t.kind) for t in targets]
        results = await asyncio.gather(*(_drive(t, scenario, t0, session, r) for t, r in zip(targets, runs)),
                                       return_exceptions=True)
        errors = [(t, e) for t, e in zip(targets, results) if isinstance(e, BaseException)]
        delay = t0 + scenario.settle - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for t, r in zip(targets, runs):
            r.notifications = sorted(capture.by_label.get(t.label, []), key=lambda c: c.at)
            r.log_tail = t.log_tail()
        if errors:
            t, e = errors[0]
            raise RuntimeError(f"driving {t.kind} ({t.label}) failed: {e!r}\nlog tail:\n{t.log_tail()}") from e
        return RunResult(scenario, t0, runs)


async def run_many(jobs: list[tuple[str, Scenario, tuple[str, str]]], redis_url: str | None,
                   concurrency: int = 5) -> dict[str, RunResult | BaseException]:
    """Run (key, scenario, kinds) jobs, at most `concurrency` at a time; failures are returned, not raised."""
    sem = asyncio.Semaphore(concurrency)

    async def one(key: str, sc: Scenario, kinds: tuple[str, str]) -> tuple[str, RunResult | BaseException]:
        async with sem:
            try:
                return key, await run_scenario(sc, kinds, redis_url)
            except Exception as e:  # reported per test
                return key, e

    # Longest first, so the tail of the run is short scenarios.
    order = sorted(jobs, key=lambda j: -j[1].settle)
    return dict(await asyncio.gather(*(one(*j) for j in order)))


async def accepts_config(kind: str, config: str, redis_url: str | None) -> tuple[bool, str]:
    """Does this target start (answer /-/ready) with `config`? Returns (started, log tail)."""
    async with aiohttp.ClientSession() as session:
        t = Target(kind, f"cfg-{kind}", config, redis_url)
        try:
            await t.start(session, attempts=1)
            return True, t.log_tail()
        except RuntimeError:
            return False, t.log_tail()
        finally:
            await t.cleanup()


async def config_verdicts(cases: dict[str, str], kinds: tuple[str, str], redis_url: str | None,
                          concurrency: int = 6) -> dict[str, list[tuple[bool, str]]]:
    """For each config case, whether each of the two targets starts with it."""
    sem = asyncio.Semaphore(concurrency)

    async def one(kind: str, cfg: str) -> tuple[bool, str]:
        async with sem:
            return await accepts_config(kind, cfg, redis_url)

    names = list(cases)
    got = await asyncio.gather(*(one(k, cases[n]) for n in names for k in kinds))
    return {n: list(got[2 * i: 2 * i + 2]) for i, n in enumerate(names)}


def dump(result: RunResult) -> str:
    """The raw capture of a run as JSON (for debugging a mismatch)."""
    return json.dumps({r.label: [c.__dict__ for c in r.notifications] for r in result.runs}, indent=1)
