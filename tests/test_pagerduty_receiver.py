"""The PagerDuty receiver against a fake Events API v2."""
from __future__ import annotations

import pytest

from routing.receivers.base import NotifyError
from routing.receivers.pagerduty import PagerDutyReceiver, dedup_key_for
from service.core.clock import ManualClock
from service.core.errors import ConfigError
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.samples import alert, incident, notification

KEY = "R0UT1NGKEY0123456789abcdef012345"


def receiver(pd: FakePagerDuty, **kw) -> PagerDutyReceiver:
    return PagerDutyReceiver.from_config({"routing_key": KEY, "events_url": pd.events_url, **kw},
                                         "receivers[0].pagerduty_configs[0]", "pagerduty/0", ManualClock(1.7e9))


async def test_trigger_carries_incident_details():
    """A firing incident triggers one PagerDuty event keyed by the incident id, with severity, details and links."""
    async with FakePagerDuty() as pd:
        r = receiver(pd)
        d = await r.send(notification(incident_snapshot=incident()))
        await r.close()
        (ev,) = pd.events
        assert ev["event_action"] == "trigger" and ev["dedup_key"] == "inc-20261123-7f3a2c"
        assert d.state == {"dedup_key": "inc-20261123-7f3a2c", "action": "trigger"}
        p = ev["payload"]
        assert p["severity"] == "critical" and p["source"] == "payments"
        assert p["summary"].startswith("[CRITICAL] payments-db latency + 2 related alerts")
        cd = p["custom_details"]
        assert [m["fingerprint"] for m in cd["members"]] == ["f1", "f2"]
        assert cd["severity_factors"][0]["explanation"] == "an alert is labelled severity=critical"
        assert cd["summary"]["headline"] == "Database latency is driving API errors"
        assert cd["root_causes"][0]["metric"] == "db_latency_seconds"
        assert ev["links"][0] == {"href": "http://tocsin.example/api/v1/incidents/inc-20261123-7f3a2c",
                                  "text": "Incident in Tocsin"}
        assert ev["client_url"] == "http://tocsin.example/api/v1/incidents/inc-20261123-7f3a2c"


async def test_trigger_ack_resolve_lifecycle():
    """trigger, then acknowledge (e.g. from Slack) and resolve reach the same PagerDuty incident."""
    async with FakePagerDuty() as pd:
        r = receiver(pd)
        n = notification(incident_snapshot=incident())
        await r.send(n)
        await r.acknowledge(dedup_key_for(n))
        assert pd.incidents[dedup_key_for(n)]["status"] == "acknowledged"
        await r.send(notification(incident_snapshot=incident(state="resolved"), status="resolved", nid="n2"))
        await r.close()
        assert pd.actions("inc-20261123-7f3a2c") == ["trigger", "acknowledge", "resolve"]
        assert pd.incidents["inc-20261123-7f3a2c"]["status"] == "resolved"
        assert all(e["routing_key"] == KEY for e in pd.events)


async def test_group_without_incident_uses_group_key_and_severity_label():
    """Without an incident the dedup_key is the group key and severity comes from the severity label."""
    async with FakePagerDuty() as pd:
        r = receiver(pd)
        n = notification(alerts=[alert(severity="page")])
        await r.send(n)
        await r.close()
        (ev,) = pd.events
        assert ev["dedup_key"] == n.group_key and ev["payload"]["severity"] == "critical"
        assert ev["payload"]["custom_details"]["num_firing"] == 1


def test_long_group_key_is_hashed_to_255():
    """A group key over 255 characters becomes a stable hashed dedup_key within PagerDuty's limit."""
    n = notification(group_key="{}:" + "x" * 400)
    k = dedup_key_for(n)
    assert len(k) <= 255 and k == dedup_key_for(notification(group_key="{}:" + "x" * 400))


async def test_400_is_not_retryable():
    """An event PagerDuty rejects with 400 raises a non-retryable NotifyError without the routing key."""
    async with FakePagerDuty() as pd:
        r = PagerDutyReceiver("pagerduty/0", ManualClock(), routing_key=KEY, events_url=pd.events_url)
        with pytest.raises(NotifyError) as ei:
            await r.acknowledge("")  # no dedup_key: refused before sending
        assert not ei.value.retryable
        r2 = PagerDutyReceiver("pagerduty/0", ManualClock(), routing_key=" ", events_url=pd.events_url)
        with pytest.raises(NotifyError) as ei:
            await r2.send(notification())
        assert not ei.value.retryable and ei.value.status == 400
        await r.close()
        await r2.close()


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_429_and_5xx_are_retryable(status):
    """429 and 5xx answers raise retryable NotifyErrors; the routing key never appears in them."""
    async with FakePagerDuty() as pd:
        r = receiver(pd)
        pd.fail_next(status, retry_after=5 if status == 429 else None)
        with pytest.raises(NotifyError) as ei:
            await r.send(notification(incident_snapshot=incident()))
        assert ei.value.retryable and ei.value.status == status and KEY not in str(ei.value)
        if status == 429:
            assert ei.value.retry_after == 5
        await r.send(notification(incident_snapshot=incident()))
        await r.close()
        assert len(pd.events) == 1


