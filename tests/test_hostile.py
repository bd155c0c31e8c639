"""Twelve holes found by a security audit, one reproduction each: hostile input, forged callbacks and cross-site writes.

Each test is the audit's reproduction, asserting the behaviour that closes the hole (a clear 4xx naming the path,
or stored and readable back; never a 5xx; never a write the sender cannot see)."""
from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from routing.matchers import Matcher, compile_go
from service.http.pagerduty_webhook import PagerDutyEvent, make_pagerduty_webhook_handler
from routing.receivers.escaping import one_line, plain
from routing.silences import SilenceMatcher
from service.http.slack_actions import SlackAction, make_slack_actions_handler
from service.core.clock import ManualClock, parse_rfc3339, to_rfc3339
from service.config.sections import load_config
from service.core.errors import ConfigErrors
from service.core.models import fingerprint
from service.http.openapi import document
from tests.fakes.pagerduty import sign_webhook, webhook_event
from tests.pipeline_kit import BASE, T0, Harness, alert, with_redis
from tests.pipeline_kit import serving as running

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def h(tmp_path: Path, redis_url: str, key_prefix: str, redis: Any):
    async with running(tmp_path, with_redis(BASE, redis_url, key_prefix)) as harness:
        yield harness


def event(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"metric": "m", "timestamp": to_rfc3339(T0), "anomalous": True}
    d.update(kw)
    return d


async def listed(h: Harness) -> dict[str, dict[str, Any]]:
    return {a["labels"].get("alertname", ""): a for a in await h.alerts()}


# -- 1. far-future timestamps ----------------------------------------------------------------------------------

async def test_far_future_event_keeps_the_alert_list_readable(h: Harness) -> None:
    """An anomalous event at 9999-12-31T23:59:59Z is stored with its end bounded to what RFC 3339 can express,
    and GET /api/v2/alerts keeps answering 200 with parseable times."""
    r = await h.post("/api/v1/events", event(timestamp="9999-12-31T23:59:59Z", alertname="Far"))
    assert r.status == 200, await r.text()
    got = await listed(h)
    assert "Far" in got
    for key in ("startsAt", "endsAt", "updatedAt"):
        assert parse_rfc3339(got["Far"][key]) is not None
    assert got["Far"]["endsAt"].startswith("9999-12-31T23:59:59")


async def test_end_past_year_9999_is_rejected_with_its_path(h: Harness) -> None:
    """endsAt 9999-12-31T23:00:00-05:00 (year 10000 in UTC) answers 400 at [1].endsAt; the valid alert is stored
    and the list stays readable."""
    bad = {"labels": {"alertname": "Bad"}, "endsAt": "9999-12-31T23:00:00-05:00"}
    r = await h.post("/api/v2/alerts", [alert("Ok"), bad])
    assert r.status == 400
    body = await r.json()
    assert [e["path"] for e in body["errors"]] == ["[1].endsAt"]
    assert set(await listed(h)) == {"Ok"}


async def test_a_poisoned_record_already_stored_does_not_break_get_alerts(h: Harness, redis: Any) -> None:
    """A record written before the bound (year 10000) is shown with its time clamped, never a 500."""
    assert (await h.post("/api/v2/alerts", [alert("Old")])).status == 200
    fp = fingerprint({"alertname": "Old"})
    keys = h.engine.keys
    k = keys.alerts(keys.shard_of(fp))
    rec = (await redis.hget(k, fp)).decode()
    s, e, t, u, body = rec.split("|", 4)
    await redis.hset(k, fp, f"{s}|{int(253402315200000)}|{t}|{u}|{body}")
    got = await listed(h)
    assert got["Old"]["endsAt"].startswith("9999-12-31T23:59:59")


# -- 2. the Lua merge writing 1.019e+14 ------------------------------------------------------------------------

async def test_times_after_5138_are_stored_as_exact_integers_and_re_sends_work(h: Harness, redis: Any) -> None:
    """An alert starting in 5138 (>= 1e14 ms) is stored with integer milliseconds; a re-send merges (200), and a
    batch of 50 with it is stored whole."""
    late = alert("Late", starts=parse_rfc3339("5138-11-17T00:00:00Z"), ends=parse_rfc3339("5139-01-01T00:00:00Z"))
    assert (await h.post("/api/v2/alerts", [late])).status == 200
    fp = fingerprint({"alertname": "Late"})
    rec = (await redis.hget(h.engine.keys.alerts(h.engine.keys.shard_of(fp)), fp)).decode()
    head = rec.split("|")[:4]
    assert all(x.lstrip("-").isdigit() for x in head), head
    assert (await h.post("/api/v2/alerts", [late])).status == 200
    batch = [alert(f"A{i}") for i in range(49)] + [late]
    assert (await h.post("/api/v2/alerts", batch)).status == 200
    assert len(await listed(h)) == 50


