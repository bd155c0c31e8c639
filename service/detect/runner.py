"""The online detector: for each query of `tocsin.detect`, backfill the baseline with Prometheus `query_range`,
then evaluate every new step, and turn each series' alert into detector events for Tocsin's pipeline.

Per series and evaluation, at most one event: anomalous while its alert is open (re-sent every step, so the alert
stays open), one normal event when it closes (resolves it), nothing while it is quiet. Points older than the last
evaluation (backfill, catch-up after a pause) only teach the baseline; only the state at the newest point is sent.
Detector state and the per-query cursor live in Redis (`store`), so a restart neither re-learns nor re-alerts.

`shadow: true` records the events it would have sent (a Redis stream and the log) and sends nothing.
The pure part (`events_for`) decides what to send from a scored batch; I/O is in `Runner`.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import aiohttp
import numpy as np
import structlog

from service.core.clock import Clock
from service.ingest.events import DetectorEvent
from service.detect.core import Batch, EntityDetector, SeriesDetector, period_points
from service.detect.params import DetectSection, QueryConfig
from service.detect.prom import PrometheusError, Series, query_range, series_id
from service.store.detect import DetectStore

log = structlog.get_logger("tocsin.detect")
MAX_POINTS = 10000  # Prometheus refuses more than 11,000 points per series in one query_range
Sink = Callable[[list[DetectorEvent]], Awaitable[None]]
METHOD_NAMES = {"zscore": "robust z", "ema": "EMA band", "seasonal": "seasonal baseline", "shift": "level shift",
                "iforest": "isolation forest"}


@dataclass
class Tracked:
    det: SeriesDetector
    last_t: float
    sent_open: bool = False

    def dump(self) -> dict[str, Any]:
        kind = "entity" if isinstance(self.det, EntityDetector) else "series"
        return {"kind": kind, "det": self.det.dump(), "last_t": self.last_t, "sent_open": self.sent_open}


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def events_for(section: DetectSection, q: QueryConfig, qname: str, labels: dict[str, str], t: float,
               value: float, b: Batch, i: int, is_open: bool, sent_open: bool) -> DetectorEvent | None:
    """The event for a series at its newest point `i` of batch `b`, or None (quiet and already resolved)."""
    if not is_open and not sent_open:
        return None
    metric = q.metric or labels.get("__name__") or qname
    lab = {k: v for k, v in labels.items() if k != "__name__"}
    lab.update(q.labels)
    top = b.top[i] or section.params.method
    exp, lo, hi, dev = (_num(b.expected[i]), _num(b.lower[i]), _num(b.upper[i]), _num(b.deviation[i]))
    why = f"{metric} = {value:g}"
    if exp is not None and lo is not None and hi is not None:
        why += f", expected {exp:.4g} (range {lo:.4g} .. {hi:.4g})"
    if dev is not None:
        why += f", deviation {dev:+.4g}"
    why += f"; strongest signal: {METHOD_NAMES.get(top, top)}" if top in METHOD_NAMES else \
        f"; isolation forest over the entity's metrics, top contributing metric: {top}"
    ann = {"deviation": f"{dev:.6g}" if dev is not None else "", "method": top, "why": why,
           "params": section.params.method}
    return DetectorEvent(
        metric=metric, labels=lab, value=value if math.isfinite(value) else None, score=float(b.score[i]),
        score_kind="probability", detector=f"{section.detector_name}/{section.params.method}", expected=exp,
        lower=lo, upper=hi, anomalous=is_open, timestamp=datetime.fromtimestamp(t, timezone.utc),
        alertname=section.alertname, summary=(why if is_open else f"{metric} back to normal"),
        individual_scores={m: float(v[i]) for m, v in b.individual.items()}, annotations=ann)


class Runner:
    def __init__(self, section: DetectSection, store: DetectStore, clock: Clock, sink: Sink,
                 session: aiohttp.ClientSession | None = None):
        self.section = section
        self.store = store
        self.clock = clock
        self.sink = sink
        self._session = session
        self._own_session = session is None
        self.tracked: dict[str, Tracked] = {}
        self.stats = {"evaluations": 0, "events": 0, "shadow_events": 0, "errors": 0, "series": 0}

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _qname(self, i: int, q: QueryConfig) -> str:
        return q.name or f"q{i}:{q.query}"

    async def step(self) -> list[DetectorEvent]:
        """Evaluate every query up to the newest complete step; send (or record) the events."""
        s = self.section
        end = math.floor((self.clock.now() - s.lag_s) / s.step_s) * s.step_s
        events: list[DetectorEvent] = []
        groups: dict[str, list[tuple[int, QueryConfig]]] = {}
        for i, q in enumerate(s.queries):
            if q.group:
                groups.setdefault(q.group, []).append((i, q))
                continue
            try:
                events.extend(await self._query(i, q, end))
            except PrometheusError as e:
                self.stats["errors"] += 1
                log.warning("detect_query_failed", query=q.query, error=str(e))
        for g, members in groups.items():
            try:
                events.extend(await self._group(g, members, end))
            except PrometheusError as e:
                self.stats["errors"] += 1
                log.warning("detect_group_failed", group=g, error=str(e))
        if events:
            if s.shadow:
                await self.store.record_shadow([e.model_dump(mode="json") for e in events])
                for e in events:
                    log.info("detect_shadow_event", metric=e.metric, labels=e.labels, anomalous=e.anomalous,
                             score=e.score, summary=e.summary)
                self.stats["shadow_events"] += len(events)
            else:
                await self.sink(events)
                self.stats["events"] += len(events)
        self.stats["evaluations"] += 1
        return events

    async def _query(self, qi: int, q: QueryConfig, end: float) -> list[DetectorEvent]:
        s = self.section
        name = self._qname(qi, q)
        start = await self._start(name, end)
        if start > end:
            return []
        result = await self._fetch(q, start, end)
        merged = {series_id(name, lab): (lab, times, values) for lab, times, values in _merge(result).values()}
        await self._load([i for i in merged if i not in self.tracked])
        out, dirty = [], {}
        for sid, (lab, times, values) in merged.items():
            tr = self.tracked.get(sid)
            if tr is None:
                det = SeriesDetector(s.params, period_points(s.step_s))
                det.knn_phase = zlib.crc32(sid.encode()) % s.params.knn_refit  # series re-index at different steps
                tr = self.tracked[sid] = Tracked(det, -math.inf)
            new = times > tr.last_t
            if not new.any():
                continue
            times, values = times[new], values[new]
            b = tr.det.update(times, values)
            tr.last_t = float(times[-1])
            ev = events_for(s, q, name, lab, float(times[-1]), float(values[-1]), b, len(times) - 1,
                            tr.det.state.open, tr.sent_open)
            if ev is not None:
                out.append(ev)
                tr.sent_open = ev.anomalous
            dirty[sid] = tr.dump()
        self.stats["series"] = len(self.tracked)
        if dirty:
            await self.store.save(dirty)
        await self.store.set_cursor(name, end)
        return out

    async def _start(self, name: str, end: float) -> float:
        s = self.section
        cursor = await self.store.cursor(name)
        start = end - s.backfill_s if cursor is None else cursor + s.step_s
        return max(start, end - s.step_s * (MAX_POINTS * 10))

    async def _fetch(self, q: QueryConfig, start: float, end: float) -> list[Series]:
        s = self.section
        result: list[Series] = []
        session = await self.session()
        t = start
        while t <= end:  # chunks Prometheus accepts
            chunk_end = min(end, t + s.step_s * (MAX_POINTS - 1))
            result.extend(await query_range(session, s.prometheus, q.query, t, chunk_end, s.step_s, s.timeout_s))
            t = chunk_end + s.step_s
        return result

    async def _group(self, g: str, members: list[tuple[int, QueryConfig]], end: float) -> list[DetectorEvent]:
        """Queries sharing `group`: per entity (the values of their `entity` labels), one Isolation Forest over
        all of them; the event names the metric that contributed most."""
        s = self.section
        name = f"group:{g}"
        start = await self._start(name, end)
        if start > end:
            return []
        grid = start + s.step_s * np.arange(int(round((end - start) / s.step_s)) + 1)
        metrics = [self._qname(i, q) for i, q in members]
        entities: dict[str, tuple[dict[str, str], np.ndarray]] = {}
        for j, (_, q) in enumerate(members):
            for lab, times, values in _merge(await self._fetch(q, start, end)).values():
                ent = {k: lab.get(k, "") for k in (q.entity or [])}
                sid = series_id(name, ent)
                if sid not in entities:
                    entities[sid] = (ent, np.full((len(grid), len(metrics)), np.nan))
                idx = np.round((times - start) / s.step_s).astype(int)
                ok = (idx >= 0) & (idx < len(grid))
                entities[sid][1][idx[ok], j] = values[ok]
        await self._load([i for i in entities if i not in self.tracked])
        out, dirty = [], {}
        for sid, (ent, x) in entities.items():
            tr = self.tracked.get(sid)
            if tr is None:
                tr = self.tracked[sid] = Tracked(EntityDetector(metrics, s.params, period_points(s.step_s)),
                                                 -math.inf)
            new = grid > tr.last_t
            if not new.any():
                continue
            b = tr.det.update(grid[new], x[new])
            tr.last_t = float(grid[new][-1])
            i = len(b.score) - 1
            top = b.top[i] if b.top[i] in metrics else metrics[0]
            q = members[metrics.index(top)][1]
            ev = events_for(s, q, top, ent, tr.last_t, float(x[new][-1, metrics.index(top)]), b, i,
                            tr.det.state.open, tr.sent_open)
            if ev is not None:
                ev.annotations["top_metric"] = top
                out.append(ev)
                tr.sent_open = ev.anomalous
            dirty[sid] = tr.dump()
        self.stats["series"] = len(self.tracked)
        if dirty:
            await self.store.save(dirty)
        await self.store.set_cursor(name, end)
        return out

    async def _load(self, ids: list[str]) -> None:
        if not ids:
            return
        for sid, d in (await self.store.load(ids)).items():
            try:
                cls = EntityDetector if d.get("kind") == "entity" else SeriesDetector
                det = cls.load(self.section.params, d["det"])
                self.tracked[sid] = Tracked(det, float(d["last_t"]), bool(d.get("sent_open")))
            except (KeyError, TypeError, ValueError) as e:  # a state from an incompatible version: start over
                log.warning("detect_state_discarded", series=sid, error=repr(e))

    async def run(self) -> None:
        """Evaluate at every step boundary (plus `lag`) until cancelled."""
        s = self.section
        while True:
            try:
                await self.step()
            except Exception as e:  # Redis or the pipeline down: try again next step
                self.stats["errors"] += 1
                log.warning("detect_step_failed", error=repr(e))
            now = self.clock.now()
            nxt = (math.floor((now - s.lag_s) / s.step_s) + 1) * s.step_s + s.lag_s
            await self.clock.sleep(max(0.05, nxt - now))


def _merge(result: list[Series]) -> dict[tuple[tuple[str, str], ...], tuple[dict[str, str], np.ndarray, np.ndarray]]:
    """Chunks of the same series joined in time order: labels key -> (labels, times, values)."""
    acc: dict[tuple[tuple[str, str], ...], list[Series]] = {}
    for s in result:
        acc.setdefault(tuple(sorted(s.labels.items())), []).append(s)
    return {k: (parts[0].labels, np.concatenate([p.times for p in parts]), np.concatenate([p.values for p in parts]))
            for k, parts in acc.items()}
