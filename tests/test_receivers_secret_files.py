"""`_file` secrets of the Slack and PagerDuty receivers are read when sending, as Alertmanager reads them."""
from __future__ import annotations

import pytest
import yaml

from routing.receivers.base import NotifyError
from service.core.clock import ManualClock
from service.config.sections import parse_config
from service.pipeline.engine import default_receiver_factory
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.samples import T0, notification

KEY = "R0UT1NGKEY0123456789abcdef012345"


def build(conf: dict, kind: str = "pagerduty"):
    cfg = parse_config(yaml.safe_dump({"route": {"receiver": "r"},
                                       "receivers": [{"name": "r", f"{kind}_configs": [conf]}]}))
    ((k, c),) = cfg.receivers["r"].integrations
    return default_receiver_factory(f"r/{k}/0", k, c, cfg, ManualClock(T0 + 60))


async def test_missing_routing_key_file_is_a_delivery_error_then_read_when_it_appears(tmp_path):
    """A routing_key_file that does not exist yet loads fine; sending fails naming the path; once the file is
    there the next send uses its content, and a rotated key is picked up without a reload."""
    path = tmp_path / "pd-key"
    async with FakePagerDuty() as pd:
        r = build({"routing_key_file": str(path), "url": pd.events_url})
        with pytest.raises(NotifyError) as ei:
            await r.send(notification())
        assert str(path) in ei.value.reason and not ei.value.retryable and ei.value.label == "secretFileUnreadable"
        path.write_text(KEY + "\n")
        await r.send(notification())
        path.write_text("ROTATED" + KEY[7:] + "\n")
        await r.send(notification(nid="n2"))
        await r.close()
    assert [e["routing_key"] for e in pd.events] == [KEY, "ROTATED" + KEY[7:]]


def test_slack_api_url_file_is_not_read_at_load(tmp_path):
    """A Slack api_url_file (or the global slack_api_url_file) missing on the checking machine is not a config
    error, as in Alertmanager."""
    r = build({"api_url_file": str(tmp_path / "nope"), "channel": "#x"}, "slack")
    assert r.send_resolved is False
