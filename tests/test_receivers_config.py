"""Receiver configuration as Alertmanager reads it: Go's YAML, validation verdicts and paths, secrets files."""
from __future__ import annotations

import pytest

from service.config.sections import parse_config
from service.core.errors import ConfigErrors

R = "route: {receiver: r}\nreceivers:\n- name: r\n"


def errors_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigErrors) as ei:
        parse_config(text)
    return [(e.path, e.message) for e in ei.value.errors]


def test_a_tab_after_a_value_is_accepted_as_go_accepts_it():
    """`smtp_require_tls: false<TAB>` is whitespace to Go's YAML decoder, and so to Tocsin."""
    cfg = parse_config("global:\n  smtp_require_tls: false\t\n" + R.replace("{receiver: r}", "{receiver: r}\t "))
    assert cfg.global_["smtp_require_tls"] is False


def test_a_key_given_twice_is_an_error():
    """Go rejects a mapping key given twice (`field receiver already set`); so does Tocsin, naming the lines."""
    ((path, msg),) = errors_of("route:\n  receiver: r\n  receiver: r\nreceivers:\n- name: r\n")
    assert "'receiver' is given twice (line 2 and line 3)" in msg


@pytest.mark.parametrize("entry, path, message", [
    ("opsgenie_configs: [{api_key: a, api_key_file: /b}]", "receivers[0].opsgenie_configs[0].api_key_file",
     "at most one of api_key & api_key_file must be configured"),
    ("opsgenie_configs: [{responders: [{name: a, type: foo}]}]", "receivers[0].opsgenie_configs[0].responders[0].type",
     "does not match valid options"),
    ("victorops_configs: [{api_key: a, routing_key: r, custom_fields: {entity_id: x}}]",
     "receivers[0].victorops_configs[0].custom_fields.entity_id", "conflicts with the fixed/static fields"),
    ("telegram_configs: [{chat_id: 1}]", "receivers[0].telegram_configs[0].bot_token",
     "missing bot_token on telegram_config"),
    ("telegram_configs: [{bot_token: x, chat_id: '-100'}]", "receivers[0].telegram_configs[0].chat_id",
     "must be an integer"),
    ("email_configs: [{to: a@b}]", "receivers[0].email_configs[0].smarthost", "no global SMTP smarthost set"),
    ("email_configs: [{to: a@b, from: c@d, smarthost: mail}]", "receivers[0].email_configs[0].smarthost",
     "missing port in address"),
    ("sns_configs: [{topic_arn: a, phone_number: '1'}]", "receivers[0].sns_configs[0]",
     "must provide either a Target ARN, Topic ARN, or Phone Number"),
    ("webex_configs: [{room_id: r}]", "receivers[0].webex_configs[0].http_config.authorization",
     "missing webex_configs.http_config.authorization"),
    ("wechat_configs: [{api_secret: s}]", "receivers[0].wechat_configs[0].corp_id", "no global Wechat CorpID set"),
    ("pushover_configs: [{user_key: u, token: t, retry: soon}]", "receivers[0].pushover_configs[0].retry",
     'time: invalid duration "soon"'),
    ("discord_configs: [{webhook_url: 'discord.com/x'}]", "receivers[0].discord_configs[0].webhook_url",
     'unsupported scheme "" for URL'),
    ("webhook_configs: [{url: 'http://a/', http_config: {authorization: {type: basic, credentials: x}}}]",
     "receivers[0].webhook_configs[0].http_config.authorization.type", 'cannot be set to "basic"'),
    ("msteams_configs: [{webhook_url: 'http://a/', colour: red}]", "receivers[0].msteams_configs[0].colour",
     "unknown key"),
])
def test_validation_errors_name_the_key_with_alertmanagers_message(entry: str, path: str, message: str):
    """Each Alertmanager 0.25 rule is an error at the path of the bad key, with Alertmanager's words."""
    errs = errors_of(R + "  " + entry + "\n")
    assert any(p == path and message in m for p, m in errs), errs


def test_secret_files_are_not_read_at_load(tmp_path):
    """`_file` secrets that do not exist on the checking machine are not configuration errors."""
    missing = tmp_path / "missing"
    cfg = parse_config(
        "global: {smtp_smarthost: 'mail:25', smtp_from: a@b, smtp_auth_password_file: '%s'}\n" % missing + R +
        f"  email_configs: [{{to: x@y}}]\n  telegram_configs: [{{bot_token_file: {missing}, chat_id: 1}}]\n"
        f"  opsgenie_configs: [{{api_key_file: {missing}}}]\n  webhook_configs: [{{url_file: {missing}}}]\n"
        f"  slack_configs: [{{api_url_file: {missing}}}]\n  pagerduty_configs: [{{routing_key_file: {missing}}}]\n")
    assert [k for k, _ in cfg.receivers["r"].integrations] == ["email", "telegram", "opsgenie", "webhook", "slack",
                                                              "pagerduty"]
