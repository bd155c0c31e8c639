"""Profile `tocsin serve` under the side-by-side benchmark's ingest load, with py-spy (sampling, no code changes).

Starts the service (embedded Redis unless REDIS_URL is set), a webhook sink, posts the benchmark's alerts (first
phase, then the resend phase) while `py-spy record --format raw` samples the service, and prints:
  - alerts/s per phase, and CPU seconds used by the Python process and by its redis-server child (from /proc);
  - per phase, the functions with the most samples (py-spy attaches before each phase and detaches after it),
    inclusive and self, as file:function. Samples taken while the flushes triggered by the burst run are included:
    they compete with ingest for the one event loop.

    pip install py-spy
    python bench/ingest/profile_ingest.py [--alerts 20000] [--out /tmp/tocsin-profile] \
        [--serve 'python -m service.cli serve --config {config} --listen 127.0.0.1:{port}']
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, TCPConnector, web

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, "/work/shared/bench")
from alertmanager_side_by_side import CONFIG, make_alerts  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def summarise(raw: Path, top: int) -> dict[str, list[tuple[str, float]]]:
    """py-spy raw output: one 'frame;frame;... count' line per unique stack (root first)."""
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        total += count
        frames = []
        for fr in stack.split(";"):
            # "func (path/to/file.py:123)" -> "file.py:func"
            name, _, loc = fr.partition(" (")
            path = loc.rsplit(":", 1)[0]
            short = "/".join(Path(path).parts[-2:]) if path else "?"
            frames.append(f"{short}:{name}")
        for f in set(frames):
            incl[f] += count
        self_[frames[-1]] += count
    pct = lambda c: [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)]  # noqa: E731
    return {"samples": [("total", total)], "inclusive_pct": pct(incl), "self_pct": pct(self_)}


async def main(a: argparse.Namespace) -> None:
    got: list[dict] = []

    async def hook(req: web.Request) -> web.Response:
        got.append(await req.json())
        return web.Response(text="ok")

    app = web.Application(client_max_size=256 * 2**20)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    work = Path(tempfile.mkdtemp(prefix="tocsin-prof-"))
    config = work / "config.yml"
    config.write_text(CONFIG.format(hook_port=hook_port))
    port = free_port()
    env = dict(os.environ, TOCSIN_DATA_DIR=str(work / "data"), PYTHONPATH=str(REPO))
    env.setdefault("TOCSIN_KEY_PREFIX", f"prof{os.getpid()}")
    proc = subprocess.Popen(shlex.split(a.serve.format(config=config, port=port)), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(work / "tocsin.log", "wb"), start_new_session=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    rows = []
    spy = None
    try:
        async with ClientSession(connector=TCPConnector(limit=a.senders * 2)) as s:
            for _ in range(300):
                try:
                    async with s.get(base + "/-/ready") as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                await asyncio.sleep(0.1)
            kids = children(proc.pid)
            alerts = make_alerts(a.alerts, a.services, 0)
            batches = [alerts[i:i + a.batch] for i in range(0, len(alerts), a.batch)]
            for phase in ("first", "resend"):
                queue = list(reversed(batches))
                spy = None if a.no_profile else subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "250",
                                        "--output", str(out / f"{phase}.raw"), "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1.0)  # py-spy attaches (and the same pause without it, for comparable runs)
                cpu0 = cpu_seconds(proc.pid), sum(cpu_seconds(k) for k in kids)

                async def worker() -> None:
                    while queue:
                        b = queue.pop()
                        async with s.post(base + "/api/v2/alerts", json=b) as r:
                            if r.status != 200:
                                raise RuntimeError(f"HTTP {r.status}: {(await r.text())[:200]}")

                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(a.senders)))
                dt = time.perf_counter() - t0
                cpu1 = cpu_seconds(proc.pid), sum(cpu_seconds(k) for k in kids)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=30)
                    spy = None
                rows.append({"phase": phase, "alerts_per_s": round(len(alerts) / dt), "wall_s": round(dt, 2),
                             "python_cpu_s": round(cpu1[0] - cpu0[0], 2), "redis_cpu_s": round(cpu1[1] - cpu0[1], 2)})
            await asyncio.sleep(a.settle)
            rows.append({"phase": "notify", "notifications": len(got),
                         "alerts_in_notifications": sum(len(p["alerts"]) for p in got),
                         "children_of_service": [Path(f"/proc/{k}/comm").read_text().strip() for k in kids]})
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        await runner.cleanup()
    for r in rows:
        print(json.dumps(r))
    for phase in () if a.no_profile else ("first", "resend"):
        summary = summarise(out / f"{phase}.raw", a.top)
        (out / f"{phase}.summary.json").write_text(json.dumps(summary, indent=1))
        for kind in ("inclusive_pct", "self_pct"):
            print(f"-- {phase} phase, {kind} of {summary['samples'][0][1]} samples")
            for name, p in summary[kind]:
                print(f"{p:6.1f}%  {name}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", default="python -m service.cli serve --config {config} --listen 127.0.0.1:{port}"
                                      " --log-level warning")
    p.add_argument("--alerts", type=int, default=20000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--senders", type=int, default=8)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--settle", type=float, default=8.0)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--no-profile", action="store_true",
                   help="only rates and CPU seconds (e.g. for Alertmanager: --serve 'prometheus-alertmanager"
                        " --config.file {config} --storage.path DIR --web.listen-address=127.0.0.1:{port}"
                        " --cluster.listen-address=')")
    p.add_argument("--out", default="/tmp/tocsin-profile")
    asyncio.run(main(p.parse_args()))
