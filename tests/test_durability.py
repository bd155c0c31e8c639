"""Acceptance 4: a `tocsin serve` killed with SIGKILL in the middle of a burst loses nothing it answered 200 for,
and every notification it decided arrives at least once after a restart; a failing receiver gets every
notification, in order per group, once it recovers.

These tests run the real service as a subprocess against a capture server (an aiohttp app on 127.0.0.1:0), so
real-time waits are inherent: they poll for conditions with generous deadlines instead of sleeping fixed times.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError
from aiohttp import ClientSession, ClientTimeout, web

from service.store.embedded import EmbeddedRedis
from service.core.models import Notification
from service.store.keys import Keys

from tests.serve_kit import DEADLINE
from tests.serve_kit import TocsinProcess as Tocsin


@dataclass
class Capture:
    """A webhook consumer that records every request; answers 500 while `failing` is set."""

    delay: float = 0.0
    failing: bool = False
    requests: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (status answered, payload)
    runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> "Capture":
        async def hook(req: web.Request) -> web.Response:
            body = await req.json()
            if self.delay:
                await asyncio.sleep(self.delay)  # a slow consumer keeps deliveries in flight
            status = 500 if self.failing else 200
            self.requests.append((status, body))
            return web.Response(status=status, text="ok" if status == 200 else "down")

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    def delivered(self) -> list[dict[str, Any]]:
        return [p for s, p in self.requests if s == 200]

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


def write_config(path: Path, hook_url: str, data_dir: Path, *, group_wait: str = "1s", group_interval: str = "1s",
                 backoff_initial: float = 0.2, backoff_max: float = 1.0) -> Path:
    path.write_text(f"""
route:
  receiver: hook
  group_by: [service]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook_url}
        send_resolved: true
tocsin:
  data_dir: {data_dir}
  delivery:
    max_attempts: 100
    backoff_initial: {backoff_initial}
    backoff_max: {backoff_max}
    timeout: 5
""")
    return path


def kill_stale_embedded_redis(data_dir: Path) -> None:
    """Test hygiene: make sure no redis-server started under `data_dir` outlives the test."""
    pidfile = data_dir / "redis" / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"redis-server" in cmdline and str(data_dir).encode() in cmdline:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_pid_gone(pidfile: Path, timeout: float = 15.0) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True  # a zombie holds no files: it is gone for our purposes
        except OSError:
            return True
        time.sleep(0.05)
    return False


def make_alerts(n: int, services: int, tag: str) -> list[dict[str, Any]]:
    return [{"labels": {"alertname": "Burst", "service": f"svc-{i % services}", "instance": f"{tag}-{i}"},
             "annotations": {"summary": f"alert {i}"}} for i in range(n)]


def fp_of(labels: dict[str, str]) -> str:
    from service.core.models import fingerprint

    return fingerprint(labels)


async def wait_until_loaded(client: aioredis.Redis, timeout: float = 30.0) -> None:
    """Redis accepts connections before it has loaded its append-only file; wait until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.ping()
            return
        except BusyLoadingError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def decided_in_outbox(client: aioredis.Redis, keys: Keys) -> list[Notification]:
    """Every notification committed to the outbox and not yet acknowledged as delivered."""
    out = []
    for shard in range(keys.shards):
        for _eid, fields in await client.xrange(keys.outbox(shard)):
            if fields:
                out.append(Notification.from_json(fields[b"n"]))
    return out


def summary(payload: dict[str, Any]) -> tuple[str, str, frozenset[str]]:
    return payload["groupKey"], payload["status"], frozenset(a["fingerprint"] for a in payload["alerts"])