# -- 3. deep nesting and lone surrogates -----------------------------------------------------------------------

@pytest.mark.parametrize("nan", [False, True])
async def test_deeply_nested_item_is_a_400_naming_it_and_the_others_are_stored(h: Harness, nan: bool) -> None:
    """One item nested 5,000 levels deep is rejected with its path; the valid items of the batch are stored. With
    a NaN in the batch (the stdlib path, which cannot recurse that deep) too."""
    deep = '{"labels":{"alertname":"Deep"},"annotations":{"x":' + "[" * 5000 + "]" * 5000 + "}}"
    good2 = alert("Good2")
    raw = "[" + json.dumps(alert("Good1")) + "," + deep + "," + json.dumps(good2) + "]"
    if nan:
        raw = raw[:-1] + ',{"labels":{"alertname":"N"},"annotations":{"v":NaN}}]'
    r = await h.post("/api/v2/alerts", raw)
    assert r.status == 400
    errors = (await r.json())["errors"]
    assert errors[0]["path"].startswith("[1]")
    if nan:
        assert errors[0]["path"] == "[1]" and "nested" in errors[0]["message"]
        assert [e["path"] for e in errors[1:]] == ["[3].annotations.v"]
    assert set(await listed(h)) == {"Good1", "Good2"}


async def test_deep_nesting_outside_an_array_is_a_400(h: Harness) -> None:
    """A body object nested beyond the limit is one clear 400 (on the stdlib path: about the nesting)."""
    r = await h.post("/api/v1/events", '{"metric":' + "[" * 3000 + "]" * 3000 + "}")
    assert r.status == 400
    assert (await r.json())["errors"][0]["path"] == "metric"
    r = await h.post("/api/v1/events", '{"value":NaN,"metric":' + "[" * 3000 + "]" * 3000 + "}")
    assert r.status == 400
    assert "nested" in (await r.json())["message"]


async def test_lone_surrogate_is_a_400_with_its_path_and_the_others_are_stored(h: Harness) -> None:
    """A label value holding the lone surrogate \\ud800 is rejected at its path; the valid alert is stored."""
    raw = "[" + json.dumps(alert("Good")) + ',{"labels":{"alertname":"S","x":"a\\ud800"}}]'
    r = await h.post("/api/v2/alerts", raw)
    assert r.status == 400
    errors = (await r.json())["errors"]
    assert [e["path"] for e in errors] == ["[1].labels.x"]
    assert set(await listed(h)) == {"Good"}


async def test_lone_surrogate_in_events_and_silences_is_a_400(h: Harness) -> None:
    """Events and silences name the bad string's path too."""
    raw = "[" + json.dumps(event(alertname="Ev")) + ',{"metric":"\\udfff","timestamp":"2023-11-14T22:13:20Z",' \
          '"anomalous":true}]'
    r = await h.post("/api/v1/events", raw)
    assert r.status == 400
    assert [e["path"] for e in (await r.json())["errors"]] == ["[1].metric"]
    assert "Ev" in await listed(h)
    sil = ('{"matchers":[{"name":"a","value":"\\ud800","isRegex":false}],"startsAt":"2023-11-14T22:13:20Z",'
           '"endsAt":"2023-11-14T23:13:20Z","createdBy":"x","comment":"y"}')
    r = await h.post("/api/v2/silences", sil)
    assert r.status == 400
    assert "matchers[0].value" in (await r.json())["message"]


# -- 4. RE2 ----------------------------------------------------------------------------------------------------

