"""POST /api/v1/events: the detector event schema, the documented mapping of the detector families that run in
the wild (PROTOCOLS.md, "What detectors in the wild send"), resolution by a normal reading, errors with paths,
and the OpenAPI document."""
from __future__ import annotations

from typing import Any

import pytest

from service.core.clock import to_rfc3339
from service.ingest.events import DetectorEvent
from tests.pipeline_kit import T0, Harness

TS = to_rfc3339(T0 - 30)

# One result of each detector family, exactly as the recipe emits it, plus the metric name and labels the
# operator adds (the recipes report per metric). `want` is what Tocsin must read out of it.
SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "rolling_zscore": (
        {"timestamp": TS, "value": 912.0, "z_score": 4.2, "is_anomaly": True, "threshold": 3.0},
        {"raw_score": 4.2, "score_kind": "z", "threshold": 3.0, "value": 912.0},
    ),
    "ema_bounds": (
        {"timestamp": TS, "value": 912.0, "expected": 400.0, "deviation": 512.0, "upper_bound": 600.0,
         "lower_bound": 200.0, "is_anomaly": True},
        {"expected": 400.0, "upper": 600.0, "lower": 200.0, "value": 912.0, "raw_score": None},
    ),
    "seasonal": (
        {"timestamp": TS, "value": 912.0, "expected_for_period": 380.0, "seasonal_z_score": -3.5, "is_anomaly": True,
         "period_key": "mon-14"},
        {"expected": 380.0, "raw_score": -3.5, "score_kind": "z"},
    ),
    "isolation_forest": (
        {"timestamp": TS, "features": [0.1, 3.2, 99.0], "anomaly_score": 0.91, "is_anomaly": True},
        {"raw_score": 0.91, "score_kind": "probability", "score": 0.91, "value": None},
    ),
    "lstm_autoencoder": (
        {"timestamp": TS, "value": 912.0, "reconstruction_error": 0.6, "threshold": 0.2, "is_anomaly": True},
        {"raw_score": 0.6, "score_kind": "error", "threshold": 0.2},
    ),
    "ensemble": (
        {"timestamp": TS, "value": 912.0, "combined_score": 0.83, "individual_scores": {"zscore": 0.9, "ema": 0.7},
         "is_anomaly": True, "confidence": "high", "agreeing_detectors": ["zscore", "ema"]},
        {"raw_score": 0.83, "score": 0.83, "score_kind": "probability", "confidence": "high",
         "individual_scores": {"zscore": 0.9, "ema": 0.7}, "agreeing_detectors": ["zscore", "ema"]},
    ),
}


def event(shape: str, **over: Any) -> dict[str, Any]:
    d = dict(SHAPES[shape][0], metric="checkout_latency_p99", detector=shape,
             labels={"service": "checkout", "instance": "web-1"})
    d.update(over)
    return d


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_each_detector_shape_is_accepted_as_it_is_and_mapped(h: Harness, shape: str) -> None:
    """Each documented detector family's result is accepted unchanged and its score, expected value and bounds
    become the alert's evidence."""
    r = await h.post("/api/v1/events", event(shape))
    assert r.status == 200, await r.text()
    [a] = await h.engine.dispatcher.store.all()
    assert a.labels == {"alertname": "AnomalyDetected", "metric": "checkout_latency_p99", "service": "checkout",
                        "instance": "web-1"}
    assert a.source == "detector"
    assert a.starts_at == T0 - 30
    assert a.detector is not None
    for k, v in SHAPES[shape][1].items():
        assert a.detector[k] == v, k
    assert a.detector["detector"] == shape and a.detector["anomalous"] is True
    n = a.detector["score"]
    assert n is None if a.detector["raw_score"] is None else 0.5 < n <= 1.0
    assert a.annotations["summary"].startswith("checkout_latency_p99")
    [active] = await h.alerts()
    assert active["labels"]["metric"] == "checkout_latency_p99"


