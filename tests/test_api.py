"""The HTTP API as Prometheus, Alertmanager and operators see it: /api/v2/alerts, /api/v1/alertmanager, auth,
body limits, Redis outages, health/readiness and /metrics."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import yaml
from structlog.testing import capture_logs

from service.core.clock import to_rfc3339
from service.store.embedded import EmbeddedRedis
from service.core.models import fingerprint
from tests.pipeline_kit import BASE, T0, Harness, alert, serving, with_redis

# -- POST /api/v2/alerts --------------------------------------------------------------------------------------

async def test_post_alerts_answers_200_with_empty_body_and_stores(h: Harness) -> None:
    """A valid batch gets 200 with an empty body, as from Alertmanager, and the alerts are listed afterwards."""
    r = await h.post("/api/v2/alerts", [alert("A"), alert("B", severity="page")])
    assert r.status == 200
    assert await r.read() == b""
    got = {a["labels"]["alertname"]: a for a in await h.alerts()}
    assert set(got) == {"A", "B"}
    assert got["B"]["fingerprint"] == fingerprint({"alertname": "B", "severity": "page"})
    assert got["A"]["startsAt"] == to_rfc3339(T0 - 60)
    assert got["A"]["status"]["state"] == "active"
    assert got["A"]["receivers"] == [{"name": "team"}]


async def test_bad_items_are_listed_with_paths_and_good_ones_are_still_stored(h: Harness) -> None:
    """A batch with invalid items answers 400 naming each bad item's path, yet stores the valid items."""
    batch = [
        alert("Good1"),
        {"labels": {}, "startsAt": to_rfc3339(T0)},
        alert("Backwards", starts=T0, ends=T0 - 10),
        {"labels": {"alertname": "X"}, "startsAt": "yesterday"},
        alert("Good2"),
        "not an object",
    ]
    r = await h.post("/api/v2/alerts", batch)
    assert r.status == 400
    body = await r.json()
    paths = [e["path"] for e in body["errors"]]
    assert paths == ["[1].labels", "[2].endsAt", "[3].startsAt", "[5]"]
    for p in paths:
        assert p in body["message"]
    assert {a["labels"]["alertname"] for a in await h.alerts()} == {"Good1", "Good2"}


async def test_non_array_body_is_rejected(h: Harness) -> None:
    """A JSON object instead of an array of alerts answers 400 and stores nothing."""
    r = await h.post("/api/v2/alerts", alert("A"))
    assert r.status == 400
    assert "array" in (await r.json())["message"]
    assert await h.alerts() == []


async def test_invalid_json_is_rejected(h: Harness) -> None:
    """A body that is not JSON answers 400 saying so."""
    r = await h.post("/api/v2/alerts", b'[{"labels": {"alertname": "A"}')
    assert r.status == 400
    assert "not valid JSON" in (await r.json())["message"]


async def test_empty_label_values_are_dropped(h: Harness) -> None:
    """Labels with empty values are dropped, so the alert's fingerprint is that of the remaining labels."""
    r = await h.post("/api/v2/alerts", [alert("A", team="", env="prod")])
    assert r.status == 200
    [a] = await h.alerts()
    assert a["labels"] == {"alertname": "A", "env": "prod"}
    assert a["fingerprint"] == fingerprint({"alertname": "A", "env": "prod"})


async def test_only_empty_labels_is_an_error(h: Harness) -> None:
    """An alert whose labels are all empty has no labels left and is rejected."""
    r = await h.post("/api/v2/alerts", [{"labels": {"alertname": ""}}])
    assert r.status == 400
    assert (await r.json())["errors"][0]["path"] == "[0].labels"


