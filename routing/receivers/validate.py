"""Validate receiver integrations as Alertmanager 0.25 does (config/notifiers.go, config/config.go), purely.

`validate_integration(kind, c, global_, path)` returns the list of `ConfigError`s for one `<kind>_configs`
entry, with the path of the bad key and Alertmanager's own message; `validate_global(g)` does the same for the
receiver-related `global:` settings. Nothing here reads a file: `_file` secrets are read when sending.

The verdicts follow Alertmanager 0.25 (checked against its `amtool check-config`, see
tests/test_amtool_check_config.py), with one deliberate difference: the keys of later Alertmanager versions
that Tocsin implements (`LATER_KEYS`: `url_file`, `bot_token_file`, Teams, ...) are accepted.
"""
from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import urlsplit

from service.core.errors import ConfigError

HTTP_CONFIG_KEYS = {"authorization", "basic_auth", "bearer_token", "bearer_token_file", "tls_config",
                    "follow_redirects", "proxy_url", "enable_http2", "oauth2", "no_proxy", "proxy_from_environment",
                    "proxy_connect_header"}
TLS_KEYS = {"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify", "min_version", "max_version",
            "ca", "cert", "key"}

# Keys of each integration in Alertmanager 0.25 (plus send_resolved and http_config, which all have).
AM025_KEYS: dict[str, set[str]] = {
    "email": {"to", "from", "hello", "smarthost", "auth_username", "auth_password", "auth_password_file",
              "auth_secret", "auth_identity", "headers", "html", "text", "require_tls", "tls_config"},
    "telegram": {"api_url", "bot_token", "chat_id", "message", "disable_notifications", "parse_mode"},
    "discord": {"webhook_url", "title", "message"},
    "opsgenie": {"api_key", "api_key_file", "api_url", "message", "description", "source", "details", "entity",
                 "responders", "actions", "tags", "note", "priority", "update_alerts"},
    "victorops": {"api_key", "api_key_file", "api_url", "routing_key", "message_type", "state_message",
                  "entity_display_name", "monitoring_tool", "custom_fields"},
    "pushover": {"user_key", "token", "title", "message", "url", "url_title", "sound", "priority", "retry",
                 "expire", "html"},
    "webex": {"api_url", "message", "room_id"},
    "wechat": {"api_secret", "corp_id", "message", "api_url", "to_user", "to_party", "to_tag", "agent_id",
               "message_type"},
    "sns": {"api_url", "sigv4", "topic_arn", "phone_number", "target_arn", "subject", "message", "attributes"},
}
# Keys of later Alertmanager versions that Tocsin implements too (0.25 rejects them as unknown fields).
LATER_KEYS: dict[str, set[str]] = {
    "telegram": {"bot_token_file", "message_thread_id"},
    "discord": {"webhook_url_file"},
    "pushover": {"user_key_file", "token_file", "ttl", "monospace", "device"},
    "wechat": {"api_secret_file"},
    "webhook": {"url_file", "timeout"},
    "slack": {"update_message", "app_token", "app_token_file", "app_url", "message_text", "timeout"},
    "msteams": {"webhook_url", "webhook_url_file", "title", "summary", "text"},
    "msteamsv2": {"webhook_url", "webhook_url_file", "title", "text"},
}
LATER_KINDS = {"msteams", "msteamsv2"}
# Tocsin's own additions (Alertmanager has no such key): pushover's API URL, so that it can be pointed elsewhere.
TOCSIN_KEYS: dict[str, set[str]] = {"pushover": {"api_url"}}
SIGV4_KEYS = {"region", "access_key", "secret_key", "profile", "role_arn"}
COMMON = {"send_resolved", "http_config"}
_DURATION = re.compile(r"^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$|^0$")


def _err(path: str, msg: str) -> ConfigError:
    return ConfigError(path, msg)


def check_url(v: Any, path: str) -> list[ConfigError]:
    """Alertmanager's URL type: parses, with scheme http or https."""
    if not isinstance(v, str):
        return [_err(path, "must be a URL string")]
    try:
        scheme = urlsplit(v).scheme
    except ValueError as e:
        return [_err(path, f"parse {v!r}: {e}")]
    if scheme not in ("http", "https"):
        return [_err(path, f'unsupported scheme "{scheme}" for URL')]
    return []


def _exclusive(c: dict[str, Any], a: str, b: str, path: str, label: str = "") -> list[ConfigError]:
    if c.get(a) not in (None, "") and c.get(b) not in (None, ""):
        return [_err(f"{path}.{b}", f"at most one of {label}{a} & {label}{b} must be configured")]
    return []