def test_matcher_regex_runs_in_linear_time() -> None:
    """(a|a)*c against 40 a's (2^40 backtracking steps) finishes: the 120 s bound only catches a hang."""
    code = ("from routing.matchers import Matcher; from routing.silences import SilenceMatcher;"
            "v = 'a' * 40;"
            "assert not Matcher('rx', '=~', '(a|a)*c').matches({'rx': v});"
            "assert not SilenceMatcher('rx', '(a|a)*c', True, True).matches({'rx': v});"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("pattern,value,want", [
    ("\\pL+", "caf\u00e9", True),  # RE2 (and Go) Unicode classes
    ("\\p{Greek}+", "\u03b1\u03b2", True),
    ("\\p{Greek}+", "ab", False),
    ("(?U)a+", "aaa", True),
    ("[[:^alpha:]]+", "123", True),
    ("[[:^alpha:]]+", "a", False),
])
def test_matchers_have_re2_semantics(pattern: str, value: str, want: bool) -> None:
    """Syntax that Go's regexp (RE2) has and Python's re lacks is accepted and means what it means in Go."""
    assert Matcher("x", "=~", pattern).matches({"x": value}) is want
    assert SilenceMatcher("x", pattern, True, True).matches({"x": value}) is want
    assert (compile_go(f"^(?:{pattern})$").search(value) is not None) is want


# -- 5. empty tokens -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("token,path", [
    ({"token": ""}, "tocsin.auth.tokens[0].token"),
    ({"token": "   "}, "tocsin.auth.tokens[0].token"),
    ({"token_file": "EMPTY"}, "tocsin.auth.tokens[0].token_file"),
])
def test_empty_token_is_a_config_error_with_its_path(tmp_path: Path, token: dict[str, str], path: str) -> None:
    """An empty token (inline or in its file) would open the door: check-config rejects it at its path."""
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    token = {k: (str(empty) if v == "EMPTY" else v) for k, v in token.items()}
    raw = yaml.safe_load(BASE)
    raw["tocsin"] = {"auth": {"tokens": [{"name": "p", **token}]}}
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigErrors) as ei:
        load_config(cfg)
    assert path in [e.path for e in ei.value.errors]


# -- 8. PagerDuty replay ---------------------------------------------------------------------------------------

PD_SECRET = "pd-secret-hostile"


@pytest.fixture
async def pd(redis: Any, key_prefix: str):
    got: list[PagerDutyEvent] = []
    clock = ManualClock(parse_rfc3339("2026-11-23T07:01:00Z"))

    async def on_event(e: PagerDutyEvent) -> None:
        got.append(e)

    app = web.Application()
    app.router.add_post("/pd", make_pagerduty_webhook_handler([PD_SECRET], redis, key_prefix, on_event, clock=clock))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, got, clock


def _pd(body_obj: dict[str, Any], webhook_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(body_obj).encode()
    return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": sign_webhook(body, PD_SECRET),
                  "X-Webhook-Id": webhook_id}


async def test_pagerduty_replay_with_a_new_webhook_id_is_a_duplicate(pd: Any) -> None:
    """A captured signed ack replayed with a fresh X-Webhook-Id (not covered by the signature) is not applied
    again: dedup is on the signed event id."""
    client, got, clock = pd
    ev = webhook_event("incident.acknowledged", "inc-1")
    body, headers = _pd(ev, "wh-1")
    assert (await client.post("/pd", data=body, headers=headers)).status == 200
    clock.advance(20 * 60)
    body, headers = _pd(ev, "wh-2-forged")
    r = await client.post("/pd", data=body, headers=headers)
    assert r.status == 200 and await r.text() == "duplicate"
    assert len(got) == 1


async def test_pagerduty_event_outside_the_window_is_refused(pd: Any) -> None:
    """A signed event whose occurred_at lies outside the replay window (older than the dedup memory) is refused
    and not applied; so is one from the far future."""
    client, got, clock = pd
    clock.advance(3 * 86400)
    body, headers = _pd(webhook_event("incident.acknowledged", "inc-1"), "wh-1")
    r = await client.post("/pd", data=body, headers=headers)
    assert r.status == 401 and "occurred_at" in await r.text()
    ev = webhook_event("incident.acknowledged", "inc-1")
    ev["event"]["occurred_at"] = to_rfc3339(clock.now() + 3600)
    ev["event"]["id"] = "other-id"
    body, headers = _pd(ev, "wh-2")
    assert (await client.post("/pd", data=body, headers=headers)).status == 401
    assert got == []


# -- 9. cross-site writes --------------------------------------------------------------------------------------

SILENCE_ALL = {"matchers": [{"name": "alertname", "value": ".+", "isRegex": True}],
               "startsAt": to_rfc3339(T0), "endsAt": to_rfc3339(T0 + 3600), "createdBy": "evil", "comment": "x"}


@pytest.mark.parametrize("path,body", [
    ("/api/v2/silences", SILENCE_ALL), ("/api/v2/alerts", [alert("X")]), ("/api/v1/events", event()),
    ("/api/v1/alertmanager", {"version": "4", "alerts": []}),
])
async def test_json_doors_refuse_other_content_types(h: Harness, path: str, body: Any) -> None:
    """A text/plain POST (what a web page can send without a preflight) gets 415 and changes nothing."""
    r = await h.client.post(path, data=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status == 415, await r.text()
    assert await h.engine.silences.all() == []
    assert await h.alerts() == []


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}])
async def test_cross_origin_state_changes_are_refused(h: Harness, headers: dict[str, str]) -> None:
    """A state-changing request from another origin is refused with 403, whatever its content type."""
    r = await h.client.post("/api/v2/silences", json=SILENCE_ALL, headers=headers)
    assert r.status == 403
    r = await h.client.post("/-/reload", headers=headers)
    assert r.status == 403
    assert await h.engine.silences.all() == []


