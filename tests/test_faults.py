"""The fault suite: a real `tocsin serve` (subprocess) on a real redis-server this test starts, stops, kills and
restarts, with a webhook receiver that goes down and comes back. Each test counts what was lost: every alert
answered 200 must be listed and notified afterwards (nothing).

SIGKILL of Tocsin alone and of Tocsin with its Redis under load are tests/test_durability.py; here: Redis stopped,
killed and restarted (with its data and empty), a receiver down for a while, and SIGTERM under load (the process
exits; the 60 s bound is a failure bound, not a speed assertion: a healthy shutdown takes about a second).
Real-time waits are inherent (separate processes): conditions are polled with generous deadlines."""
from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web

from service.store.embedded import EmbeddedRedis
from tests.serve_kit import DEADLINE, TocsinProcess
from tests.test_durability import Capture, fp_of, poll, write_config

SHUTDOWN_BOUND = 60.0  # failure bound for "exits after SIGTERM"


class Receiver(Capture):
    """The durability tests' capture server, which can also go down (connection refused) and come back on its
    port."""

    port: int = 0

    async def start(self) -> "Receiver":
        await super().start()
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        return self

    async def down(self) -> None:
        await self.stop()
        self.runner = None

    async def up(self) -> None:
        async def hook(req: web.Request) -> web.Response:
            body = await req.json()
            self.requests.append((200, body))
            return web.Response(text="ok")

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


def batch(tag: str, n: int, services: int = 4) -> list[dict[str, Any]]:
    return [{"labels": {"alertname": "Fault", "service": f"{tag}-{i % services}", "instance": f"{tag}-{i}"}}
            for i in range(n)]


async def post(s: ClientSession, base: str, alerts: list[dict[str, Any]]) -> int:
    try:
        async with s.post(base + "/api/v2/alerts", json=alerts) as r:
            await r.read()
            return r.status
    except Exception:  # noqa: BLE001 - a reset connection is "not answered 200"
        return 0


async def post_until_200(s: ClientSession, base: str, alerts: list[dict[str, Any]]) -> list[int]:
    """Re-send like Prometheus until answered 200; the statuses seen on the way."""
    seen = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        st = await post(s, base, alerts)
        seen.append(st)
        if st == 200:
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"never answered 200: {seen[-5:]}")


def notified_fps(rx: Capture) -> set[str]:
    return {a["fingerprint"] for p in rx.delivered() for a in p["alerts"]}


async def listed_fps(s: ClientSession, base: str) -> set[str]:
    async with s.get(base + "/api/v2/alerts") as r:
        assert r.status == 200
        return {a["fingerprint"] for a in await r.json()}


class World:
    """A redis-server, a receiver and a `tocsin serve` on them, torn down in reverse."""

    def __init__(self, tmp: Path, persist: bool):
        self.tmp = tmp
        self.redis = EmbeddedRedis(tmp / "redis", persist=persist, fsync="always")
        self.rx: Receiver | None = None
        self.tocsin: TocsinProcess | None = None

    async def __aenter__(self) -> "World":
        url = self.redis.start()
        self.rx = await Receiver().start()
        cfg = write_config(self.tmp / "tocsin.yml", self.rx.url, self.tmp / "data", backoff_initial=0.1,
                           backoff_max=0.5)
        self.tocsin = TocsinProcess(cfg, self.tmp / "tocsin.log", instance=f"fault-{uuid.uuid4().hex[:6]}",
                                    redis_url=url, prefix=f"f{uuid.uuid4().hex[:8]}")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.tocsin is not None:
            self.tocsin.stop()
        if self.rx is not None and self.rx.runner is not None:
            await self.rx.stop()
        self.redis.stop()


async def test_redis_restarted_empty_delivery_resumes(tmp_path: Path) -> None:
    """After Redis comes back empty (consumer groups gone), alerts re-sent are answered 200 and delivered
    without restarting Tocsin (the outbox recreates its groups on NOGROUP)."""
    async with World(tmp_path, persist=False) as w, ClientSession(timeout=ClientTimeout(total=10)) as s:
        await w.tocsin.start(s)
        first = batch("before", 8)
        assert await post(s, w.tocsin.base, first) == 200
        await poll(lambda: {fp_of(a["labels"]) for a in first} <= notified_fps(w.rx), "first notifications")
        w.redis.stop()
        assert await post(s, w.tocsin.base, batch("down", 2)) == 503  # never 200 for what is not stored
        w.redis.start()  # the same socket, no data
        after = batch("after", 8)
        await post_until_200(s, w.tocsin.base, after)
        want = {fp_of(a["labels"]) for a in after}
        await poll(lambda: not (want - notified_fps(w.rx)), "delivery after the empty restart",
                   detail=lambda: f"{len(want - notified_fps(w.rx))} of {len(want)} not notified")


