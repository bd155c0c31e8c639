"""`tocsin serve --workers N`: N replica processes on one port and one Redis behave as one Alertmanager."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from aiohttp import ClientSession, web

from tests.serve_kit import REPO, free_port
from tests.proc_kit import die_with_parent

CONFIG = """
route: {receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1m}
receivers: [{name: hook, webhook_configs: [{url: "http://127.0.0.1:%d/hook"}]}]
"""


async def test_workers_share_one_port_and_notify_each_group_once(tmp_path, redis_url, key_prefix):
    """Alerts spread over two worker processes give one notification per group, and SIGTERM stops them all."""
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cfg = tmp_path / "c.yml"
    cfg.write_text(CONFIG % hook_port)
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_url, TOCSIN_KEY_PREFIX=key_prefix, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(cfg), "--listen",
                             f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"], cwd=REPO, env=env,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        async with ClientSession() as s:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None and time.monotonic() < deadline
                try:
                    async with s.get(base + "/-/ready") as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                await asyncio.sleep(0.1)

            async def post(i: int) -> None:
                async with s.post(base + "/api/v2/alerts",
                                  json=[{"labels": {"alertname": f"G{i % 10}", "id": str(i)}}]) as r:
                    assert r.status == 200

            await asyncio.gather(*(post(i) for i in range(30)))
            deadline = time.monotonic() + 60
            while len(got) < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # a duplicate would arrive within a flush or two
            assert sorted(p["groupLabels"]["alertname"] for p in got) == [f"G{i}" for i in range(10)]
            assert all(len(p["alerts"]) == 3 for p in got)
            async with s.post(base + "/-/reload") as r:
                assert r.status == 200
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        await runner.cleanup()
