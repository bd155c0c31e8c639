"""Microsoft Teams, as Alertmanager sends it: `msteams` (an Office 365 connector's incoming webhook, a
MessageCard) and `msteamsv2` (a Power Automate / Workflows ("Flows") webhook, an Adaptive Card message).

Config: webhook_url / webhook_url_file (read when sending), title, summary (v1 only), text, send_resolved
(default true), http_config. Retried: 5xx and network errors (Alertmanager's default Retrier).
"""
from __future__ import annotations

from typing import Any

from routing.receivers.fields import render_field
from routing.receivers.http import HttpIntegration, secret

V1_COLORS = {"firing": "8C1A1A", "resolved": "2DC72D"}
V2_COLORS = {"firing": "Attention", "resolved": "Good"}


class MSTeamsReceiver(HttpIntegration):
    kind = "msteams"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.url = secret(self.c, "webhook_url")

    def payload(self, n: Any) -> dict[str, Any]:
        return {
            "@context": "http://schema.org/extensions",
            "type": "MessageCard",
            "title": render_field(self.kind, "title", self.c.get("title"), n),
            "summary": render_field(self.kind, "summary", self.c.get("summary"), n),
            "text": render_field(self.kind, "text", self.c.get("text"), n),
            "themeColor": V1_COLORS.get(n.status, "808080"),
        }

    async def deliver(self, n: Any) -> None:
        url = self.url.get()
        await self.http.request("POST", url, json=self.payload(n), secrets=[url])


class MSTeamsV2Receiver(MSTeamsReceiver):
    kind = "msteamsv2"

    def payload(self, n: Any) -> dict[str, Any]:
        title = render_field(self.kind, "title", self.c.get("title"), n)
        text = render_field(self.kind, "text", self.c.get("text"), n)
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": [
                {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True,
                 "style": "heading", "color": V2_COLORS.get(n.status, "Warning")},
                {"type": "TextBlock", "text": text, "wrap": True},
            ],
            "msteams": {"width": "full"},
        }
        return {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