@pytest.mark.parametrize("how", ["stop", "sigkill"])
async def test_redis_stopped_or_killed_under_load_loses_nothing_answered_200(tmp_path: Path, how: str) -> None:
    """Redis stopped (or SIGKILLed) and restarted on its append-only file while 4 senders post: requests answer
    503 meanwhile, and every alert ever answered 200 is listed and notified afterwards."""
    async with World(tmp_path, persist=True) as w, ClientSession(timeout=ClientTimeout(total=10)) as s:
        await w.tocsin.start(s)
        acked: list[dict[str, Any]] = []
        statuses: dict[int, int] = {}
        stop = asyncio.Event()

        async def sender(k: int) -> None:
            i = 0
            while not stop.is_set():
                b = batch(f"s{k}-{i}", 5, services=2)
                st = await post(s, w.tocsin.base, b)
                statuses[st] = statuses.get(st, 0) + 1
                if st == 200:
                    acked.extend(b)
                i += 1
                await asyncio.sleep(0.02)

        senders = [asyncio.create_task(sender(k)) for k in range(4)]
        await poll(lambda: len(acked) >= 100, "load before the fault")
        if how == "stop":
            w.redis.stop()
        else:
            assert w.redis.proc is not None
            w.redis.proc.send_signal(signal.SIGKILL)
            w.redis.proc.wait(timeout=10)
        await asyncio.sleep(1.5)
        w.redis.start()
        n = len(acked)
        await poll(lambda: len(acked) >= n + 100, "load after the restart")
        stop.set()
        await asyncio.gather(*senders)
        assert statuses.get(503, 0) > 0, statuses  # the outage was seen, and answered as such
        assert set(statuses) <= {200, 503, 0}, statuses  # never another 5xx
        want = {fp_of(a["labels"]) for a in acked}
        missing = want - await listed_fps(s, w.tocsin.base)
        assert not missing, f"{len(missing)} of {len(want)} alerts answered 200 are gone"
        await poll(lambda: not (want - notified_fps(w.rx)), "every acknowledged alert notified",
                   detail=lambda: f"{len(want - notified_fps(w.rx))} of {len(want)} not notified")


async def test_receiver_down_for_a_while_gets_everything_when_back(tmp_path: Path) -> None:
    """A receiver refusing connections for a while (the outbox retries with backoff) gets every alert's
    notification once it is back."""
    async with World(tmp_path, persist=False) as w, ClientSession(timeout=ClientTimeout(total=10)) as s:
        await w.tocsin.start(s)
        await w.rx.down()
        alerts = batch("rxdown", 40, services=8)
        for i in range(0, 40, 10):
            assert await post(s, w.tocsin.base, alerts[i:i + 10]) == 200
        await asyncio.sleep(4.0)  # several failed attempts (group_wait 1 s, backoff 0.1..0.5 s)
        assert w.rx.requests == []
        await w.rx.up()
        want = {fp_of(a["labels"]) for a in alerts}
        await poll(lambda: not (want - notified_fps(w.rx)), "notifications after the receiver is back",
                   detail=lambda: f"{len(want - notified_fps(w.rx))} missing")


async def test_sigterm_under_load_exits_and_loses_nothing(tmp_path: Path) -> None:
    """Three rounds of SIGTERM while 6 senders post and deliveries are in flight: each time `tocsin serve` exits
    (60 s failure bound), and after a restart every alert answered 200 is still listed."""
    async with World(tmp_path, persist=True) as w, ClientSession(timeout=ClientTimeout(total=10)) as s:
        w.rx.delay = 0.2  # deliveries stay in flight
        acked: list[dict[str, Any]] = []
        exits: list[float] = []
        for rnd in range(3):
            await w.tocsin.start(s)
            stop = asyncio.Event()

            async def sender(k: int) -> None:
                i = 0
                while not stop.is_set():
                    b = batch(f"r{rnd}-{k}-{i}", 4, services=3)
                    if await post(s, w.tocsin.base, b) == 200:
                        acked.extend(b)
                    i += 1

            senders = [asyncio.create_task(sender(k)) for k in range(6)]
            try:
                n = len(acked)
                await poll(lambda: len(acked) >= n + 120, "load")
                t0 = time.monotonic()
                assert w.tocsin.proc is not None
                w.tocsin.proc.send_signal(signal.SIGTERM)
                rc = await asyncio.to_thread(w.tocsin.proc.wait, SHUTDOWN_BOUND)
                exits.append(time.monotonic() - t0)
            finally:  # a failed round must not leave senders posting while the world is torn down
                stop.set()
                await asyncio.gather(*senders)
            assert rc is not None
        await w.tocsin.start(s)
        want = {fp_of(a["labels"]) for a in acked}
        missing = want - await listed_fps(s, w.tocsin.base)
        assert not missing, f"{len(missing)} of {len(want)} alerts answered 200 are gone"
        print(f"exit after SIGTERM: {[round(x, 2) for x in exits]} s")  # reported, not asserted
