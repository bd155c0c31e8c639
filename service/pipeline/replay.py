"""`tocsin replay`: run recorded alerts and detector events through the same pipeline as `serve`, in event time.

A discrete-event simulation: the clock is a ManualClock that jumps from one event to the next, where an event is
an input line or a due timer (`Engine.next_due()`, which merges every timer source: group flushes, escalation
steps, digests, and whatever else registers there). Nothing ticks: between two lines, only the timers that fall
due run, each at its due time, exactly as it would have live; a line is ingested at its own time. Receivers are
replaced by recorders: nothing goes over the network. Output: one JSON object per notification (see
routing.receivers.console.notification_record).

State is bounded by what is active, as in serve: resolved alerts are forgotten `alert_retention` after they end,
in event time (serve's sweeper runs every minute of wall time; replay sweeps every SWEEP_EVERY of event time, which
changes nothing a notification shows: a swept alert has left its groups long before), and empty groups delete
themselves when they flush.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Iterator, TextIO

from pydantic import ValidationError

from routing.receivers.console import notification_record

from service.ingest.alerts import parse_postable
from service.core.clock import ManualClock, parse_rfc3339
from service.config.sections import Config, retention_seconds
from service.store.due_mirror import DueMirror
from service.store.embedded import EmbeddedRedis
from service.store.read_cache import ReadCache
from service.pipeline.engine import Engine, recording_factory
from service.ingest.events import DetectorEvent
from service.core.models import Alert, Notification
from service.store.keys import delete_prefix, open_redis


SWEEP_EVERY = 600.0  # seconds of event time between retention sweeps


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


class Simulation:
    """One replay: an Engine on a ManualClock and a private key prefix, advanced event by event."""

    def __init__(self, cfg: Config, client: Any, emit: Callable[[Notification], None], shortcuts: bool = True):
        self.cfg = cfg
        self.client = client
        self.emit = emit
        self.sink: list[Notification] = []
        self.clock = ManualClock(0.0)
        self.engine = Engine(cfg, client, self.clock, consumer="replay", receiver_factory=recording_factory(self.sink))
        # A private key prefix: this process is its only writer (skips WATCHes and reads of what it knows).
        self.engine.single_writer = True
        self.engine.outbox.single_writer = True
        if self.engine.incidents is not None:
            self.engine.incidents.single_writer = True
        self.engine.dispatcher.fixed_silences = []  # nothing in a replay creates silences, and its prefix is new
        # Every timer this replay has is one it wrote: it keeps a copy and asks Redis for none (escalations and
        # digests have timer sets of their own that the copy does not follow; with those, Engine.next_due asks).
        self.mirror: DueMirror | None = None
        self.client_caches = getattr(client, "read_cache", None) is not None
        if shortcuts and self.engine.escalator is None and not self.engine._digests():
            self.mirror = DueMirror(self.engine.keys.shard_of)
            self.engine.groups.due_log = self.mirror  # every group timer write is the group store's
            if self.engine.incidents is not None:
                self.engine.incidents.due_log = self.mirror
        self.stats = {"lines": 0, "alerts": 0, "notifications": 0, "steps": 0, "swept": 0}
        self.emitted = 0
        self.retention = retention_seconds(cfg)
        self.next_sweep = float("-inf")
        self.prev: float | None = None

    async def sweep(self, now: float) -> None:
        """Forget alerts that ended `alert_retention` ago (serve's sweeper, in event time; one round trip)."""
        self.stats["swept"] += await self.engine.alerts.sweep_all(now - self.retention, 100_000)
        if self.engine.dispatcher.fixed_silences is None:
            await self.engine.silences.gc(now)

    def flush_out(self) -> None:
        for n in self.sink[self.emitted:]:
            self.emit(n)
        self.stats["notifications"] += len(self.sink) - self.emitted
        self.sink.clear()  # emitted: memory stays bounded by what one step decides
        self.emitted = 0

    async def step(self) -> None:
        """Engine.step for the timers the mirror knows: an incident tick only when an incident is due, a claim
        only of the shards with a group due, a delivery round only when something was enqueued."""
        engine = self.engine
        assert self.mirror is not None
        now = self.clock.now()
        if engine.incidents is not None and self.mirror.incident_due(now):
            await engine._tick_incidents(now)
        shards = self.mirror.take_due_shards(now)
        if shards:  # (the groups' state is read with the claim: the read cache has it for their flush)
            await engine.scheduler.run_due(shards, self.mirror.taken() if self.client_caches else ())
        if engine.outbox.woken:
            await engine.outbox.drain()

    def next_timer(self) -> float | None:
        return self.mirror.next() if self.mirror is not None else None

    async def run_until(self, t: float) -> None:
        """Fire every timer due by `t`, each at its due time (the next event is always the earliest timer)."""
        engine = self.engine
        if self.mirror is not None:
            while (nxt := self.mirror.next()) is not None and nxt <= t:
                self.clock.set(nxt)  # (never earlier than now: ManualClock does not go back)
                await self.step()
                self.stats["steps"] += 1
                self.flush_out()
            self.clock.set(t)
            return
        # engine.due_hint is a lower bound of the next timer: ask Redis only when it may be due by t.
        while engine.due_hint <= t:
            nxt = await engine.next_due()
            if nxt is None or nxt > t:
                engine.due_hint = float("inf") if nxt is None else nxt
                break
            self.clock.set(nxt)
            await engine.step()
            self.stats["steps"] += 1
            self.flush_out()
        self.clock.set(t)

    async def line(self, line: Line) -> None:
        if self.prev is None:
            self.clock.set(line.at)
        await self.run_until(line.at)
        if line.at >= self.next_sweep:
            await self.sweep(line.at)
            self.next_sweep = line.at + SWEEP_EVERY
        self.prev = line.at
        for a in line.alerts:
            a.updated_at = line.at
        await self.engine.ingest(line.alerts)
        nxt = self.next_timer() if self.mirror is not None else self.engine.due_hint
        if nxt is not None and nxt <= line.at:  # e.g. an old alert that flushes its new group at once
            await self.run_until(line.at)
        self.stats["lines"] += 1
        self.stats["alerts"] += len(line.alerts)

    async def finish(self, horizon: float | None) -> None:
        if self.prev is None:
            return
        if horizon is None:
            longest = max((r.opts.group_wait + r.opts.group_interval for r in self.cfg.route.walk()), default=0)
            horizon = self.cfg.resolve_timeout + 2 * longest
        await self.run_until(self.prev + horizon)


def parse_lines(lines: Iterable[str], cfg: Config) -> Iterator[Line]:
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
        prev = line.at
        yield line


async def replay(cfg: Config, lines: Iterable[str], emit: Callable[[Notification], None], *,
                 redis_url: str | None = None, horizon: float | None = None,
                 before_line: Callable[[Simulation, Line], Awaitable[None]] | None = None,
                 shortcuts: bool = True) -> dict[str, Any]:
    """Replay `lines` (JSONL) under `cfg`; call `emit` for each notification in order. Returns counts.
    `before_line` runs before each line is ingested (e.g. people acting on incidents in a benchmark).
    `shortcuts=False` runs without what being the one writer allows (the timer copy, the read cache, the short
    client path): every timer and read asked of Redis, as serve does; the same notifications, slower (tests)."""
    embedded = None
    pinned_from: set[int] | None = None
    prefix = f"replay-{uuid.uuid4().hex[:10]}"
    if redis_url is None:
        embedded = EmbeddedRedis(tempfile.mkdtemp(prefix="tocsin-replay-"), persist=False)
        redis_url = embedded.start()
        if shortcuts:
            pinned_from = share_one_cpu(embedded)
    cfg.tocsin.redis.key_prefix = prefix
    client = open_redis(redis_url, timeout=None, socket_timeout=None, socket_connect_timeout=None)  # a batch job: wait
    if shortcuts and hasattr(client, "lean"):
        client.lean = True  # this process is the only user of its connections: the short path (TocsinRedis)
        client.read_cache = ReadCache()  # ... and the only writer of its keys: read-your-own-writes
        client.write_behind = True  # writes whose replies nobody reads go out with the next call
        client.blocking = True  # ... and its event loop has nothing else to do while a round trip is out
    sim = Simulation(cfg, client, emit, shortcuts)
    try:
        await sim.engine.start()
        for line in parse_lines(lines, cfg):
            if before_line is not None:
                await before_line(sim, line)
            await sim.line(line)
        await sim.finish(horizon)
    finally:
        await sim.engine.close()
        if embedded is None:
            await delete_prefix(client, prefix)
        await client.aclose()
        if embedded is not None:
            embedded.stop()
        if pinned_from is not None:
            os.sched_setaffinity(0, pinned_from)  # the caller (a benchmark, a test) runs where it ran before
    return sim.stats


def share_one_cpu(embedded: EmbeddedRedis) -> set[int] | None:
    """Run this process and its private redis-server on one CPU (Linux; TOCSIN_REPLAY_PIN=0 turns it off).
    Replay and its server take turns, one round trip after another, never working at the same time: on one CPU
    each wake-up of the other is a switch on that CPU, where across CPUs it is a cross-CPU wake-up, which on a
    virtual machine costs more than the round trip itself (half of replay's time on a 2-vCPU VM). Changes no
    output: only where the two processes run. Returns the CPUs this process had (None: not pinned)."""
    if os.environ.get("TOCSIN_REPLAY_PIN", "1") == "0" or not hasattr(os, "sched_setaffinity") \
            or embedded.proc is None:
        return None
    try:
        allowed = os.sched_getaffinity(0)
        if len(allowed) < 2:
            return None
        with open("/proc/self/stat") as f:  # the CPU this process last ran on (field 39)
            cpu = int(f.read().rsplit(")", 1)[1].split()[36])
        cpu = cpu if cpu in allowed else min(allowed)
        os.sched_setaffinity(embedded.proc.pid, {cpu})
        os.sched_setaffinity(0, {cpu})
        return allowed
    except (OSError, ValueError, IndexError):
        return None  # a placement hint only


def write_jsonl(out: TextIO) -> Callable[[Notification], None]:
    def emit(n: Notification) -> None:
        out.write(json.dumps(notification_record(n), sort_keys=True) + "\n")

    return emit
