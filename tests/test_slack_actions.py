"""Slack's interactivity endpoint: signature checks, parsing, allow-list, background dispatch."""
from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.http.slack_actions import RedisReplayGuard, SlackAction, make_slack_actions_handler
from service.core.clock import ManualClock
from tests.fakes.slack import block_action, sign_action

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000


async def client_for(handler) -> TestClient:
    app = web.Application()
    app.router.add_post("/slack/actions", handler)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def setup():
    clock = ManualClock(NOW)
    got: list[SlackAction] = []

    async def on_action(a: SlackAction) -> None:
        got.append(a)

    handler = make_slack_actions_handler(SECRET, clock, on_action)
    client = await client_for(handler)
    yield clock, handler, client, got
    await client.close()


async def post(client, body, headers):
    return await client.post("/slack/actions", data=body, headers=headers)


async def test_valid_press_answers_200_and_dispatches(setup):
    """A correctly signed Acknowledge press gets 200 and runs on_action with the parsed action."""
    clock, handler, client, got = setup
    body, headers = sign_action(SECRET, block_action("tocsin_ack", "inc-1", user_id="U9", username="bob",
                                                     channel="C7", message_ts="1700000000.000100"), NOW - 10)
    resp = await post(client, body, headers)
    assert resp.status == 200
    await handler.drain()
    assert got == [SlackAction(action="ack", incident_id="inc-1", user_id="U9", user_name="bob", channel="C7",
                               message_ts="1700000000.000100", response_url="https://hooks.slack.com/actions/T1/1/xyz",
                               team_id="T1", action_ts="1700000001.000000")]


async def test_snooze_select_carries_seconds(setup):
    """A Snooze choice is parsed into the incident id and the number of seconds."""
    clock, handler, client, got = setup
    body, headers = sign_action(SECRET, block_action("tocsin_snooze", selected="3600|inc-2"), NOW)
    assert (await post(client, body, headers)).status == 200
    await handler.drain()
    assert (got[0].action, got[0].incident_id, got[0].snooze_seconds) == ("snooze", "inc-2", 3600)


async def test_forged_signature_is_401(setup):
    """A request signed with another secret gets 401 and changes nothing."""
    clock, handler, client, got = setup
    body, headers = sign_action("not-the-secret", block_action("tocsin_ack", "inc-1"), NOW)
    assert (await post(client, body, headers)).status == 401
    body, headers = sign_action(SECRET, block_action("tocsin_ack", "inc-1"), NOW)
    tampered = body.replace(b"inc-1", b"inc-2")
    assert (await post(client, tampered, headers)).status == 401
    await handler.drain()
    assert got == []


async def test_stale_request_is_401(setup):
    """A correctly signed request older (or newer) than 5 minutes gets 401."""
    clock, handler, client, got = setup
    for ts in (NOW - 301, NOW + 301):
        body, headers = sign_action(SECRET, block_action("tocsin_ack", "inc-1"), ts)
        assert (await post(client, body, headers)).status == 401
    await handler.drain()
    assert got == []


async def test_replayed_request_is_401(setup):
    """The same signed request sent twice within the window is acted on once; the replay gets 401."""
    clock, handler, client, got = setup
    body, headers = sign_action(SECRET, block_action("tocsin_ack", "inc-1"), NOW)
    assert (await post(client, body, headers)).status == 200
    clock.advance(60)
    assert (await post(client, body, headers)).status == 401
    await handler.drain()
    assert len(got) == 1


@pytest.mark.parametrize("ts", ["abc", "1e9", "", "9" * 5000])
async def test_non_numeric_timestamp_is_400(setup, ts):
    """A non-numeric X-Slack-Request-Timestamp gets 400."""
    clock, handler, client, got = setup
    body, headers = sign_action(SECRET, block_action("tocsin_ack", "inc-1"), NOW)
    headers["X-Slack-Request-Timestamp"] = ts
    assert (await post(client, body, headers)).status == 400


async def test_missing_signature_is_401(setup):
    """A request without signature headers gets 401."""
    clock, handler, client, got = setup
    body, headers = sign_action(SECRET, block_action("tocsin_ack", "inc-1"), NOW)
    del headers["X-Slack-Signature"]
    assert (await post(client, body, headers)).status == 401


