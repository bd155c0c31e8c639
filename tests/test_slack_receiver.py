"""The Slack receiver against a fake Slack, through the real slack-sdk clients."""
from __future__ import annotations

import asyncio

import pytest

from routing.receivers.ratelimit import ChannelPacer, PacingDelay
from routing.receivers.base import NotifyError
from routing.receivers.slack import SlackReceiver
from service.core.clock import ManualClock
from service.core.errors import ConfigError
from tests.fakes.samples import hostile_alert, hostile_incident, incident, notification, texts, unsafe_mrkdwn
from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-1234-5678-secret"


def bot(slack: FakeSlack, clock: ManualClock, channel: str = "#alerts", pacer: ChannelPacer | None = None,
        **kw) -> SlackReceiver:
    return SlackReceiver.from_config({"bot_token": TOKEN, "channel": channel, "api_base_url": slack.base_url,
                                      "send_resolved": True, **kw}, "receivers[0].slack_configs[0]", "slack/0", clock,
                                     pacer=pacer)


async def test_first_delivery_posts_and_returns_channel_and_ts():
    """The first delivery posts one Block Kit message with buttons and returns its channel and ts."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        d = await r.send(notification(incident_snapshot=incident()))
        assert len(slack.messages) == 1
        m = slack.messages[0]
        assert d.state["channel"] == m.channel and d.state["ts"] == m.ts
        action_ids = [e["action_id"] for b in m.blocks if b["type"] == "actions" for e in b["elements"]]
        assert action_ids == ["tocsin_ack", "tocsin_resolve", "tocsin_snooze", "tocsin_noise",
                              "tocsin_summary_helpful", "tocsin_summary_unhelpful"]
        assert m.text.startswith("[CRITICAL] payments-db latency")


async def test_redelivery_edits_in_place_and_replies_in_thread():
    """A later delivery with the stored state edits the same message and adds one thread line."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        d1 = await r.send(notification(incident_snapshot=incident()))
        clock.advance(5)
        acked = incident(state="acknowledged", acked_by="alice", acked_at=1.7e9 + 5)
        d2 = await r.send(notification(incident_snapshot=acked, nid="n2", reason="acknowledged"), d1.state)
        assert len(slack.messages) == 1
        m = slack.messages[0]
        assert len(m.edits) == 1 and d2.state["ts"] == m.ts
        assert any("Acknowledged by alice" in t for _, t in texts(m.blocks))
        action_ids = [e["action_id"] for b in m.blocks if b["type"] == "actions" for e in b["elements"]]
        assert "tocsin_ack" not in action_ids and "tocsin_resolve" in action_ids
        replies = slack.replies(m.ts)
        assert [x.text for x in replies] == ["Acknowledged by alice at 2023-11-14 22:13:25 UTC"]


async def test_same_notification_redelivered_is_not_repeated():
    """Re-delivering the notification that produced the stored state changes nothing in Slack."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        d1 = await r.send(notification(incident_snapshot=incident()))
        d2 = await r.send(notification(incident_snapshot=incident()), d1.state)
        assert d2.state == d1.state
        assert len(slack.requests) == 1


async def test_resolved_incident_drops_the_buttons():
    """When the incident resolves, the edited message shows it resolved and has no action buttons."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        d1 = await r.send(notification(incident_snapshot=incident(summary=None)))
        clock.advance(5)
        res = incident(state="resolved", resolved_at=1.7e9 + 5, summary=None)
        for mem in res["members"]:
            mem["status"] = "resolved"
        await r.send(notification(incident_snapshot=res, nid="n2", status="resolved", reason="all resolved"), d1.state)
        m = slack.messages[0]
        assert not [b for b in m.blocks if b["type"] == "actions"]
        assert any("*Resolved*" in t for _, t in texts(m.blocks))
        assert [x.text for x in slack.replies(m.ts)] == ["Resolved"]