async def test_same_origin_and_non_browser_writes_are_accepted(h: Harness) -> None:
    """Prometheus and curl send no Origin; a same-origin page sends its own origin: both are accepted."""
    origin = str(h.client.make_url("/")).rstrip("/")
    r = await h.client.post("/api/v2/alerts", json=[alert("A")], headers={"Origin": origin,
                                                                         "Sec-Fetch-Site": "same-origin"})
    assert r.status == 200
    r = await h.client.post("/api/v2/alerts", data=json.dumps([alert("B")]),
                            headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 200
    assert set(await listed(h)) == {"A", "B"}


# -- 10. mentions in plain text --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,word", [("<!channel> down", "channel"), ("hi <@U123ABC>", "U123ABC"),
                                       ("<!subteam^S0ONCALL|oncall> x", "S0ONCALL"), ("<#C1|ops>", "C1"),
                                       ("< !here>", "here"), ("<\u200b@U1>", "U1")])
def test_plain_targets_neutralise_slack_mentions(text: str, word: str) -> None:
    """plain() and one_line() (PagerDuty summary, digest text) can never carry a Slack mention or broadcast,
    and the text stays readable."""
    import re

    for out in (plain(text), one_line(text)):
        assert re.search(r"<\s*[!@#]", out) is None, out
        assert word in out


# -- 11. non-UTF-8 Slack body ----------------------------------------------------------------------------------

