"""Incident lifecycles run in every correlation domain (tenants), not only the default one."""
from __future__ import annotations

from service.core.clock import to_rfc3339
from tests.pipeline_kit import T0, harness

CONFIG = """
global: {resolve_timeout: 1h}
route: {receiver: r, group_by: [service], group_wait: 10s, group_interval: 1m, tocsin: {min_confidence: 0}}
receivers: [{name: r, webhook_configs: [{url: "http://127.0.0.1:1/a"}]}]
tocsin:
  correlation: {enabled: true, domain_labels: [tenant], quiet_period: 60}
"""


async def test_snooze_ends_and_quiet_incidents_resolve_in_every_domain(redis, key_prefix):
    """A snooze in tenant b's domain ends on time, and its incident resolves after the quiet period."""
    h = await harness(redis, CONFIG, key_prefix)
    await h.post({"labels": {"alertname": "Slow", "service": "api", "tenant": "a"}, "startsAt": to_rfc3339(T0)},
                 {"labels": {"alertname": "Slow", "service": "api", "tenant": "b"}, "startsAt": to_rfc3339(T0)})
    await h.advance_to(20)
    incidents = h.engine.incidents
    assert len(await incidents.domains()) == 3  # default, a, b
    b_ids = [iid for d in await incidents.domains() if d != "default" for iid in
             [x["id"] for x in await incidents.list(domain=d)] if
             (await incidents.get(iid))["members"][0]["labels"]["tenant"] == "b"]
    (iid,) = b_ids
    await incidents.snooze(iid, T0 + 100, "sam")
    await h.advance_to(120)
    assert (await incidents.get(iid))["state"] == "triggered"
    await h.post({"labels": {"alertname": "Slow", "service": "api", "tenant": "b"}, "startsAt": to_rfc3339(T0),
                  "endsAt": to_rfc3339(T0 + 120)})
    await h.advance_to(400)  # quiet for 280 s: less than the incident's 300 s rolling window
    assert (await incidents.get(iid))["state"] == "triggered"
    await h.advance_to(430)
    assert (await incidents.get(iid))["state"] == "resolved"
