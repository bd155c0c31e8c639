"""A fake PagerDuty Events API v2 on 127.0.0.1, plus helpers to build signed webhook v3 deliveries.

    async with FakePagerDuty() as pd:
        receiver = PagerDutyReceiver(..., events_url=pd.events_url)
        pd.events                 # accepted events, in order
        pd.incidents[dedup_key]   # {"status": "triggered"|"acknowledged"|"resolved", "events": [...]}
        pd.fail_next(429, times=2)

Validation follows the real API: 400 with {"status": "invalid event", "message", "errors"} when
routing_key or event_action is missing or wrong, when acknowledge/resolve has no dedup_key, when a
trigger's payload lacks summary/source/severity or has a bad severity, when summary is over 1024
characters or dedup_key over 255, or when the body is over 512 KB; otherwise 202.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from aiohttp import web

from tests.fakes import LocalServer

SEVERITIES = {"critical", "error", "warning", "info"}


def payload_problems(p: Any) -> list[str]:
    """What PagerDuty's Events API v2 says about a trigger's `payload`."""
    if not isinstance(p, dict):
        return ["'payload' is missing"]
    errors = []
    s = p.get("summary")
    if not isinstance(s, str) or not s.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(s) > 1024:
        errors.append("'payload.summary' is longer than 1024 characters")
    if not isinstance(p.get("source"), str) or not p["source"].strip():
        errors.append("'payload.source' is missing or blank")
    if p.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is missing or invalid")
    if "custom_details" in p and not isinstance(p["custom_details"], (dict, str)):
        errors.append("'payload.custom_details' is invalid")
    return errors


class FakePagerDuty(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self._failures: list[tuple[int, float | None]] = []

    client_max_size = 4 * 1024 * 1024

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self._enqueue)

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/enqueue"

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self._failures.extend([(status, retry_after)] * times)

    def actions(self, dedup_key: str) -> list[str]:
        return [e["event_action"] for e in self.incidents.get(dedup_key, {}).get("events", [])]

    @staticmethod
    def validate(body: Any, size: int) -> list[str]:
        errors: list[str] = []
        if size > 512 * 1024:
            return ["Event is too large (over 512 KB)"]
        if not isinstance(body, dict):
            return ["Event object is invalid"]
        if not isinstance(body.get("routing_key"), str) or not body["routing_key"].strip():
            errors.append("'routing_key' is missing or blank")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is missing or invalid")
        dk = body.get("dedup_key")
        if dk is not None and (not isinstance(dk, str) or len(dk) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dk:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            errors += payload_problems(body.get("payload"))
        for i, link in enumerate(body.get("links") or []):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                errors.append(f"'links[{i}].href' is missing")
        return errors

    async def _enqueue(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self._failures:
            status, ra = self._failures.pop(0)
            headers = {"Retry-After": str(int(ra))} if ra is not None else {}
            if status == 429:
                return web.json_response({"status": "throttle event", "message": "Requests for this service are arriving too quickly."},
                                         status=429, headers=headers)
            return web.Response(status=status, text="upstream error", headers=headers)
        try:
            body = json.loads(raw)
        except ValueError:
            self.rejected.append({"raw": raw[:200]})
            return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                      "errors": ["Malformed JSON"]}, status=400)
        errors = self.validate(body, len(raw))
        if errors:
            self.rejected.append(body if isinstance(body, dict) else {"body": body})
            return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                      "errors": errors}, status=400)
        dk = body.get("dedup_key") or uuid.uuid4().hex
        body["dedup_key"] = dk
        self.events.append(body)
        inc = self.incidents.setdefault(dk, {"status": None, "events": []})
        inc["events"].append(body)
        action = body["event_action"]
        if action == "trigger" and inc["status"] in (None, "resolved"):
            inc["status"] = "triggered"
        elif action == "acknowledge" and inc["status"] == "triggered":
            inc["status"] = "acknowledged"
        elif action == "resolve" and inc["status"] is not None:
            inc["status"] = "resolved"
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dk}, status=202)


def webhook_event(event_type: str, incident_key: str | None, *, agent: str = "Pat Oncall",
                  agent_type: str = "user_reference", status: str | None = None,
                  occurred_at: str = "2026-11-23T07:00:00.000Z",
                  event_id: str = "5ac64822-4adc-4fda-ade0-410becf0de4f") -> dict[str, Any]:
    """A PagerDuty webhook v3 body for an incident event (each real event has its own id and time)."""
    data: dict[str, Any] = {
        "id": "PGR0VU2", "type": "incident", "self": "https://api.pagerduty.com/incidents/PGR0VU2",
        "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2", "number": 2,
        "status": status or event_type.split(".", 1)[-1].replace("unacknowledged", "triggered"),
        "title": "A little bump in the road", "urgency": "high",
    }
    if incident_key is not None:
        data["incident_key"] = incident_key
    return {"event": {
        "id": event_id, "event_type": event_type, "resource_type": "incident",
        "occurred_at": occurred_at,
        "agent": {"html_url": "https://acme.pagerduty.com/users/PLH1HKV", "id": "PLH1HKV",
                  "self": "https://api.pagerduty.com/users/PLH1HKV", "summary": agent, "type": agent_type},
        "client": None, "data": data,
    }}


def sign_webhook(body: bytes, *secrets: str) -> str:
    """The X-PagerDuty-Signature header value for `body`: one v1= signature per secret."""
    return ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)
