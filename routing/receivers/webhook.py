"""Alertmanager's webhook integration: POSTs the version-4 payload, so any Alertmanager webhook consumer works
unchanged. Supports url / url_file (read when sending), send_resolved, max_alerts and http_config (through the
shared sender: authorization, bearer token, basic auth, proxy, TLS). Retried: 5xx, 429 and network errors
(Alertmanager retries 5xx; Tocsin also retries 429 from webhook consumers, as it always has)."""
from __future__ import annotations

from typing import Any

from service.core.models import Notification

from routing.receivers.base import Delivered
from routing.receivers.http import HttpSender, Secret, secret
from routing.receivers.validate import webhook_errors


class WebhookReceiver:
    def __init__(self, integration: str, url: Secret, send_resolved: bool = True,
                 http_config: dict[str, Any] | None = None, timeout: float = 10.0):
        self.integration = integration
        self.url = url
        self.send_resolved = send_resolved
        self.http = HttpSender(http_config or {}, timeout)

    @classmethod
    def from_config(cls, c: dict[str, Any], integration: str, timeout: float = 10.0,
                    global_http: dict[str, Any] | None = None) -> "WebhookReceiver":
        path = c.get("_path", integration)
        errs = webhook_errors(c, path)
        if errs:
            raise errs[0]
        hc = c.get("http_config")
        if c.get("timeout") is not None:  # Alertmanager 0.27+: the webhook's own timeout (0: none)
            from routing.durations import parse_duration

            timeout = parse_duration(c["timeout"], f"{path}.timeout") or 0.0
        return cls(integration, secret(c, "url"), bool(c.get("send_resolved", True)),
                   hc if hc is not None else global_http, timeout)

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        url = self.url.get()
        await self.http.request("POST", url, json=n.webhook_payload(), retry_codes=(429,), secrets=[url])
        return Delivered()

    async def close(self) -> None:
        await self.http.close()
