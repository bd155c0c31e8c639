"""All the wiring, in one place: `create_app(config_path)` builds the aiohttp application with its Redis
(external or embedded), the engine, and the background loops (scheduler, delivery, retention sweeps).
On reload, the new configuration is built and validated completely before anything live is replaced."""
from __future__ import annotations

import asyncio
import ctypes
import gc
import os
from typing import AsyncIterator

from redis.exceptions import RedisError
import structlog
from aiohttp import web

from service.http.api import Admission, add_routes, json_error, redis_unavailable
from service.http.appkeys import ENGINE, RELOAD, SETTINGS, TOKENS
from service.core.clock import Clock, SystemClock
from service.config.sections import Config, load_config, retention_seconds
from service.pipeline.engine import Engine, ReceiverFactory, default_receiver_factory
from service.core.errors import ConfigErrors
from service.http.openapi import document
from service.runtime import connect_redis, run_delivery

log = structlog.get_logger("tocsin.app")

# Cross-site writes. A web page the operator visits can POST to Tocsin (open mode, or a token-less door) with
# the content types a form may send without a CORS preflight (text/plain, form encodings). So: the JSON doors
# take only application/json (415 otherwise), and a state change whose Origin is another site, or that the
# browser marks as cross-site (Sec-Fetch-Site), is refused (403). Clients that are not browsers (Prometheus,
# Alertmanager, amtool, curl) send neither header and are not affected. Slack and PagerDuty callbacks are
# signed and sent server to server: they keep their own content types.
JSON_DOORS = ("/api/v2/alerts", "/api/v1/alertmanager", "/api/v1/events", "/api/v2/silences", "/api/v1/incidents/")
SIGNED_DOORS = ("/api/v1/slack/actions", "/api/v1/pagerduty/webhook")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cross_site_refusal(method: str, path: str, content_type: str, has_body: bool, origin: str | None,
                       fetch_site: str | None, own_origins: set[str]) -> tuple[int, str] | None:
    """(status, reason) when a request must be refused as a possible cross-site write, else None (pure)."""
    if method not in STATE_CHANGING or path.startswith(SIGNED_DOORS):
        return None
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return 403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:40]})"
    if origin is not None and origin.rstrip("/").lower() not in own_origins:
        return 403, f"cross-origin request refused (Origin: {origin[:100]})"
    if has_body and path.startswith(JSON_DOORS) and method == "POST" and content_type != "application/json":
        return 415, f"Content-Type must be application/json (got {content_type[:60] or 'none'})"
    return None


def _origin_of(url: str) -> str | None:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}".lower() if u.scheme and u.netloc else None


@web.middleware
async def refuse_cross_site(request: web.Request, handler):  # type: ignore[no-untyped-def]
    own = {f"{request.scheme}://{request.host}".lower()}
    ext = _origin_of(str(request.app[SETTINGS].get("external_url") or ""))
    if ext:
        own.add(ext)
    refusal = cross_site_refusal(request.method, request.path, request.content_type, request.body_exists,
                                 request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), own)
    if refusal is not None:
        return json_error(*refusal)
    return await handler(request)


def tokens_of(cfg: Config) -> list[tuple[bytes, set[str]]]:
    return [(t.resolve().encode(), set(t.sources)) for t in cfg.tocsin.auth.tokens]


def create_app(config_path: str | os.PathLike[str], *, clock: Clock | None = None, cfg: Config | None = None,
               receiver_factory: ReceiverFactory = default_receiver_factory, background: bool = True) -> web.Application:
    """The service. `background=False` leaves out the timer/delivery loops, for tests that drive
    `engine.step()` themselves in event time."""
    cfg = cfg or load_config(config_path)
    clock = clock or SystemClock()
    app = web.Application(client_max_size=cfg.tocsin.max_body_bytes,
                          middlewares=[refuse_cross_site, redis_unavailable])
    app[SETTINGS] = {"config_path": str(config_path), "started": clock.now(), "admission": Admission(),
                     "external_url": getattr(cfg.tocsin, "external_url", None) or ""}
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
                 asyncio.create_task(run_delivery(engine, started), name="outbox"),
                 asyncio.create_task(_sweeper(engine), name="sweeper"),
                 asyncio.create_task(engine.run_timers(), name="timers")] if background else []
        if background and cfg.tocsin.detect:  # Tocsin's own detectors, when tocsin.detect.serve is true
            from service.detect.service import serve_tasks

            tasks += serve_tasks(cfg, engine)
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
    from service.http.incident_api import add_incident_routes

    add_incident_routes(app, cfg.tocsin.slack or {}, cfg.tocsin.pagerduty or {}, clock)
    app.router.add_get("/api/v1/openapi.json", openapi)
    from service.http.ui.routes import add_ui

    add_ui(app)  # the web UI under /ui/
    return app


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def trim_heap() -> None:
    """Give the memory freed after a storm back to the system: CPython keeps freed memory in the C heap, so RSS
    stays at the storm's peak unless glibc is asked to release it (malloc_trim; a no-op elsewhere)."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        gc.collect()
        _LIBC.malloc_trim(0)


_LIBC: ctypes.CDLL | bool | None = None


async def _sweeper(engine: Engine, every: float = 60.0) -> None:
    """Forget alerts resolved longer ago than the retention, and silences expired past theirs; return freed
    memory to the system."""
    while True:
        try:
            now = engine.clock.now()
            await engine.dispatcher.store.sweep(now - retention_seconds(engine.cfg))
            await engine.silences.gc(now)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # Redis unreachable, ...: counted and logged, and tried again next round
            engine.metrics.background_errors.labels("sweep").inc()
            log.warning("sweep_failed", error=repr(e))
        trim_heap()
        await engine.clock.sleep(every)
