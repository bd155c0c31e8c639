"""PagerDuty webhook v3: signatures, X-Webhook-Id dedup in Redis, event parsing."""
from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.http.pagerduty_webhook import PagerDutyEvent, make_pagerduty_webhook_handler, signature_valid
from tests.fakes.pagerduty import sign_webhook, webhook_event

SECRET = "pd-webhook-secret-1"
OLD_SECRET = "pd-webhook-secret-0"


@pytest.fixture
async def setup(redis, key_prefix):
    got: list[PagerDutyEvent] = []
    fail = {"n": 0}

    async def on_event(e: PagerDutyEvent) -> None:
        if fail["n"]:
            fail["n"] -= 1
            raise RuntimeError("store down")
        got.append(e)

    app = web.Application()
    app.router.add_post("/pd", make_pagerduty_webhook_handler([SECRET], redis, key_prefix, on_event))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, got, fail
    await client.close()


def request(event_type="incident.acknowledged", key="inc-1", webhook_id="wh-1", secrets=(SECRET,), **kw):
    body = json.dumps(webhook_event(event_type, key, **kw)).encode()
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign_webhook(body, *secrets)}
    if webhook_id:
        headers["X-Webhook-Id"] = webhook_id
    return body, headers


async def test_acknowledged_event_reaches_the_callback(setup):
    """A signed incident.acknowledged calls back with our dedup_key and the agent's name."""
    client, got, _ = setup
    body, headers = request(agent="Pat Oncall")
    assert (await client.post("/pd", data=body, headers=headers)).status == 200
    assert len(got) == 1
    e = got[0]
    assert (e.kind, e.incident_key, e.agent, e.agent_type, e.pd_incident_id, e.webhook_id) == (
        "acknowledged", "inc-1", "Pat Oncall", "user_reference", "PGR0VU2", "wh-1")
    assert e.occurred_at == 1795417200.0


@pytest.mark.parametrize("event_type,kind", [("incident.resolved", "resolved"),
                                             ("incident.unacknowledged", "unacknowledged")])
async def test_resolved_and_unacknowledged(setup, event_type, kind):
    """incident.resolved and incident.unacknowledged are passed on with their kind."""
    client, got, _ = setup
    body, headers = request(event_type)
    assert (await client.post("/pd", data=body, headers=headers)).status == 200
    assert [e.kind for e in got] == [kind]


async def test_any_of_several_signatures_is_accepted(setup):
    """During secret rotation the header carries several v1= values; one valid one suffices."""
    client, got, _ = setup
    body, headers = request(secrets=(OLD_SECRET, SECRET))
    assert (await client.post("/pd", data=body, headers=headers)).status == 200
    assert len(got) == 1


@pytest.mark.parametrize("header", [None, "", "v1=deadbeef", "v0=abc", "garbage"])
async def test_bad_or_missing_signature_is_401(setup, header):
    """Without a valid v1= signature the request gets 401 and nothing happens."""
    client, got, _ = setup
    body, headers = request()
    if header is None:
        del headers["X-PagerDuty-Signature"]
    else:
        headers["X-PagerDuty-Signature"] = header
    assert (await client.post("/pd", data=body, headers=headers)).status == 401
    assert got == []


async def test_tampered_body_is_401(setup):
    """A body changed after signing fails verification."""
    client, got, _ = setup
    body, headers = request(key="inc-1")
    assert (await client.post("/pd", data=body.replace(b"inc-1", b"inc-9"), headers=headers)).status == 401


async def test_redelivery_with_the_same_webhook_id_is_processed_once(setup):
    """PagerDuty's retries (same X-Webhook-Id) are answered 200 but acted on only once."""
    client, got, _ = setup
    body, headers = request()
    for _ in range(3):
        assert (await client.post("/pd", data=body, headers=headers)).status == 200
    assert len(got) == 1


async def test_dedup_is_shared_between_replicas(redis, key_prefix):
    """Two handlers (replicas) on the same Redis process one (signed) event id once."""
    got = []

    async def on_event(e):
        got.append(e)

    h1 = make_pagerduty_webhook_handler(SECRET, redis, key_prefix, on_event)
    h2 = make_pagerduty_webhook_handler(SECRET, redis, key_prefix, on_event)
    clients = []
    for h in (h1, h2):
        app = web.Application()
        app.router.add_post("/pd", h)
        c = TestClient(TestServer(app, host="127.0.0.1"))
        await c.start_server()
        clients.append(c)
    try:
        body, headers = request(webhook_id="wh-shared")
        for c in clients:
            assert (await c.post("/pd", data=body, headers=headers)).status == 200
    finally:
        for c in clients:
            await c.close()
    assert len(got) == 1
    event_id = webhook_event("incident.acknowledged", "inc-1")["event"]["id"]
    ttl = await redis.ttl(f"{key_prefix}:{{pdwebhook}}:{event_id}")
    assert 47 * 3600 < ttl <= 48 * 3600


async def test_failed_callback_is_500_and_the_retry_is_processed(setup):
    """If handling fails, the answer is 500 and PagerDuty's retry with the same id is processed."""
    client, got, fail = setup
    fail["n"] = 1
    body, headers = request()
    assert (await client.post("/pd", data=body, headers=headers)).status == 500
    assert (await client.post("/pd", data=body, headers=headers)).status == 200
    assert len(got) == 1


async def test_other_events_and_foreign_incidents_are_ignored(setup):
    """Events Tocsin does not act on, or incidents without an incident_key, get 200 and no callback."""
    client, got, _ = setup
    for body, headers in (request("incident.annotated"), request("pagey.ping"), request(key=None, webhook_id="wh-2")):
        assert (await client.post("/pd", data=body, headers=headers)).status == 200
    assert got == []


async def test_signed_garbage_is_400(setup):
    """A correctly signed body that is not a webhook event gets 400."""
    client, got, _ = setup
    for body in (b"not json", b"[]", b'{"event": 1}'):
        headers = {"X-PagerDuty-Signature": sign_webhook(body, SECRET), "X-Webhook-Id": "x"}
        assert (await client.post("/pd", data=body, headers=headers)).status == 400


def test_signature_valid_checks_every_secret_and_value():
    """signature_valid accepts a match of any configured secret with any v1= value, and nothing else."""
    body = b"{}"
    assert signature_valid(body, sign_webhook(body, "a"), ["b", "a"])
    assert signature_valid(body, "v1=00," + sign_webhook(body, "a"), ["a"])
    assert not signature_valid(body, sign_webhook(body, "c"), ["a", "b"])
