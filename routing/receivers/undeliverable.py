"""An Alertmanager integration Tocsin does not deliver (SNS, Jira, Rocket.Chat, incident.io).

A configuration may keep one (with a warning; a route to a receiver that has nothing else is an error unless
`tocsin: {allow_undeliverable_receivers: true}`). Its notifications are not dropped in silence: each one fails,
is logged by the outbox and counted as `tocsin_notifications_failed_total{reason="undeliverable"}`.
"""
from __future__ import annotations

from typing import Any

from routing.receivers.base import NotifyError


class UndeliverableReceiver:
    def __init__(self, integration: str, kind: str, send_resolved: bool = True):
        self.integration = integration
        self.kind = kind
        self.send_resolved = send_resolved

    async def send(self, n: Any, state: dict[str, Any] | None = None) -> Any:
        raise NotifyError(f"{self.kind} is an Alertmanager integration Tocsin does not deliver", False,
                          label="undeliverable")

    async def close(self) -> None:
        return None