def test_scores_are_normalized_onto_0_1() -> None:
    """Scores of different families land on one 0..1 scale: higher evidence, higher score."""
    ts = {"metric": "m", "timestamp": TS, "anomalous": True}
    z3 = DetectorEvent.model_validate({**ts, "z_score": 3.0}).normalized_score()
    z6 = DetectorEvent.model_validate({**ts, "z_score": -6.0}).normalized_score()
    assert z3 == pytest.approx(0.75) and 0.9 < z6 < 1.0
    at_threshold = DetectorEvent.model_validate({**ts, "reconstruction_error": 0.2, "threshold": 0.2})
    assert at_threshold.normalized_score() == pytest.approx(0.75)
    assert DetectorEvent.model_validate({**ts, "anomaly_score": 1.7}).normalized_score() == 1.0


async def test_exporter_form_fields_are_accepted(h: Harness) -> None:
    """The exporter's metric_name and detector_type names are read as metric and detector."""
    r = await h.post("/api/v1/events", {"metric_name": "cpu", "detector_type": "ensemble", "anomaly_score": 0.9,
                                        "timestamp": TS, "is_anomaly": True})
    assert r.status == 200
    [a] = await h.engine.dispatcher.store.all()
    assert a.labels["metric"] == "cpu" and a.detector["detector"] == "ensemble"


async def test_a_normal_reading_resolves_the_alert_the_anomalous_one_opened(h: Harness) -> None:
    """An event that is not anomalous resolves the alert its metric opened, and the group notifies resolved."""
    assert (await h.post("/api/v1/events", event("rolling_zscore"))).status == 200
    await h.step(30)
    assert [n.status for n in h.sink] == ["firing"]
    h.clock.advance(60)
    normal = event("rolling_zscore", timestamp=to_rfc3339(T0 + 80), z_score=0.3, is_anomaly=False, detector="ema")
    assert (await h.post("/api/v1/events", normal)).status == 200
    assert await h.alerts() == []
    [a] = await h.engine.dispatcher.store.all()
    assert (a.starts_at, a.ends_at) == (T0 - 30, T0 + 80)
    await h.step(300)
    assert [n.status for n in h.sink] == ["firing", "resolved"]
    assert h.sink[1].alerts[0].fingerprint == a.fingerprint


async def test_a_normal_reading_without_an_open_alert_notifies_nothing(h: Harness) -> None:
    """A normal reading for a metric that has no open alert is stored quietly and never notified."""
    assert (await h.post("/api/v1/events", event("ema_bounds", is_anomaly=False))).status == 200
    await h.step(30)
    await h.step(300)
    assert h.sink == []
    assert await h.alerts() == []


async def test_an_anomalous_event_stays_open_for_resolve_timeout(h: Harness) -> None:
    """An anomalous event without a follow-up keeps the alert firing for resolve_timeout after its timestamp."""
    await h.post("/api/v1/events", event("ensemble"))
    [a] = await h.engine.dispatcher.store.all()
    assert a.ends_at == T0 - 30 + 300
    h.clock.advance(269)
    assert len(await h.alerts()) == 1
    h.clock.advance(2)
    assert await h.alerts() == []


async def test_a_list_of_events_is_accepted(h: Harness) -> None:
    """A JSON list of events is accepted; each event for a different entity opens its own alert."""
    r = await h.post("/api/v1/events", [event("ensemble", labels={"service": "a"}),
                                        event("ensemble", labels={"service": "b"})])
    assert r.status == 200
    assert sorted(a["labels"]["service"] for a in await h.alerts()) == ["a", "b"]


