"""Acceptance 5: several Tocsin replicas on one Redis send exactly the notifications one replica would have sent.

Two levels: two `tocsin serve` processes (same key prefix, different TOCSIN_INSTANCE) each given half of the alerts
of the same groups, compared with one process given all of them; and two in-process Engines on a ManualClock
racing `run_due()` on the same due groups, which must flush each group exactly once.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import redis.asyncio as aioredis
from aiohttp import ClientSession, ClientTimeout, web

from service.core.clock import ManualClock, to_rfc3339
from service.config.sections import EnvSettings, parse_config
from service.pipeline.engine import Engine, recording_factory
from service.core.models import Alert, Notification
from service.store.keys import open_redis

from tests.serve_kit import TocsinProcess as Serve
DEADLINE = 45.0  # generous for a loaded 2-core machine; normally reached in a few seconds


@dataclass
class Capture:
    """A webhook consumer that records every payload it accepts."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> "Capture":
        async def hook(req: web.Request) -> web.Response:
            self.payloads.append(await req.json())
            return web.Response(text="ok")

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
        return self

    def groups_notified(self, at_least: int) -> set[str]:
        c = Counter(p["groupKey"] for p in self.payloads)
        return {g for g, n in c.items() if n >= at_least}

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


CONFIG = """
route:
  receiver: hook
  group_by: [service]
  group_wait: 1s
  group_interval: 3s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: true
tocsin:
  data_dir: {data_dir}
"""


async def wait_for(cond, what: str, timeout: float = DEADLINE) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def notification_set(payloads: list[dict[str, Any]]) -> Counter[tuple[str, str, frozenset[tuple[str, str]]]]:
    return Counter((p["groupKey"], p["status"], frozenset((a["fingerprint"], a["status"]) for a in p["alerts"]))
                   for p in payloads)


async def run_serve(tmp: Path, redis_url: str, replicas: int, waves: int, build_wave: Callable[[int, float], list[Any]],
                    groups: int) -> list[dict[str, Any]]:
    """Run `replicas` processes on one fresh prefix; wave by wave, alert i goes to replica i % replicas. Waves are
    built when sent (`build_wave(n, first_sent)`), so that startsAt is fresh, as Prometheus sends it."""
    capture = await Capture().start()
    cfg = tmp / "tocsin.yml"
    cfg.write_text(CONFIG.format(url=capture.url, data_dir=tmp / "data"))
    prefix = f"t{uuid.uuid4().hex[:10]}"
    procs = [Serve(cfg, tmp / f"tocsin-{i}.log", f"replica-{i}", redis_url, prefix) for i in range(replicas)]
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as s:
            await asyncio.gather(*(p.start(s) for p in procs))

            async def post(p: Serve, alerts: list[dict[str, Any]]) -> None:
                for i in range(0, len(alerts), 16):
                    async with s.post(p.base + "/api/v2/alerts", json=alerts[i:i + 16]) as r:
                        assert r.status == 200, await r.text()

            first_sent = time.time()  # wall time only to build realistic Prometheus payloads
            for n in range(1, waves + 1):
                wave = build_wave(n, first_sent)
                await asyncio.gather(*(post(p, wave[i::replicas]) for i, p in enumerate(procs)))
                await wait_for(lambda: len(capture.groups_notified(n)) == groups, f"wave {n} notified")
            # Long enough for any duplicate or stray flush (one more group_interval and then some) to show up.
            await asyncio.sleep(4.0)
    finally:
        for p in procs:
            p.stop()
        client = open_redis(redis_url, timeout=None, socket_timeout=None, socket_connect_timeout=None)  # or a cluster
        async for k in client.scan_iter(match=f"{prefix}:*", count=1000):  # test clean-up only
            await client.delete(k)
        await client.aclose()
        await capture.stop()
    return capture.payloads


async def test_two_replicas_send_exactly_what_one_would(tmp_path, redis_url):
    """Two processes sharing one Redis, each given half of every group's alerts (then half of the resolutions),
    deliver the same notifications as one process given everything: same count, groups and alert sets, no
    duplicates."""
    groups, per_group = 10, 8
    tag = uuid.uuid4().hex[:6]

    def build_wave(n: int, first_sent: float) -> list[dict[str, Any]]:
        firing = [{"labels": {"alertname": "Replicated", "service": f"svc-{g}", "instance": f"{tag}-{i}"},
                   "startsAt": to_rfc3339(first_sent)} for i in range(per_group) for g in range(groups)]
        if n == 1:
            return firing
        # The second wave resolves every other alert of each group, now.
        return [dict(a, endsAt=to_rfc3339(time.time())) for a in firing
                if int(a["labels"]["instance"].rsplit("-", 1)[1]) % 2]

    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two, one = await asyncio.gather(run_serve(tmp_path / "two", redis_url, 2, 2, build_wave, groups),
                                    run_serve(tmp_path / "one", redis_url, 1, 2, build_wave, groups))
    got, want = notification_set(two), notification_set(one)
    assert len(one) == 2 * groups  # first flush, then the resolutions: the reference run is what we think it is
    assert all(n == 1 for n in got.values()), f"duplicates: {[k[0] for k, n in got.items() if n > 1]}"
    assert got == want


