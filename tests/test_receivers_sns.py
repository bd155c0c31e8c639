"""The SNS receiver (botocore SigV4 + the shared sender) against moto's SNS server on 127.0.0.1, read back through
an SQS queue subscribed to the topic: the real Publish wire format end to end."""
from __future__ import annotations

import json
import socket

import pytest
import yaml

from routing.receivers.base import NotifyError
from service.core.clock import ManualClock
from service.config.sections import parse_config
from service.pipeline.engine import default_receiver_factory
from tests.fakes.receivers import FakeReceivers
from tests.fakes.samples import T0, alert, notification

import boto3  # noqa: E402
import moto.server as moto_server  # noqa: E402

KEYS = {"access_key": "AKIDEXAMPLE", "secret_key": "wJalrXUtnFEMI-sns-secret-key"}
REGION = "us-east-2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def clients(url: str):
    kw = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x")
    return boto3.client("sns", **kw), boto3.client("sqs", **kw)


def topic_with_queue(url: str, name: str) -> tuple[str, str, object]:
    sns, sqs = clients(url)
    arn = sns.create_topic(Name=name)["TopicArn"]
    q = sqs.create_queue(QueueName=name + "-q")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
    return arn, q, sqs


def build(conf: dict):
    cfg = parse_config(yaml.safe_dump({"route": {"receiver": "aws"},
                                       "receivers": [{"name": "aws", "sns_configs": [conf]}]}))
    ((k, c),) = cfg.receivers["aws"].integrations
    return default_receiver_factory(f"aws/{k}/0", k, c, cfg, ManualClock(T0 + 60))


def received(sqs, q: str) -> list[dict]:
    msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


async def test_publishes_firing_and_resolved_to_the_topic(moto):
    """A firing and a resolved notification are published to the topic with subject, message and attributes."""
    arn, q, sqs = topic_with_queue(moto, "tocsin-alerts")
    r = build({"api_url": moto, "topic_arn": arn, "sigv4": {"region": REGION, **KEYS},
               "attributes": {"severity": "warning"}})
    assert r.send_resolved is True
    await r.send(notification(alerts=[alert(team="db")]))
    (m,) = received(sqs, q)
    assert m["TopicArn"] == arn and m["Subject"] == "[FIRING:1] HighLatency (warning db)"
    assert "HighLatency" in m["Message"]
    assert m["MessageAttributes"]["severity"] == {"Type": "String", "Value": "warning"}
    await r.send(notification(alerts=[alert(status="resolved")], status="resolved", timestamp=T0 + 120))
    (m2,) = received(sqs, q)
    assert m2["Subject"].startswith("[RESOLVED]")
    await r.close()


async def test_unknown_topic_is_not_retried_and_hides_the_secret(moto):
    """SNS's 4xx answer for a topic that does not exist is a permanent error without the secret key in it."""
    r = build({"api_url": moto, "topic_arn": f"arn:aws:sns:{REGION}:123456789012:nope", "sigv4": KEYS})
    with pytest.raises(NotifyError) as ei:
        await r.send(notification())
    assert not ei.value.retryable and 400 <= (ei.value.status or 0) < 500
    assert KEYS["secret_key"] not in str(ei.value)
    await r.close()


async def test_server_errors_and_network_errors_are_retried():
    """A 5xx from the SNS endpoint and an unreachable endpoint are retryable."""
    async with FakeReceivers() as fake:
        r = build({"api_url": fake.url + "/sns/", "topic_arn": f"arn:aws:sns:{REGION}:1:t", "sigv4": KEYS})
        fake.fail("sns", 503)
        with pytest.raises(NotifyError) as ei:
            await r.send(notification())
        assert ei.value.retryable and KEYS["secret_key"] not in str(ei.value)
        (req,) = fake.of("sns")
        assert req.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert req.body["Action"] == "Publish" and req.body["TopicArn"].endswith(":t")
        await r.close()
    r = build({"api_url": f"http://127.0.0.1:{_free_port()}/", "topic_arn": "arn:aws:sns:us-east-2:1:t",
               "sigv4": KEYS})
    with pytest.raises(NotifyError) as ei:
        await r.send(notification())
    assert ei.value.retryable
    await r.close()
