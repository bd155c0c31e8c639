"""The side-by-side benchmark's Tocsin half only (same alerts, config, webhook sink and measurements, from
/work/shared/bench/alertmanager_side_by_side.py), for replica-scaling runs where Alertmanager is not compared.
Arguments as that script's; --other is required."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile

from aiohttp import web

sys.path.insert(0, "/work/shared/bench")
from alertmanager_side_by_side import CONFIG, make_alerts, run_target  # noqa: E402


async def main(a: argparse.Namespace) -> None:
    got: list = []

    async def hook(req: web.Request) -> web.Response:
        got.append(await req.json())
        return web.Response(text="ok")

    app = web.Application(client_max_size=256 * 2**20)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", a.hook_port).start()
    workdir = tempfile.mkdtemp()
    config = os.path.join(workdir, "alertmanager.yml")
    with open(config, "w") as f:
        f.write(CONFIG.format(hook_port=a.hook_port))
    for rnd in range(a.rounds):
        got.clear()
        port = a.port + rnd * 10
        rows = await run_target("other", shlex.split(a.other.format(config=config, port=port)), port,
                                make_alerts(a.alerts, a.services, rnd), a, got)
        for r in rows:
            r["round"] = rnd
            print(json.dumps(r), flush=True)
    await runner.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--other", required=True)
    p.add_argument("--alerts", type=int, default=20000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--senders", type=int, default=8)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--settle", type=float, default=8.0)
    p.add_argument("--port", type=int, default=19100)
    p.add_argument("--hook-port", type=int, default=19094)
    asyncio.run(main(p.parse_args()))
