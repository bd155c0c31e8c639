"""Go templates wired into the config (`templates:`) and the Slack and PagerDuty receivers."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from routing.gotemplate import Templates, TemplateError, render_field
from routing.receivers.base import NotifyError
from routing.receivers.pagerduty import PagerDutyReceiver
from routing.receivers.slack import SlackReceiver
from service.core.clock import ManualClock
from service.config.sections import load_config, parse_config
from service.pipeline.engine import build_receivers, default_receiver_factory
from service.core.errors import ConfigErrors
from service.core.models import Alert, Notification
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack

T0 = 1_700_000_000.0


def note(receiver: str = "team-a", status: str = "firing") -> Notification:
    alerts = [
        Alert(labels={"alertname": "DiskFull", "instance": "db1", "severity": "critical"},
              annotations={"summary": "disk <full>", "description": "db1 at 99%"}, starts_at=T0 - 600,
              generator_url="http://prom/graph"),
        Alert(labels={"alertname": "DiskFull", "instance": "db2", "severity": "critical"},
              annotations={"summary": "disk <full>", "description": "db2 at 97%"}, starts_at=T0 - 300,
              ends_at=T0 - 10 if status == "resolved" else 0.0, generator_url="http://prom/graph"),
    ]
    return Notification(id="n1", receiver=receiver, integration="slack/0", group_key="{}:{alertname=\"DiskFull\"}",
                        group_labels={"alertname": "DiskFull"}, status=status, alerts=alerts, timestamp=T0,
                        reason="first flush", external_url="http://tocsin.example:9093")


def write(dir_: Path, name: str, text: str) -> Path:
    p = dir_ / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def test_templates_are_loaded_relative_to_the_config_file(tmp_path: Path) -> None:
    """`templates:` globs resolve against the config file's folder and their defines are usable."""
    write(tmp_path, "tmpl/a.tmpl", '{{ define "my.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}{{ end }}')
    cfg_path = write(tmp_path, "am.yml", """
        route: {receiver: r}
        receivers: [{name: r}]
        templates: ['tmpl/*.tmpl', 'nothing-here/*.tmpl']
    """)
    cfg = load_config(cfg_path)
    assert not [w for w in cfg.warnings if "templates" in w]
    assert render_field('{{ template "my.title" . }}', note(), cfg.go_templates) == "[FIRING] DiskFull"
    assert "my.title" in cfg.go_templates.user_defined


def test_a_template_file_that_does_not_parse_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    """A broken `templates:` file fails the config (as Alertmanager's load does), with its path and Go's message."""
    bad = write(tmp_path, "t/bad.tmpl", '{{ define "x" }}{{ .Status | nosuch }}{{ end }}')
    cfg_path = write(tmp_path, "am.yml", "route: {receiver: r}\nreceivers: [{name: r}]\ntemplates: ['t/*.tmpl']\n")
    with pytest.raises(ConfigErrors) as ei:
        load_config(cfg_path)
    (err,) = ei.value.errors
    assert err.path == "templates"
    assert str(bad) in err.message and 'function "nosuch" not defined' in err.message


def test_templates_must_be_a_list_of_strings() -> None:
    with pytest.raises(ConfigErrors) as ei:
        parse_config("route: {receiver: r}\nreceivers: [{name: r}]\ntemplates: 3\n")
    assert ei.value.errors[0].path == "templates"


def test_a_later_file_redefines_a_default_template(tmp_path: Path) -> None:
    """A file defining `slack.default.title` replaces Alertmanager's definition (files load after the defaults)."""
    write(tmp_path, "t.tmpl", '{{ define "slack.default.title" }}custom {{ len .Alerts }}{{ end }}')
    t = Templates.load(["*.tmpl"], str(tmp_path))
    assert render_field('{{ template "slack.default.title" . }}', note(), t) == "custom 2"
    assert render_field('{{ template "slack.default.title" . }}', note()) == "[FIRING:2] DiskFull (critical)"


async def test_slack_webhook_with_go_templates_sends_alertmanagers_attachment() -> None:
    """title/text/fields written as Go templates produce notify/slack's payload, rendered by the engine."""
    async with FakeSlack() as slack:
        r = SlackReceiver.from_config({
            "api_url": slack.webhook_url, "title": "{{ .Status | toUpper }}: {{ .CommonLabels.alertname }}",
            "text": "{{ range .Alerts }}{{ .Labels.instance }} {{ .Annotations.description }}\n{{ end }}",
            "fields": [{"title": "severity", "value": "{{ .CommonLabels.severity }}", "short": True}],
            "channel": "#ops"}, "s", "slack/0", ManualClock(T0))
        await r.send(note())
        await r.close()
    (body,) = slack.webhook_posts
    att = body["attachments"][0]
    assert body["channel"] == "#ops" and body["username"] == "Alertmanager"
    assert att["title"] == "FIRING: DiskFull"
    assert att["text"] == "db1 db1 at 99%\ndb2 db2 at 97%\n"
    assert att["title_link"] == "http://tocsin.example:9093/#/alerts?receiver=team-a"
    # the fallback is Alertmanager's default: slack.default.title | slack.default.titlelink
    assert att["fallback"] == "[FIRING:2] DiskFull (critical) | http://tocsin.example:9093/#/alerts?receiver=team-a"
    assert att["color"] == "danger"
    assert att["fields"] == [{"title": "severity", "value": "critical", "short": True}]
    assert att["mrkdwn_in"] == ["fallback", "pretext", "text"]
    assert "blocks" not in body