# -- the scheduler claim, in process ---------------------------------------------------------------------------

ENGINE_CONFIG = """
route:
  receiver: rec
  group_by: [service]
  group_wait: 1s
  group_interval: 10s
  repeat_interval: 4h
receivers:
  - name: rec
    webhook_configs:
      - url: http://127.0.0.1:9/unused
"""


def make_engines(redis_url: str, key_prefix: str, clock: ManualClock, n: int) -> tuple[list[Engine], list[Notification],
                                                                                          list[aioredis.Redis]]:
    cfg = parse_config(ENGINE_CONFIG, env=EnvSettings(tocsin_key_prefix=key_prefix))
    sink: list[Notification] = []
    clients = [aioredis.from_url(redis_url) for _ in range(n)]
    engines = [Engine(cfg, c, clock, consumer=f"engine-{i}", receiver_factory=recording_factory(sink))
               for i, c in enumerate(clients)]
    for e in engines:
        e.scheduler.batch = 3  # small claims, so that the replicas interleave
    return engines, sink, clients


def alerts_for(groups: int, per_group: int, wave: int, now: float) -> list[Alert]:
    return [Alert(labels={"alertname": "Race", "service": f"svc-{g}", "instance": f"w{wave}-{i}"},
                  starts_at=now, ends_at=now + 3600, updated_at=now)
            for g in range(groups) for i in range(per_group)]


async def test_engines_racing_run_due_flush_each_group_exactly_once(redis, redis_url, key_prefix):
    """Three engines on one Redis racing run_due() over the same due groups flush each group exactly once per
    due time, and together notify every alert exactly once per change."""
    clock = ManualClock(1_700_000_000.0)
    engines, sink, clients = make_engines(redis_url, key_prefix, clock, 3)
    groups = 40
    try:
        for e in engines:
            await e.start()
        for wave in range(2):
            alerts = alerts_for(groups, 4, wave, clock.now())
            await asyncio.gather(*(e.ingest(alerts[i::len(engines)]) for i, e in enumerate(engines)))
            clock.advance(1.5 if wave == 0 else 10.5)
            flushed = await asyncio.gather(*(e.scheduler.run_due() for e in engines))
            assert sum(n for n, _ in flushed) == groups, f"wave {wave}: flushes per engine {[n for n, _ in flushed]}"
            await asyncio.gather(*(e.outbox.drain() for e in engines))
            this_wave = sink[groups * wave:]
            assert len(this_wave) == groups
            by_group = Counter(n.group_key for n in this_wave)
            assert set(by_group.values()) == {1}
            for n in this_wave:
                assert len(n.alerts) == 4 * (wave + 1)
        # Nothing is left due twice: another race at the next due time finds nothing new to say.
        clock.advance(10.5)
        await asyncio.gather(*(e.scheduler.run_due() for e in engines))
        await asyncio.gather(*(e.outbox.drain() for e in engines))
        assert len(sink) == 2 * groups
    finally:
        for e in engines:
            await e.close()
        for c in clients:
            await c.aclose()


async def test_a_replica_whose_claim_lease_ran_out_cannot_commit_a_second_flush(redis, redis_url, key_prefix):
    """A replica that claimed a group and stalled past the lease loses the claim: the replica that re-claimed it
    commits, the stale one's flush is refused, and the group is notified once."""
    clock = ManualClock(1_700_000_000.0)
    (slow, fast), sink, clients = make_engines(redis_url, key_prefix, clock, 2)
    try:
        await slow.start()
        await fast.start()
        await slow.ingest(alerts_for(1, 2, 0, clock.now()))
        clock.advance(1.5)
        stale, _ = await slow.scheduler.claim(clock.now())
        assert len(stale) == 1
        clock.advance(slow.scheduler.lease + 1)  # the slow replica stalls past its lease
        fresh, _ = await fast.scheduler.claim(clock.now())
        assert [g for g, _ in fresh] == [g for g, _ in stale]
        assert await fast.dispatcher.flush(*fresh[0]) is not None
        assert await slow.dispatcher.flush(*stale[0]) is None
        await fast.outbox.drain()
        await slow.outbox.drain()
        assert len(sink) == 1 and len(sink[0].alerts) == 2
    finally:
        for e in (slow, fast):
            await e.close()
        for c in clients:
            await c.aclose()
