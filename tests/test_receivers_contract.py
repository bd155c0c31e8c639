"""The one contract every Alertmanager-style receiver kind passes, against fake servers on 127.0.0.1.

Each kind is built the way `tocsin serve` builds it (from a parsed configuration through
`default_receiver_factory`) and must: deliver a firing and a resolved notification in its service's wire
format, default `send_resolved` as Alertmanager does, retry what Alertmanager retries and not what it does
not, read `_file` secrets at send time (an unreadable file is an error naming its path), and never let a
secret into an error (the fakes echo credentials back in their error bodies).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from routing.receivers.base import NotifyError
from service.core.clock import ManualClock
from service.config.sections import parse_config
from service.pipeline.dispatch import integrations_of
from service.pipeline.engine import default_receiver_factory
from tests.fakes import receivers as F
from tests.fakes.receivers import FakeReceivers
from tests.fakes.samples import T0, alert, notification

ALL_SECRETS = [F.TELEGRAM_TOKEN, F.OPSGENIE_KEY, F.VICTOROPS_KEY, F.PUSHOVER_TOKEN, F.PUSHOVER_USER, F.WEBEX_TOKEN,
               F.WECHAT_SECRET, F.WEBHOOK_SECRET_PATH, F.SNS_SECRET_KEY]


@dataclass
class Kind:
    name: str
    config: Callable[[str, str], dict[str, Any]]  # (fake url, secrets dir) -> one *_configs entry
    send_resolved: bool
    retried: tuple[int, ...]  # statuses Alertmanager retries (besides 5xx)
    not_retried: tuple[int, ...]
    check_firing: Callable[[list[F.Req]], None]
    check_resolved: Callable[[list[F.Req]], None]
    secret_file_key: str | None = None  # a `_file` setting whose content is a secret


def _write(d: str, name: str, value: str) -> str:
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(value + "\n")
    return p


def _last(reqs: list[F.Req]) -> F.Req:
    assert reqs, "nothing was delivered"
    return reqs[-1]


def _telegram_firing(reqs: list[F.Req]) -> None:
    r = _last(reqs)
    assert r.path == f"/bot{F.TELEGRAM_TOKEN}/sendMessage"
    assert r.body["chat_id"] == "-1001234" and r.body["parse_mode"] == "HTML"
    assert "HighLatency" in r.body["text"] and "&lt;" not in "HighLatency"


def _telegram_resolved(reqs: list[F.Req]) -> None:
    assert "RESOLVED" in _last(reqs).body["text"].upper()


def _discord(color: int) -> Callable[[list[F.Req]], None]:
    def check(reqs: list[F.Req]) -> None:
        r = _last(reqs)
        assert r.path == "/discord/" + F.WEBHOOK_SECRET_PATH
        (embed,) = r.body["embeds"]
        assert embed["color"] == color and embed["title"].startswith("[") and "HighLatency" in embed["title"]
        assert embed["description"]
    return check


def _teams(color: str) -> Callable[[list[F.Req]], None]:
    def check(reqs: list[F.Req]) -> None:
        r = _last(reqs)
        assert r.body["@context"] == "http://schema.org/extensions" and r.body["type"] == "MessageCard"
        assert r.body["themeColor"] == color and "HighLatency" in r.body["title"] and r.body["text"]
    return check


def _teams2(color: str) -> Callable[[list[F.Req]], None]:
    def check(reqs: list[F.Req]) -> None:
        (att,) = _last(reqs).body["attachments"]
        assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = att["content"]
        assert card["type"] == "AdaptiveCard" and card["body"][0]["color"] == color
        assert "HighLatency" in card["body"][0]["text"]
    return check


GROUP_HASH = hashlib.sha256('{}:{alertname="HighLatency"}'.encode()).hexdigest()


def _opsgenie_firing(reqs: list[F.Req]) -> None:
    r = _last(reqs)
    assert r.method == "POST" and r.path == "/v2/alerts"
    assert r.headers["Authorization"] == f"GenieKey {F.OPSGENIE_KEY}"
    b = r.body
    assert b["alias"] == GROUP_HASH and len(b["message"]) <= 130 and "HighLatency" in b["message"]
    assert b["details"]["alertname"] == "HighLatency" and b["details"]["team"] == "db"
    assert b["tags"] == ["db", "prod"] and b["responders"] == [{"name": "sre", "type": "team"}]
    assert b["source"] == "http://tocsin.example"


def _opsgenie_resolved(reqs: list[F.Req]) -> None:
    r = _last(reqs)
    assert r.path == f"/v2/alerts/{GROUP_HASH}/close" and r.query == {"identifierType": "alias"}
    assert r.body == {"source": "http://tocsin.example"}


def _victorops(mtype: str) -> Callable[[list[F.Req]], None]:
    def check(reqs: list[F.Req]) -> None:
        r = _last(reqs)
        assert r.path == f"/victorops/{F.VICTOROPS_KEY}/ops-team"
        assert r.body["message_type"] == mtype and r.body["entity_id"] == GROUP_HASH
        assert r.body["monitoring_tool"] and r.body["state_message"] and r.body["region"] == "eu"
    return check


def _pushover(priority: str) -> Callable[[list[F.Req]], None]:
    def check(reqs: list[F.Req]) -> None:
        r = _last(reqs)
        assert r.path == "/1/messages.json" and not r.query  # secrets travel in the body, not the URL
        b = r.body
        assert b["token"] == F.PUSHOVER_TOKEN and b["user"] == F.PUSHOVER_USER
        assert b["priority"] == priority and b["retry"] == "60" and b["expire"] == "3600"
        assert "HighLatency" in b["title"] and b["message"]
    return check


def _webex(reqs: list[F.Req]) -> None:
    r = _last(reqs)
    assert r.headers["Authorization"] == f"Bearer {F.WEBEX_TOKEN}"
    assert r.body["roomId"] == "room-1" and "HighLatency" in r.body["markdown"]


def _wechat(reqs: list[F.Req]) -> None:
    r = _last(reqs)
    assert r.path == "/cgi-bin/message/send" and r.query["access_token"].startswith("tok")
    b = r.body
    assert b["msgtype"] == "text" and b["touser"] == "@all" and b["agentid"] == "1000002" and b["safe"] == "0"
    assert "HighLatency" in b["text"]["content"]


def _sns(status: str) -> Callable[[list[F.Req]], None]:
    def check(reqs: list[F.Req]) -> None:
        r = _last(reqs)
        assert r.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDCONTRACT/")
        b = r.body
        assert b["Action"] == "Publish" and b["TopicArn"] == "arn:aws:sns:us-east-2:123456789012:alerts"
        assert b["Subject"].startswith(status) and "HighLatency" in b["Message"]
    return check


KINDS = [
    Kind("telegram", lambda u, d: {"api_url": u, "bot_token_file": _write(d, "tg", F.TELEGRAM_TOKEN),
                                   "chat_id": -1001234},
         True, (400, 403, 429), (), _telegram_firing, _telegram_resolved, "bot_token_file"),
    Kind("discord", lambda u, d: {"webhook_url": f"{u}/discord/{F.WEBHOOK_SECRET_PATH}"},
         True, (), (400, 404, 429), _discord(0x992D22), _discord(0x2ECC71)),
    Kind("msteams", lambda u, d: {"webhook_url_file": _write(d, "teams", f"{u}/teams/{F.WEBHOOK_SECRET_PATH}")},
         True, (), (400, 429), _teams("8C1A1A"), _teams("2DC72D"), "webhook_url_file"),
    Kind("msteamsv2", lambda u, d: {"webhook_url": f"{u}/flows/{F.WEBHOOK_SECRET_PATH}"},
         True, (), (400, 429), _teams2("Attention"), _teams2("Good")),
    Kind("opsgenie", lambda u, d: {"api_url": u + "/", "api_key_file": _write(d, "og", F.OPSGENIE_KEY),
                                   "tags": "db,prod", "responders": [{"name": "sre", "type": "team"}],
                                   "details": {"team": "db"}},
         True, (429,), (400, 422), _opsgenie_firing, _opsgenie_resolved, "api_key_file"),
    Kind("victorops", lambda u, d: {"api_url": u + "/victorops/", "api_key": F.VICTOROPS_KEY,
                                    "routing_key": "ops-team", "custom_fields": {"region": "eu"}},
         True, (), (400, 401, 429), _victorops("CRITICAL"), _victorops("RECOVERY")),
    Kind("pushover", lambda u, d: {"api_url": u + "/1/messages.json", "token": F.PUSHOVER_TOKEN,
                                   "user_key_file": _write(d, "po", F.PUSHOVER_USER)},
         True, (), (400, 429), _pushover("2"), _pushover("0"), "user_key_file"),
    Kind("webex", lambda u, d: {"api_url": u + "/v1/messages", "room_id": "room-1",
                                "http_config": {"authorization": {"credentials_file": _write(d, "wx", F.WEBEX_TOKEN)}}},
         True, (), (400, 401, 429), _webex, _webex, None),
    Kind("wechat", lambda u, d: {"api_url": u + "/cgi-bin/", "api_secret": F.WECHAT_SECRET, "corp_id": F.WECHAT_CORP,
                                 "to_user": "@all", "agent_id": "1000002"},
         False, (400, 404, 429), (), _wechat, _wechat),
    Kind("sns", lambda u, d: {"api_url": u + "/sns/", "topic_arn": "arn:aws:sns:us-east-2:123456789012:alerts",
                              "sigv4": {"access_key": "AKIDCONTRACT", "secret_key": F.SNS_SECRET_KEY}},
         True, (), (400, 403, 429), _sns("[FIRING"), _sns("[RESOLVED")),
]
IDS = [k.name for k in KINDS]


def build(kind: Kind, fake: FakeReceivers, d: str, **extra: Any) -> Any:
    """Build the receiver exactly as serve does: parse a config file, then the default factory."""
    import yaml

    c = dict(kind.config(fake.url, d), **extra)
    text = yaml.safe_dump({"route": {"receiver": "r"},
                           "receivers": [{"name": "r", f"{kind.name}_configs": [c]}]})
    cfg = parse_config(text)
    ((k, conf),) = cfg.receivers["r"].integrations
    return cfg, default_receiver_factory(f"r/{k}/0", k, conf, cfg, ManualClock(T0 + 60))


def firing():
    return notification(alerts=[alert(team="db")], reason="first flush")


def resolved():
    return notification(alerts=[alert(status="resolved", team="db")], status="resolved", nid="n2",
                        timestamp=T0 + 120)


@pytest.fixture
def secrets_dir():
    with tempfile.TemporaryDirectory() as d:
        yield d


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
async def test_delivers_firing_and_resolved_in_the_wire_format(kind: Kind, secrets_dir: str):
    """A firing and then a resolved notification reach the fake service, each in that service's wire format."""
    async with FakeReceivers() as fake:
        _, r = build(kind, fake, secrets_dir)
        await r.send(firing())
        kind.check_firing(fake.of(kind.name))
        await r.send(resolved())
        kind.check_resolved(fake.of(kind.name))
        await r.close()


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
async def test_send_resolved_defaults_as_alertmanager(kind: Kind, secrets_dir: str):
    """send_resolved defaults as in Alertmanager for the receiver and for the dispatcher, and can be overridden."""
    async with FakeReceivers() as fake:
        cfg, r = build(kind, fake, secrets_dir)
        assert r.send_resolved is kind.send_resolved
        assert integrations_of(cfg)["r"][0].send_resolved is kind.send_resolved
        cfg2, r2 = build(kind, fake, secrets_dir, send_resolved=not kind.send_resolved)
        assert r2.send_resolved is (not kind.send_resolved)
        assert integrations_of(cfg2)["r"][0].send_resolved is (not kind.send_resolved)
        await r.close()
        await r2.close()


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
async def test_retries_what_alertmanager_retries(kind: Kind, secrets_dir: str):
    """5xx and the kind's extra retry codes are retryable; its other 4xx are permanent; no error holds a secret."""
    async with FakeReceivers() as fake:
        _, r = build(kind, fake, secrets_dir)
        target = "wechat" if kind.name == "wechat" else kind.name
        for status, want in [(500, True), (503, True)] + [(s, True) for s in kind.retried] + \
                            [(s, False) for s in kind.not_retried]:
            if kind.name == "wechat":
                await r.send(firing())  # fetch a token first, so the failure hits message/send
            fake.fail(target, status, retry_after="7" if status == 429 else None)
            with pytest.raises(NotifyError) as ei:
                await r.send(firing())
            err = ei.value
            assert err.retryable is want, (status, err.reason)
            text = f"{err} {err.reason!r}"
            for s in ALL_SECRETS:
                assert s not in text, (status, text)
            if status == 429 and want:
                assert err.retry_after == 7.0
        await r.send(firing())  # and it recovers
        await r.close()