@pytest.mark.parametrize("body,path", [
    ({"timestamp": TS, "is_anomaly": True, "value": 1}, "metric"),
    ({"metric": "m", "timestamp": "2026-01-01T10:00:00", "is_anomaly": True}, "timestamp"),
    ({"metric": "m", "timestamp": "noon", "is_anomaly": True}, "timestamp"),
    ({"metric": "m", "timestamp": TS}, "anomalous"),
    ({"metric": "m", "timestamp": TS, "is_anomaly": True, "confidence": "very"}, "confidence"),
    ({"metric": "m", "timestamp": TS, "is_anomaly": True, "colour": "red"}, "colour"),
    ({"metric": "m", "timestamp": TS, "is_anomaly": True, "labels": {"bad-name": "x"}}, "labels"),
    ([{"metric": "m", "timestamp": TS, "is_anomaly": True}, {"timestamp": TS, "is_anomaly": True}], "[1].metric"),
])
async def test_bad_events_are_400_with_the_path(h: Harness, body: Any, path: str) -> None:
    """A missing metric, a naive or unparsable timestamp, an unknown field or a bad label name answers 400
    naming the path, and good events in the same list are still stored."""
    r = await h.post("/api/v1/events", body)
    assert r.status == 400
    err = await r.json()
    assert path in [e["path"] for e in err["errors"]], err
    if path == "labels":
        assert "bad-name" in err["message"]
    stored = await h.engine.dispatcher.store.all()
    assert len(stored) == (1 if isinstance(body, list) else 0)


async def test_bad_annotations_with_deviation_are_400_not_500(h: Harness) -> None:
    """An EMA result whose annotations are not a mapping is a 400 naming annotations, not a server error."""
    r = await h.post("/api/v1/events", {"metric": "m", "timestamp": TS, "is_anomaly": True, "deviation": 3,
                                        "annotations": 5})
    assert r.status == 400
    assert "annotations" in [e["path"] for e in (await r.json())["errors"]]


async def test_nan_and_infinite_numbers_are_400(h: Harness) -> None:
    """NaN or Infinity (which Python detectors' json.dumps writes) is rejected naming the field, so that no
    non-JSON number reaches a notification."""
    r = await h.post("/api/v1/events", b'{"metric": "m", "timestamp": "2023-11-14T22:13:20Z", "is_anomaly": true,'
                                       b' "value": NaN, "z_score": Infinity}')
    assert r.status == 400
    assert sorted(e["path"] for e in (await r.json())["errors"]) == ["score", "value"]


async def test_epoch_second_timestamps_are_accepted(h: Harness) -> None:
    """A timestamp given as epoch seconds is read as UTC."""
    r = await h.post("/api/v1/events", {"metric": "m", "timestamp": T0 - 5, "is_anomaly": True})
    assert r.status == 200
    [a] = await h.engine.dispatcher.store.all()
    assert a.starts_at == T0 - 5


async def test_invalid_json_is_400(h: Harness) -> None:
    """A body that is not JSON answers 400."""
    assert (await h.post("/api/v1/events", b"{nope")).status == 400


async def test_openapi_document_publishes_the_detector_event_schema(h: Harness) -> None:
    """GET /api/v1/openapi.json serves an OpenAPI 3.1 document whose DetectorEvent schema has the event fields
    and documents the detector-family field names it accepts."""
    r = await h.client.get("/api/v1/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    schema = doc["components"]["schemas"]["DetectorEvent"]
    props = schema["properties"]
    for f in ("metric", "labels", "value", "score", "detector", "expected", "lower", "upper", "anomalous", "timestamp"):
        assert f in props, f
    assert "timestamp" in schema["required"]
    # metric and anomalous are required, each under its own name or its detector-family name.
    assert {"anyOf": [{"required": ["anomalous"]}, {"required": ["is_anomaly"]}]} in schema["allOf"]
    assert {"anyOf": [{"required": ["metric"]}, {"required": ["metric_name"]}]} in schema["allOf"]
    # The field names of the detectors in the wild are accepted, so the published schema must allow them too.
    for alias in ("is_anomaly", "z_score", "seasonal_z_score", "anomaly_score", "combined_score",
                  "reconstruction_error", "expected_for_period", "upper_bound", "lower_bound", "deviation",
                  "metric_name", "detector_type"):
        assert alias in props, alias
    assert "/api/v1/events" in doc["paths"]
    ref = doc["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert ref == {"$ref": "#/components/schemas/DetectorEvent"}