async def test_network_error_is_retryable():
    """An unreachable Events API is a retryable error."""
    r = PagerDutyReceiver("pagerduty/0", ManualClock(), routing_key=KEY, events_url="http://127.0.0.1:9/v2/enqueue")
    with pytest.raises(NotifyError) as ei:
        await r.send(notification())
    await r.close()
    assert ei.value.retryable and KEY not in str(ei.value)


@pytest.mark.parametrize("cfg,path", [
    ({}, "p"),
    ({"routing_key": KEY, "service_key": KEY}, "p.service_key"),
    ({"routing_key": KEY, "severity": "page"}, "p.severity"),
    ({"routing_key": KEY, "events_url": "ftp://x"}, "p.events_url"),
    ({"routing_key": KEY, "bogus": 1}, "p.bogus"),
    ({"routing_key": KEY, "details": {"a": 1}}, "p.details.a"),
    ({"routing_key": KEY, "links": [{"href": "http://x", "txt": "y"}]}, "p.links[0].txt"),
    ({"routing_key_file": "/nonexistent"}, "p.routing_key_file"),
])
def test_bad_config_names_the_field(cfg, path):
    """Bad pagerduty_configs entries raise ConfigError naming the bad key, never showing the routing key."""
    with pytest.raises(ConfigError) as ei:
        PagerDutyReceiver.from_config(cfg, "p", "pagerduty/0", ManualClock())
    assert ei.value.path == path and KEY not in str(ei.value)


async def test_alertmanager_config_keys(tmp_path):
    """routing_key_file, url, client, details and Go-template values from an Alertmanager config work; the
    templated description and details are rendered as Alertmanager renders them."""
    f = tmp_path / "rk"
    f.write_text(KEY)
    async with FakePagerDuty() as pd:
        r = PagerDutyReceiver.from_config({"routing_key_file": str(f), "url": pd.events_url, "client": "Acme",
                                           "description": "{{ template \"pagerduty.default.description\" . }}",
                                           "details": {"team": "payments", "x": "{{ .CommonLabels }}"},
                                           "send_resolved": False}, "p", "pagerduty/0", ManualClock())
        await r.send(notification(incident_snapshot=incident()))
        await r.close()
        ev = pd.events[0]
        assert ev["routing_key"] == KEY and ev["client"] == "Acme" and not r.send_resolved
        assert ev["payload"]["custom_details"]["team"] == "payments"
        assert ev["payload"]["custom_details"]["x"] == "map[alertname:HighLatency severity:warning]"
        assert ev["payload"]["summary"] == "[FIRING:1] HighLatency (warning)"


async def test_pacing_per_routing_key_after_429():
    """With a pacer, a 429 holds back only that routing key; another key still sends."""
    from routing.receivers.ratelimit import ChannelPacer
    clock = ManualClock(1.7e9)
    pacer = ChannelPacer(clock, interval=0.5, max_wait=0.0)
    async with FakePagerDuty() as pd:
        a = PagerDutyReceiver("pagerduty/0", clock, routing_key=KEY, events_url=pd.events_url, pacer=pacer, max_wait=0)
        b = PagerDutyReceiver("pagerduty/1", clock, routing_key="B" * 32, events_url=pd.events_url, pacer=pacer, max_wait=0)
        pd.fail_next(429, retry_after=20)
        with pytest.raises(NotifyError):
            await a.send(notification(incident_snapshot=incident()))
        await b.send(notification(incident_snapshot=incident()))
        with pytest.raises(NotifyError) as ei:
            await a.send(notification(incident_snapshot=incident()))
        assert ei.value.retryable and ei.value.retry_after == 20
        clock.advance(20)
        await a.send(notification(incident_snapshot=incident()))
        await a.close()
        await b.close()
        assert [e["routing_key"] for e in pd.events] == ["B" * 32, KEY]