async def test_network_errors_are_retried(secrets_dir: str):
    """A service that cannot be reached is a retryable error for every kind, with no secret in it."""
    async with FakeReceivers() as fake:
        dead = f"http://127.0.0.1:{fake.port}"
    for kind in KINDS:
        fake_dead = FakeReceivers()
        fake_dead.port = int(dead.rsplit(":", 1)[1])
        _, r = build(kind, fake_dead, secrets_dir)
        with pytest.raises(NotifyError) as ei:
            await r.send(firing())
        assert ei.value.retryable, kind.name
        assert not any(s in str(ei.value) for s in ALL_SECRETS), kind.name
        await r.close()


@pytest.mark.parametrize("kind", [k for k in KINDS if k.secret_file_key], ids=lambda k: k.name)
async def test_secret_files_are_read_when_sending(kind: Kind, secrets_dir: str):
    """A `_file` secret is read at each send: a missing file fails delivery naming its path, not the config."""
    async with FakeReceivers() as fake:
        _, r = build(kind, fake, secrets_dir)
        path = r.c[kind.secret_file_key]
        os.rename(path, path + ".moved")
        with pytest.raises(NotifyError) as ei:
            await r.send(firing())
        assert path in ei.value.reason and not ei.value.retryable
        os.rename(path + ".moved", path)
        await r.send(firing())
        kind.check_firing(fake.of(kind.name))
        await r.close()


async def test_wechat_fetches_a_new_token_when_it_expires(secrets_dir: str):
    """WeChat's errcode 42001 (token expired) is retried, and the retry gets a fresh access token."""
    kind = next(k for k in KINDS if k.name == "wechat")
    async with FakeReceivers() as fake:
        _, r = build(kind, fake, secrets_dir)
        await r.send(firing())
        fake.wechat_expire_next = True
        with pytest.raises(NotifyError) as ei:
            await r.send(firing())
        assert ei.value.retryable
        await r.send(firing())
        gets = [q for q in fake.of("wechat") if q.path.endswith("/gettoken")]
        assert len(gets) == 2
        assert fake.of("wechat")[-1].query["access_token"] == "tok2"
        await r.close()
