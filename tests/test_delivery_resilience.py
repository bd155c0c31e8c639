"""Delivery through outages and replica failures: every message once and in order through Slack's 429s and
500s, and escalation levels fired once by two replicas even when one dies holding a claim."""
from __future__ import annotations

import asyncio
import json

from service.core.clock import ManualClock, to_rfc3339
from service.pipeline.engine import default_receiver_factory
from service.store.keys import ms
from tests.fakes.slack import FakeSlack
from tests.pipeline_kit import T0, harness

SLACK = """
global: {resolve_timeout: 4h}
route:
  receiver: team
  group_by: [service]
  group_wait: 10s
  group_interval: 30s
receivers:
  - name: team
    slack_configs:
      - {channel: "#team", bot_token: xoxb-fake-token, api_base_url: "%s", send_resolved: true, max_wait: 0}
"""


def alert(service: str, name: str, starts: float = 0) -> dict:
    return {"labels": {"alertname": name, "service": service}, "startsAt": to_rfc3339(T0 + starts)}


async def run_with_time(clock: ManualClock, coro, step: float = 0.5, limit: float = 3600) -> None:
    """Run `coro` while moving the manual clock forward, so that its backoff sleeps complete."""
    task = asyncio.ensure_future(coro)
    moved = 0.0
    while not task.done():
        await asyncio.sleep(0.005)
        if not task.done():
            clock.advance(step)
            moved += step
            assert moved < limit, "delivery did not finish"
    await task


async def test_slack_429_then_500s_every_message_once_in_order(redis, key_prefix):
    """With Slack answering 429 and then 500s for a while, each group's message arrives once and its edits
    arrive in the order they were decided."""
    async with FakeSlack() as slack:
        h = await harness(redis, SLACK % slack.base_url, key_prefix, consumer="c",
                          receiver_factory=default_receiver_factory)
        engine, clock = h.engine, h.clock
        try:
            await h.post(alert("a", "A1"), alert("b", "B1"), alert("c", "C1"))
            slack.fail_next(429, times=1, retry_after=3)
            slack.fail_next(500, times=6)
            clock.set(T0 + 11)
            await engine.scheduler.run_due()
            await run_with_time(clock, engine.outbox.drain())
            assert len(slack.messages) == 3
            # a second alert in group a: the next flush edits a's message (after more failures)
            await h.post(alert("a", "A2", starts=clock.now() - T0))
            slack.fail_next(500, times=3)
            clock.set(T0 + 10 + 30 * ((clock.now() - T0 - 10) // 30 + 1) + 1)
            await engine.scheduler.run_due()
            await run_with_time(clock, engine.outbox.drain())
            assert len(slack.messages) == 3  # edited, not posted again
            a_msg = next(m for m in slack.messages if "A1" in json.dumps(m.blocks))
            assert a_msg.edits, "the update must edit the posted message"
            assert "A2" in json.dumps(slack.message(a_msg.ts).blocks)
            posts = [r for r in slack.requests if r["method"] == "chat.postMessage" and r["status"] == 200
                     and not r["body"].get("thread_ts")]
            assert len(posts) == 3
            statuses = [r["status"] for r in slack.requests]
            assert statuses.count(429) == 1 and statuses.count(500) == 9  # the outage really happened
        finally:
            await engine.close()


ESCALATION = """
global: {resolve_timeout: 4h}
route:
  receiver: team
  group_by: [service]
  group_wait: 10s
  group_interval: 1m
  tocsin: {escalation: three, min_confidence: 0}
receivers:
  - {name: team, webhook_configs: [{url: "http://127.0.0.1:1/team"}]}
  - {name: l1, webhook_configs: [{url: "http://127.0.0.1:1/l1"}]}
  - {name: l2, webhook_configs: [{url: "http://127.0.0.1:1/l2"}]}
  - {name: l3, webhook_configs: [{url: "http://127.0.0.1:1/l3"}]}
tocsin:
  correlation: {enabled: true}
  escalation:
    policies:
      three:
        levels:
          - {delay: 2m, targets: [{receiver: l1}]}
          - {delay: 2m, targets: [{receiver: l2}]}
          - {delay: 2m, targets: [{receiver: l3}]}
"""


async def test_two_replicas_fire_each_escalation_level_once_even_if_one_dies(redis, key_prefix):
    """Two replicas share the escalation timers: each level fires exactly once; a replica that dies holding a
    claim loses nothing, the other fires that level after the lease."""
    sent: list = []
    clock = ManualClock(T0)
    a = await harness(redis, ESCALATION, key_prefix, consumer="a", sent=sent, clock=clock)
    b = await harness(redis, ESCALATION, key_prefix, consumer="b", sent=sent, clock=clock)
    try:
        await a.post(alert("db", "Slow"))
        clock.set(T0 + 10)
        await asyncio.gather(a.engine.step(), b.engine.step())
        assert [n.receiver for n in sent] == ["team"]
        clock.set(T0 + 130)  # level 1 due at 10 + 120
        await asyncio.gather(a.engine.step(), b.engine.step(), a.engine.step(), b.engine.step())
        assert sorted(n.receiver for n in sent) == ["l1", "team"]

        # Replica a claims level 2 and dies before committing it.
        clock.set(T0 + 250)
        esc = a.engine.escalator
        pipe = redis.pipeline(transaction=False)
        for shard in range(a.engine.keys.shards):
            pipe.evalsha(a.engine.scripts.claim_due_groups.sha, 2, a.engine.keys.esc_due(shard),
                         a.engine.keys.esc_claims(shard), ms(clock.now()), ms(esc.lease), 64, "dead-replica")
        claimed = [r for r in await pipe.execute() if len(r) > 1]
        assert claimed, "the dying replica held the level-2 claim"
        await b.engine.step()
        assert sorted(n.receiver for n in sent) == ["l1", "team"]  # b waits for the lease
        clock.set(T0 + 250 + esc.lease + 1)
        await b.engine.step()
        await b.engine.step()
        assert sorted(n.receiver for n in sent) == ["l1", "l2", "team"]
        clock.set(T0 + 250 + esc.lease + 1 + 121)
        await b.engine.step()
        clock.set(T0 + 3600)
        await b.engine.step()
        assert sorted(n.receiver for n in sent) == ["l1", "l2", "l3", "team"]

        # Resolved by hand: every level's target hears it once (a PagerDuty incident a level opened is resolved).
        iid = sent[0].incident["id"]
        await b.engine.incidents.resolve(iid, "sam")
        clock.set(T0 + 3600 + 61)
        await asyncio.gather(a.engine.step(), b.engine.step())
        closing = [n for n in sent if n.reason.startswith("escalation stopped")]
        assert sorted(n.receiver for n in closing) == ["l1", "l2", "l3"]
        assert all(n.status == "resolved" for n in closing)
        clock.set(T0 + 7200)
        await asyncio.gather(a.engine.step(), b.engine.step())
        assert len([n for n in sent if n.reason.startswith("escalation")]) == 6
    finally:
        await a.engine.close()
        await b.engine.close()
