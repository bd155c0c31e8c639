"""The on-call loop end to end: an alert comes in, one Slack message and one PagerDuty
trigger go out; a correctly signed Acknowledge press acknowledges the incident, stops the escalation, edits the
message and acknowledges PagerDuty; resolving the alerts resolves both. Real slack-sdk and aiohttp clients
against local fake Slack and PagerDuty servers; time is a ManualClock."""
from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from service.http.app import create_app
from service.http.appkeys import ENGINE
from service.core.clock import ManualClock, to_rfc3339
from service.config.sections import parse_config
from service.http.incident_api import SLACK_HANDLER
from tests.fakes.pagerduty import FakePagerDuty, sign_webhook, webhook_event
from tests.fakes.slack import FakeSlack, sign_action

T0 = 1_800_000_000.0
SECRET = "e2e-signing-secret-0123456789"

CONFIG = """
global: {resolve_timeout: 1h}
route:
  receiver: oncall
  group_by: [service]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 4h
  tocsin: {escalation: primary, min_confidence: 0}
receivers:
  - name: oncall
    slack_configs:
      - {channel: "#oncall", bot_token: xoxb-fake-token, api_base_url: "%(slack)s", send_resolved: true, max_wait: 0}
    pagerduty_configs:
      - {routing_key: R0UT1NGKEY00000000000000000000AB, events_url: "%(pd)s"}
  - name: escalate
    slack_configs:
      - {channel: "#escalations", bot_token: xoxb-fake-token, api_base_url: "%(slack)s", max_wait: 0}
tocsin:
  correlation: {enabled: true}
  slack: {signing_secret: "%(secret)s"}
  pagerduty: {webhook_secrets: ["pd-webhook-secret"]}
  escalation:
    policies:
      primary:
        levels:
          - {delay: 5m, targets: [{receiver: escalate, mention: "<!subteam^S0DBA>"}]}
"""


@pytest.fixture
async def loop_env(redis_url, key_prefix):
    async with FakeSlack() as slack, FakePagerDuty() as pd:
        cfg = parse_config(CONFIG % {"slack": slack.base_url, "pd": pd.events_url, "secret": SECRET})
        cfg.tocsin.redis.url = redis_url
        cfg.tocsin.redis.key_prefix = key_prefix
        clock = ManualClock(T0)
        app = create_app("unused.yml", cfg=cfg, clock=clock, background=False)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        async with aiohttp.ClientSession() as http:
            yield slack, pd, clock, app, server, http
        await server.close()


async def advance(app, clock, t: float) -> None:
    engine = app[ENGINE]
    while (nxt := await engine.next_due()) is not None and nxt <= T0 + t:
        clock.set(nxt)
        await engine.step()
    clock.set(T0 + t)
    await engine.step()


async def post_alert(http, server, ends: float | None = None, name: str = "DBLatencyHigh") -> None:
    a = {"labels": {"alertname": name, "service": "payments-db", "severity": "critical"},
         "annotations": {"summary": "p99 latency 2.3s"}, "startsAt": to_rfc3339(T0)}
    if ends is not None:
        a["endsAt"] = to_rfc3339(T0 + ends)
    r = await http.post(server.make_url("/api/v2/alerts"), json=[a])
    assert r.status == 200


async def press(http, server, app, clock, slack, ts: str, action: str, *, secret: str = SECRET,
                when: float | None = None) -> int:
    payload = slack.press(ts, action, user_id="U42", username="dana")
    body, headers = sign_action(secret, payload, int(clock.now() if when is None else when))
    r = await http.post(server.make_url("/api/v1/slack/actions"), data=body, headers=headers)
    handler = app[SLACK_HANDLER].get("h")
    if handler is not None:
        await handler.drain()
    return r.status


async def test_acknowledge_in_slack_stops_escalation_and_syncs_pagerduty(loop_env):
    """A signed Acknowledge press acks the incident, edits the message, acks PagerDuty, and no escalation fires."""
    slack, pd, clock, app, server, http = loop_env
    await post_alert(http, server)
    await advance(app, clock, 31)
    oncall = [m for m in slack.messages if m.channel == slack.channel_id("#oncall")]
    assert len(oncall) == 1
    msg = oncall[0]
    (dedup_key,) = pd.incidents
    assert pd.actions(dedup_key) == ["trigger"]

    assert await press(http, server, app, clock, slack, msg.ts, "tocsin_ack") == 200
    await advance(app, clock, 40)
    incident = await app[ENGINE].incidents.get(dedup_key)
    assert incident["state"] == "acknowledged" and incident["acked_by"] == "dana"
    edited = slack.message(msg.ts)
    assert edited.edits and "dana" in json.dumps(edited.blocks)
    assert pd.actions(dedup_key)[-1] == "acknowledge"

    await advance(app, clock, 31 + 600)  # well past the 5-minute escalation level
    assert [m for m in slack.messages if m.channel == slack.channel_id("#escalations")] == []

    await post_alert(http, server, ends=700)
    await advance(app, clock, 800)
    assert pd.actions(dedup_key)[-1] == "acknowledge"  # every alert resolved: the incident's quiet period runs
    await advance(app, clock, 700 + 300 + 60)  # the incident resolves once, as a whole
    assert pd.actions(dedup_key)[-1] == "resolve"
    assert "resolved" in json.dumps(slack.message(msg.ts).blocks).lower()
    assert len([m for m in slack.messages if m.channel == slack.channel_id("#oncall")]) == 1


