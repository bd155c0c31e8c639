"""Alertmanager's grouping and notification semantics, end to end through Redis, in event time."""
from __future__ import annotations

import asyncio

import pytest

from service.core.clock import to_rfc3339
from tests.pipeline_kit import T0, harness

BASE = """
global: {resolve_timeout: 1h}
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:1/hook", send_resolved: %s}]
"""


def alert(name: str, id_: str, starts: float = 0, ends: float | None = None, **labels: str) -> dict:
    a = {"labels": {"alertname": name, "id": id_, **labels}, "startsAt": to_rfc3339(T0 + starts)}
    if ends is not None:
        a["endsAt"] = to_rfc3339(T0 + ends)
    return a


async def test_group_wait_batches_alerts_into_one_notification(redis, key_prefix):
    """Alerts of one group arriving within group_wait are sent together once group_wait has passed."""
    h = await harness(redis, BASE % "true", key_prefix)
    await h.post(alert("A", "1"))
    await h.advance_to(10)
    await h.post(alert("A", "2", starts=10))
    await h.advance_to(29)
    assert h.sent == []
    await h.advance_to(31)
    assert h.summary() == [(30.0, '{}:{alertname="A"}', "firing", [("1", "firing"), ("2", "firing")])]


async def test_new_alert_after_first_flush_waits_for_group_interval(redis, key_prefix):
    """An alert added after the first notification is sent at the next group_interval tick, not at once."""
    h = await harness(redis, BASE % "true", key_prefix)
    await h.post(alert("A", "1"))
    await h.advance_to(60)
    await h.post(alert("A", "2", starts=60))
    await h.advance_to(329)
    assert len(h.sent) == 1
    await h.advance_to(331)
    assert [s[0] for s in h.summary()] == [30.0, 330.0]
    assert h.sent[1].reason == "new alerts"


async def test_resent_alerts_do_not_notify_again_until_repeat_interval(redis, key_prefix):
    """Re-sent firing alerts are deduplicated; the group repeats only after repeat_interval."""
    h = await harness(redis, BASE % "true", key_prefix)
    for t in range(0, 4 * 3600 + 700, 60):
        await h.advance_to(t)
        await h.post(alert("A", "1"))
    times = [s[0] for s in h.summary()]
    # First flush at 30s; group ticks every 5m; the first tick after 4h has elapsed since the last send.
    assert times == [30.0, 30.0 + 49 * 300]
    assert h.sent[1].reason == "repeat interval elapsed"


@pytest.mark.parametrize("send_resolved", [True, False])
async def test_resolved_alert_notification_follows_send_resolved(redis, key_prefix, send_resolved):
    """A resolved alert in a still-firing group is notified only with send_resolved; all resolved always is."""
    h = await harness(redis, BASE % ("true" if send_resolved else "false"), key_prefix)
    await h.post(alert("A", "1"), alert("A", "2"))
    await h.advance_to(40)
    await h.post(alert("A", "2", ends=40))
    await h.advance_to(340)
    await h.post(alert("A", "1", ends=340))
    await h.advance_to(700)
    s = h.summary()
    if send_resolved:
        assert s == [
            (30.0, '{}:{alertname="A"}', "firing", [("1", "firing"), ("2", "firing")]),
            (330.0, '{}:{alertname="A"}', "firing", [("1", "firing"), ("2", "resolved")]),
            (630.0, '{}:{alertname="A"}', "resolved", [("1", "resolved")]),
        ]
    else:
        # Without send_resolved nothing is sent for the partial resolve, and the all-resolved flush is only logged.
        assert s == [(30.0, '{}:{alertname="A"}', "firing", [("1", "firing"), ("2", "firing")])]


async def test_alert_resolved_within_group_wait_is_never_notified(redis, key_prefix):
    """An alert that fires and resolves before the first flush produces no notification."""
    h = await harness(redis, BASE % "true", key_prefix)
    await h.post(alert("A", "1"))
    await h.advance_to(10)
    await h.post(alert("A", "1", ends=10))
    await h.advance_to(3600)
    assert h.sent == []


async def test_old_alert_flushes_immediately(redis, key_prefix):
    """An alert that started longer than group_wait ago is flushed at once (Alertmanager's aggrGroup.insert)."""
    h = await harness(redis, BASE % "true", key_prefix)
    await h.advance_to(100)
    await h.post(alert("A", "1", starts=0))
    await h.advance_to(100)
    assert [s[0] for s in h.summary()] == [100.0]


