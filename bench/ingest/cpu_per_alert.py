"""Python CPU per alert of the ingest path, in process (no HTTP), on a real Redis: parse (the API's parser) +
Engine.ingest, first send and re-send, then one flush round of every group. CPU time (time.process_time) of
this process only, so that a loaded machine changes the figures less than wall time would; Redis's CPU is not
counted. Use it to compare builds on one machine, not as a throughput figure.

    python bench/ingest/cpu_per_alert.py [--alerts 20000] [--services 200] [--redis-url URL]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid

import orjson

sys.path.insert(0, "/work/shared/bench")
from alertmanager_side_by_side import CONFIG, make_alerts  # noqa: E402

from service.ingest.alerts import parse_postable  # noqa: E402
from service.core.clock import ManualClock  # noqa: E402
from service.config.sections import parse_config  # noqa: E402
from service.store.embedded import EmbeddedRedis  # noqa: E402
from service.pipeline.engine import Engine, recording_factory  # noqa: E402
try:
    from service.store.keys import open_redis  # noqa: E402
except ImportError:  # an older build, for comparisons
    import redis.asyncio as _aioredis

    def open_redis(url: str):  # type: ignore[no-redef]
        return _aioredis.from_url(url)


async def main(a: argparse.Namespace) -> None:
    embedded = None
    url = a.redis_url
    if not url:
        embedded = EmbeddedRedis(tempfile.mkdtemp(), persist=False)
        url = embedded.start()
    cfg = parse_config(CONFIG.format(hook_port=9))
    cfg.tocsin.redis.key_prefix = f"cpu{uuid.uuid4().hex[:8]}"
    client = open_redis(url)
    clock = ManualClock(time.time())
    sink: list = []
    engine = Engine(cfg, client, clock, consumer="cpu", receiver_factory=recording_factory(sink))
    await engine.start()
    alerts = make_alerts(a.alerts, a.services, 0)
    bodies = [orjson.dumps(alerts[i:i + a.batch]) for i in range(0, len(alerts), a.batch)]
    out = {}
    for phase in ("first", "resend"):
        c0, w0 = time.process_time(), time.perf_counter()
        for b in bodies:
            parsed, errors = parse_postable(orjson.loads(b), clock.now(), cfg.resolve_timeout)
            assert not errors
            await engine.ingest(parsed)
        out[phase] = {"cpu_us_per_alert": round(1e6 * (time.process_time() - c0) / a.alerts, 1),
                      "wall_s": round(time.perf_counter() - w0, 2)}
        clock.advance(1.5)
    c0 = time.process_time()
    n, _ = await engine.scheduler.run_due()
    c1 = time.process_time()
    await engine.outbox.drain()
    c2 = time.process_time()
    out["flush"] = {"groups": n, "cpu_us_per_alert": round(1e6 * (c1 - c0) / a.alerts, 1),
                    "cpu_us_per_group": round(1e6 * (c1 - c0) / max(n, 1), 1)}
    out["deliver"] = {"notifications": len(sink), "cpu_us_per_notification": round(1e6 * (c2 - c1) / max(len(sink), 1), 1)}
    print(json.dumps(out))
    await engine.close()
    await client.aclose()
    if embedded:
        embedded.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--alerts", type=int, default=20000)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--redis-url")
    asyncio.run(main(p.parse_args()))
