"""Which Alertmanager integrations Tocsin delivers, their send_resolved defaults, and how to build one.

Receiver modules are imported only when a receiver of their kind is built, so that `tocsin check-config`
does not pay for aiohttp/aiosmtplib imports it does not need.
"""
from __future__ import annotations

import importlib
from typing import Any

# kind -> (module, class) for the Alertmanager-style integrations of this package.
AM_KINDS: dict[str, tuple[str, str]] = {
    "email": ("routing.receivers.email", "EmailReceiver"),
    "telegram": ("routing.receivers.telegram", "TelegramReceiver"),
    "discord": ("routing.receivers.discord", "DiscordReceiver"),
    "msteams": ("routing.receivers.msteams", "MSTeamsReceiver"),
    "msteamsv2": ("routing.receivers.msteams", "MSTeamsV2Receiver"),
    "opsgenie": ("routing.receivers.opsgenie", "OpsgenieReceiver"),
    "victorops": ("routing.receivers.victorops", "VictorOpsReceiver"),
    "pushover": ("routing.receivers.pushover", "PushoverReceiver"),
    "webex": ("routing.receivers.webex", "WebexReceiver"),
    "wechat": ("routing.receivers.wechat", "WeChatReceiver"),
    "sns": ("routing.receivers.sns", "SNSReceiver"),
}
# Alertmanager integrations Tocsin keeps in the config but does not deliver (see undeliverable.py).
UNDELIVERABLE = {"jira", "rocketchat", "incidentio"}
# Every kind Tocsin can deliver.
DELIVERABLE = set(AM_KINDS) | {"webhook", "slack", "pagerduty", "console", "digest"}
# Alertmanager's send_resolved defaults that are false (everything else defaults to true).
SEND_RESOLVED_FALSE = {"slack", "email", "wechat", "rocketchat"}


def send_resolved_default(kind: str) -> bool:
    return kind not in SEND_RESOLVED_FALSE


def build(kind: str, d: dict[str, Any], path: str, integration: str, *, timeout: float, clock: Any,
          global_: dict[str, Any]) -> Any:
    if kind in UNDELIVERABLE:
        from routing.receivers.undeliverable import UndeliverableReceiver

        return UndeliverableReceiver(integration, kind, bool(d.get("send_resolved", send_resolved_default(kind))))
    mod, cls = AM_KINDS[kind]
    return getattr(importlib.import_module(mod), cls)(integration, d, path, timeout=timeout, clock=clock,
                                                      global_=global_)


_PACERS: dict[int, Any] = {}  # one Slack pacer per clock: the per-channel limit holds across receivers


def build_receiver(integration: str, kind: str, c: dict[str, Any], global_: dict[str, Any], timeout: float,
                   clock: Any, *, go_templates: Any = None) -> Any:
    """The receiver for one configured integration (what `service.engine.default_receiver_factory` builds)."""
    path = c.get("_path", integration)
    d = {k: v for k, v in c.items() if k != "_path"}
    if kind == "webhook":
        from routing.receivers.webhook import WebhookReceiver

        return WebhookReceiver.from_config(c, integration, timeout, global_.get("http_config"))
    if kind == "console":
        from routing.receivers.console import ConsoleReceiver

        return ConsoleReceiver.from_config(c, integration)
    if kind in AM_KINDS or kind in UNDELIVERABLE:
        return build(kind, d, path, integration, timeout=timeout, clock=clock, global_=global_)
    if kind == "slack":
        return _slack(d, path, integration, global_, clock, go_templates)
    if kind == "pagerduty":
        from routing.receivers.deferred import with_secret_files
        from routing.receivers.pagerduty import PagerDutyReceiver

        if "url" not in d and "events_url" not in d and global_.get("pagerduty_url"):
            d["url"] = global_["pagerduty_url"]
        return with_secret_files("pagerduty", d, lambda x: PagerDutyReceiver.from_config(
            x, path, integration, clock, go_templates=go_templates))
    if kind == "digest":
        from routing.receivers.digest import DigestReceiver

        return DigestReceiver.from_config(d, path, integration, clock)
    raise ValueError(f"unknown integration kind {kind}")


def _slack(d: dict[str, Any], path: str, integration: str, global_: dict[str, Any], clock: Any,
           go_templates: Any = None) -> Any:
    from routing.receivers.ratelimit import ChannelPacer

    from routing.receivers.deferred import with_secret_files
    from routing.receivers.slack import SlackReceiver

    if not any(k in d for k in ("api_url", "api_url_file", "bot_token", "bot_token_file")):
        for g in ("slack_api_url", "slack_api_url_file"):  # Alertmanager's global default
            if global_.get(g):
                d[g.removeprefix("slack_")] = global_[g]
    pacer = _PACERS.setdefault(id(clock), ChannelPacer(clock))
    return with_secret_files("slack", d, lambda x: SlackReceiver.from_config(x, path, integration, clock, pacer=pacer,
                                                                         go_templates=go_templates))


def check_receivers(receivers: dict[str, Any], global_: dict[str, Any], timeout: float, clock: Any) -> None:
    """Raise the ConfigError of the first integration its receiver module rejects, importing only the modules of
    the kinds the configuration uses (check-config). Alertmanager-style kinds and webhooks are already validated
    by the configuration loader (routing.receivers.validate)."""
    import asyncio

    for name, r in receivers.items():
        counts: dict[str, int] = {}
        for kind, c in r.integrations:
            idx = counts.get(kind, 0)
            counts[kind] = idx + 1
            if kind in AM_KINDS or kind in UNDELIVERABLE:
                continue
            if kind == "webhook":
                from routing.receivers.validate import webhook_errors

                errs = webhook_errors(c, c.get("_path", f"{name}/webhook/{idx}"))
                if errs:
                    raise errs[0]
                continue
            rec = build_receiver(f"{name}/{kind}/{idx}", kind, c, global_, timeout, clock)
            close = getattr(rec, "close", None)
            if close is not None:
                asyncio.run(close())
