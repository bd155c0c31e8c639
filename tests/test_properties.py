"""Property tests (hypothesis) of every parser that reads input from outside: postable alerts, detector events,
the Alertmanager webhook, matchers (GET filters), silences, durations, and raw bodies. The property, everywhere:
a clear 4xx that names the path of what is wrong, or stored and readable back; never a 5xx.

The HTTP properties run against one live Tocsin (aiohttp on 127.0.0.1, a manual clock, the session's Redis) in a
thread of its own, so hypothesis drives it with plain blocking requests. Example counts are bounded to keep CI
short; `HYPOTHESIS_PROFILE=deep` runs more."""
from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.durations import parse_duration
from routing.matchers import parse_matchers
from service.ingest.alerts import load_body, parse_postable
from service.http.app import create_app
from service.core.clock import MAX_TIME, MIN_TIME, ManualClock, to_rfc3339
from service.pipeline.engine import recording_factory
from service.core.errors import ConfigError
from service.core.models import fingerprint
from tests.pipeline_kit import BASE, T0, with_redis

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("deep", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class Live:
    """A Tocsin app served from a private event loop thread."""

    def __init__(self, config_text: str, tmp: Path):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        path = tmp / "tocsin.yml"
        path.write_text(config_text)
        self.sink: list[Any] = []

        async def start() -> tuple[web.AppRunner, int, Any]:
            app = create_app(path, clock=ManualClock(T0), receiver_factory=recording_factory(self.sink),
                             background=False)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, site._server.sockets[0].getsockname()[1], app  # type: ignore[union-attr]

        self.runner, port, self.app = self.run(start())
        self.base = f"http://127.0.0.1:{port}"
        self.http = requests.Session()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    @property
    def engine(self) -> Any:
        from service.http.appkeys import ENGINE

        return self.app[ENGINE]

    def close(self) -> None:
        self.http.close()
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory):
    prefix = f"p{uuid.uuid4().hex[:10]}"
    lv = Live(with_redis(BASE, redis_url, prefix), tmp_path_factory.mktemp("props"))
    yield lv
    lv.close()


# -- strategies ------------------------------------------------------------------------------------------------

