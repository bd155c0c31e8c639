"""Alertmanager's Pushover integration: one form POST to the Messages API.

Config (Alertmanager 0.25): user_key / user_key_file, token / token_file (read when sending), title (cut to
250), message (cut to 1024; "(no details)" when empty), url (cut to 512), url_title, device, sound, priority
(default 2, emergency, while firing and 0 when resolved), retry (1m), expire (1h), ttl, html, monospace,
send_resolved (default true), http_config. The form goes in the body, not the URL, so the token never lands in
a proxy's access log. Retried: 5xx and network errors.
"""
from __future__ import annotations

from typing import Any

from routing.durations import parse_duration

from routing.receivers.fields import has_go_template, render_field, truncate_runes
from routing.receivers.http import HttpIntegration, secret

API_URL = "https://api.pushover.net/1/messages.json"


class PushoverReceiver(HttpIntegration):
    kind = "pushover"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.user_key = secret(self.c, "user_key")
        self.token = secret(self.c, "token")
        self.api_url = str(self.c.get("api_url") or API_URL)
        self.retry = int(parse_duration(self.c.get("retry", "1m"), f"{self.path}.retry"))
        self.expire = int(parse_duration(self.c.get("expire", "1h"), f"{self.path}.expire"))
        self.ttl = int(parse_duration(self.c["ttl"], f"{self.path}.ttl")) if self.c.get("ttl") else 0

    def form(self, n: Any, token: str, user: str) -> dict[str, str]:
        f = lambda name: render_field(self.kind, name, self.c.get(name), n)  # noqa: E731
        title, _ = truncate_runes(f("title"), 250)
        message, _ = truncate_runes(f("message"), 1024)
        message = message.strip() or "(no details)"
        url, _ = truncate_runes(f("url"), 512)
        prio = self.c.get("priority")
        priority = ("2" if n.status == "firing" else "0") if prio is None or has_go_template(prio) else str(prio)
        form = {"token": token, "user": user, "title": title, "message": message, "url": url,
                "url_title": f("url_title"), "priority": priority, "retry": str(self.retry),
                "expire": str(self.expire), "device": render_field(self.kind, "device", self.c.get("device", ""), n),
                "sound": render_field(self.kind, "sound", self.c.get("sound", ""), n)}
        if self.ttl:
            form["ttl"] = str(self.ttl)
        if self.c.get("html"):
            form["html"] = "1"
        if self.c.get("monospace"):
            form["monospace"] = "1"
        return form

    async def deliver(self, n: Any) -> None:
        token, user = self.token.get(), self.user_key.get()
        await self.http.request("POST", self.api_url, data=self.form(n, token, user), secrets=[token, user])
