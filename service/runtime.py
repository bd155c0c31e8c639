"""What a Tocsin process runs on, whichever front it has (`tocsin serve`'s HTTP app, `tocsin detect --config`):
its Redis client (the configured server, or the embedded one under data_dir) and the delivery loop."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError

from service.config.sections import Config
from service.store.embedded import EmbeddedRedis
from service.store.keys import open_redis

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from service.pipeline.engine import Engine

log = structlog.get_logger("tocsin.app")


async def connect_redis(cfg: Config) -> tuple[aioredis.Redis, EmbeddedRedis | None]:
    """The configured Redis (`tocsin.redis.url`), else an embedded one started under data_dir (returned too, to
    stop)."""
    embedded = None
    url = cfg.tocsin.redis.url
    if not url:
        embedded = EmbeddedRedis(Path(cfg.tocsin.data_dir) / "redis", persist=True, fsync=cfg.tocsin.redis.fsync)
        url = embedded.start()  # main thread: the server's lifetime is tied to the starting thread
        log.info("embedded_redis_started", dir=str(embedded.data_dir))
    client = open_redis(url, max_connections=64, timeout=5)  # a blocking pool (see service.store.open_redis)
    return client, embedded


async def run_delivery(engine: Engine, started: bool) -> None:
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
