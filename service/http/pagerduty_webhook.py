"""PagerDuty webhook v3 endpoint: acknowledgements and resolves made in PagerDuty come back to Tocsin.

    handler = make_pagerduty_webhook_handler(["secret"], redis, prefix, on_event)
    app.router.add_post("/pagerduty/webhook", handler)

Checks, in order: `X-PagerDuty-Signature` (one or more `v1=<hex>` values, each HMAC-SHA256 of the raw
body; any match with any configured secret passes, compared in constant time; else 401), the JSON body
(400), the signed `event.occurred_at` within `WINDOW_SECONDS` of now on the injected clock (401 otherwise),
and deduplication on the signed `event.id` (Redis SET NX, kept longer than the window, so that a captured
request replayed with a fresh `X-Webhook-Id`, which the signature does not cover, is a duplicate; and one
replayed after its id is forgotten is outside the window). incident.acknowledged / incident.resolved / incident.unacknowledged with an `incident_key` become
a `PagerDutyEvent` passed to `on_event`, awaited before answering: if it raises, the dedup mark is
removed and the answer is 500, so PagerDuty's retry is processed again.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import web

from service.core.clock import parse_rfc3339
from service.store.keys import Keys
from service.store.once import Once

log = logging.getLogger(__name__)

DEDUP_TTL_SECONDS = 48 * 3600
WINDOW_SECONDS = 24 * 3600  # PagerDuty retries a delivery for a while; the dedup memory outlives the window
FUTURE_SKEW_SECONDS = 300
EVENT_KINDS = {
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
    "incident.unacknowledged": "unacknowledged",
}


@dataclass(frozen=True)
class PagerDutyEvent:
    kind: str  # acknowledged | resolved | unacknowledged
    incident_key: str  # = the dedup_key Tocsin sent (routing.receivers.pagerduty.dedup_key_for)
    agent: str | None  # who did it (agent.summary), e.g. "Pat Oncall"
    agent_type: str | None  # "user_reference", or "service_reference" for changes made through the API
    pd_incident_id: str | None
    occurred_at: float | None
    webhook_id: str | None


def signature_valid(body: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """True when any `v1=` value in the header is HMAC-SHA256(secret, body) for any secret."""
    if not header:
        return False
    given = [p.strip()[3:] for p in header.split(",") if p.strip().startswith("v1=")]
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for g in given:
            # Compare every candidate (no early exit), in constant time each.
            ok |= hmac.compare_digest(expected.encode(), g.encode("utf-8", "replace"))
    return ok


def parse_event(body: Any, webhook_id: str | None = None) -> PagerDutyEvent | None:
    """The PagerDutyEvent in a webhook v3 body, or None for events Tocsin does not act on."""
    if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
        raise ValueError("event: missing")
    ev = body["event"]
    kind = EVENT_KINDS.get(str(ev.get("event_type")))
    if kind is None:
        return None
    data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    key = data.get("incident_key")
    if not isinstance(key, str) or not key:
        return None  # not an incident Tocsin created through the Events API
    agent = ev.get("agent") if isinstance(ev.get("agent"), dict) else {}
    occurred = None
    if isinstance(ev.get("occurred_at"), str):
        try:
            occurred = parse_rfc3339(ev["occurred_at"])
        except ValueError:
            occurred = None
    return PagerDutyEvent(
        kind=kind, incident_key=key,
        agent=str(agent["summary"]) if agent.get("summary") else None,
        agent_type=str(agent["type"]) if agent.get("type") else None,
        pd_incident_id=str(data["id"]) if data.get("id") else None,
        occurred_at=occurred, webhook_id=webhook_id,
    )


class PagerDutyWebhookHandler:
    def __init__(self, secrets: Iterable[str], redis: Any, prefix: str,
                 on_event: Callable[[PagerDutyEvent], Awaitable[Any]], clock: Any = None):
        self.clock = clock  # None: no occurred_at window (unit tests of parsing only)
        self.secrets = [s for s in secrets if s]
        if not self.secrets:
            raise ValueError("at least one PagerDuty webhook secret is required")
        self.once = Once(redis)
        self.keys = Keys(prefix)
        self.on_event = on_event

    def _outside_window(self, event: PagerDutyEvent) -> str | None:
        if self.clock is None:
            return None
        now = self.clock.now()
        if event.occurred_at is None:
            return "event.occurred_at: missing or not an RFC 3339 time"
        if not now - WINDOW_SECONDS <= event.occurred_at <= now + FUTURE_SKEW_SECONDS:
            return "event.occurred_at: outside the accepted window (a stale or replayed delivery)"
        return None

    async def __call__(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not signature_valid(raw, request.headers.get("X-PagerDuty-Signature"), self.secrets):
            return web.Response(status=401, text="invalid signature")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="body: invalid JSON")
        webhook_id = request.headers.get("X-Webhook-Id") or None
        if webhook_id is not None and len(webhook_id) > 200:
            return web.Response(status=400, text="X-Webhook-Id: too long")
        try:
            event = parse_event(body, webhook_id)
        except ValueError as e:
            return web.Response(status=400, text=str(e))
        if event is None:
            return web.Response(status=200, text="ignored")
        if (stale := self._outside_window(event)) is not None:
            return web.Response(status=401, text=stale)
        # The signed event id (the body's hash when there is none): never the unsigned X-Webhook-Id.
        ev_id = body["event"].get("id")
        signed_id = ev_id if isinstance(ev_id, str) and 0 < len(ev_id) <= 200 else \
            "sha256-" + hashlib.sha256(raw).hexdigest()
        key = self.keys.pagerduty_webhook(signed_id)
        if not await self.once.claim(key, DEDUP_TTL_SECONDS):
            return web.Response(status=200, text="duplicate")
        try:
            await self.on_event(event)
        except Exception as e:  # noqa: BLE001 - PagerDuty retries; the next attempt must not look like a duplicate
            log.error("pagerduty webhook handler failed: %r", e)
            await self.once.release(key)
            return web.Response(status=500, text="handler failed")
        return web.Response(status=200, text="ok")


def make_pagerduty_webhook_handler(secrets: Iterable[str] | str, redis: Any, prefix: str,
                                   on_event: Callable[[PagerDutyEvent], Awaitable[Any]], *, clock: Any = None,
                                   ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for PagerDuty webhook v3 deliveries (see the module docstring); `clock` (the
    service's) turns on the occurred_at window."""
    if isinstance(secrets, str):
        secrets = [secrets]
    impl = PagerDutyWebhookHandler(secrets, redis, prefix, on_event, clock=clock)

    async def handler(request: web.Request) -> web.Response:
        return await impl(request)

    handler.impl = impl  # type: ignore[attr-defined]
    return handler
