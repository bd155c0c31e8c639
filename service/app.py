"""All the wiring, in one place: `create_app(config_path)` builds the aiohttp application with its Redis
(external or embedded), the engine, and the background loops (scheduler, delivery, retention sweeps).
On reload, the new configuration is built and validated completely before anything live is replaced."""
from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError
import structlog
from aiohttp import web

from .api import add_routes, redis_unavailable
from .appkeys import ENGINE, RELOAD, SETTINGS, TOKENS
from .clock import Clock, SystemClock
from .config import Config, load_config, retention_seconds
from .embedded_redis import EmbeddedRedis
from .engine import Engine, ReceiverFactory, default_receiver_factory
from .errors import ConfigErrors
from .openapi import document

log = structlog.get_logger("tocsin.app")


def tokens_of(cfg: Config) -> list[tuple[bytes, set[str]]]:
    return [(t.resolve().encode(), set(t.sources)) for t in cfg.tocsin.auth.tokens]


async def connect_redis(cfg: Config) -> tuple[aioredis.Redis, EmbeddedRedis | None]:
    embedded = None
    url = cfg.tocsin.redis.url
    if not url:
        embedded = EmbeddedRedis(Path(cfg.tocsin.data_dir) / "redis", persist=True, fsync=cfg.tocsin.redis.fsync)
        url = embedded.start()  # main thread: the server's lifetime is tied to the starting thread
        log.info("embedded_redis_started", dir=str(embedded.data_dir))
    # A blocking pool: under a burst (up to 128 concurrent group flushes, one delivery lane per group, ingest),
    # callers wait for a free connection instead of failing at once: redis-py's default pool raises
    # MaxConnectionsError past 100 connections, which ingest answers with 503.
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=5, socket_timeout=5,
                                                    socket_connect_timeout=2, health_check_interval=30)
    client = aioredis.Redis(connection_pool=pool)
    return client, embedded


def create_app(config_path: str | os.PathLike[str], *, clock: Clock | None = None, cfg: Config | None = None,
               receiver_factory: ReceiverFactory = default_receiver_factory, background: bool = True) -> web.Application:
    """The service. `background=False` leaves out the timer/delivery loops, for tests that drive
    `engine.step()` themselves in event time."""
    cfg = cfg or load_config(config_path)
    clock = clock or SystemClock()
    app = web.Application(client_max_size=cfg.tocsin.max_body_bytes, middlewares=[redis_unavailable])
    app[SETTINGS] = {"config_path": str(config_path), "started": clock.now()}
    app[TOKENS] = tokens_of(cfg)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        client, embedded = await connect_redis(cfg)
        engine = Engine(cfg, client, clock, receiver_factory=receiver_factory)
        try:
            await engine.start()
            started = True
        except (RedisError, OSError) as e:
            # Start anyway: /-/healthy answers, /-/ready and the API answer 503 until Redis is back, and delivery
            # starts once it is (a Redis that comes up after Tocsin, as in docker compose, is normal).
            log.warning("redis_unavailable_at_start", error=type(e).__name__)
            started = False
        app[ENGINE] = engine
        for w in cfg.warnings:
            log.warning("config_warning", detail=w)
        tasks = [asyncio.create_task(engine.scheduler.run(), name="scheduler"),
                 asyncio.create_task(_deliver(engine, started), name="outbox"),
                 asyncio.create_task(_sweeper(engine), name="sweeper"),
                 asyncio.create_task(engine.run_timers(), name="timers")] if background else []
        log.info("started", listen=cfg.tocsin.listen, receivers=len(cfg.receivers))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await engine.close()
            await client.aclose()
            if embedded is not None:
                embedded.stop()

    async def do_reload() -> tuple[bool, str]:
        engine: Engine = app[ENGINE]
        try:
            new = load_config(app[SETTINGS]["config_path"])
            if (new.tocsin.redis.key_prefix, new.tocsin.redis.shards) != (engine.cfg.tocsin.redis.key_prefix,
                                                                        engine.cfg.tocsin.redis.shards):
                raise ConfigErrors([])  # storage layout changes need a restart
            tokens = tokens_of(new)
            await engine.reload(new)
        except ConfigErrors as e:
            engine.metrics.config_reloads.labels("failure").inc()
            msg = str(e) or "tocsin.redis key_prefix/shards cannot change without a restart"
            log.error("reload_rejected", errors=msg)
            return False, f"configuration rejected; the old one keeps running:\n{msg}\n"
        except Exception as e:  # a receiver that cannot be built, etc.
            engine.metrics.config_reloads.labels("failure").inc()
            log.error("reload_rejected", errors=str(e))
            return False, f"configuration rejected; the old one keeps running:\n{e}\n"
        app[TOKENS][:] = tokens  # in place: a started app's state must not be reassigned
        engine.metrics.config_reloads.labels("success").inc()
        log.info("reloaded")
        return True, "reloaded\n"

    app[RELOAD] = do_reload
    app.cleanup_ctx.append(lifecycle)
    add_routes(app)
    from .incident_api import add_incident_routes

    add_incident_routes(app, cfg.tocsin.slack or {}, cfg.tocsin.pagerduty or {}, clock)
    app.router.add_get("/api/v1/openapi.json", openapi)
    from .ui import add_ui

    add_ui(app)  # the web UI under /ui/
    return app


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


async def _deliver(engine: Engine, started: bool) -> None:
    """The delivery loop, once the outbox exists in Redis (retrying with backoff while Redis is unreachable)."""
    delay = 0.5
    while not started:
        await engine.clock.sleep(delay)
        try:
            await engine.start()
            started = True
            log.info("redis_available")
        except (RedisError, OSError):
            delay = min(delay * 2, 10.0)
    await engine.outbox.run()


async def _sweeper(engine: Engine, every: float = 60.0) -> None:
    """Forget alerts resolved longer ago than the retention, and silences expired past theirs."""
    while True:
        with contextlib.suppress(Exception):
            now = engine.clock.now()
            await engine.dispatcher.store.sweep(now - retention_seconds(engine.cfg))
            await engine.silences.gc(now)
        await engine.clock.sleep(every)
