"""`tocsin replay`: run recorded alerts and detector events through the same pipeline as `serve`, in event time.

The clock is a ManualClock driven by the events' timestamps; every group timer that falls due between two
events fires at its due time, exactly as it would have live. Receivers are replaced by recorders: nothing goes
over the network. Output: one JSON object per notification (see routing.receivers.console.notification_record).
"""
from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TextIO

from pydantic import ValidationError

from routing.receivers.console import notification_record

from .alerts import parse_postable
from .clock import ManualClock, parse_rfc3339
from .config import Config
from .embedded_redis import EmbeddedRedis
from .engine import Engine, recording_factory
from .events import DetectorEvent
from .models import Alert, Notification
from .store import open_redis


class ReplayInputError(ValueError):
    pass


@dataclass
class Line:
    at: float
    alerts: list[Alert]


def event_time(d: dict[str, Any], prev: float | None) -> float:
    """When a line happened: its `at` (an RFC 3339 time Tocsin adds for recordings), a detector event's
    `timestamp`, else the alert's startsAt; never earlier than the previous line (lines are in time order)."""
    t = None
    for key in ("at", "receivedAt", "timestamp"):  # `timestamp`: a detector event's time, or when an alert was sent
        v = d.get(key)
        if v is not None and v != "":
            # RFC 3339, or epoch seconds
            t = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else parse_rfc3339(str(v))
            break
    if t is None and d.get("startsAt"):
        t = parse_rfc3339(str(d["startsAt"]))
    if t is None:
        if prev is None:
            raise ReplayInputError("the first line needs a time (at, timestamp or startsAt)")
        t = prev
    return t if prev is None else max(t, prev)


def is_detector_event(d: dict[str, Any]) -> bool:
    """A detector result (any documented shape) rather than a Prometheus postable alert."""
    if d.get("kind") == "event":
        return True
    return ("metric" in d or "metric_name" in d) and ("anomalous" in d or "is_anomaly" in d) and "startsAt" not in d


def parse_line(d: Any, lineno: int, prev: float | None, resolve_timeout: float,
               events_resolve_after: float | None = None) -> Line:
    if not isinstance(d, dict):
        raise ReplayInputError(f"line {lineno}: must be a JSON object")
    at = event_time(d, prev)
    if is_detector_event(d):
        body = {k: v for k, v in d.items() if k not in ("at", "receivedAt")}
        try:
            ev = DetectorEvent.model_validate(body)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "line"
            raise ReplayInputError(f"line {lineno}: {loc}: {err['msg']}") from None
        return Line(at, [ev.to_alert(at, events_resolve_after if events_resolve_after is not None else resolve_timeout)])
    body = {k: v for k, v in d.items() if k not in ("at", "receivedAt", "timestamp")}
    alerts, errors = parse_postable([body], at, resolve_timeout)
    if errors:
        raise ReplayInputError(f"line {lineno}: {errors[0]}")
    return Line(at, alerts)


async def replay(cfg: Config, lines: Iterable[str], emit: Callable[[Notification], None], *,
                 redis_url: str | None = None, horizon: float | None = None) -> dict[str, Any]:
    """Replay `lines` (JSONL) under `cfg`; call `emit` for each notification in order. Returns counts."""
    embedded = None
    prefix = f"replay-{uuid.uuid4().hex[:10]}"
    if redis_url is None:
        embedded = EmbeddedRedis(tempfile.mkdtemp(prefix="tocsin-replay-"), persist=False)
        redis_url = embedded.start()
    cfg.tocsin.redis.key_prefix = prefix
    client = open_redis(redis_url)
    sink: list[Notification] = []
    clock = ManualClock(0.0)
    engine = Engine(cfg, client, clock, consumer="replay", receiver_factory=recording_factory(sink))
    stats = {"lines": 0, "alerts": 0, "notifications": 0}
    emitted = 0

    def flush_out() -> None:
        nonlocal emitted
        for n in sink[emitted:]:
            emit(n)
        stats["notifications"] += len(sink) - emitted
        emitted = len(sink)

    async def run_until(t: float) -> None:
        # engine.due_hint is a lower bound of the next timer: ask Redis only when it may be due by t.
        while engine.due_hint <= t:
            nxt = await engine.next_due()
            if nxt is None or nxt > t:
                engine.due_hint = float("inf") if nxt is None else nxt
                break
            clock.set(nxt)
            await engine.step()
            flush_out()
        clock.set(t)

    try:
        await engine.start()
        prev: float | None = None
        for lineno, raw in enumerate(lines, 1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                d = json.loads(raw)
            except ValueError as e:
                raise ReplayInputError(f"line {lineno}: not JSON: {e}") from None
            line = parse_line(d, lineno, prev, cfg.resolve_timeout, getattr(cfg, "events_resolve_after", None))
            if prev is None:
                clock.set(line.at)
            await run_until(line.at)
            prev = line.at
            for a in line.alerts:
                a.updated_at = line.at
            await engine.ingest(line.alerts)
            if engine.due_hint <= line.at:  # e.g. an old alert that flushes its new group at once
                await run_until(line.at)
            stats["lines"] += 1
            stats["alerts"] += len(line.alerts)
        if prev is not None:
            if horizon is None:
                longest = max((r.opts.group_wait + r.opts.group_interval for r in cfg.route.walk()), default=0)
                horizon = cfg.resolve_timeout + 2 * longest
            await run_until(prev + horizon)
    finally:
        await engine.close()
        if embedded is None:
            async for k in client.scan_iter(match=f"{prefix}:*", count=1000):
                await client.delete(k)
        await client.aclose()
        if embedded is not None:
            embedded.stop()
    return stats


def write_jsonl(out: TextIO) -> Callable[[Notification], None]:
    def emit(n: Notification) -> None:
        out.write(json.dumps(notification_record(n), sort_keys=True) + "\n")

    return emit
