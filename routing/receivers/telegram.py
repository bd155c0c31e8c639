"""Alertmanager's Telegram integration: the Bot API's sendMessage, as Alertmanager's telebot client sends it.

Config (Alertmanager 0.25): api_url (default https://api.telegram.org, or global telegram_api_url), bot_token /
bot_token_file (read when sending), chat_id, message_thread_id, message (default: the plain message; HTML-escaped
with parse_mode HTML), disable_notifications, parse_mode (default HTML), send_resolved (default true),
http_config. Alertmanager retries every failed send; so does this one (Telegram's own `retry_after` is honoured).
"""
from __future__ import annotations

from typing import Any

from routing.receivers.base import NotifyError
from routing.receivers.fields import render_field, truncate_runes
from routing.receivers.http import HttpIntegration, scrub, secret

DEFAULT_API_URL = "https://api.telegram.org"
MAX_MESSAGE_RUNES = 4096


class TelegramReceiver(HttpIntegration):
    kind = "telegram"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        c = self.c
        self.api_url = str(c.get("api_url") or self.global_.get("telegram_api_url") or DEFAULT_API_URL).rstrip("/")
        self.token = secret(c, "bot_token")
        self.chat_id = c.get("chat_id")
        self.thread_id = c.get("message_thread_id")
        self.parse_mode = c.get("parse_mode", "HTML")
        self.disable_notifications = bool(c.get("disable_notifications", False))

    async def deliver(self, n: Any) -> None:
        html = self.parse_mode == "HTML"
        text, _ = truncate_runes(render_field(self.kind, "message", self.c.get("message"), n, html=html),
                                 MAX_MESSAGE_RUNES)
        token = self.token.get()
        params: dict[str, Any] = {"chat_id": str(self.chat_id), "text": text, "disable_web_page_preview": "true"}
        if self.parse_mode:
            params["parse_mode"] = self.parse_mode
        if self.disable_notifications:
            params["disable_notification"] = "true"
        if self.thread_id:
            params["message_thread_id"] = str(self.thread_id)
        try:
            r = await self.http.request("POST", f"{self.api_url}/bot{token}/sendMessage", json=params,
                                        secrets=[token], check=False)
        except NotifyError as e:
            raise NotifyError(e.reason.replace(token, "<redacted>"), True) from None
        body: dict[str, Any] = {}
        try:
            body = r.json() or {}
        except ValueError:
            body = {}
        if 200 <= r.status < 300 and body.get("ok", True):
            return
        desc = scrub(str(body.get("description") or r.text[:200]), [token])
        retry_after = (body.get("parameters") or {}).get("retry_after") if isinstance(body, dict) else None
        # Alertmanager 0.25 retries every failed Telegram send.
        raise NotifyError(f"telegram: HTTP {r.status}: {desc}", True,
                          float(retry_after) if isinstance(retry_after, (int, float)) else None, r.status)