async def test_deleted_message_is_posted_again():
    """If the stored message is gone (message_not_found), the delivery posts a new one."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        d = await r.send(notification(incident_snapshot=incident()), {"channel": "CGONE", "ts": "1.2"})
        assert len(slack.messages) == 1 and d.state["ts"] == slack.messages[0].ts


async def test_429_is_retryable_with_retry_after_and_pauses_only_that_channel():
    """A 429 raises a retryable NotifyError carrying Retry-After and holds back only that channel."""
    clock = ManualClock(1.7e9)
    pacer = ChannelPacer(clock, interval=1.0, max_wait=0.0)
    async with FakeSlack(token=TOKEN) as slack:
        a = bot(slack, clock, "#a", pacer=pacer)
        b = bot(slack, clock, "#b", pacer=pacer)
        slack.fail_next(429, retry_after=30)
        with pytest.raises(NotifyError) as ei:
            await a.send(notification())
        assert ei.value.retryable and ei.value.retry_after == 30 and ei.value.status == 429
        clock.advance(2)
        await b.send(notification())  # the other channel is not held back
        with pytest.raises(NotifyError) as ei:
            await a.send(notification())  # still paused: refused without calling Slack
        assert ei.value.retryable and 27 <= ei.value.retry_after <= 28
        assert len(slack.requests) == 2
        clock.advance(30)
        await a.send(notification())
        assert [m.channel for m in slack.messages] == [slack.channel_id("b"), slack.channel_id("a")]


async def test_429_then_500s_then_recovery_delivers_once_in_order():
    """Slack answering 429 and then 500s: each attempt fails retryably and, on recovery, every message lands once, in order."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        slack.fail_next(429, retry_after=2)
        slack.fail_next(500, times=4)
        states: dict[str, dict] = {}
        outbox = [(f"inc-{i}", notification(incident_snapshot=incident(id=f"inc-{i}", title=f"incident {i}"), nid=f"n{i}"))
                  for i in range(3)]
        failures = []
        while outbox:  # a minimal in-order outbox: retry the head until it goes through
            key, n = outbox[0]
            try:
                states[key] = (await r.send(n, states.get(key))).state
                outbox.pop(0)
                clock.advance(1.0)  # the channel's pacing slot
            except NotifyError as e:
                assert e.retryable
                failures.append(e.status)
                clock.advance(e.retry_after or 1.0)
        assert failures == [429, 500, 500, 500, 500]
        assert [m.text.split("] ")[1].split(" (")[0] for m in slack.messages] == ["incident 0", "incident 1", "incident 2"]


@pytest.mark.parametrize("error", ["channel_not_found", "invalid_auth", "not_in_channel"])
async def test_permanent_slack_errors_are_not_retryable(error):
    """ok:false errors such as channel_not_found and invalid_auth raise a non-retryable NotifyError."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        slack.fail_next(200, error=error)
        with pytest.raises(NotifyError) as ei:
            await r.send(notification())
        assert not ei.value.retryable and error in ei.value.reason


async def test_wrong_token_is_not_retryable_and_not_leaked():
    """A token Slack rejects gives a non-retryable error whose text does not contain the token."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token="xoxb-the-right-one") as slack:
        r = bot(slack, clock)
        with pytest.raises(NotifyError) as ei:
            await r.send(notification())
        assert not ei.value.retryable and "invalid_auth" in ei.value.reason
        assert TOKEN not in str(ei.value)


async def test_unreachable_slack_is_retryable():
    """A connection error is retryable."""
    clock = ManualClock(1.7e9)
    r = SlackReceiver("slack/0", clock, bot_token=TOKEN, channel="#x", api_base_url="http://127.0.0.1:9/api/")
    with pytest.raises(NotifyError) as ei:
        await r.send(notification())
    assert ei.value.retryable


async def test_hostile_text_is_accepted_by_slack_and_safe():
    """Hostile incident text produces a message Slack accepts, with nothing that pings."""
    clock = ManualClock(1.7e9)
    async with FakeSlack(token=TOKEN) as slack:
        r = bot(slack, clock)
        d = await r.send(notification(incident_snapshot=hostile_incident(), alerts=[hostile_alert()]))
        clock.advance(2)
        await r.send(notification(incident_snapshot=hostile_incident(), nid="n2"), d.state)
        m = slack.messages[0]
        for kind, t in texts(m.blocks):
            if kind == "mrkdwn":
                assert unsafe_mrkdwn(t) == []
        assert unsafe_mrkdwn(m.text) == [] and unsafe_mrkdwn(slack.replies(m.ts)[0].text) == []