async def test_resolve_timeout_resolves_alerts_without_ends_at(redis, key_prefix):
    """An alert posted without endsAt resolves resolve_timeout after its last update."""
    h = await harness(redis, BASE % "true", key_prefix)
    await h.post({"labels": {"alertname": "A", "id": "1"}})
    await h.advance_to(5000)
    s = h.summary()
    assert s[0][2] == "firing" and s[-1][2] == "resolved"
    # endsAt = 1h after the post; the next group tick after that is at 30 s + 12 * 5 min.
    assert s[-1][0] == 3630.0
    assert h.sent[-1].alerts[0].ends_at == T0 + 3600


async def test_continue_and_nested_routes_notify_every_matching_receiver(redis, key_prefix):
    """`continue: true` sends an alert down later sibling routes too, each with its own group and timers."""
    cfg = """
route:
  receiver: default
  group_wait: 10s
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
      group_wait: 5s
    - matchers: ['severity=~"crit.*"']
      receiver: oncall
receivers:
  - {name: default, webhook_configs: [{url: "http://127.0.0.1:1/a"}]}
  - {name: db, webhook_configs: [{url: "http://127.0.0.1:1/b"}]}
  - {name: oncall, webhook_configs: [{url: "http://127.0.0.1:1/c"}]}
"""
    h = await harness(redis, cfg, key_prefix)
    await h.post(alert("X", "1", team="db", severity="critical"), alert("Y", "2", team="web"))
    await h.advance_to(60)
    got = sorted((n.receiver, round(n.timestamp - T0), tuple(a.labels["id"] for a in n.alerts)) for n in h.sent)
    assert got == [("db", 5, ("1",)), ("default", 10, ("2",)), ("oncall", 10, ("1",))]


async def test_inhibition_mutes_target_while_source_fires(redis, key_prefix):
    """A firing source alert mutes targets with equal labels; once it resolves, the target is notified."""
    cfg = """
route: {receiver: r, group_by: [alertname], group_wait: 10s, group_interval: 60s}
receivers: [{name: r, webhook_configs: [{url: "http://127.0.0.1:1/a"}]}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
"""
    h = await harness(redis, cfg, key_prefix)
    await h.post(alert("Down", "src", severity="critical", cluster="c1"),
                 alert("Slow", "t1", severity="warning", cluster="c1"),
                 alert("Slow2", "t2", severity="warning", cluster="c2"))
    await h.advance_to(30)
    assert sorted(a.labels["id"] for n in h.sent for a in n.alerts) == ["src", "t2"]
    await h.post(alert("Down", "src", ends=30, severity="critical", cluster="c1"))
    await h.advance_to(80)
    assert [a.labels["id"] for n in h.sent[2:] for a in n.alerts if a.labels["alertname"] == "Slow"] == ["t1"]


async def test_silence_mutes_until_expired(redis, key_prefix):
    """A silenced alert is not notified; expiring the silence lets the next flush notify it."""
    h = await harness(redis, BASE % "true", key_prefix)
    sid = await h.engine.silences.upsert({
        "matchers": [{"name": "id", "value": "1", "isRegex": False}], "startsAt": to_rfc3339(T0),
        "endsAt": to_rfc3339(T0 + 3600), "createdBy": "me", "comment": "maintenance"}, h.clock.now())
    await h.post(alert("A", "1"))
    await h.advance_to(200)
    assert h.sent == []
    await h.engine.silences.expire(sid, h.clock.now())
    await h.advance_to(400)
    assert [s[0] for s in h.summary()] == [330.0]


async def test_two_replicas_flush_each_group_exactly_once(redis, key_prefix):
    """Two engines sharing one Redis, racing on the same due groups, send each notification once."""
    sent: list = []
    a = await harness(redis, BASE % "true", key_prefix, consumer="a", sent=sent)
    b = await harness(redis, BASE % "true", key_prefix, consumer="b", sent=sent, clock=a.clock)
    for i in range(40):
        await (a if i % 2 else b).post(alert(f"G{i % 10}", str(i)))
    a.clock.set(T0 + 31)
    await asyncio.gather(a.engine.step(), b.engine.step(), a.engine.step(), b.engine.step())
    assert len(sent) == 10
    assert sorted(len(n.alerts) for n in sent) == [4] * 10


async def test_lost_claim_cannot_commit(redis, key_prefix):
    """A replica whose claim was taken over (lease expired) cannot commit its flush a second time."""
    h = await harness(redis, BASE % "true", key_prefix)
    await h.post(alert("A", "1"))
    h.clock.set(T0 + 31)
    claimed, _ = await h.engine.scheduler.claim(h.clock.now())
    (gid, token1), = claimed
    h.clock.set(T0 + 31 + 31)  # the 30 s lease ran out: another claim takes over
    claimed2, _ = await h.engine.scheduler.claim(h.clock.now())
    (_, token2), = claimed2
    assert await h.engine.dispatcher.flush(gid, token1) is None
    assert await h.engine.dispatcher.flush(gid, token2) is not None
    await h.engine.outbox.drain()
    assert len(h.sent) == 1