async def test_slack_without_templates_keeps_tocsins_block_kit() -> None:
    """A slack_config that names no template still gets Tocsin's own message."""
    async with FakeSlack() as slack:
        r = SlackReceiver.from_config({"api_url": slack.webhook_url}, "s", "slack/0", ManualClock(T0))
        await r.send(note())
        await r.close()
    (body,) = slack.webhook_posts
    assert body.get("blocks") and "attachments" not in body


async def test_a_templated_username_alone_switches_to_alertmanagers_message() -> None:
    """Any slack_config value written as a Go template is rendered (never posted as template source)."""
    async with FakeSlack() as slack:
        r = SlackReceiver.from_config({"api_url": slack.webhook_url, "username": "{{ .CommonLabels.alertname }} bot"},
                                      "s", "slack/0", ManualClock(T0))
        await r.send(note())
        await r.close()
    assert slack.webhook_posts[0]["username"] == "DiskFull bot"


async def test_redefined_slack_default_switches_to_alertmanagers_message(tmp_path: Path) -> None:
    """With a templates file redefining slack.default.text, a bare slack_config sends what Alertmanager would."""
    write(tmp_path, "t.tmpl", '{{ define "slack.default.text" }}{{ range .Alerts.Firing }}* {{ .Annotations.summary }}\n{{ end }}{{ end }}')
    async with FakeSlack() as slack:
        r = SlackReceiver.from_config({"api_url": slack.webhook_url}, "s", "slack/0", ManualClock(T0),
                                      go_templates=Templates.load(["*.tmpl"], str(tmp_path)))
        await r.send(note())
        await r.close()
    att = slack.webhook_posts[0]["attachments"][0]
    assert att["text"] == "* disk <full>\n* disk <full>\n"
    assert att["title"] == "[FIRING:2] DiskFull (critical)"


async def test_a_failing_template_is_a_permanent_delivery_error() -> None:
    """Alertmanager fails the notification when a template fails; so does Tocsin, without retrying."""
    async with FakeSlack() as slack:
        r = SlackReceiver.from_config({"api_url": slack.webhook_url, "text": "{{ .NoSuchField }}"}, "s", "slack/0",
                                      ManualClock(T0))
        with pytest.raises(NotifyError) as ei:
            await r.send(note())
        await r.close()
    assert not ei.value.retryable and "can't evaluate field NoSuchField" in ei.value.reason
    assert slack.webhook_posts == []


async def test_slack_bot_mode_with_templates_posts_then_edits_the_attachment() -> None:
    """In bot-token mode the rendered attachment is posted once and then edited in place."""
    token = "xoxb-test-token"
    async with FakeSlack(token=token) as slack:
        r = SlackReceiver.from_config({"bot_token": token, "api_base_url": slack.base_url, "channel": "#alerts",
                                       "text": "{{ len .Alerts.Firing }} firing"}, "s", "slack/0", ManualClock(T0))
        d1 = await r.send(note())
        n2 = note(status="firing")
        n2.id = "n2"
        n2.alerts[1].ends_at = T0 - 5
        d2 = await r.send(n2, d1.state)
        await r.close()
    posts = [q for q in slack.requests if q["method"] == "chat.postMessage"]
    updates = [q for q in slack.requests if q["method"] == "chat.update"]
    assert len(posts) == 1 and len(updates) == 1
    assert _attachments(posts[0])[0]["text"] == "2 firing"
    assert _attachments(updates[0])[0]["text"] == "1 firing"
    assert d2.state["ts"] == d1.state["ts"]


def _attachments(req: dict) -> list:
    import json

    a = req["body"]["attachments"]
    return json.loads(a) if isinstance(a, str) else a


async def test_pagerduty_templated_fields_are_rendered() -> None:
    """description, details, client_url, severity and links written as Go templates are rendered into the event."""
    async with FakePagerDuty() as pd:
        r = PagerDutyReceiver.from_config({
            "routing_key": "R" * 32, "url": pd.events_url,
            "description": "{{ .CommonLabels.alertname }} on {{ len .Alerts }} hosts",
            "severity": "{{ if eq .CommonLabels.severity \"critical\" }}critical{{ else }}warning{{ end }}",
            "client_url": "{{ .ExternalURL }}/x",
            "details": {"hosts": '{{ range .Alerts }}{{ .Labels.instance }} {{ end }}', "team": "db"},
            "links": [{"href": "{{ (index .Alerts 0).GeneratorURL }}", "text": "graph"}],
        }, "p", "pagerduty/0", ManualClock(T0))
        await r.send(note())
        await r.close()
    (ev,) = pd.events
    assert ev["payload"]["summary"] == "DiskFull on 2 hosts"
    assert ev["payload"]["severity"] == "critical"
    assert ev["client_url"] == "http://tocsin.example:9093/x"
    assert ev["payload"]["custom_details"]["hosts"] == "db1 db2 "
    assert ev["payload"]["custom_details"]["team"] == "db"
    assert {"href": "http://prom/graph", "text": "graph"} in ev["links"]


def test_engine_passes_the_configs_templates_to_the_receivers(tmp_path: Path) -> None:
    """Receivers built from a config render with its `templates:` files."""
    write(tmp_path, "t.tmpl", '{{ define "x" }}X{{ .Status }}{{ end }}')
    cfg = load_config(write(tmp_path, "am.yml", """
        route: {receiver: r}
        receivers:
          - name: r
            slack_configs: [{api_url: "http://127.0.0.1:9/hook", text: '{{ template "x" . }}'}]
        templates: ['*.tmpl']
    """))
    (rcv,) = build_receivers(cfg, default_receiver_factory, ManualClock(T0)).values()
    assert rcv.am_fields.payload(note())["attachments"][0]["text"] == "Xfiring"


def test_render_field_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError):
        render_field("{{ if }}", note())
    assert render_field("", note()) == ""
    assert render_field("plain", note()) == "plain"