async def test_signed_but_malformed_payload_is_400(setup):
    """A signed body without a usable payload gets 400, naming the bad field."""
    clock, handler, client, got = setup
    import hashlib
    import hmac
    for body in (b"nothing=here", b"payload=%7Bnot+json", b"payload=" + b"%7B%22type%22%3A%22block_actions%22%7D"):
        sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{NOW}:".encode() + body, hashlib.sha256).hexdigest()
        resp = await post(client, body, {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": sig,
                                         "Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 400
        assert (await resp.text()).startswith("payload")


async def test_other_actions_are_ignored(setup):
    """A block action that is not one of Tocsin's buttons gets 200 and no callback."""
    clock, handler, client, got = setup
    body, headers = sign_action(SECRET, block_action("someone_elses_button", "x"), NOW)
    assert (await post(client, body, headers)).status == 200
    await handler.drain()
    assert got == []


async def test_allow_list_blocks_other_users():
    """With an allow-list, only listed user ids can act (a username, which its owner can change, is not enough);
    others are reported to on_denied."""
    clock = ManualClock(NOW)
    got, denied = [], []

    async def on_action(a):
        got.append(a.user_id)

    async def on_denied(a):
        denied.append(a.user_id)

    handler = make_slack_actions_handler(SECRET, clock, on_action, allowed_users={"U1", "carol"}, on_denied=on_denied)
    client = await client_for(handler)
    try:
        for i, (uid, name) in enumerate([("U1", "alice"), ("U2", "bob"), ("U3", "carol")]):
            body, headers = sign_action(SECRET, block_action("tocsin_resolve", f"inc-{i}", user_id=uid, username=name), NOW)
            assert (await post(client, body, headers)).status == 200
        await handler.drain()
    finally:
        await client.close()
    assert got == ["U1"] and denied == ["U2", "U3"]


async def test_handler_answers_before_the_action_finishes(setup):
    """The endpoint answers 200 while on_action is still running (work happens after the answer)."""
    import asyncio
    clock = ManualClock(NOW)
    release = asyncio.Event()
    finished = []

    async def slow(a):
        await release.wait()
        finished.append(a.action)

    handler = make_slack_actions_handler(SECRET, clock, slow)
    client = await client_for(handler)
    try:
        body, headers = sign_action(SECRET, block_action("tocsin_noise", "inc-1"), NOW)
        assert (await post(client, body, headers)).status == 200
        assert finished == []
        release.set()
        await handler.drain()
        assert finished == ["noise"]
    finally:
        await client.close()


async def test_redis_replay_guard_is_shared_between_replicas(redis, key_prefix):
    """With the Redis replay guard, a request replayed to a second replica is refused."""
    clock = ManualClock(NOW)
    got = []

    async def on_action(a):
        got.append(a)

    clients = []
    for _ in range(2):
        h = make_slack_actions_handler(SECRET, clock, on_action, replay_guard=RedisReplayGuard(redis, key_prefix))
        clients.append((h, await client_for(h)))
    try:
        body, headers = sign_action(SECRET, block_action("tocsin_ack", "inc-1"), NOW)
        assert (await post(clients[0][1], body, headers)).status == 200
        assert (await post(clients[1][1], body, headers)).status == 401
        for h, _ in clients:
            await h.drain()
    finally:
        for _, c in clients:
            await c.close()
    assert len(got) == 1


async def test_press_round_trip_acks_pagerduty_and_edits_the_message():
    """Pressing the posted Acknowledge button (signed) acks PagerDuty and edits the message to show who acked."""
    from routing.receivers.pagerduty import PagerDutyReceiver, dedup_key_for
    from routing.receivers.slack import SlackReceiver
    from tests.fakes.pagerduty import FakePagerDuty
    from tests.fakes.samples import incident, notification, texts
    from tests.fakes.slack import FakeSlack

    clock = ManualClock(NOW)
    async with FakeSlack(token="xoxb-t") as slack, FakePagerDuty() as pd:
        sr = SlackReceiver("slack/0", clock, bot_token="xoxb-t", channel="#ops", api_base_url=slack.base_url)
        pr = PagerDutyReceiver("pagerduty/0", clock, routing_key="K" * 32, events_url=pd.events_url)
        n = notification(incident_snapshot=incident())
        slack_state = (await sr.send(n)).state
        await pr.send(n)

        async def on_action(a: SlackAction) -> None:  # what the lead's incident service will do
            assert a.action == "ack" and a.incident_id == "inc-20261123-7f3a2c"
            await pr.acknowledge(dedup_key_for(n))
            acked = incident(state="acknowledged", acked_by=a.user_name, acked_at=clock.now())
            await sr.send(notification(incident_snapshot=acked, nid="n2", reason="acknowledged"), slack_state)

        handler = make_slack_actions_handler(SECRET, clock, on_action)
        client = await client_for(handler)
        try:
            clock.advance(3)
            payload = slack.press(slack_state["ts"], "tocsin_ack", user_id="U42", username="dana")
            body, headers = sign_action(SECRET, payload, int(clock.now()))
            assert (await post(client, body, headers)).status == 200
            await handler.drain()
            assert (await post(client, body, headers)).status == 401  # replay changes nothing
        finally:
            await client.close()
            await pr.close()
        assert pd.actions("inc-20261123-7f3a2c") == ["trigger", "acknowledge"]
        m = slack.messages[0]
        assert len(slack.messages) == 1 and len(m.edits) == 1
        assert any("Acknowledged by dana" in t for _, t in texts(m.blocks))
        assert "tocsin_ack" not in [e["action_id"] for b in m.blocks if b["type"] == "actions" for e in b["elements"]]
        assert slack.replies(m.ts)[0].text.startswith("Acknowledged by dana")
