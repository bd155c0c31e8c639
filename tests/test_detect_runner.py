"""The online runner against a Prometheus HTTP API speaking the real query_range wire format (a local aiohttp
server), feeding the real pipeline (Engine on Redis, ManualClock): backfill, one evaluation per step, one
notification per anomaly, state surviving a restart, shadow mode, and `tocsin.detect` validation with paths."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from aiohttp import web

from service.config.sections import parse_config
from service.detect.params import DetectSection
from service.detect.runner import Runner
from service.detect.service import engine_sink
from service.store.detect import DetectKeys, DetectStore
from service.core.errors import ConfigErrors
from tests.fakes import LocalServer
from tests.pipeline_kit import T0, harness

STEP = 60.0
SPIKE = T0 + 30 * STEP


def level(t: float, pod: str) -> float:
    """A deterministic noisy gauge, with a spike of 3 steps at SPIKE for pod "a"."""
    v = 10.0 + 0.2 * float(np.random.default_rng([int(t) // 60, ord(pod)]).normal())
    if pod == "a" and SPIKE <= t < SPIKE + 3 * STEP:
        v += 8.0
    return v


def entity_metric(name: str, t: float, pod: str) -> float:
    """Requests and CPU follow one load; for pod "a" at SPIKE requests rise while CPU falls (2.5 sd each)."""
    rng = np.random.default_rng([int(t) // 60, len(pod)])
    load, e1, e2 = rng.normal(0, 1, 3)
    req, cpu = 100 + 10 * load + 2 * e1, 50 + 5 * load + e2
    if pod == "a" and SPIKE <= t < SPIKE + 6 * STEP:
        req, cpu = req + 25, cpu - 12.5
    return req if name == "req" else cpu


class FakePrometheus(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, str]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/query_range", self.query_range)

    async def query_range(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.calls.append(q)
        if q["query"] == "broken(":
            return web.json_response({"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400)
        start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
        if q["query"] in ("req", "cpu"):
            return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {"service": "checkout", "pod": pod},
                 "values": [[float(t), repr(float(entity_metric(q["query"], t, pod)))]
                            for t in np.arange(start, end + 1, step)]}
                for pod in ("a", "b")]}})
        result = []
        for pod in ("a", "b"):
            n = int(round((end - start) / step)) + 1
            values = [[start + i * step, repr(level(start + i * step, pod))] for i in range(n)]
            result.append({"metric": {"__name__": "http_latency_seconds", "service": "checkout", "pod": pod},
                           "values": values})
        return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": result}})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


CONFIG = """
route:
  receiver: r
  group_by: [alertname, metric, pod]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: r
    webhook_configs: [{url: "http://127.0.0.1:9/never"}]
