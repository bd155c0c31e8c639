"""Alertmanager's Opsgenie integration: Alert API v2, create on firing and close (by alias) on resolve.

Config (Alertmanager 0.25): api_key / api_key_file (read when sending; default global opsgenie_api_key[_file]),
api_url (default global opsgenie_api_url, https://api.opsgenie.com/), message (cut to 130 characters),
description, source (default the external URL), details (merged over the common labels), entity, responders,
actions, tags (comma separated), note, priority, update_alerts, send_resolved (default true), http_config.
The alias is the SHA-256 of the group key, so the close finds the alert. Retried: 5xx, 429, network errors.
"""
from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from routing.receivers.fields import render_field, render_map, truncate_runes
from routing.receivers.http import HttpIntegration, Secret, secret

DEFAULT_API_URL = "https://api.opsgenie.com/"
RETRY_CODES = (429,)


def _split(s: str) -> list[str]:
    return [x for x in s.strip().split(",") if x]


class OpsgenieReceiver(HttpIntegration):
    kind = "opsgenie"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        g = self.global_
        self.api_key = secret(self.c, "api_key", secret(g, "opsgenie_api_key") if (
            g.get("opsgenie_api_key") or g.get("opsgenie_api_key_file")) else Secret(key="api_key"))
        url = str(self.c.get("api_url") or g.get("opsgenie_api_url") or DEFAULT_API_URL)
        self.api_url = url if url.endswith("/") else url + "/"

    def _responders(self, n: Any) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for i, r in enumerate(self.c.get("responders") or []):
            resp = {k: render_field(self.kind, f"responders[{i}].{k}", r.get(k), n) if r.get(k) else ""
                    for k in ("id", "name", "username", "type")}
            if not any(resp.values()):
                continue
            if resp["type"] == "teams":
                out.extend({"name": t, "type": "team"} for t in _split(resp["name"]))
                continue
            out.append({k: v for k, v in resp.items() if v or k == "type"})
        return out

    def create_message(self, n: Any, alias: str) -> dict[str, Any]:
        f = lambda name: render_field(self.kind, name, self.c.get(name), n)  # noqa: E731
        message, _ = truncate_runes(f("message"), 130)
        details = dict(n.common_labels())
        details.update(render_map(self.kind, "details", self.c.get("details"), n))
        msg: dict[str, Any] = {"alias": alias, "message": message, "details": details, "source": f("source")}
        for key in ("description", "note", "priority", "entity"):
            v = f(key)
            if v:
                msg[key] = v
        responders = self._responders(n)
        if responders:
            msg["responders"] = responders
        for key in ("tags", "actions"):
            items = _split(f(key))
            if items:
                msg[key] = items
        return msg

    async def deliver(self, n: Any) -> None:
        key = self.api_key.get()
        alias = hashlib.sha256(n.group_key.encode()).hexdigest()
        headers = {"Authorization": f"GenieKey {key}", "Content-Type": "application/json"}
        if n.status == "resolved":
            url = f"{self.api_url}v2/alerts/{quote(alias)}/close?identifierType=alias"
            body = {"source": render_field(self.kind, "source", self.c.get("source"), n)}
            await self.http.request("POST", url, json=body, headers=headers, retry_codes=RETRY_CODES, secrets=[key])
            return
        msg = self.create_message(n, alias)
        await self.http.request("POST", f"{self.api_url}v2/alerts", json=msg, headers=headers,
                                retry_codes=RETRY_CODES, secrets=[key])
        if self.c.get("update_alerts"):
            for what in ("message", "description"):
                url = f"{self.api_url}v2/alerts/{quote(alias)}/{what}?identifierType=alias"
                await self.http.request("PUT", url, json={what: msg.get(what, "")}, headers=headers,
                                        retry_codes=RETRY_CODES, secrets=[key])