async def test_webhook_mode_posts_without_buttons():
    """Incoming-webhook mode posts Block Kit without buttons and says buttons need bot-token mode."""
    clock = ManualClock(1.7e9)
    async with FakeSlack() as slack:
        r = SlackReceiver.from_config({"api_url": slack.webhook_url, "channel": "#x"}, "p", "slack/0", clock)
        d = await r.send(notification(incident_snapshot=incident()))
        assert d.state == {}
        post = slack.webhook_posts[0]
        assert not [b for b in post["blocks"] if b["type"] == "actions"]
        assert "bot-token mode" in post["blocks"][-1]["elements"][0]["text"]


@pytest.mark.parametrize("status,retryable", [(429, True), (500, True), (503, True), (400, False), (404, False)])
async def test_webhook_mode_maps_statuses(status, retryable):
    """Webhook non-200 answers (which the SDK returns, not raises) become NotifyErrors by status, without the URL."""
    clock = ManualClock(1.7e9)
    async with FakeSlack() as slack:
        r = SlackReceiver("slack/0", clock, webhook_url=slack.webhook_url)
        slack.fail_next(status, retry_after=7 if status == 429 else None, error="invalid_payload", method="webhook")
        with pytest.raises(NotifyError) as ei:
            await r.send(notification())
        assert ei.value.retryable is retryable and ei.value.status == status
        assert slack.webhook_path not in str(ei.value)
        if status == 429:
            assert ei.value.retry_after == 7


async def test_pacing_spaces_messages_per_channel_with_the_clock():
    """Three sends to one channel go out one second apart on the injected clock; another channel is not delayed."""
    clock = ManualClock(1000.0)
    pacer = ChannelPacer(clock, interval=1.0, max_wait=10.0)
    sent: list[tuple[str, float]] = []

    async def send(key: str) -> None:
        await pacer.acquire(key)
        sent.append((key, clock.now()))

    tasks = [asyncio.create_task(send("a")) for _ in range(3)] + [asyncio.create_task(send("b"))]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sorted(sent) == [("a", 1000.0), ("b", 1000.0)]
    clock.advance(1)
    await asyncio.sleep(0)
    clock.advance(1)
    await asyncio.gather(*tasks)
    assert sorted(sent) == [("a", 1000.0), ("a", 1001.0), ("a", 1002.0), ("b", 1000.0)]


def test_pacer_refuses_waits_longer_than_max_wait():
    """A paused channel raises PacingDelay with the remaining wait instead of blocking."""
    clock = ManualClock(0.0)
    pacer = ChannelPacer(clock, interval=1.0, max_wait=5.0)
    pacer.pause("a", 30)
    with pytest.raises(PacingDelay) as ei:
        pacer.reserve("a")
    assert ei.value.wait == 30
    assert pacer.reserve("b") == 0


@pytest.mark.parametrize("cfg,path", [
    ({"bot_token": TOKEN}, "r.channel"),
    ({"bot_token": TOKEN, "channel": "#x", "colour": "red"}, "r.colour"),
    ({"channel": "#x"}, "r"),
    ({"api_url": "ftp://x"}, "r.api_url"),
    ({"api_url": "http://x", "api_url_file": "/f"}, "r.api_url_file"),
    ({"bot_token": TOKEN, "channel": "#x", "send_resolved": "yes"}, "r.send_resolved"),
    ({"bot_token_file": "/nonexistent/token", "channel": "#x"}, "r.bot_token_file"),
    ({"bot_token": "hunter2", "channel": "#x"}, "r.bot_token"),
])
def test_bad_config_names_the_field(cfg, path):
    """Bad slack_configs entries raise ConfigError with the path of the bad key."""
    with pytest.raises(ConfigError) as ei:
        SlackReceiver.from_config(cfg, "r", "slack/0", ManualClock())
    assert ei.value.path == path
    assert TOKEN not in str(ei.value)


def test_token_file_and_alertmanager_keys_are_accepted(tmp_path):
    """bot_token_file is read, and Alertmanager's slack_configs keys are accepted."""
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    r = SlackReceiver.from_config({"bot_token_file": str(f), "channel": "#x", "title": "{{ .CommonLabels.x }}",
                                   "text": "t", "icon_emoji": ":bell:", "username": "tocsin", "send_resolved": True},
                                  "r", "slack/0", ManualClock())
    assert r.mode == "bot" and r.send_resolved
