"""Wiring of the online detector into Tocsin: its events enter the pipeline through the same ingest path as
`POST /api/v1/events` (DetectorEvent -> Alert -> Engine.ingest), and it runs either on its own
(`tocsin detect --config FILE`: the pipeline without the HTTP server) or inside `tocsin serve`
(`tocsin.detect.serve: true`)."""
from __future__ import annotations

import asyncio
from typing import Any

import structlog

from service.ingest.events import DetectorEvent
from service.detect.params import DetectSection, parse_section
from service.detect.runner import Runner
from service.store.detect import DetectKeys, DetectStore

log = structlog.get_logger("tocsin.detect")


def engine_sink(engine: Any, section: DetectSection) -> Any:
    """Events into the engine, exactly as /api/v1/events stores them (and counted the same way)."""

    async def sink(events: list[DetectorEvent]) -> None:
        now = engine.clock.now()
        # anomalous events are re-sent every step: the alert must outlive the gap between two steps
        resolve_after = max(engine.cfg.events_resolve_after, 3 * section.step_s)
        alerts = [e.to_alert(now, resolve_after) for e in events]
        await engine.ingest(alerts)
        for a in alerts:
            engine.metrics.alerts_received.labels("detector", "resolved" if a.resolved_at(now) else "firing").inc()

    return sink


def make_runner(cfg: Any, engine: Any, section: DetectSection | None = None) -> Runner | None:
    section = section or parse_section(cfg.tocsin.detect)
    if section is None:
        return None
    keys = DetectKeys(cfg.tocsin.redis.key_prefix, cfg.tocsin.redis.shards)
    return Runner(section, DetectStore(engine.redis, keys), engine.clock, engine_sink(engine, section))


def serve_tasks(cfg: Any, engine: Any) -> list[asyncio.Task[None]]:
    """The detector task for `tocsin serve` when `tocsin.detect.serve` is true (else none)."""
    section = parse_section(cfg.tocsin.detect)
    if section is None or not section.serve:
        return []
    runner = make_runner(cfg, engine, section)
    assert runner is not None

    async def run() -> None:
        try:
            await runner.run()
        finally:
            await runner.close()

    log.info("detector_started", queries=len(section.queries), step=section.step_s, shadow=section.shadow)
    return [asyncio.create_task(run(), name="detect")]


async def run_standalone(cfg: Any, once: bool = False) -> dict[str, Any]:
    """`tocsin detect --config`: the pipeline (Redis, engine, timers, delivery) and the detector, no HTTP."""
    from service.runtime import connect_redis, run_delivery
    from service.core.clock import SystemClock
    from service.pipeline.engine import Engine

    client, embedded = await connect_redis(cfg)
    engine = Engine(cfg, client, SystemClock())
    await engine.start()
    runner = make_runner(cfg, engine)
    assert runner is not None
    tasks = [asyncio.create_task(engine.scheduler.run(), name="scheduler"),
             asyncio.create_task(run_delivery(engine, True), name="outbox"),
             asyncio.create_task(engine.run_timers(), name="timers")]
    try:
        if once:
            await runner.step()
        else:
            await runner.run()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.close()
        await engine.close()
        await client.aclose()
        if embedded is not None:
            embedded.stop()
    return runner.stats