async def test_unacknowledged_incident_escalates_once(loop_env):
    """Without an acknowledgement the escalation level fires once, after its delay, with its mention."""
    slack, pd, clock, app, server, http = loop_env
    await post_alert(http, server)
    await advance(app, clock, 30 + 299)  # first notification at 30 s; the level is due 5 min later
    assert [m for m in slack.messages if m.channel == slack.channel_id("#escalations")] == []
    await advance(app, clock, 30 + 300)
    await advance(app, clock, 3000)
    esc = [m for m in slack.messages if m.channel == slack.channel_id("#escalations")]
    assert len(esc) == 1
    assert "S0DBA" in json.dumps(esc[0].blocks) + esc[0].text


@pytest.mark.parametrize("kind", ["forged", "stale", "replayed", "non-numeric"])
async def test_bad_presses_change_nothing(loop_env, kind):
    """A forged, stale, replayed or malformed press is refused (401/400) and the incident stays triggered."""
    slack, pd, clock, app, server, http = loop_env
    await post_alert(http, server)
    await advance(app, clock, 31)
    msg = slack.messages[0]
    (dedup_key,) = pd.incidents
    if kind == "forged":
        status = await press(http, server, app, clock, slack, msg.ts, "tocsin_ack", secret="not-the-secret")
        assert status == 401
    elif kind == "stale":
        status = await press(http, server, app, clock, slack, msg.ts, "tocsin_ack", when=clock.now() - 301)
        assert status == 401
    elif kind == "non-numeric":
        payload = slack.press(msg.ts, "tocsin_ack")
        body, headers = sign_action(SECRET, payload, int(clock.now()))
        headers["X-Slack-Request-Timestamp"] = "soon"
        r = await http.post(server.make_url("/api/v1/slack/actions"), data=body, headers=headers)
        assert r.status == 400
    else:
        payload = slack.press(msg.ts, "tocsin_snooze", user_id="U42", username="dana")
        body, headers = sign_action(SECRET, payload, int(clock.now()))
        r1 = await http.post(server.make_url("/api/v1/slack/actions"), data=body, headers=headers)
        assert r1.status == 200
        await app[SLACK_HANDLER]["h"].drain()
        await app[ENGINE].incidents.ack(dedup_key, "someone")  # state moved on...
        r2 = await http.post(server.make_url("/api/v1/slack/actions"), data=body, headers=headers)
        assert r2.status == 401  # ...and replaying the old press cannot snooze it again
        assert (await app[ENGINE].incidents.get(dedup_key))["state"] == "acknowledged"
        return
    assert (await app[ENGINE].incidents.get(dedup_key))["state"] == "triggered"


async def test_acknowledge_in_pagerduty_comes_back_to_tocsin_and_slack(loop_env):
    """A signed PagerDuty webhook v3 acknowledgement acks the incident and edits the Slack message; a replay of
    the same delivery (same X-Webhook-Id) and a bad signature change nothing."""
    slack, pd, clock, app, server, http = loop_env
    await post_alert(http, server)
    await advance(app, clock, 31)
    msg = slack.messages[0]
    (dedup_key,) = pd.incidents
    body = json.dumps(webhook_event("incident.acknowledged", dedup_key, agent="Pat Oncall",
                                    occurred_at=to_rfc3339(clock.now()), event_id="ev-ack")).encode()
    bad = await http.post(server.make_url("/api/v1/pagerduty/webhook"), data=body, headers={
        "Content-Type": "application/json", "X-PagerDuty-Signature": sign_webhook(body, "wrong"),
        "X-Webhook-Id": "w-1"})
    assert bad.status == 401
    assert (await app[ENGINE].incidents.get(dedup_key))["state"] == "triggered"
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sign_webhook(body, "pd-webhook-secret"),
               "X-Webhook-Id": "w-2"}
    ok = await http.post(server.make_url("/api/v1/pagerduty/webhook"), data=body, headers=headers)
    assert ok.status in (200, 202, 204)
    inc = await app[ENGINE].incidents.get(dedup_key)
    assert inc["state"] == "acknowledged" and "Pat Oncall" in inc["acked_by"]
    await advance(app, clock, 40)
    assert "Pat Oncall" in json.dumps(slack.message(msg.ts).blocks)
    again = await http.post(server.make_url("/api/v1/pagerduty/webhook"), data=body, headers=headers)
    assert again.status in (200, 202, 204)  # a retried delivery is accepted but not applied twice
    timeline = (await app[ENGINE].incidents.get(dedup_key))["timeline"]
    assert sum(1 for t in timeline if t["event"].startswith("ack")) == 1
    body = json.dumps(webhook_event("incident.unacknowledged", dedup_key, agent="Pat Oncall",
                                    occurred_at=to_rfc3339(clock.now()), event_id="ev-unack")).encode()
    r = await http.post(server.make_url("/api/v1/pagerduty/webhook"), data=body, headers={
        "Content-Type": "application/json", "X-PagerDuty-Signature": sign_webhook(body, "pd-webhook-secret"),
        "X-Webhook-Id": "w-3"})
    assert r.status in (200, 202, 204)
    assert (await app[ENGINE].incidents.get(dedup_key))["state"] == "triggered"  # un-acknowledged in PagerDuty
