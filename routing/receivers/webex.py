"""Alertmanager's Webex integration: one message to a room through the Messages API, as markdown.

Config (Alertmanager 0.25): api_url (default global webex_api_url, https://webexapis.com/v1/messages), room_id,
message (cut to 7439 bytes), send_resolved (default true), http_config whose `authorization` carries the bot
token (required). Retried: 5xx and network errors.
"""
from __future__ import annotations

from typing import Any

from routing.receivers.fields import render_field, truncate_bytes
from routing.receivers.http import HttpIntegration

DEFAULT_API_URL = "https://webexapis.com/v1/messages"
MAX_MESSAGE_BYTES = 7439


class WebexReceiver(HttpIntegration):
    kind = "webex"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.api_url = str(self.c.get("api_url") or self.global_.get("webex_api_url") or DEFAULT_API_URL)

    async def deliver(self, n: Any) -> None:
        message, _ = truncate_bytes(render_field(self.kind, "message", self.c.get("message"), n), MAX_MESSAGE_BYTES)
        room = render_field(self.kind, "room_id", self.c.get("room_id"), n)
        await self.http.request("POST", self.api_url, json={"roomId": room, "markdown": message})