@pytest.mark.parametrize("labels,path", [
    ({"alertname": "A", "bad-name": "x"}, "[0].labels.bad-name"),
    ({"alertname": "A", "0lead": "x"}, "[0].labels.0lead"),
    ({"alertname": "A", "n": 5}, "[0].labels.n"),
])
async def test_bad_labels_are_rejected_with_their_path(h: Harness, labels: dict, path: str) -> None:
    """Invalid label names and non-string values are rejected naming the label's path."""
    r = await h.post("/api/v2/alerts", [{"labels": labels}])
    assert r.status == 400
    assert [e["path"] for e in (await r.json())["errors"]] == [path]
    assert await h.alerts() == []


async def test_missing_starts_at_is_now_and_missing_ends_at_is_now_plus_resolve_timeout(h: Harness) -> None:
    """Without startsAt the alert starts now; without endsAt it ends at now + resolve_timeout (5m default)."""
    r = await h.post("/api/v2/alerts", [alert("A", starts=None)])
    assert r.status == 200
    [a] = await h.engine.dispatcher.store.all()
    assert a.starts_at == T0
    assert a.ends_at == T0 + 300
    assert a.timeout
    # After resolve_timeout it is no longer active.
    h.clock.advance(301)
    assert await h.alerts() == []


async def test_missing_starts_at_with_ends_at_starts_at_ends_at(h: Harness) -> None:
    """Without startsAt but with endsAt, the alert starts at its endsAt (Alertmanager's rule)."""
    r = await h.post("/api/v2/alerts", [alert("A", starts=None, ends=T0 - 5)])
    assert r.status == 200
    [a] = await h.engine.dispatcher.store.all()
    assert (a.starts_at, a.ends_at, a.timeout) == (T0 - 5, T0 - 5, False)


