"""Alertmanager's Discord integration: one webhook execution per notification with one embed.

Config (Alertmanager 0.25): webhook_url (a secret), title, message, send_resolved (default true), http_config.
Embed colour: red while firing, green when resolved. Title is cut to 256 characters and the description to
4096, as Discord limits them. Retried: 5xx and network errors (Alertmanager's default Retrier).
"""
from __future__ import annotations

from typing import Any

from routing.receivers.fields import render_field, truncate_runes
from routing.receivers.http import HttpIntegration, secret

COLOR_RED, COLOR_GREEN, COLOR_GREY = 0x992D22, 0x2ECC71, 0x95A5A6


class DiscordReceiver(HttpIntegration):
    kind = "discord"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.url = secret(self.c, "webhook_url")

    async def deliver(self, n: Any) -> None:
        title, _ = truncate_runes(render_field(self.kind, "title", self.c.get("title"), n), 256)
        desc, _ = truncate_runes(render_field(self.kind, "message", self.c.get("message"), n), 4096)
        color = COLOR_RED if n.status == "firing" else COLOR_GREEN if n.status == "resolved" else COLOR_GREY
        body = {"content": "", "embeds": [{"title": title, "description": desc, "color": color}]}
        url = self.url.get()
        await self.http.request("POST", url, json=body, secrets=[url])
