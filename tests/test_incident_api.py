"""The incident API: incidents with the explanation of every join, severity and confidence factors,
root-cause candidates, and the manual actions ack / resolve / merge / split."""
from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from service.http.app import create_app
from service.http.appkeys import ENGINE
from service.core.clock import ManualClock, to_rfc3339
from service.config.sections import parse_config
from service.pipeline.engine import recording_factory

T0 = 1_800_000_000.0

CONFIG = """
global: {resolve_timeout: 1h}
route:
  receiver: team
  group_by: [service]
  group_wait: 30s
  group_interval: 1m
  tocsin: {min_confidence: 0}
receivers:
  - {name: team, webhook_configs: [{url: "http://127.0.0.1:1/hook"}]}
tocsin:
  correlation:
    enabled: true
    topology: {web: [checkout], checkout: [payments-db]}
"""


@pytest.fixture
async def api(redis_url, key_prefix):
    cfg = parse_config(CONFIG)
    cfg.tocsin.redis.url = redis_url
    cfg.tocsin.redis.key_prefix = key_prefix
    clock = ManualClock(T0)
    sent: list = []
    app = create_app("unused.yml", cfg=cfg, clock=clock, background=False, receiver_factory=recording_factory(sent))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        yield http, app, clock, sent
    await server.close()


async def post(http, clock, *alerts):
    r = await http.post("/api/v2/alerts", json=[
        {"labels": labels, "annotations": {"summary": labels["alertname"]}, "startsAt": to_rfc3339(clock.now())}
        for labels in alerts])
    assert r.status == 200, await r.text()


async def cascade(http, app, clock):
    await post(http, clock, {"alertname": "DBLatencyHigh", "service": "payments-db", "severity": "critical",
                             "instance": "db-0"})
    clock.set(T0 + 20)
    await post(http, clock, {"alertname": "HighLatency", "service": "checkout", "severity": "warning"})
    clock.set(T0 + 40)
    await post(http, clock, {"alertname": "Http5xx", "service": "web", "severity": "warning"})
    clock.set(T0 + 100)
    await app[ENGINE].step()


async def test_a_cascade_is_one_incident_with_explained_joins(api):
    """A database fault spreading to its callers is one incident; every join, factor and candidate is explained."""
    http, app, clock, sent = api
    await cascade(http, app, clock)
    items = await (await http.get("/api/v1/incidents")).json()
    assert len(items) == 1
    inc = await (await http.get(f"/api/v1/incidents/{items[0]['id']}")).json()
    assert len(inc["members"]) == 3
    joined = [m for m in inc["members"] if m["labels"]["service"] != "payments-db"]
    for m in joined:
        assert m["joined_by"] and all({"signal", "score", "detail"} <= set(r) for r in m["joined_by"])
    assert {r["signal"] for m in joined for r in m["joined_by"]} & {"topology", "time"}
    assert inc["severity"] in ("critical", "error") and inc["severity_factors"]
    assert all({"factor", "contribution", "explanation"} <= set(f) for f in inc["severity_factors"])
    assert 0 <= inc["confidence"] <= 1 and inc["confidence_factors"]
    assert inc["root_causes"][0]["service"] == "payments-db"
    assert inc["root_causes"][0]["evidence"]
    assert "evidence" not in inc or inc["evidence"]  # the evidence pack, when a summarizer is set up
    firsts = [n for n in sent if n.reason == "first notification"]
    assert len(firsts) == 1 and firsts[0].incident["id"] == inc["id"]


async def test_actions_and_filters(api):
    """Ack changes the state and is recorded with who did it; filters select by state and severity."""
    http, app, clock, sent = api
    await cascade(http, app, clock)
    (inc,) = await (await http.get("/api/v1/incidents")).json()
    r = await http.post(f"/api/v1/incidents/{inc['id']}/ack", json={"by": "sam"})
    assert r.status == 200
    after = await r.json()
    assert after["state"] == "acknowledged" and after["acked_by"] == "sam"
    assert any(t["event"].startswith("ack") for t in after["timeline"])
    assert await (await http.get("/api/v1/incidents?state=triggered")).json() == []
    assert len(await (await http.get("/api/v1/incidents?state=acknowledged")).json()) == 1
    assert (await http.get("/api/v1/incidents?state=bogus")).status == 400
    assert (await http.get("/api/v1/incidents/inc-nope")).status == 404
    clock.set(T0 + 101)
    await app[ENGINE].step()
    assert any(n.reason == "incident updated" and n.incident["state"] == "acknowledged" for n in sent)


async def test_split_and_merge_by_hand(api):
    """Splitting members out creates a second incident; merging it back leaves one; both are recorded."""
    http, app, clock, sent = api
    await cascade(http, app, clock)
    (inc,) = await (await http.get("/api/v1/incidents")).json()
    web_fp = next(m["fingerprint"] for m in inc["members"] if m["labels"]["service"] == "web")
    r = await http.post(f"/api/v1/incidents/{inc['id']}/split", json={"fingerprints": [web_fp], "by": "sam"})
    assert r.status == 200, await r.text()
    new = await r.json()
    assert [m["fingerprint"] for m in new["members"]] == [web_fp]
    assert len(await (await http.get("/api/v1/incidents")).json()) == 2
    assert (await http.post(f"/api/v1/incidents/{inc['id']}/split", json={"fingerprints": []})).status == 400
    r = await http.post(f"/api/v1/incidents/{inc['id']}/merge", json={"other": new["id"], "by": "sam"})
    assert r.status == 200, await r.text()
    merged = await r.json()
    assert len(merged["members"]) == 3
    open_ids = {i["id"] for i in await (await http.get("/api/v1/incidents")).json() if not i.get("merged_into")}
    assert inc["id"] in open_ids


async def test_summary_feedback_is_stored_and_reported(api):
    """Helpful / not helpful votes on a summary are kept per incident and reported as a share."""
    http, app, clock, sent = api
    await cascade(http, app, clock)
    (inc,) = await (await http.get("/api/v1/incidents")).json()
    assert (await http.get("/api/v1/summaries/feedback")).status == 200
    for who, helpful in (("ann", True), ("bob", False), ("cy", True)):
        r = await http.post(f"/api/v1/incidents/{inc['id']}/feedback", json={"helpful": helpful, "by": who})
        assert r.status == 200
    got = await (await http.get(f"/api/v1/incidents/{inc['id']}")).json()
    assert got["summary_feedback"]["helpful"] == 2 and got["summary_feedback"]["not_helpful"] == 1
    share = (await (await http.get("/api/v1/summaries/feedback")).json())["helpful_share"]
    assert abs(share - 2 / 3) < 1e-9
    assert (await http.post(f"/api/v1/incidents/{inc['id']}/feedback", json={"helpful": "yes"})).status == 400


async def test_a_resolved_incident_cannot_be_acknowledged_or_snoozed(api):
    """A stale button or late webhook cannot revive a resolved incident: ack and snooze answer 409."""
    http, app, clock, sent = api
    await cascade(http, app, clock)
    (inc,) = await (await http.get("/api/v1/incidents")).json()
    assert (await http.post(f"/api/v1/incidents/{inc['id']}/resolve", json={"by": "sam"})).status == 200
    assert (await http.post(f"/api/v1/incidents/{inc['id']}/ack", json={"by": "kim"})).status == 409
    assert (await http.post(f"/api/v1/incidents/{inc['id']}/snooze", json={"seconds": 60})).status == 409
    assert (await (await http.get(f"/api/v1/incidents/{inc['id']}")).json())["state"] == "resolved"