def check_http_config(hc: Any, path: str) -> list[ConfigError]:
    """Prometheus' common HTTPClientConfig.Validate."""
    if hc is None:
        return []
    if not isinstance(hc, dict):
        return [_err(path, "must be a mapping")]
    errs = [_err(f"{path}.{k}", "unknown key") for k in hc if k not in HTTP_CONFIG_KEYS]
    errs += _exclusive(hc, "bearer_token", "bearer_token_file", path)
    bearer = bool(hc.get("bearer_token") or hc.get("bearer_token_file"))
    if sum(bool(x) for x in (hc.get("basic_auth"), hc.get("oauth2"), bearer)) > 1:
        errs.append(_err(path, "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"))
    a = hc.get("authorization")
    if a is not None:
        if not isinstance(a, dict):
            errs.append(_err(f"{path}.authorization", "must be a mapping"))
        else:
            if bearer:
                errs.append(_err(f"{path}.authorization", "authorization is not compatible with bearer_token & "
                                                          "bearer_token_file"))
            if str(a.get("type", "")).strip().lower() == "basic":
                errs.append(_err(f"{path}.authorization.type",
                                 'authorization type cannot be set to "basic", use "basic_auth" instead'))
            errs += _exclusive(a, "credentials", "credentials_file", f"{path}.authorization", "authorization ")
            errs += [_err(f"{path}.authorization.{k}", "unknown key") for k in a
                     if k not in ("type", "credentials", "credentials_file")]
    b = hc.get("basic_auth")
    if isinstance(b, dict):
        errs += _exclusive(b, "password", "password_file", f"{path}.basic_auth", "basic_auth ")
        errs += [_err(f"{path}.basic_auth.{k}", "unknown key") for k in b
                 if k not in ("username", "password", "password_file", "username_file")]
    if hc.get("proxy_url") is not None:
        p = str(hc["proxy_url"])
        if re.match(r"^[^a-zA-Z]", p) or (":" in p.split("/")[0] and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", p)):
            errs.append(_err(f"{path}.proxy_url", f'parse "{p}": missing protocol scheme'))
    tls = hc.get("tls_config")
    if isinstance(tls, dict):
        errs += [_err(f"{path}.tls_config.{k}", "unknown key") for k in tls if k not in TLS_KEYS]
    return errs


def _types(c: dict[str, Any], path: str, bools: tuple[str, ...] = (), ints: tuple[str, ...] = (),
           maps: tuple[str, ...] = (), lists: tuple[str, ...] = ()) -> list[ConfigError]:
    errs = []
    for k in ("send_resolved",) + bools:
        if k in c and c[k] is not None and not isinstance(c[k], bool):
            errs.append(_err(f"{path}.{k}", "must be true or false"))
    for k in ints:
        if k in c and c[k] is not None and (isinstance(c[k], bool) or not isinstance(c[k], int)):
            errs.append(_err(f"{path}.{k}", "must be an integer"))
    for k in maps:
        if c.get(k) is not None and not isinstance(c[k], dict):
            errs.append(_err(f"{path}.{k}", "must be a mapping"))
    for k in lists:
        if c.get(k) is not None and not isinstance(c[k], list):
            errs.append(_err(f"{path}.{k}", "must be a list"))
    for k, v in c.items():
        if k not in bools + ints + maps + lists + ("send_resolved", "http_config", "sigv4") and isinstance(v, (dict, list)):
            errs.append(_err(f"{path}.{k}", "must be a string"))
    return errs


def _given(c: dict[str, Any], *keys: str) -> bool:
    return any(c.get(k) not in (None, "") for k in keys)


# -- one function per kind: (c, global, path) -> errors ----------------------------------------------------

def _email(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path, bools=("require_tls",), maps=("headers", "tls_config"))
    if not c.get("to"):
        errs.append(_err(f"{path}.to", "missing to address in email config"))
    seen: set[str] = set()
    for h in c.get("headers") or {}:
        n = canonical_header(str(h))
        if n in seen:
            errs.append(_err(f"{path}.headers", f'duplicate header "{n}" in email config'))
        seen.add(n)
    smarthost = c.get("smarthost") or g.get("smtp_smarthost")
    if not smarthost:
        errs.append(_err(f"{path}.smarthost", "no global SMTP smarthost set"))
    elif c.get("smarthost"):
        errs += _hostport(c["smarthost"], f"{path}.smarthost")
    if not (c.get("from") or g.get("smtp_from")):
        errs.append(_err(f"{path}.from", "no global SMTP from set"))
    return errs


def canonical_header(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: `x-custom-HEADER` -> `X-Custom-Header`."""
    if any(c in name for c in " \t:") or not name:
        return name
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def _hostport(v: Any, path: str) -> list[ConfigError]:
    s = str(v)
    if s and ":" not in s:
        return [_err(path, f"address {s}: missing port in address")]
    return []


def _telegram(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path, bools=("disable_notifications",), ints=("chat_id", "message_thread_id"))
    if not _given(c, "bot_token", "bot_token_file"):
        errs.append(_err(f"{path}.bot_token", "missing bot_token on telegram_config"))
    errs += _exclusive(c, "bot_token", "bot_token_file", path)
    if not c.get("chat_id"):
        errs.append(_err(f"{path}.chat_id", "missing chat_id on telegram_config"))
    if c.get("parse_mode") not in (None, "", "Markdown", "MarkdownV2", "HTML"):
        errs.append(_err(f"{path}.parse_mode",
                         "unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty string"))
    if c.get("api_url") is not None:
        errs += check_url(c["api_url"], f"{path}.api_url")
    return errs


def _webhook_url_kind(name: str) -> Callable[[dict[str, Any], dict[str, Any], str], list[ConfigError]]:
    def check(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
        errs = _types(c, path)
        if not _given(c, "webhook_url", "webhook_url_file"):
            msg = "no discord webhook URL provided" if name == "discord" else \
                "one of webhook_url or webhook_url_file must be configured"
            errs.append(_err(f"{path}.webhook_url", msg))
        errs += _exclusive(c, "webhook_url", "webhook_url_file", path)
        if c.get("webhook_url") is not None:
            errs += check_url(c["webhook_url"], f"{path}.webhook_url")
        return errs
    return check


_OPSGENIE_TYPES = re.compile(r"^(team|teams|user|escalation|schedule)$")


def _opsgenie(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path, bools=("update_alerts",), maps=("details",), lists=("responders",))
    errs += _exclusive(c, "api_key", "api_key_file", path)
    for i, r in enumerate(c.get("responders") or []):
        rp = f"{path}.responders[{i}]"
        if not isinstance(r, dict):
            errs.append(_err(rp, "must be a mapping"))
            continue
        errs += [_err(f"{rp}.{k}", "unknown key") for k in r if k not in ("id", "name", "username", "type")]
        if not (r.get("id") or r.get("username") or r.get("name")):
            errs.append(_err(rp, "opsGenieConfig responder has to have at least one of id, username or name specified"))
        t = str(r.get("type") or "")
        if "{{" not in t and not _OPSGENIE_TYPES.match(t.lower()):
            errs.append(_err(f"{rp}.type", f"opsGenieConfig responder type {t!r} does not match valid options "
                                           "^(team|teams|user|escalation|schedule)$"))
    if not _given(c, "api_key", "api_key_file") and not _given(g, "opsgenie_api_key", "opsgenie_api_key_file"):
        errs.append(_err(f"{path}.api_key", "no global OpsGenie API Key set either inline or in a file"))
    if c.get("api_url") is not None:
        errs += check_url(c["api_url"], f"{path}.api_url")
    return errs


_VO_RESERVED = ("routing_key", "message_type", "state_message", "entity_display_name", "monitoring_tool",
                "entity_id", "entity_state")


def _victorops(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path, maps=("custom_fields",))
    if not c.get("routing_key"):
        errs.append(_err(f"{path}.routing_key", "missing Routing key in VictorOps config"))
    errs += _exclusive(c, "api_key", "api_key_file", path)
    for k in _VO_RESERVED:
        if k in (c.get("custom_fields") or {}):
            errs.append(_err(f"{path}.custom_fields.{k}", f"victorOps config contains custom field {k} which cannot "
                                                          "be used as it conflicts with the fixed/static fields"))
    if not _given(c, "api_key", "api_key_file") and not _given(g, "victorops_api_key", "victorops_api_key_file"):
        errs.append(_err(f"{path}.api_key", "no global VictorOps API Key set"))
    if c.get("api_url") is not None:
        errs += check_url(c["api_url"], f"{path}.api_url")
    return errs


def _pushover(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path, bools=("html", "monospace"))
    if not _given(c, "user_key", "user_key_file"):
        errs.append(_err(f"{path}.user_key", "missing user key in Pushover config"))
    errs += _exclusive(c, "user_key", "user_key_file", path)
    if not _given(c, "token", "token_file"):
        errs.append(_err(f"{path}.token", "missing token in Pushover config"))
    errs += _exclusive(c, "token", "token_file", path)
    if c.get("html") and c.get("monospace"):
        errs.append(_err(f"{path}.monospace", "at most one of monospace & html must be configured"))
    for k in ("retry", "expire", "ttl"):
        if c.get(k) is not None and not _DURATION.match(str(c[k])):
            errs.append(_err(f"{path}.{k}", f'time: invalid duration "{c[k]}"'))
    return errs


def _webex(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path)
    if not c.get("room_id"):
        errs.append(_err(f"{path}.room_id", "missing room_id on webex_config"))
    hc = c.get("http_config") if c.get("http_config") is not None else g.get("http_config")
    if not isinstance(hc, dict) or hc.get("authorization") is None:
        errs.append(_err(f"{path}.http_config.authorization", "missing webex_configs.http_config.authorization"))
    if c.get("api_url") is not None:
        errs += check_url(c["api_url"], f"{path}.api_url")
    return errs


def _wechat(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path)
    if c.get("message_type") not in (None, "", "text", "markdown"):
        errs.append(_err(f"{path}.message_type", f'weChat message type "{c["message_type"]}" does not match valid '
                                                 "options ^(text|markdown)$"))
    errs += _exclusive(c, "api_secret", "api_secret_file", path)
    if not _given(c, "api_secret", "api_secret_file") and not g.get("wechat_api_secret"):
        errs.append(_err(f"{path}.api_secret", "no global Wechat ApiSecret set"))
    if not c.get("corp_id") and not g.get("wechat_api_corp_id"):
        errs.append(_err(f"{path}.corp_id", "no global Wechat CorpID set"))
    if c.get("api_url") is not None:
        errs += check_url(c["api_url"], f"{path}.api_url")
    return errs


def _sns(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path, maps=("attributes",))
    t, tp, p = (not c.get("target_arn")), (not c.get("topic_arn")), (not c.get("phone_number"))
    if (t != tp) != p:  # Alertmanager's own (odd-parity) test, kept as it is
        errs.append(_err(path, "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config"))
    sig = c.get("sigv4")
    if sig is not None and not isinstance(sig, dict):
        errs.append(_err(f"{path}.sigv4", "must be a mapping"))
    elif sig:
        errs += [_err(f"{path}.sigv4.{k}", "unknown key") for k in sig if k not in SIGV4_KEYS]
        if bool(sig.get("access_key")) != bool(sig.get("secret_key")):
            errs.append(_err(f"{path}.sigv4", "must provide a AWS SigV4 Access key and Secret Key if "
                                              "sigv4 is specified"))
    return errs


def _slack(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _exclusive(c, "api_url", "api_url_file", path)
    if not _given(c, "api_url", "api_url_file", "bot_token", "bot_token_file") and \
            not _given(g, "slack_api_url", "slack_api_url_file"):
        errs.append(_err(f"{path}.api_url", "no global Slack API URL set either inline or in a file"))
    if c.get("api_url") is not None:
        errs += check_url(c["api_url"], f"{path}.api_url")
    for i, f in enumerate(c.get("fields") or []):
        if isinstance(f, dict) and not f.get("title"):
            errs.append(_err(f"{path}.fields[{i}].title", "missing title in Slack field configuration"))
        elif isinstance(f, dict) and not f.get("value"):
            errs.append(_err(f"{path}.fields[{i}].value", "missing value in Slack field configuration"))
    for i, a in enumerate(c.get("actions") or []):
        if not isinstance(a, dict):
            continue
        for key in ("type", "text"):
            if not a.get(key):
                errs.append(_err(f"{path}.actions[{i}].{key}", f"missing {key} in Slack action configuration"))
        if a.get("type") and a.get("text") and not (a.get("url") or a.get("name")):
            errs.append(_err(f"{path}.actions[{i}]", "missing name or url in Slack action configuration"))
        conf = a.get("confirm")
        if isinstance(conf, dict) and not conf.get("text"):
            errs.append(_err(f"{path}.actions[{i}].confirm.text", "missing text in Slack confirmation configuration"))
    return errs


def _pagerduty(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = []
    if not _given(c, "routing_key", "service_key", "routing_key_file", "service_key_file"):
        errs.append(_err(path, "missing service or routing key in PagerDuty config"))
    errs += _exclusive(c, "routing_key", "routing_key_file", path)
    errs += _exclusive(c, "service_key", "service_key_file", path)
    if c.get("url") is not None:
        errs += check_url(c["url"], f"{path}.url")
    return errs


def _webhook(c: dict[str, Any], g: dict[str, Any], path: str) -> list[ConfigError]:
    errs = _types(c, path, ints=("max_alerts",))
    if isinstance(c.get("max_alerts"), int) and c["max_alerts"] < 0:
        errs.append(_err(f"{path}.max_alerts", "must be a non-negative integer"))
    return errs


WEBHOOK_KEYS = {"url", "url_file", "send_resolved", "max_alerts", "http_config", "timeout", "_path"}


def webhook_errors(c: dict[str, Any], path: str) -> list[ConfigError]:
    """Everything the webhook receiver rejects, without building it."""
    errs = [_err(f"{path}.{k}", "unknown key") for k in c if k not in WEBHOOK_KEYS]
    if c.get("url") is None and not c.get("url_file"):
        errs.append(_err(f"{path}.url", "one of url or url_file must be configured"))
    if c.get("url") is not None and c.get("url_file"):
        errs.append(_err(f"{path}.url_file", "at most one of url & url_file must be configured"))
    if c.get("url") is not None:
        errs += check_url(c["url"], f"{path}.url")
    errs += [_err(f"{path}.http_config.{k}", "unknown key") for k in (c.get("http_config") or {})
             if k not in HTTP_CONFIG_KEYS]
    if c.get("timeout") is not None:
        from routing.durations import parse_duration

        try:
            parse_duration(c["timeout"], f"{path}.timeout")
        except ConfigError as e:
            errs.append(e)
    return errs


# Kinds whose receivers check their own keys (they have Tocsin extensions): only semantics are checked here.
OWN_KEYS = {"slack", "pagerduty", "webhook"}

CHECKS: dict[str, Callable[[dict[str, Any], dict[str, Any], str], list[ConfigError]]] = {
    "email": _email, "telegram": _telegram, "discord": _webhook_url_kind("discord"),
    "msteams": _webhook_url_kind("msteams"), "msteamsv2": _webhook_url_kind("msteamsv2"),
    "opsgenie": _opsgenie, "victorops": _victorops, "pushover": _pushover, "webex": _webex, "wechat": _wechat,
    "sns": _sns, "slack": _slack, "pagerduty": _pagerduty, "webhook": _webhook,
}


def validate_integration(kind: str, c: dict[str, Any], global_: dict[str, Any], path: str) -> list[ConfigError]:
    """Every problem of one `<kind>_configs` entry, as Alertmanager 0.25 reports it (see the module docstring)."""
    check = CHECKS.get(kind)
    if check is None:
        return []
    allowed = AM025_KEYS.get(kind, set()) | LATER_KEYS.get(kind, set()) | TOCSIN_KEYS.get(kind, set()) | COMMON
    errs = [] if kind in OWN_KEYS else [_err(f"{path}.{k}", "unknown key") for k in c if k not in allowed and k != "_path"]
    errs += check_http_config(c.get("http_config"), f"{path}.http_config")
    return errs + check(c, global_, path)


GLOBAL_URLS = ("slack_api_url", "pagerduty_url", "opsgenie_api_url", "wechat_api_url", "victorops_api_url",
               "telegram_api_url", "webex_api_url")


def validate_global(g: dict[str, Any]) -> list[ConfigError]:
    """The receiver-related checks of Alertmanager's global section."""
    errs: list[ConfigError] = []
    for a, b in (("slack_api_url", "slack_api_url_file"), ("opsgenie_api_key", "opsgenie_api_key_file"),
                 ("victorops_api_key", "victorops_api_key_file"), ("smtp_auth_password", "smtp_auth_password_file")):
        errs += _exclusive(g, a, b, "global")
    for k in GLOBAL_URLS:
        if g.get(k) is not None:
            errs += check_url(g[k], f"global.{k}")
    if g.get("smtp_smarthost"):
        errs += _hostport(g["smtp_smarthost"], "global.smtp_smarthost")
    if g.get("smtp_require_tls") is not None and not isinstance(g["smtp_require_tls"], bool):
        errs.append(_err("global.smtp_require_tls", "must be true or false"))
    errs += check_http_config(g.get("http_config"), "global.http_config")
    return errs
