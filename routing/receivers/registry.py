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
}
# Alertmanager integrations Tocsin keeps in the config but does not deliver (see undeliverable.py).
UNDELIVERABLE = {"sns", "jira", "rocketchat", "incidentio"}
# Every kind Tocsin can deliver (the rest are built in service.engine.default_receiver_factory).
DELIVERABLE = set(AM_KINDS) | {"webhook", "slack", "pagerduty", "console", "digest"}
# Alertmanager's send_resolved defaults that are false (everything else defaults to true).
SEND_RESOLVED_FALSE = {"slack", "email", "wechat", "rocketchat"}


def send_resolved_default(kind: str) -> bool:
    return kind not in SEND_RESOLVED_FALSE


def build(kind: str, d: dict[str, Any], path: str, integration: str, *, timeout: float, clock: Any,
          global_: dict[str, Any]) -> Any:
    if kind in UNDELIVERABLE:
        from .undeliverable import UndeliverableReceiver

        return UndeliverableReceiver(integration, kind, bool(d.get("send_resolved", send_resolved_default(kind))))
    mod, cls = AM_KINDS[kind]
    return getattr(importlib.import_module(mod), cls)(integration, d, path, timeout=timeout, clock=clock,
                                                      global_=global_)
