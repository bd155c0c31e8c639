"""Digests in event time: incidents routed to a digest go out together at the scheduled
times; one that grows past the configured severity is taken out and notified at once."""
from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from routing.receivers.digest import Schedule, next_run
from structlog.testing import capture_logs

from service.core.clock import to_rfc3339
from service.pipeline.engine import default_receiver_factory
from tests.fakes.slack import FakeSlack
from tests.pipeline_kit import T0, harness

CONFIG = """
global: {resolve_timeout: 4h}
route:
  receiver: digest
  group_by: [service]
  group_wait: 30s
  group_interval: 2m
  tocsin: {min_confidence: 0}
receivers:
  - name: digest
    digest_configs:
      - schedule: {every: 1h}
        escalate: {severity: critical, receiver: oncall}
        webhook: {url: "http://127.0.0.1:%(port)d/digest"}
  - name: oncall
    webhook_configs: [{url: "http://127.0.0.1:%(port)d/oncall"}]
tocsin:
  correlation: {enabled: true}
"""


@pytest.fixture
async def capture():
    got: dict[str, list] = {"digest": [], "oncall": []}

    async def handle(request: web.Request) -> web.Response:
        got[request.match_info["name"]].append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/{name}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server.port, got
    await server.close()


def alert(service: str, name: str, severity: str, starts: float) -> dict:
    return {"labels": {"alertname": name, "service": service, "severity": severity},
            "annotations": {"summary": f"{name} on {service}"}, "startsAt": to_rfc3339(T0 + starts)}


async def test_digest_goes_out_on_schedule_and_growing_items_escape(redis, key_prefix, capture):
    """Two quiet incidents arrive in one hourly digest; one turning critical is paged at once, not digested."""
    port, got = capture
    h = await harness(redis, CONFIG % {"port": port}, key_prefix, receiver_factory=default_receiver_factory)
    engine = h.engine
    try:
        await h.post(alert("billing", "QueueBacklog", "warning", 0))
        await h.advance_to(600)
        await h.post(alert("search", "IndexLag", "warning", 600))
        await h.advance_to(3599)
        assert got["digest"] == [] and got["oncall"] == []
        await h.advance_to(3601)
        assert len(got["digest"]) == 1
        d = got["digest"][0]
        assert d["total"] == 2 and d["end"] == T0 + 3600
        assert sorted(i["title"].split()[0] for i in d["items"]) == ["billing", "search"]

        # billing grows: a critical alert joins its incident; it leaves the digest and pages now
        await h.advance_to(3700)
        await h.post(alert("billing", "PaymentsFailing", "critical", 3700))
        await h.advance_to(3700 + 130)
        assert len(got["oncall"]) == 1
        assert got["oncall"][0]["groupLabels"]["incident"]
        await h.advance_to(7201)
        later = [i for dg in got["digest"][1:] for i in dg["items"]]
        assert all(not i["title"].startswith("billing") for i in later)
    finally:
        await engine.close()


@pytest.mark.parametrize("schedule, after, expected", [
    ({"every": "1h"}, T0 + 10, T0 + 3600),
    ({"every": "15m"}, T0 + 900, T0 + 1800),
    ({"cron": "0 9 * * *", "timezone": "Europe/Berlin"}, 1_767_225_600.0, 1_767_254_400.0),  # 2026-01-01 09:00 CET
    ({"cron": "30 17 * * 1-5", "timezone": "UTC"}, 1_767_225_600.0, 1_767_288_600.0),  # Thu 2026-01-01 17:30
])
def test_next_run(schedule, after, expected):
    """A digest schedule gives the first run strictly after a time, in its time zone."""
    assert next_run(Schedule.model_validate(schedule), after) == expected


def test_schedule_needs_exactly_one_kind():
    """A schedule with both or neither of every/cron, or a bad time zone, is rejected."""
    for bad in ({}, {"every": "1h", "cron": "* * * * *"}, {"cron": "nope"}, {"every": "1h", "timezone": "Mars/Base"}):
        with pytest.raises(ValueError):
            Schedule.model_validate(bad)