names = st.one_of(st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,12}\Z"), st.text(max_size=8))
texts = st.one_of(st.text(max_size=40), st.sampled_from(["", "<!channel>", "\u202e", "a" * 300, "0001-01-01"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
times = st.one_of(
    st.floats(min_value=MIN_TIME + 1, max_value=MAX_TIME).map(to_rfc3339),
    st.sampled_from(["9999-12-31T23:00:00-05:00", "5138-11-17T00:00:00Z", "0001-01-01T00:00:00Z", "",
                     "2023-11-14T22:13:20.123456789Z", "2023-11-14T22:13:20", "yesterday", "10000-01-01T00:00:00Z"]),
    json_values)
label_sets = st.dictionaries(names, texts, max_size=5)


@st.composite
def postable_alert(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    d: dict[str, Any] = {"labels": draw(st.one_of(label_sets, label_sets, json_values))}
    for key, strat in (("annotations", st.one_of(label_sets, json_values)), ("startsAt", times),
                       ("endsAt", times), ("generatorURL", st.one_of(texts, json_values))):
        if draw(st.booleans()):
            d[key] = draw(strat)
    return d


@st.composite
def detector_event(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    d: dict[str, Any] = {"metric": draw(st.one_of(texts, json_values)), "timestamp": draw(times),
                         draw(st.sampled_from(["anomalous", "is_anomaly"])): draw(st.one_of(st.booleans(),
                                                                                           json_values))}
    for key in ("value", "score", "threshold", "expected", "z_score", "anomaly_score", "confidence"):
        if draw(st.integers(0, 3)) == 0:
            d[key] = draw(st.one_of(st.floats(allow_nan=False), st.integers(), st.booleans(), texts))
    if draw(st.booleans()):
        d["labels"] = draw(st.one_of(label_sets, json_values))
    return d


def _post(live: Live, path: str, body: Any) -> requests.Response:
    """POST as JSON text; NaN/Infinity are written as the stdlib writes them (detectors do), which takes the
    server's stdlib path."""
    return live.http.post(live.base + path, data=json.dumps(body), headers={"Content-Type": "application/json"})


def _assert_clear_4xx(r: requests.Response, statuses: tuple[int, ...] = (400,)) -> dict[str, Any]:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    body = r.json()
    assert body["message"]
    for e in body.get("errors", []):
        assert e["path"] and e["message"]
    return body


def _stored(live: Live, labels: dict[str, str]) -> bool:
    fp = fingerprint({k: v for k, v in labels.items() if v != ""})
    got = live.run(live.engine.dispatcher.store.get_many([fp]))
    return fp in got and got[fp].labels == {k: v for k, v in labels.items() if v != ""}


# -- HTTP properties ------------------------------------------------------------------------------------------

@given(st.lists(postable_alert(), max_size=6))
def test_postable_alerts_are_stored_or_rejected_with_their_paths(live: Live, batch: list[Any]) -> None:
    """POST /api/v2/alerts: 200 and every alert stored, or 400 naming each bad item's path (the valid items of
    the batch are stored even then); never a 5xx."""
    r = _post(live, "/api/v2/alerts", batch)
    assert r.status_code < 500, r.text[:300]
    now = live.engine.clock.now()
    valid, errors = parse_postable(batch, now, live.engine.cfg.resolve_timeout)
    if r.status_code == 200:
        assert not errors
    else:
        body = _assert_clear_4xx(r)
        assert {e["path"] for e in body["errors"]} == {e.path for e in errors}
        assert all(e["path"].startswith(("[", "body")) for e in body["errors"])
    for a in valid:
        assert _stored(live, a.labels)


@given(st.one_of(detector_event(), st.lists(detector_event(), max_size=4)))
def test_detector_events_are_stored_or_rejected_with_their_paths(live: Live, body: Any) -> None:
    """POST /api/v1/events: 200, or 400 whose errors all carry a path; never a 5xx."""
    r = _post(live, "/api/v1/events", body)
    assert r.status_code < 500, r.text[:300]
    if r.status_code != 200:
        _assert_clear_4xx(r)


@given(st.fixed_dictionaries({"version": st.one_of(st.just("4"), json_values),
                              "alerts": st.one_of(st.lists(postable_alert().map(
                                  lambda a: dict(a, status="firing") if isinstance(a, dict) else a), max_size=4),
                                  json_values)}))
def test_alertmanager_webhooks_are_stored_or_rejected_with_their_paths(live: Live, body: Any) -> None:
    """POST /api/v1/alertmanager: 200 or a 400 with a reason; never a 5xx."""
    r = _post(live, "/api/v1/alertmanager", body)
    assert r.status_code < 500, r.text[:300]
    if r.status_code != 200:
        _assert_clear_4xx(r)


@given(st.one_of(st.text(max_size=30), st.from_regex(r'\A[a-z]{1,4}(=|!=|=~|!~)"?[a-z.*+?()|\[\]\\^$]{0,12}"?\Z')))
def test_filters_match_or_are_rejected(live: Live, text: str) -> None:
    """GET /api/v2/alerts?filter=...: 200 with a list, or 400 with the reason; never a 5xx (regexes are RE2)."""
    r = live.http.get(live.base + "/api/v2/alerts", params={"filter": text})
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    if r.status_code == 200:
        assert isinstance(r.json(), list)
    else:
        _assert_clear_4xx(r)
        with pytest.raises(ConfigError):
            parse_matchers(text, "filter")


@st.composite
def silence(draw: Any) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    m = st.fixed_dictionaries({"name": st.one_of(names, json_values), "value": st.one_of(texts, json_values),
                               "isRegex": st.one_of(st.booleans(), json_values)},
                              optional={"isEqual": st.booleans()})
    return {"matchers": draw(st.one_of(st.lists(m, max_size=3), json_values)),
            "startsAt": draw(times), "endsAt": draw(times), "createdBy": draw(st.one_of(texts, json_values)),
            "comment": draw(st.one_of(texts, json_values))}


@given(silence())
def test_silences_are_stored_and_readable_or_rejected(live: Live, body: Any) -> None:
    """POST /api/v2/silences: 200 and GET /api/v2/silence/{id} shows it with the same matchers, or a 4xx with
    the path; never a 5xx."""
    r = _post(live, "/api/v2/silences", body)
    assert r.status_code < 500, r.text[:300]
    if r.status_code == 200:
        sid = r.json()["silenceID"]
        g = live.http.get(live.base + f"/api/v2/silence/{sid}")
        assert g.status_code == 200
        assert [(m["name"], m["value"], m["isRegex"]) for m in g.json()["matchers"]] == [
            (m["name"], m["value"], m["isRegex"]) for m in body["matchers"]]
    else:
        _assert_clear_4xx(r, (400, 422))


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
       | json_values.map(lambda v: json.dumps(v).encode()))
def test_raw_bodies_never_break_ingest(live: Live, raw: bytes) -> None:
    """Any bytes as a body of any JSON door: 200 or 400 with a reason, never a 5xx."""
    for path in ("/api/v2/alerts", "/api/v1/events", "/api/v1/alertmanager", "/api/v2/silences"):
        r = live.http.post(live.base + path, data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (path, r.status_code, r.text[:300])
        if r.status_code != 200:
            _assert_clear_4xx(r, (400, 422))


# -- pure parsers ----------------------------------------------------------------------------------------------

@given(st.one_of(st.text(max_size=20), st.from_regex(r"\A([0-9]{1,4}(y|w|d|h|m|s|ms)){1,4}\Z"), st.integers(),
                 st.floats(), st.booleans()))
def test_durations_parse_or_name_the_path(value: Any) -> None:
    """parse_duration gives seconds (finite, non-negative) or a ConfigError at the path it was given."""
    try:
        secs = parse_duration(value, "route.group_wait")
    except ConfigError as e:
        assert e.path == "route.group_wait"
    else:
        assert secs >= 0 and secs == secs and secs != float("inf")


@given(st.binary(max_size=300))
def test_load_body_reads_or_refuses_any_bytes(raw: bytes) -> None:
    """load_body returns a value or raises BodyError; nothing else escapes."""
    from service.ingest.alerts import BodyError

    try:
        load_body(raw)
    except BodyError as e:
        assert str(e)


@given(st.one_of(json_values, st.fixed_dictionaries({"event": st.fixed_dictionaries(
    {"id": st.one_of(texts, json_values), "event_type": st.sampled_from(
        ["incident.acknowledged", "incident.resolved", "incident.unacknowledged", "x"]),
     "occurred_at": times, "agent": json_values,
     "data": st.one_of(json_values, st.fixed_dictionaries({"incident_key": st.one_of(texts, json_values),
                                                           "id": json_values}))})})))
def test_pagerduty_webhook_bodies_parse_or_are_refused(body: Any) -> None:
    """A PagerDuty webhook body is an event, ignored (None), or a ValueError naming the field; nothing else."""
    from service.http.pagerduty_webhook import PagerDutyEvent, parse_event

    try:
        ev = parse_event(body, "wh")
    except ValueError as e:
        assert str(e).startswith("event")
    else:
        assert ev is None or (isinstance(ev, PagerDutyEvent) and ev.incident_key)


@st.composite
def slack_payload(draw: Any) -> dict[str, Any]:
    """A valid Tocsin button press with one or two parts replaced by anything."""
    d: dict[str, Any] = {"type": "block_actions", "user": {"id": "U1", "username": "pat"},
                         "actions": [{"action_id": draw(st.sampled_from(["tocsin_ack", "tocsin_snooze", "other"])),
                                      "value": "inc-1", "selected_option": {"value": "3600|inc-1"},
                                      "action_ts": "1.0"}],
                         "container": {"channel_id": "C1", "message_ts": "1.0"}, "channel": {"id": "C1"},
                         "message": {"ts": "1.0"}, "team": {"id": "T1"}, "response_url": "https://x"}
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(sorted(d)))
        if key == "actions" and draw(st.booleans()):
            sub = draw(st.sampled_from(sorted(d["actions"][0])))
            d["actions"][0][sub] = draw(json_values)
        else:
            d[key] = draw(json_values)
    return d


@given(st.one_of(st.dictionaries(st.text(max_size=8), json_values, max_size=4), slack_payload()))
def test_slack_action_payloads_parse_or_are_refused(payload: dict[str, Any]) -> None:
    """A Slack block_actions payload is an action, ignored (None), or a ValueError naming the payload path."""
    from service.http.slack_actions import SlackAction, parse_action

    try:
        a = parse_action(payload)
    except ValueError as e:
        assert str(e).startswith("payload")
    else:
        assert a is None or (isinstance(a, SlackAction) and a.user_id and a.incident_id)