async def poll(cond, what: str, timeout: float = DEADLINE, detail=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


async def send_burst(session: ClientSession, base: str, batches: list[list[dict[str, Any]]], senders: int,
                     on_ack=None) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:  # type: ignore[no-untyped-def]
    """Post batches from `senders` concurrent senders. Returns (batches answered 200, batches not answered 200)."""
    queue = list(reversed(batches))
    acked: list[list[dict[str, Any]]] = []
    failed: list[list[dict[str, Any]]] = []

    async def sender() -> None:
        while queue:
            b = queue.pop()
            try:
                async with session.post(base + "/api/v2/alerts", json=b) as r:
                    await r.read()
                    ok = r.status == 200
            except Exception:  # the connection reset by the kill, or a timeout
                ok = False
            if ok:
                acked.append(b)
                if on_ack is not None:
                    on_ack(sum(len(x) for x in acked))
            else:
                failed.append(b)

    await asyncio.gather(*(sender() for _ in range(senders)))
    return acked, failed


@pytest.mark.parametrize("kill_group", [False, True], ids=["sigkill-tocsin", "sigkill-tocsin-and-its-redis"])
async def test_sigkill_mid_burst_loses_no_acknowledged_alert_or_decided_notification(tmp_path, kill_group):
    """After a SIGKILL mid-burst and a restart on the same embedded Redis, every alert answered 200 is listed, every
    notification decided before the kill reaches the receiver, and so does every alert of every group once the
    unanswered batches are re-sent (as Prometheus does)."""
    capture = await Capture(delay=0.05).start()
    data_dir = tmp_path / "data"
    cfg = write_config(tmp_path / "tocsin.yml", capture.url, data_dir)
    services = 24
    alerts = make_alerts(1200, services, uuid.uuid4().hex[:6])
    random.Random(4).shuffle(alerts)
    batches = [alerts[i:i + 20] for i in range(0, len(alerts), 20)]
    first, rest = batches[:15], batches[15:]
    t = Tocsin(cfg, tmp_path / "tocsin.log", instance="durable-1")
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as s:
            await t.start(s)
            # A first wave, flushed and partly delivered (the consumer is slow), then the burst we kill.
            acked1, failed1 = await send_burst(s, t.base, first, 4)
            assert not failed1
            await poll(lambda: len(capture.requests) >= 3, "first notifications")
            killed = False

            def maybe_kill(n_acked: int) -> None:
                nonlocal killed
                if not killed and n_acked >= len(rest) * 20 // 2:
                    killed = True
                    t.kill(group=kill_group)

            acked2, failed2 = await send_burst(s, t.base, rest, 6, on_ack=maybe_kill)
            assert killed and failed2, "the kill must land in the middle of the burst"
            acked = [a for b in acked1 + acked2 for a in b]

            # The killed replica's Redis: its redis-server must go away (or be replaced) before the restart; look
            # at what was decided but not yet acknowledged as delivered, through the same append-only file.
            pidfile = data_dir / "redis" / "redis.pid"
            assert await asyncio.to_thread(wait_pid_gone, pidfile), "the embedded redis-server outlived Tocsin"
            probe = EmbeddedRedis(data_dir / "redis", persist=True)
            url = probe.start()  # in this thread: the server is tied to the lifetime of the thread that starts it
            client = aioredis.from_url(url)
            try:
                await wait_until_loaded(client)
                pending = await decided_in_outbox(client, Keys())
            finally:
                await client.aclose()
                probe.stop()

            await t.start(s)  # same TOCSIN_INSTANCE, same data dir
            async with s.get(t.base + "/api/v2/alerts") as r:
                listed = {a["fingerprint"] for a in await r.json()}
            missing = {fp_of(a["labels"]) for a in acked} - listed
            assert not missing, f"{len(missing)} alerts answered 200 before the kill are gone"

            def undelivered() -> list[Notification]:
                received = {summary(p) for p in capture.delivered()}
                return [n for n in pending
                        if (n.group_key, n.status, frozenset(a.fingerprint for a in n.alerts)) not in received]

            await poll(lambda: not undelivered(), "every notification decided before the kill to arrive",
                       detail=lambda: f"{len(undelivered())} of {len(pending)} missing")

            # Like Prometheus, re-send what was not answered; then every group must carry every alert.
            _, failed3 = await send_burst(s, t.base, failed2, 4)
            assert not failed3
            want_by_group: dict[str, set[str]] = {}
            for a in alerts:
                want_by_group.setdefault(a["labels"]["service"], set()).add(fp_of(a["labels"]))

            acked_fps = {fp_of(a["labels"]) for a in acked}

            def missing_by_group() -> dict[str, dict[str, int]]:
                got: dict[str, set[str]] = {}
                for p in capture.delivered():
                    got.setdefault(p["groupLabels"]["service"], set()).update(a["fingerprint"] for a in p["alerts"])
                out = {}
                for g, fps in want_by_group.items():
                    lost = fps - got.get(g, set())
                    if lost:
                        out[g] = {"answered before the kill": len(lost & acked_fps),
                                  "re-sent after the restart": len(lost - acked_fps)}
                return out

            await poll(lambda: not missing_by_group(), "every alert of every group to be notified",
                       detail=missing_by_group)
    finally:
        t.stop()
        kill_stale_embedded_redis(data_dir)
        await capture.stop()


async def test_receiver_failing_with_500_then_recovering_gets_every_notification_in_order(tmp_path, redis_url,
                                                                                           key_prefix, redis):
    """A webhook answering 500 for a while gets, once it recovers, every decided notification of every group, each
    group's in the order decided (no later notification before an earlier one has been accepted)."""
    capture = await Capture(failing=True).start()
    cfg = write_config(tmp_path / "tocsin.yml", capture.url, tmp_path / "data", backoff_initial=0.1, backoff_max=0.4)
    t = Tocsin(cfg, tmp_path / "tocsin.log", instance="flaky-1", redis_url=redis_url, prefix=key_prefix)
    services, waves = 6, 3
    tag = uuid.uuid4().hex[:6]
    try:
        async with ClientSession(timeout=ClientTimeout(total=30)) as s:
            await t.start(s)
            for w in range(waves):
                batch = [{"labels": {"alertname": "Flaky", "service": f"svc-{g}", "instance": f"{tag}-{w}"}}
                         for g in range(services)]
                async with s.post(t.base + "/api/v2/alerts", json=batch) as r:
                    assert r.status == 200
                # Wait until this wave was decided for every group (its sequence number is in Redis), so that
                # each wave is its own notification even on a slow machine.
                await poll_async(lambda: decided_count(redis, key_prefix), lambda n: n >= services * (w + 1),
                                 f"wave {w} decided")
            assert len(capture.requests) > 0 and not capture.delivered()  # everything so far was refused
            capture.failing = False
            decided = await decided_count(redis, key_prefix)
            await poll(lambda: len(capture.delivered()) >= decided, "every notification delivered after recovery")

        by_group: dict[str, list[tuple[int, frozenset[str]]]] = {}
        for status, p in capture.requests:
            by_group.setdefault(p["groupKey"], []).append((status, frozenset(a["fingerprint"] for a in p["alerts"])))
        assert len(by_group) == services
        for gk, reqs in by_group.items():
            sizes_ok = [len(fps) for st, fps in reqs if st == 200]
            assert sizes_ok == list(range(1, waves + 1)), f"{gk}: accepted notifications out of order: {sizes_ok}"
            # Attempts (failed or not) never go back to an earlier notification, nor skip ahead of a refused one.
            sizes_all = [len(fps) for _, fps in reqs]
            assert sizes_all == sorted(sizes_all), f"{gk}: attempts out of order: {sizes_all}"
            nested = [fps for st, fps in reqs if st == 200]
            assert all(a < b for a, b in zip(nested, nested[1:])), f"{gk}: each notification adds the new alert"
    finally:
        t.stop()
        await capture.stop()


async def decided_count(redis: aioredis.Redis, prefix: str) -> int:
    """How many notifications Tocsin has committed to its outbox: the sum of the per-group sequence numbers."""
    total = 0
    async for k in redis.scan_iter(match=f"{prefix}:*:seq:*", count=1000):  # test-only SCAN
        total += sum(int(v) for v in (await redis.hgetall(k)).values())
    return total


async def poll_async(fetch, cond, what: str, timeout: float = DEADLINE) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond(await fetch()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