async def test_signed_non_utf8_slack_body_is_a_400_about_the_body() -> None:
    """A correctly signed body that is not UTF-8 gets 400 naming the body, not "bad timestamp"."""
    secret = "slack-secret-hostile"
    clock = ManualClock(1_700_000_000)
    got: list[SlackAction] = []

    async def on_action(a: SlackAction) -> None:
        got.append(a)

    app = web.Application()
    app.router.add_post("/s", make_slack_actions_handler(secret, clock, on_action))
    body = b"payload=%7B%22type%22%3A\xff\xfe"
    ts = "1700000000"
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        r = await client.post("/s", data=body, headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig,
                                                        "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 400
        text = await r.text()
        assert "body" in text and "timestamp" not in text
        bad_sig = "v0=" + "0" * 64
        r = await client.post("/s", data=body, headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": bad_sig})
        assert r.status == 401
    assert got == []


# -- 12. OpenAPI completeness and number types -----------------------------------------------------------------

def test_openapi_documents_every_ingest_body_and_get_alerts() -> None:
    """The request bodies of /api/v2/alerts and /api/v1/alertmanager and GET /api/v2/alerts are documented."""
    doc = document()
    paths = doc["paths"]
    assert "requestBody" in paths["/api/v2/alerts"]["post"]
    assert "requestBody" in paths["/api/v1/alertmanager"]["post"]
    get = paths["/api/v2/alerts"]["get"]
    assert {p["name"] for p in get["parameters"]} >= {"filter", "receiver", "active", "silenced", "inhibited"}
    assert "200" in get["responses"]


@pytest.mark.parametrize("field,value", [("value", True), ("score", False), ("threshold", True),
                                         ("individual_scores", {"z": True}), ("features", [1.0, True])])
async def test_booleans_are_not_numbers(h: Harness, field: str, value: Any) -> None:
    """A boolean where the schema says number is a 400 at that field."""
    r = await h.post("/api/v1/events", event(**{field: value}))
    assert r.status == 400
    assert (await r.json())["errors"][0]["path"].startswith(field)


async def test_anomalous_with_is_anomaly_is_accepted(h: Harness) -> None:
    """The schema allows both `anomalous` and `is_anomaly`; agreeing values are accepted, disagreeing ones are a
    400 at is_anomaly."""
    r = await h.post("/api/v1/events", event(is_anomaly=True, alertname="Both"))
    assert r.status == 200, await r.text()
    assert "Both" in await listed(h)
    r = await h.post("/api/v1/events", event(is_anomaly=False))
    assert r.status == 400
    assert (await r.json())["errors"][0]["path"] == "is_anomaly"


# -- tokens: a read-only scope ---------------------------------------------------------------------------------

async def test_read_only_token_reads_but_never_writes(tmp_path: Path, redis_url: str, key_prefix: str,
                                                      redis: Any) -> None:
    """A token with sources [read] lists alerts and silences but cannot post alerts, create silences or reload."""
    text = with_redis(BASE, redis_url, key_prefix,
                      auth={"tokens": [{"name": "ro", "token": "ro-token", "sources": ["read"]},
                                       {"name": "w", "token": "w-token", "sources": ["all"]}]})
    async with running(tmp_path, text) as h:
        assert (await h.post("/api/v2/alerts", [alert("A")], token="w-token")).status == 200
        ro = {"Authorization": "Bearer ro-token"}
        assert (await h.client.get("/api/v2/alerts", headers=ro)).status == 200
        assert (await h.client.get("/api/v2/silences", headers=ro)).status == 200
        assert (await h.post("/api/v2/alerts", [alert("B")], token="ro-token")).status == 401
        assert (await h.client.post("/api/v2/silences", json=SILENCE_ALL, headers=ro)).status == 401
        assert (await h.client.post("/-/reload", headers=ro)).status == 401
        assert [a["labels"]["alertname"] for a in await h.alerts(token="w-token")] == ["A"]


# -- 7. loops stop on cancellation -----------------------------------------------------------------------------

async def test_scheduler_and_outbox_loops_stop_when_cancelled_as_they_are_woken(h: Harness) -> None:
    """A wake-up and the shutdown's cancellation in the same loop iteration (what asyncio.wait_for on 3.11
    swallows) still stop the scheduler and outbox loops; the 30 s bound only catches a loop that goes on."""
    import asyncio

    engine = h.engine
    tasks = []
    for i in range(6):
        loop = engine.scheduler.run() if i % 2 == 0 else engine.outbox.run(poll=5.0)
        t = asyncio.create_task(loop)
        tasks.append(t)
    await asyncio.sleep(0.5)  # every loop is waiting for its wake-up
    for i, t in enumerate(tasks):
        if i % 2 == 0:
            engine.scheduler.wake(engine.clock.now())
        else:
            engine.outbox.wake()
        t.cancel()
    done, pending = await asyncio.wait(tasks, timeout=30)
    for t in pending:
        t.cancel()
    assert not pending, f"{len(pending)} of {len(tasks)} loops swallowed their cancellation"
    assert all(t.cancelled() for t in done)


# -- overload --------------------------------------------------------------------------------------------------

async def test_ingest_at_capacity_answers_503_with_retry_after_and_stores_nothing(h: Harness) -> None:
    """With the whole byte budget busy and the queue full, a POST is answered 503 + Retry-After at once (a sender
    retries) and nothing of it is stored; one that waited past the bound gets the same; once capacity is free
    batches are stored."""
    from service.http.appkeys import SETTINGS

    adm = h.app[SETTINGS]["admission"]
    adm.used = adm.budget  # every byte of the budget is busy
    adm.queue, adm.wait = 0, 0.05
    r = await h.post("/api/v2/alerts", [alert("Storm")])
    assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
    adm.queue = 8
    r = await h.post("/api/v1/events", event(alertname="Storm2"))
    assert r.status == 503 and "Retry-After" in r.headers
    assert await h.alerts() == []
    metrics = await (await h.client.get("/metrics")).text()
    assert 'tocsin_ingest_refused_total{path="/api/v2/alerts"} 1.0' in metrics
    await adm.release(adm.budget)
    for i in range(6):
        assert (await h.post("/api/v2/alerts", [alert(f"S{i}")])).status == 200
    assert adm.used == 0
    assert len(await h.alerts()) == 6


def test_fingerprint_cache_is_bounded_by_bytes() -> None:
    """4,000 label sets of 300 labels each (the audit's 112 -> 329 MB) keep the cache within its byte bound, and
    fingerprints stay right after it is cleared."""
    from service.core import models

    first = {f"l{j}": f"value-{j}-0" for j in range(300)}
    fp = models.fingerprint(first)
    for i in range(4000):
        models.fingerprint({f"l{j}": f"value-{j}-{i}" for j in range(300)})
        assert models.fingerprint_cache_bytes() <= models._FP_CACHE_MAX_BYTES
    real = sum(len(n) + len(v) + 2 for n, v in first.items())
    assert models._FP_CACHE_MAX_BYTES >= 10 * real  # the bound is not so small that it never caches
    assert models.fingerprint(first) == fp == models._fnv1a_64_py(
        b"".join(n.encode() + b"\xff" + v.encode() + b"\xff" for n, v in sorted(first.items()))).to_bytes(8, "big").hex()
