"""Alertmanager's VictorOps (Splunk On-Call) integration: the REST endpoint's generic alert POST.

Config (Alertmanager 0.25): api_key / api_key_file (read when sending; default global victorops_api_key[_file]),
api_url (default global victorops_api_url, https://alert.victorops.com/integrations/generic/20131114/alert/),
routing_key, message_type (CRITICAL; RECOVERY when resolved; unknown types become CRITICAL), state_message
(cut to 20480), entity_display_name, monitoring_tool, custom_fields, send_resolved (default true), http_config.
entity_id is the SHA-256 of the group key. Retried: 5xx and network errors.
"""
from __future__ import annotations

import hashlib
from typing import Any

from routing.receivers.fields import render_field, render_map, truncate_runes
from routing.receivers.http import HttpIntegration, Secret, secret

DEFAULT_API_URL = "https://alert.victorops.com/integrations/generic/20131114/alert/"
ALLOWED = {"INFO", "WARNING", "CRITICAL"}


class VictorOpsReceiver(HttpIntegration):
    kind = "victorops"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        g = self.global_
        self.api_key = secret(self.c, "api_key", secret(g, "victorops_api_key") if (
            g.get("victorops_api_key") or g.get("victorops_api_key_file")) else Secret(key="api_key"))
        url = str(self.c.get("api_url") or g.get("victorops_api_url") or DEFAULT_API_URL)
        self.api_url = url if url.endswith("/") else url + "/"

    def payload(self, n: Any) -> dict[str, str]:
        f = lambda name, default=None: render_field(self.kind, name, self.c.get(name, default), n)  # noqa: E731
        mtype = f("message_type", "CRITICAL")
        if n.status == "firing" and mtype not in ALLOWED:
            mtype = "CRITICAL"
        if n.status == "resolved":
            mtype = "RECOVERY"
        state, _ = truncate_runes(f("state_message"), 20480)
        msg = {"message_type": mtype, "entity_id": hashlib.sha256(n.group_key.encode()).hexdigest(),
               "entity_display_name": f("entity_display_name"), "state_message": state,
               "monitoring_tool": f("monitoring_tool")}
        msg.update(render_map(self.kind, "custom_fields", self.c.get("custom_fields"), n))
        return msg

    async def deliver(self, n: Any) -> None:
        key = self.api_key.get()
        routing = render_field(self.kind, "routing_key", self.c.get("routing_key"), n)
        await self.http.request("POST", f"{self.api_url}{key}/{routing}", json=self.payload(n), secrets=[key])