async def test_resolve_timeout_comes_from_global(tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> None:
    """global.resolve_timeout sets how long an alert without endsAt stays firing."""
    text = with_redis("global: {resolve_timeout: 1m}\n" + BASE, redis_url, key_prefix)
    async with serving(tmp_path, text) as h:
        assert (await h.post("/api/v2/alerts", [alert("A")])).status == 200
        [a] = await h.engine.dispatcher.store.all()
        assert a.ends_at == T0 + 60


async def test_explicit_ends_at_sent_later_wins(h: Harness) -> None:
    """An alert first sent without endsAt is resolved by a later update carrying an explicit endsAt."""
    assert (await h.post("/api/v2/alerts", [alert("A")])).status == 200
    h.clock.advance(10)
    assert (await h.post("/api/v2/alerts", [alert("A", ends=T0 + 5)])).status == 200
    [a] = await h.engine.dispatcher.store.all()
    assert a.ends_at == T0 + 5 and not a.timeout
    assert await h.alerts() == []


async def test_body_over_the_limit_is_413(tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> None:
    """A body larger than tocsin.max_body_bytes answers 413 and stores nothing."""
    text = with_redis(BASE, redis_url, key_prefix, max_body_bytes=2048)
    async with serving(tmp_path, text) as h:
        big = [alert(f"A{i}", note="x" * 100) for i in range(40)]
        r = await h.post("/api/v2/alerts", json.dumps(big))
        assert r.status == 413
        assert await h.alerts() == []
        assert (await h.post("/api/v2/alerts", [alert("Small")])).status == 200


# -- auth -----------------------------------------------------------------------------------------------------

AUTH = """
tocsin:
  auth:
    tokens:
      - {name: prom, token: prom-secret-1234, sources: [alerts, api]}
      - {name: detectors, token: det-secret-5678, sources: [events]}
      - {name: admin, token: admin-secret-9999}
"""


@pytest.fixture
async def ha(tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> AsyncIterator[Harness]:
    raw = yaml.safe_load(BASE)
    raw["tocsin"] = yaml.safe_load(AUTH)["tocsin"]
    async with serving(tmp_path, with_redis(yaml.safe_dump(raw), redis_url, key_prefix)) as harness:
        yield harness


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic cHJvbTpwcm9tLXNlY3JldC0xMjM0", "prom-secret-1234",
                                    "Bearer prom-secret-12345", "Bearer "])
async def test_missing_or_wrong_token_is_401_and_stores_nothing(ha: Harness, header: str | None) -> None:
    """With tokens configured, a request without the right bearer token is refused with 401 and nothing is stored."""
    headers = {"Authorization": header} if header is not None else {}
    r = await ha.client.post("/api/v2/alerts", json=[alert("A")], headers=headers)
    assert r.status == 401
    assert await ha.engine.dispatcher.store.all() == []


async def test_right_token_is_accepted(ha: Harness) -> None:
    """The configured token opens its door (case-insensitive scheme), and a token for all sources opens every door."""
    r = await ha.client.post("/api/v2/alerts", json=[alert("A")], headers={"Authorization": "bearer prom-secret-1234"})
    assert r.status == 200
    assert (await ha.post("/api/v2/alerts", [alert("B")], token="admin-secret-9999")).status == 200
    assert {a["labels"]["alertname"] for a in await ha.alerts(token="admin-secret-9999")} == {"A", "B"}


async def test_tokens_are_per_source(ha: Harness) -> None:
    """A token for "events" does not open /api/v2/alerts, and a token for "alerts" does not open /api/v1/events."""
    assert (await ha.post("/api/v2/alerts", [alert("A")], token="det-secret-5678")).status == 401
    ev = {"metric": "m", "timestamp": to_rfc3339(T0), "is_anomaly": True}
    assert (await ha.post("/api/v1/events", ev, token="prom-secret-1234")).status == 401
    assert (await ha.post("/api/v1/events", ev, token="det-secret-5678")).status == 200
    r = await ha.client.get("/api/v2/alerts", headers={"Authorization": "Bearer det-secret-5678"})
    assert r.status == 401
    assert (await ha.client.get("/api/v2/silences")).status == 401
    assert (await ha.client.post("/-/reload")).status == 401


async def test_status_and_receivers_need_a_token_and_never_show_secrets(ha: Harness) -> None:
    """With tokens configured, /api/v2/status needs an api token, and its config shows no token or URL secrets."""
    assert (await ha.client.get("/api/v2/status")).status == 401
    r = await ha.client.get("/api/v2/status", headers={"Authorization": "Bearer prom-secret-1234"})
    assert r.status == 200
    original = (await r.json())["config"]["original"]
    for secret in ("prom-secret-1234", "det-secret-5678", "admin-secret-9999", "127.0.0.1:9/hook"):
        assert secret not in original
    assert "<secret>" in original
    assert yaml.safe_load(original)["route"]["receiver"] == "team"


async def test_token_never_appears_in_logs(ha: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Neither accepted nor rejected tokens appear in any log line (structlog or stdlib)."""
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        await ha.post("/api/v2/alerts", [alert("A")], token="prom-secret-1234")
        await ha.post("/api/v2/alerts", [alert("A")], token="det-secret-5678")
        await ha.post("/api/v2/alerts", [alert("A")], token="guessed-secret-0000")
        await ha.post("/api/v2/alerts", [{"labels": {}}], token="prom-secret-1234")
        await ha.client.post("/-/reload", headers={"Authorization": "Bearer admin-secret-9999"})
        await ha.step(60)
    text = json.dumps(logs, default=str) + caplog.text
    assert logs  # something was logged (the reload at least)
    for secret in ("prom-secret-1234", "det-secret-5678", "admin-secret-9999", "guessed-secret-0000"):
        assert secret not in text


# -- Redis down -----------------------------------------------------------------------------------------------

async def test_redis_down_is_503_and_not_ready_but_healthy(tmp_path: Path, key_prefix: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """When Redis stops, writes answer 503 (never 200), reads 503, /-/ready 503 and /-/healthy still 200."""
    monkeypatch.delenv("REDIS_URL", raising=False)  # the app must use the Redis this test stops, not the suite's
    er = EmbeddedRedis(tmp_path / "redis", persist=False)
    url = await asyncio.to_thread(er.start)
    try:
        async with serving(tmp_path, with_redis(BASE, url, key_prefix)) as h:
            assert (await h.client.get("/-/ready")).status == 200
            assert (await h.post("/api/v2/alerts", [alert("A")])).status == 200
            await asyncio.to_thread(er.stop)
            r = await h.post("/api/v2/alerts", [alert("B")])
            assert r.status == 503
            assert "retry" in (await r.json())["message"]
            ev = {"metric": "m", "timestamp": to_rfc3339(T0), "is_anomaly": True}
            assert (await h.post("/api/v1/events", ev)).status == 503
            assert (await h.client.get("/api/v2/alerts")).status == 503
            assert (await h.client.get("/-/ready")).status == 503
            r = await h.client.get("/-/healthy")
            assert r.status == 200
            assert (await h.client.get("/metrics")).status == 200
    finally:
        await asyncio.to_thread(er.stop)


async def test_starts_without_redis_and_works_once_it_is_up(tmp_path: Path, key_prefix: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Tocsin starts while Redis is unreachable (healthy 200, ready 503, writes 503) and serves once Redis is up."""
    monkeypatch.delenv("REDIS_URL", raising=False)  # the app must use the Redis this test starts, not the suite's
    er = EmbeddedRedis(tmp_path / "redis", persist=False)
    try:
        async with serving(tmp_path, with_redis(BASE, er.url, key_prefix)) as h:
            assert (await h.client.get("/-/healthy")).status == 200
            assert (await h.client.get("/-/ready")).status == 503
            assert (await h.post("/api/v2/alerts", [alert("A")])).status == 503
            await asyncio.to_thread(er.start)
            assert (await h.client.get("/-/ready")).status == 200
            assert (await h.post("/api/v2/alerts", [alert("A")])).status == 200
            await h.engine.start()  # what the delivery loop does once Redis answers
            await h.step(30)
            assert [n.alerts[0].labels["alertname"] for n in h.sink] == ["A"]
    finally:
        await asyncio.to_thread(er.stop)


async def test_healthy_and_ready_when_redis_is_up(h: Harness) -> None:
    """/-/healthy and /-/ready answer 200 OK while Redis is reachable."""
    for p in ("/-/healthy", "/-/ready"):
        r = await h.client.get(p)
        assert (r.status, await r.text()) == (200, "OK")


# -- POST /api/v1/alertmanager --------------------------------------------------------------------------------

def webhook(*alerts: dict, version: Any = "4") -> dict:
    return {"version": version, "groupKey": '{}:{alertname="A"}', "truncatedAlerts": 0,
            "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
            "receiver": "upstream", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am:9093", "alerts": list(alerts)}


def wh_alert(name: str, status: str, starts: float, ends: float | None = None) -> dict:
    return {"status": status, "labels": {"alertname": name, "env": "prod"}, "annotations": {"summary": "s"},
            "startsAt": to_rfc3339(starts), "endsAt": to_rfc3339(ends) if ends is not None else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom", "fingerprint": fingerprint({"alertname": name, "env": "prod"})}


async def test_alertmanager_webhook_firing_and_resolved_alerts_enter(h: Harness) -> None:
    """A version-4 webhook's firing alerts become active (zero endsAt means firing) and its resolved ones resolve."""
    r = await h.post("/api/v1/alertmanager", webhook(wh_alert("A", "firing", T0 - 100),
                                                     wh_alert("B", "firing", T0 - 100)))
    assert r.status == 200
    active = await h.alerts()
    assert {a["labels"]["alertname"] for a in active} == {"A", "B"}
    h.clock.advance(30)
    r = await h.post("/api/v1/alertmanager", webhook(wh_alert("A", "resolved", T0 - 100, T0 + 20)))
    assert r.status == 200
    assert {a["labels"]["alertname"] for a in await h.alerts()} == {"B"}
    stored = {a.labels["alertname"]: a for a in await h.engine.dispatcher.store.all()}
    assert stored["A"].ends_at == T0 + 20 and stored["A"].source == "alertmanager"


async def test_alertmanager_webhook_firing_alerts_outlive_resolve_timeout(h: Harness) -> None:
    """A firing alert from an upstream Alertmanager, which re-sends only every repeat_interval, stays firing past
    resolve_timeout (until tocsin.alertmanager.resolve_after, 4h10m by default) and is not notified resolved."""
    await h.post("/api/v1/alertmanager", webhook(wh_alert("A", "firing", T0 - 100)))
    [a] = await h.engine.dispatcher.store.all()
    assert a.ends_at == T0 + 4 * 3600 + 600 and a.timeout
    await h.step(30)
    await h.step(3600)
    assert len(await h.alerts()) == 1
    assert [n.status for n in h.sink] == ["firing"]


async def test_alertmanager_resolve_after_is_configurable(tmp_path: Path, redis_url: str, key_prefix: str,
                                                          redis: Any) -> None:
    """tocsin.alertmanager.resolve_after sets how long a firing alert from an upstream Alertmanager stays open."""
    text = with_redis(BASE, redis_url, key_prefix, alertmanager={"resolve_after": "9h"})
    async with serving(tmp_path, text) as h:
        await h.post("/api/v1/alertmanager", webhook(wh_alert("A", "firing", T0 - 100)))
        [a] = await h.engine.dispatcher.store.all()
        assert a.ends_at == T0 + 9 * 3600


async def test_alertmanager_webhook_alerts_are_routed_and_notified(h: Harness) -> None:
    """Alerts that arrive by webhook are grouped and notified like any other alert."""
    await h.post("/api/v1/alertmanager", webhook(wh_alert("A", "firing", T0 - 100)))
    await h.step(30)
    assert [(n.receiver, n.status, [a.labels["alertname"] for a in n.alerts]) for n in h.sink] == [
        ("team", "firing", ["A"])]


@pytest.mark.parametrize("body,path", [
    (webhook(version="3"), "version"),
    (webhook(version=4.1), "version"),
    ([], "body"),
    ({"version": "4", "alerts": {}}, "alerts"),
])
async def test_alertmanager_webhook_bad_payloads_are_400(h: Harness, body: Any, path: str) -> None:
    """A webhook with another version, a non-object body or no alert list answers 400 naming the field."""
    r = await h.post("/api/v1/alertmanager", body)
    assert r.status == 400
    assert (await r.json())["message"].startswith(path)


async def test_alertmanager_webhook_bad_alert_names_its_path(h: Harness) -> None:
    """A bad alert inside a webhook is reported under alerts[i] while the good ones are stored."""
    bad = wh_alert("X", "firing", T0)
    bad["labels"] = {"bad name": "x"}
    r = await h.post("/api/v1/alertmanager", webhook(wh_alert("A", "firing", T0), bad))
    assert r.status == 400
    assert [e["path"] for e in (await r.json())["errors"]] == ["alerts[1].labels.bad name"]
    assert [a["labels"]["alertname"] for a in await h.alerts()] == ["A"]


# -- /metrics -------------------------------------------------------------------------------------------------

def samples(text: str, name: str) -> dict[str, float]:
    """Metric samples `name{labels} value` from the exposition text, keyed by the label string."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name):]] = float(value)
    return out


async def test_metrics_expose_ingest_notification_and_state_series(h: Harness) -> None:
    """/metrics counts received and invalid alerts by source, notifications by receiver, latency, outbox and active."""
    await h.post("/api/v2/alerts", [alert("A"), alert("B"), {"labels": {}}])
    await h.post("/api/v1/events", {"metric": "m", "timestamp": to_rfc3339(T0), "is_anomaly": True})
    await h.step(30)
    r = await h.client.get("/metrics")
    assert r.status == 200
    text = await r.text()
    assert samples(text, "tocsin_alerts_received_total") == {
        '{source="prometheus",status="firing"}': 2.0, '{source="detector",status="firing"}': 1.0}
    assert samples(text, "tocsin_alerts_invalid_total") == {'{source="prometheus"}': 1.0}
    sent = samples(text, "tocsin_notifications_total")
    assert sent == {'{integration="webhook",outcome="sent",receiver="team"}': 3.0}
    lat = samples(text, "tocsin_ingest_latency_seconds_count")
    assert lat['{source="prometheus"}'] == 1.0 and lat['{source="detector"}'] == 1.0
    assert samples(text, "tocsin_alerts_active") == {"": 3.0}
    assert samples(text, "tocsin_outbox_depth") == {"": 0.0}  # everything decided was delivered


# -- GET /api/v2/alerts ---------------------------------------------------------------------------------------

INHIBIT = BASE.replace("receivers:", """  routes:
    - matchers: ['team="db"']
      receiver: db
receivers:
  - name: db
    webhook_configs: [{url: "http://127.0.0.1:9/db"}]""") + """
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [service]
"""


async def test_get_alerts_filters_like_alertmanager(tmp_path: Path, redis_url: str, key_prefix: str,
                                                    redis: Any) -> None:
    """GET /api/v2/alerts honours filter matchers and the receiver regex, and sorts by fingerprint."""
    async with serving(tmp_path, with_redis(INHIBIT, redis_url, key_prefix)) as h:
        await h.post("/api/v2/alerts", [alert("A", team="db", env="prod"), alert("B", env="dev"),
                                        alert("C", env="prod")])
        r = await h.client.get("/api/v2/alerts", params=[("filter", 'env="prod"')])
        assert sorted(a["labels"]["alertname"] for a in await r.json()) == ["A", "C"]
        r = await h.client.get("/api/v2/alerts", params=[("filter", 'env=~"prod|dev"'), ("filter", "alertname!=C")])
        assert sorted(a["labels"]["alertname"] for a in await r.json()) == ["A", "B"]
        r = await h.client.get("/api/v2/alerts", params={"receiver": "d.*"})
        got = await r.json()
        assert [(a["labels"]["alertname"], a["receivers"]) for a in got] == [("A", [{"name": "db"}])]
        every = await h.alerts()
        assert [a["fingerprint"] for a in every] == sorted(a["fingerprint"] for a in every)
        r = await h.client.get("/api/v2/alerts", params={"filter": 'env=~"("'})
        assert r.status == 400


async def test_get_alerts_shows_inhibited_alerts_as_suppressed(tmp_path: Path, redis_url: str, key_prefix: str,
                                                               redis: Any) -> None:
    """An alert muted by an inhibit rule is shown suppressed with the inhibiting alert's fingerprint."""
    async with serving(tmp_path, with_redis(INHIBIT, redis_url, key_prefix)) as h:
        crit, warn = alert("Down", severity="critical", service="api"), alert("Slow", severity="warning", service="api")
        other = alert("Slow", severity="warning", service="web")
        await h.post("/api/v2/alerts", [crit, warn, other])
        got = {(a["labels"]["alertname"], a["labels"]["service"]): a["status"] for a in await h.alerts()}
        crit_fp = fingerprint(crit["labels"])
        assert got[("Slow", "api")] == {"state": "suppressed", "silencedBy": [], "inhibitedBy": [crit_fp]}
        assert got[("Slow", "web")]["state"] == "active"
        assert got[("Down", "api")]["state"] == "active"
        r = await h.client.get("/api/v2/alerts", params={"inhibited": "false"})
        assert len(await r.json()) == 2
        r = await h.client.get("/api/v2/alerts", params={"active": "false"})
        assert [a["labels"]["service"] for a in await r.json()] == ["api"]
        await h.step(30)
        notified = sorted((a.labels["alertname"], a.labels["service"]) for n in h.sink for a in n.alerts)
        assert notified == [("Down", "api"), ("Slow", "web")]
