"""Nothing dropped in silence: routes to receivers Tocsin cannot deliver are config errors, and every notification
that cannot be delivered is logged and counted in tocsin_notifications_failed_total{integration,reason}."""
from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from service.core.clock import ManualClock, to_rfc3339
from service.config.sections import parse_config
from service.pipeline.engine import Engine, default_receiver_factory
from service.core.errors import ConfigErrors
from tests.fakes.receivers import FakeReceivers
from tests.pipeline_kit import T0, Harness, make_config

RC = "rocketchat_configs: [{channel: '#alerts'}]"  # Rocket.Chat (Alertmanager 0.28+): not delivered by Tocsin


def failed(engine: Engine, integration: str, reason: str) -> float:
    v = engine.metrics.registry.get_sample_value("tocsin_notifications_failed_total",
                                                 {"receiver": "aws" if integration == "rocketchat" else "team",
                                                  "integration": integration, "reason": reason})
    return v or 0.0


def test_route_to_a_receiver_with_only_undeliverable_integrations_is_an_error():
    """A route whose receiver has only integrations Tocsin cannot deliver is an error at that route, naming them."""
    with pytest.raises(ConfigErrors) as ei:
        parse_config(f"route: {{receiver: team, routes: [{{receiver: aws, matchers: [a=b]}}]}}\n"
                     f"receivers:\n- name: team\n- name: aws\n  {RC}\n")
    (err,) = ei.value.errors
    assert err.path == "route.routes[0].receiver" and "rocketchat_configs" in err.message
    assert "allow_undeliverable_receivers" in err.message


def test_empty_receivers_and_mixed_receivers_are_fine():
    """A receiver with no integrations (a deliberate black hole, as in Alertmanager) and one with a deliverable
    integration next to an undeliverable one are accepted; the undeliverable one is a warning."""
    cfg = parse_config(f"route: {{receiver: blackhole}}\nreceivers:\n- name: blackhole\n- name: aws\n  {RC}\n"
                       "  webhook_configs: [{url: 'http://127.0.0.1:9/'}]\n")
    assert any("rocketchat_configs" in w for w in cfg.warnings)


async def test_allowed_undeliverable_receiver_counts_and_logs_every_notification(redis, key_prefix):
    """With tocsin.allow_undeliverable_receivers, an alert for a Rocket.Chat-only receiver is not sent but logged and
    counted as failed with reason "undeliverable"."""
    cfg = make_config(f"route: {{receiver: aws, group_wait: 0s}}\nreceivers:\n- name: aws\n  {RC}\n"
                      "tocsin: {allow_undeliverable_receivers: true}\n", key_prefix)
    clock = ManualClock(T0)
    engine = Engine(cfg, redis, clock, consumer="c", receiver_factory=default_receiver_factory)
    await engine.start()
    try:
        with capture_logs() as logs:
            await Harness(clock, direct=engine).post({"labels": {"alertname": "A"}, "startsAt": to_rfc3339(T0)})
            clock.set(T0 + 1)
            await engine.step()
        assert failed(engine, "rocketchat", "undeliverable") == 1.0
        assert any(e["event"] == "delivery_failed" and e["integration"] == "aws/rocketchat/0" for e in logs)
    finally:
        await engine.close()


async def test_failed_deliveries_are_counted_with_a_bounded_reason(redis, key_prefix):
    """A permanent 4xx is logged and counted with Alertmanager's reason label (clientError), not the error text."""
    async with FakeReceivers() as fake:
        cfg = make_config("route: {receiver: team, group_wait: 0s}\nreceivers:\n- name: team\n"
                          f"  discord_configs: [{{webhook_url: '{fake.url}/discord/x'}}]\n", key_prefix)
        clock = ManualClock(T0)
        engine = Engine(cfg, redis, clock, consumer="c", receiver_factory=default_receiver_factory)
        await engine.start()
        try:
            fake.fail("discord", 400)
            with capture_logs() as logs:
                await Harness(clock, direct=engine).post({"labels": {"alertname": "A"}, "startsAt": to_rfc3339(T0)})
                clock.set(T0 + 1)
                await engine.step()
            assert failed(engine, "discord", "clientError") == 1.0
            assert any(e["event"] == "delivery_failed" and not e["retryable"] for e in logs)
        finally:
            await engine.close()