SLACK_DIGEST = """
global: {resolve_timeout: 4h}
route:
  receiver: digest
  group_by: [service]
  group_wait: 30s
  tocsin: {min_confidence: 0}
receivers:
  - name: digest
    digest_configs:
      - schedule: {every: 1h}
        slack: {channel: "#digest", bot_token: xoxb-fake-token, api_base_url: "%(slack)s"}
tocsin:
  correlation: {enabled: true}
"""


@pytest.mark.parametrize("error, retried", [("channel_not_found", False), ("ratelimited", True)])
async def test_a_slack_api_error_on_a_digest_is_a_failure_with_the_slack_error(redis, key_prefix, error, retried):
    """Slack answering HTTP 200 with ok:false fails the digest with Slack's error (retried when Slack says it may
    pass), never reported as "ok"."""
    async with FakeSlack() as slack:
        h = await harness(redis, SLACK_DIGEST % {"slack": slack.base_url}, key_prefix,
                          receiver_factory=default_receiver_factory)
        engine = h.engine
        try:
            await h.post(alert("billing", "QueueBacklog", "warning", 0))
            await h.advance_to(600)
            slack.fail_next(200, error=error, method="chat.postMessage")
            with capture_logs() as logs:
                await h.advance_to(3601)
            failures = [e for e in logs if e["event"] in ("digest_dropped", "digest_failed")]
            assert [e["event"] for e in failures] == ["digest_failed" if retried else "digest_dropped"]
            reason = failures[0].get("reason") or failures[0].get("error")
            assert f"slack error: {error}" in reason and "ok" not in reason.split(":")[0]
            assert slack.messages == []
            if retried:  # the run moved 60 s ahead: the digest goes out then
                await h.advance_to(3601 + 60)
                assert len(slack.messages) == 1
        finally:
            await engine.close()


HELD = """
global: {resolve_timeout: 4h}
route:
  receiver: oncall
  group_by: [service]
  group_wait: 30s
  group_interval: 2m
  tocsin: {min_confidence: 0.6, held_receiver: digest}
receivers:
  - name: digest
    digest_configs:
      - schedule: {every: 1h}
        webhook: {url: "http://127.0.0.1:%(port)d/digest"}
  - name: oncall
    webhook_configs: [{url: "http://127.0.0.1:%(port)d/oncall"}]
tocsin:
  correlation: {enabled: true}
"""


async def test_incidents_held_below_the_floor_go_to_the_held_receiver_and_page_once_they_are_likely(
        redis, key_prefix, capture):
    """A lone blip below the route's min_confidence is not paged: the incident says it is held, and it reaches the
    route's held_receiver (a digest) instead. An alert that keeps firing becomes likely enough and pages through
    the route's receiver; its hold is released in the snapshot and the timeline."""
    port, got = capture
    h = await harness(redis, HELD % {"port": port}, key_prefix, receiver_factory=default_receiver_factory)
    engine = h.engine
    try:
        blip = alert("billing", "QueueBacklog", "warning", 0)
        await h.post(blip)
        await h.advance_to(60)
        await h.post({**blip, "endsAt": to_rfc3339(T0 + 60)})
        await h.post(alert("search", "IndexLag", "warning", 60))
        await h.advance_to(95)
        held = {i["title"].split()[0]: i for i in await engine.incidents.list()}
        assert held["billing"]["held"]["floor"] == 0.6 and held["billing"]["held"]["receiver"] == "digest"
        assert held["search"]["held"] and got["oncall"] == []
        await h.advance_to(1800)  # search kept firing: likely enough, paged; billing stays held (one sample)
        assert len(got["oncall"]) == 1 and got["oncall"][0]["alerts"][0]["labels"]["service"] == "search"
        now = {i["title"].split()[0]: i for i in await engine.incidents.list()}
        assert now["search"]["held"] is None and now["billing"]["held"]
        events = [e["event"] for e in now["search"]["timeline"]]
        assert events.index("held") < events.index("released")
        await h.advance_to(3601)
        assert len(got["digest"]) == 1
        titles = sorted(i["title"].split()[0] for i in got["digest"][0]["items"])
        assert titles[0] == "billing" and len(got["oncall"]) == 1
    finally:
        await engine.close()