"""


def section(url: str, **over: Any) -> DetectSection:
    return DetectSection.model_validate({
        "prometheus": url, "queries": [{"query": "http_latency_seconds", "name": "latency"}], "step": "1m",
        "backfill": "26h", "params": {"window": 60, "warmup": 60, "calibration": 500, "refractory": 20}, **over})


async def test_backfill_then_steps_send_one_notification_per_anomaly(redis: Any, key_prefix: str) -> None:
    async with FakePrometheus() as prom:
        h = await harness(redis, CONFIG, key_prefix)
        h.clock.set(T0)
        sec = section(prom.url)
        store = DetectStore(redis, DetectKeys(key_prefix, 16))
        runner = Runner(sec, store, h.clock, engine_sink(h.engine, sec))
        try:
            # the backfill (26 h: a 1-minute series warms up for a day) only teaches the baseline
            assert await runner.step() == []
            assert float(prom.calls[0]["end"]) - float(prom.calls[0]["start"]) == 26 * 3600
            sent_events = []
            for k in range(1, 40):
                await h.advance_to(k * STEP)
                sent_events.extend(await runner.step())
            assert float(prom.calls[1]["start"]) == T0 + STEP  # each step asks only for what is new
        finally:
            await runner.close()
        firing = [e for e in sent_events if e.anomalous]
        assert firing and all(e.labels["pod"] == "a" for e in firing)
        assert firing[0].timestamp.timestamp() == SPIKE
        e = firing[0]
        assert e.metric == "http_latency_seconds" and e.labels["service"] == "checkout"
        assert e.lower < e.expected < e.upper < e.value and 0.5 < e.score <= 1
        assert "expected" in e.summary and e.annotations["method"]
        assert any(not x.anomalous for x in sent_events)  # the alert closed and was resolved
        notes = [(n.status, n.alerts[0].labels["pod"]) for n in h.sent]
        assert notes.count(("firing", "a")) == 1 and ("resolved", "a") in notes
        assert all(pod == "a" for _, pod in notes)


async def test_state_survives_a_restart_without_relearning(redis: Any, key_prefix: str) -> None:
    async with FakePrometheus() as prom:
        h = await harness(redis, CONFIG, key_prefix)
        sec = section(prom.url)
        store = DetectStore(redis, DetectKeys(key_prefix, 16))
        events: list[Any] = []

        async def sink(evs: list[Any]) -> None:
            events.extend(evs)

        h.clock.set(SPIKE - 5 * STEP)
        first = Runner(sec, store, h.clock, sink)
        await first.step()
        ticks = {k: t.det.state.tick for k, t in first.tracked.items()}
        await first.close()
        # a new process: same Redis, a few steps later (the spike happened while it was down)
        h.clock.set(SPIKE + STEP)
        second = Runner(sec, store, h.clock, sink)
        await second.step()
        await second.close()
        assert float(prom.calls[-1]["start"]) == SPIKE - 4 * STEP  # resumed at its cursor, no new backfill
        for k, t in second.tracked.items():
            assert t.det.state.tick == ticks[k] + 6  # continued the same baselines
        assert [(e.labels["pod"], e.anomalous) for e in events] == [("a", True)]


async def test_shadow_mode_records_and_sends_nothing(redis: Any, key_prefix: str) -> None:
    async with FakePrometheus() as prom:
        h = await harness(redis, CONFIG, key_prefix)
        sec = section(prom.url, shadow=True)
        store = DetectStore(redis, DetectKeys(key_prefix, 16))
        sent: list[Any] = []

        async def sink(evs: list[Any]) -> None:
            sent.extend(evs)

        h.clock.set(SPIKE)
        runner = Runner(sec, store, h.clock, sink)
        await runner.step()
        await runner.close()
        assert sent == []
        recorded = await store.shadow()
        assert len(recorded) == 1 and recorded[0]["anomalous"] and recorded[0]["labels"]["pod"] == "a"
        assert runner.stats["shadow_events"] == 1


async def test_a_failing_query_is_counted_and_the_others_still_run(redis: Any, key_prefix: str) -> None:
    async with FakePrometheus() as prom:
        h = await harness(redis, CONFIG, key_prefix)
        sec = DetectSection.model_validate({"prometheus": prom.url, "step": "1m", "backfill": "1h",
                                            "queries": [{"query": "broken("}, {"query": "http_latency_seconds"}]})
        h.clock.set(T0)
        runner = Runner(sec, DetectStore(redis, DetectKeys(key_prefix, 16)), h.clock, engine_sink(h.engine, sec))
        await runner.step()
        await runner.close()
        assert runner.stats["errors"] == 1 and runner.stats["series"] == 2


async def test_an_entity_group_is_scored_together(redis: Any, key_prefix: str) -> None:
    async with FakePrometheus() as prom:
        h = await harness(redis, CONFIG, key_prefix)
        sec = DetectSection.model_validate({
            "prometheus": prom.url, "step": "1m", "backfill": "26h",
            "queries": [{"query": "req", "name": "requests", "group": "web", "entity": ["service", "pod"]},
                        {"query": "cpu", "name": "cpu", "group": "web", "entity": ["service", "pod"]}],
            "params": {"window": 60, "warmup": 100, "calibration": 600, "iforest_refit": 120}})
        runner = Runner(sec, DetectStore(redis, DetectKeys(key_prefix, 16)), h.clock, engine_sink(h.engine, sec))
        events = []
        try:
            for k in range(0, 40):
                h.clock.set(T0 + k * STEP)
                events.extend(await runner.step())
        finally:
            await runner.close()
        firing = [e for e in events if e.anomalous]
        assert firing and {e.labels["pod"] for e in events} == {"a"}
        e = firing[0]
        assert SPIKE <= e.timestamp.timestamp() < SPIKE + 6 * STEP
        assert e.annotations["top_metric"] in ("requests", "cpu") and e.metric == e.annotations["top_metric"]
        assert e.labels == {"service": "checkout", "pod": "a"}
        assert "top contributing metric" in e.summary
        assert runner.stats["series"] == 2  # two entities, each one detector over both metrics


def test_detect_section_errors_name_the_path() -> None:
    base = CONFIG + "tocsin:\n  detect:\n"
    with pytest.raises(ConfigErrors) as e:
        parse_config(base + "    prometheus: http://p\n    queries: [{query: up, bogus: 1}]\n    step: 5 minutes\n"
                            "    params: {method: magic, open: 0.4}\n")
    paths = {err.path for err in e.value.errors}
    assert {"tocsin.detect.queries[0].bogus", "tocsin.detect.step", "tocsin.detect.params.method"} <= paths
    with pytest.raises(ConfigErrors) as e:
        parse_config(base + "    queries: [{query: up}]\n")
    assert "tocsin.detect.prometheus" in {err.path for err in e.value.errors}
    with pytest.raises(ConfigErrors) as e:
        parse_config(base + "    prometheus: http://p\n    queries: [{query: up, labels: {bad-name: x}}]\n")
    assert "tocsin.detect.queries[0].labels" in {err.path for err in e.value.errors}
    cfg = parse_config(base + "    prometheus: http://p\n    queries: [{query: up}]\n")
    assert cfg.tocsin.detect["prometheus"] == "http://p"


def test_query_range_grid_marks_missing_samples() -> None:
    import asyncio

    import aiohttp

    from service.detect.prom import query_range

    class Gappy(FakePrometheus):
        async def query_range(self, request: web.Request) -> web.Response:
            start = float(request.query["start"])
            vals = [[start, "1"], [start + 120, "NaN"], [start + 180, "3"]]
            return web.json_response({"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {"__name__": "x"}, "values": vals}]}})

    async def go() -> Any:
        async with Gappy() as p, aiohttp.ClientSession() as s:
            return await query_range(s, p.url, "x", T0, T0 + 180, 60)

    (series,) = asyncio.run(go())
    assert series.times.tolist() == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert series.values[0] == 1 and np.isnan(series.values[1]) and np.isnan(series.values[2]) and series.values[3] == 3
