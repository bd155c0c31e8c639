"""A 10-minute compressed soak of `tocsin serve`: RSS and ingest latency over time, through a storm and after it.

Time is compressed 10x against a Prometheus deployment: the steady load re-sends STEADY alerts every 6 s (what
Prometheus does every 60 s), a storm of new alerts from STORM_SENDERS concurrent senders runs for 2 minutes (20
compressed minutes), then the storm's alerts are resolved and the steady load runs on while retention (1 minute)
forgets them. Tocsin runs as a subprocess on its embedded Redis, delivering to a local webhook that counts.

    python3 bench/soak/soak.py [--minutes 10] [--out bench/soak/RESULTS.md]

Writes a table per 30 s (requests, statuses, latency p50/p99/max, RSS of Tocsin and of its Redis) and a summary.
Latency is measured by the senders (wall clock: this is a measurement, not logic)."""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

REPO = Path(__file__).resolve().parents[2]
STEADY = 2000
STEADY_EVERY = 6.0
BATCH = 64
STORM_SENDERS = 8
WINDOW = 30.0


def rss_mb(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Window:
    start: float
    phase: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    rss: float = 0.0
    redis_rss: float = 0.0


class Soak:
    def __init__(self, minutes: float):
        self.total = minutes * 60
        self.storm = (0.2 * self.total, 0.4 * self.total)
        self.resolve_at = 0.4 * self.total
        self.windows: list[Window] = []
        self.t0 = 0.0
        self.notifications = 0
        self.steady_acked: set[str] = set()
        self.storm_alerts: list[dict[str, Any]] = []

    def phase(self, t: float) -> str:
        if self.storm[0] <= t < self.storm[1]:
            return "storm"
        return "before" if t < self.storm[0] else "after"

    def window(self) -> Window:
        t = time.monotonic() - self.t0
        i = int(t // WINDOW)
        while len(self.windows) <= i:
            self.windows.append(Window(len(self.windows) * WINDOW, self.phase(len(self.windows) * WINDOW)))
        return self.windows[i]

    async def post(self, s: ClientSession, base: str, alerts: list[dict[str, Any]]) -> int:
        t = time.monotonic()
        try:
            async with s.post(base + "/api/v2/alerts", json=alerts) as r:
                await r.read()
                st = r.status
        except Exception:  # noqa: BLE001 - counted as 0
            st = 0
        w = self.window()
        w.latencies.append(time.monotonic() - t)
        w.statuses[st] = w.statuses.get(st, 0) + 1
        return st

    async def steady(self, s: ClientSession, base: str) -> None:
        alerts = [{"labels": {"alertname": "Steady", "service": f"svc-{i % 50}", "instance": f"i-{i}"}}
                  for i in range(STEADY)]
        while time.monotonic() - self.t0 < self.total:
            start = time.monotonic()
            for i in range(0, STEADY, BATCH):
                if await self.post(s, base, alerts[i:i + BATCH]) == 200:
                    self.steady_acked.update(a["labels"]["instance"] for a in alerts[i:i + BATCH])
            await asyncio.sleep(max(0.0, STEADY_EVERY - (time.monotonic() - start)))

    async def storm_sender(self, s: ClientSession, base: str, k: int) -> None:
        n = 0
        while True:
            t = time.monotonic() - self.t0
            if t >= self.storm[1]:
                return
            if t < self.storm[0]:
                await asyncio.sleep(0.5)
                continue
            b = [{"labels": {"alertname": "Storm", "service": f"storm-{(n + j) % 200}", "instance": f"s{k}-{n + j}",
                             "pod": f"pod-{k}-{n + j}"}, "annotations": {"summary": "x" * 200}} for j in range(BATCH)]
            n += BATCH
            st = await self.post(s, base, b)
            if st == 200:
                self.storm_alerts.extend(b)
            elif st == 503:
                await asyncio.sleep(1.0)  # honour Retry-After (shortened: compressed time)

    async def resolve_storm(self, s: ClientSession, base: str) -> None:
        while time.monotonic() - self.t0 < self.resolve_at:
            await asyncio.sleep(0.5)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for i in range(0, len(self.storm_alerts), BATCH):
            b = [dict(a, endsAt=now) for a in self.storm_alerts[i:i + BATCH]]
            while await self.post(s, base, b) != 200:
                await asyncio.sleep(0.5)

    async def sample(self, pid: int, redis_pidfile: Path) -> None:
        while time.monotonic() - self.t0 < self.total:
            w = self.window()
            try:
                rpid = int(redis_pidfile.read_text().strip())
            except (OSError, ValueError):
                rpid = None
            w.rss = max(w.rss, rss_mb(pid))
            w.redis_rss = max(w.redis_rss, rss_mb(rpid))
            await asyncio.sleep(2.0)


def free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main(minutes: float, out: Path) -> None:
    soak = Soak(minutes)
    tmp = Path(tempfile.mkdtemp(prefix="tocsin-soak-"))
    app = web.Application(client_max_size=256 * 2**20)

    async def hook(req: web.Request) -> web.Response:
        await req.read()
        soak.notifications += 1
        return web.Response(text="ok")

    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    port = free_port()
    cfg = tmp / "tocsin.yml"
    cfg.write_text(f"""
global: {{resolve_timeout: 5m}}
route: {{receiver: hook, group_by: [service], group_wait: 1s, group_interval: 5s, repeat_interval: 1h}}
receivers: [{{name: hook, webhook_configs: [{{url: "http://127.0.0.1:{hook_port}/hook"}}]}}]
tocsin:
  data_dir: {tmp / 'data'}
  alert_retention: 1m
  redis: {{fsync: everysec}}
""")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TOCSIN_KEY_PREFIX")}
    env["PYTHONPATH"] = str(REPO)
    log = open(tmp / "tocsin.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(cfg), "--listen",
                             f"127.0.0.1:{port}", "--log-level", "error"], cwd=REPO, env=env, stdout=log, stderr=log,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as s:
            for _ in range(600):
                try:
                    async with s.get(base + "/-/ready") as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                await asyncio.sleep(0.1)
            soak.t0 = time.monotonic()
            await asyncio.gather(soak.steady(s, base), soak.resolve_storm(s, base),
                                 soak.sample(proc.pid, tmp / "data" / "redis" / "redis.pid"),
                                 *(soak.storm_sender(s, base, k) for k in range(STORM_SENDERS)))
            async with s.get(base + "/api/v2/alerts", params={"filter": 'alertname="Steady"'}) as r:
                got = await r.json()
                listed = {a["labels"]["instance"] for a in got}

        lost = len(soak.steady_acked - listed)
    finally:
        proc.send_signal(signal.SIGTERM)
        t = time.monotonic()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            if shutil.which("py-spy"):  # what it is stuck on, for the record
                subprocess.run(["py-spy", "dump", "--pid", str(proc.pid)], stdout=log, stderr=log, timeout=30)
            proc.kill()
        stop_s = time.monotonic() - t
        await runner.cleanup()
    write(out, soak, minutes, lost, stop_s)


def write(out: Path, soak: Soak, minutes: float, lost: int, stop_s: float) -> None:
    rows = ["| t (s) | phase | requests | 200 | 503 | other | p50 ms | p99 ms | max ms | Tocsin RSS MB | Redis RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in soak.windows:
        n = len(w.latencies)
        other = sum(v for k, v in w.statuses.items() if k not in (200, 503))
        rows.append(f"| {w.start:.0f} | {w.phase} | {n} | {w.statuses.get(200, 0)} | {w.statuses.get(503, 0)} | "
                    f"{other} | {pct(w.latencies, .5) * 1000:.0f} | {pct(w.latencies, .99) * 1000:.0f} | "
                    f"{max(w.latencies, default=0) * 1000:.0f} | {w.rss:.0f} | {w.redis_rss:.0f} |")
    by = {p: [w for w in soak.windows if w.phase == p] for p in ("before", "storm", "after")}
    storm_lat = [x for w in by["storm"] for x in w.latencies]
    before_rss = max((w.rss for w in by["before"]), default=0)
    peak_rss = max((w.rss for w in soak.windows), default=0)
    end_rss = next((w.rss for w in reversed(soak.windows) if w.rss), 0)
    summary = [
        f"- storm: {len(soak.storm_alerts)} new alerts answered 200 in {soak.storm[1] - soak.storm[0]:.0f} s; "
        f"ingest latency during the storm p50 {pct(storm_lat, .5) * 1000:.0f} ms, p99 {pct(storm_lat, .99) * 1000:.0f} ms, "
        f"max {max(storm_lat, default=0):.2f} s; "
        f"{sum(w.statuses.get(503, 0) for w in by['storm'])} requests answered 503 + Retry-After",
        f"- Tocsin RSS: {before_rss:.0f} MB before the storm, {peak_rss:.0f} MB at the peak, {end_rss:.0f} MB at the end",
        f"- steady alerts answered 200 but not listed at the end (lost): {lost}",
        f"- notifications received by the webhook: {soak.notifications}",
        f"- `tocsin serve` exited {stop_s:.1f} s after SIGTERM",
    ]
    out.write_text(f"# Soak: {minutes:g} minutes, compressed 10x\n\nCommand: `python3 bench/soak/soak.py --minutes "
                   f"{minutes:g}` (2-core machine shared with other work; figures are of this one run).\n\n"
                   + "\n".join(summary) + "\n\n" + "\n".join(rows) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "soak" / "RESULTS.md")
    a = ap.parse_args()
    asyncio.run(main(a.minutes, a.out))
