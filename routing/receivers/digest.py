"""The digest receiver: low-severity or low-confidence incidents are collected and sent on a schedule as one
message (Slack or webhook) with counts, the top items and links. An incident in a digest that grows past the
configured severity or confidence is taken out and notified at once through another receiver.

    receivers:
      - name: daily-digest
        digest_configs:
          - schedule: {cron: "0 9,17 * * 1-5", timezone: Europe/Berlin}   # or {every: 1h}
            top: 10
            escalate: {severity: error, confidence: 0.8, receiver: oncall}
            slack: {channel: "#sre-digest", bot_token_file: /run/secrets/slack, api_base_url: ...}
            # or webhook: {url: https://...}

The buffer and the schedule live in a `DigestStorage` the engine binds (service/store/digests.py keeps them in
Redis under one hash tag per digest); each digest run is claimed atomically, so with several replicas a digest
goes out once.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
import structlog
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from routing.durations import parse_duration
from service.core.clock import Clock, ms
from service.core.errors import ConfigError
from service.core.models import Notification

from routing.receivers.base import Delivered, NotifyError, error_for_status, redact, redact_url
from routing.receivers.render import SEVERITIES, Renderer
from routing.receivers.slack import RETRYABLE_ERRORS

log = structlog.get_logger("tocsin.digest")


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: float | None = None
    cron: str | None = None
    timezone: str = "UTC"

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v, "every", numbers_as_seconds=True)

    @model_validator(mode="after")
    def _one(self) -> "Schedule":
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of `every` or `cron`")
        if self.every is not None and self.every <= 0:
            raise ValueError("every: must be positive")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"cron: {self.cron!r} is not a valid cron expression")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        return self


class DigestStorage(Protocol):
    """Where a digest keeps its buffer (item -> notification JSON) and its schedule (next run, last run, in ms),
    per digest integration."""

    async def add(self, integration: str, item: str, doc: str, run_ms: int) -> None:
        """Buffer (or replace) an item; schedule a run at `run_ms` unless one is scheduled."""

    async def drop(self, integration: str, item: str) -> None: ...

    async def due_ms(self, integration: str) -> float | None: ...

    async def claim(self, integration: str, due_ms: int, until_ms: int) -> bool:
        """Move the run from `due_ms` (as read) to `until_ms`, atomically; False if someone moved it first."""

    async def last_ms(self, integration: str) -> float | None: ...

    async def items(self, integration: str) -> dict[Any, Any]:
        """The buffer as stored (handed back to `forget`)."""

    async def forget(self, integration: str, sent: dict[Any, Any], now_ms: int, next_ms: int) -> None:
        """Drop the items of `sent` still as sent, note the run at `now_ms`, schedule `next_ms` if any remain."""


def next_run(s: Schedule, after: float) -> float:
    """The first scheduled time strictly after `after`. Pure."""
    if s.every is not None:
        # Aligned to multiples of the interval since midnight UTC of 1970-01-01, so replicas agree.
        return (int(after // s.every) + 1) * s.every
    tz = ZoneInfo(s.timezone)
    base = datetime.fromtimestamp(after, tz=tz)
    return float(croniter(s.cron, base).get_next(float))


class Escalate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receiver: str
    severity: str | None = None  # at or above this severity
    confidence: float | None = Field(None, ge=0, le=1)  # at or above this confidence

    @field_validator("severity")
    @classmethod
    def _sev(cls, v: str | None) -> str | None:
        if v is not None and v not in SEVERITIES:
            raise ValueError(f"must be one of {', '.join(SEVERITIES)}")
        return v

    def qualifies(self, incident: dict[str, Any] | None) -> bool:
        if not incident:
            return False
        if self.severity and incident.get("severity") in SEVERITIES and \
                SEVERITIES.index(incident["severity"]) <= SEVERITIES.index(self.severity):
            return True
        return self.confidence is not None and float(incident.get("confidence") or 0) >= self.confidence


class SlackTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str
    bot_token: str | None = None
    bot_token_file: str | None = None
    api_base_url: str | None = None

    def token(self) -> str:
        if self.bot_token:
            return self.bot_token
        if self.bot_token_file:
            return Path(self.bot_token_file).read_text().strip()
        raise ValueError("bot_token or bot_token_file is required")


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


class DigestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: Schedule
    top: int = Field(10, ge=1, le=50)
    escalate: Escalate | None = None
    slack: SlackTarget | None = None
    webhook: WebhookTarget | None = None
    send_resolved: bool = True

    @model_validator(mode="after")
    def _target(self) -> "DigestConfig":
        if (self.slack is None) == (self.webhook is None):
            raise ValueError("give exactly one target: slack or webhook")
        return self


Escalator = Callable[[str, Notification], Awaitable[None]]


def slack_api_error(e: SlackApiError) -> NotifyError:
    """A failed Web API call as a NotifyError: an HTTP error by its status; Slack's own `ok: false` answer (HTTP
    200) by its `error` code, retryable when Slack says a later attempt may pass."""
    resp = e.response
    status = int(getattr(resp, "status_code", 0) or 0)
    data = getattr(resp, "data", None)
    error = redact(str((data.get("error") if isinstance(data, dict) else None) or "unknown_error"))[:100]
    headers = getattr(resp, "headers", None) or {}
    if status == 200:
        return NotifyError(f"slack error: {error}", error in RETRYABLE_ERRORS, None, status)
    return error_for_status(status or 500, error, headers.get("Retry-After") or headers.get("retry-after"))


class DigestReceiver:
    def __init__(self, integration: str, cfg: DigestConfig, clock: Clock, renderer: Renderer | None = None):
        self.integration = integration
        self.name = integration.split("/")[0]
        self.cfg = cfg
        self.clock = clock
        self.send_resolved = cfg.send_resolved
        self.renderer = renderer or Renderer()
        self.store: DigestStorage | None = None
        self.escalate_to: Escalator | None = None
        self._slack: AsyncWebClient | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, d: dict[str, Any], path: str, integration: str, clock: Clock) -> "DigestReceiver":
        try:
            cfg = DigestConfig.model_validate({k: v for k, v in d.items() if k != "_path"})
            if cfg.slack is not None:
                cfg.slack.token()
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}.{loc}" if loc else path, err["msg"]) from None
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}.slack", str(e)) from None
        return cls(integration, cfg, clock)

    def bind(self, store: DigestStorage, escalate_to: Escalator | None) -> None:
        """Give the receiver its state store and a way to notify another receiver at once."""
        self.store = store
        self.escalate_to = escalate_to

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        item = (n.incident or {}).get("id") if isinstance(n.incident, dict) else None
        item = item or n.group_key
        esc = self.cfg.escalate
        if esc is not None and esc.qualifies(n.incident) and self.escalate_to is not None:
            await self.escalate_to(esc.receiver, n)
            assert self.store is not None
            await self.store.drop(self.integration, item)
            log.info("digest_item_escalated", digest=self.integration, item=item, receiver=esc.receiver)
            return Delivered()
        now = self.clock.now()
        assert self.store is not None
        await self.store.add(self.integration, item, n.to_json(), ms(next_run(self.cfg.schedule, now)))
        return Delivered()

    async def next_due(self) -> float | None:
        if self.store is None:
            return None
        score = await self.store.due_ms(self.integration)
        return None if score is None else score / 1000

    async def run_due(self) -> int:
        """Send the digest if its time has come (claimed atomically: one replica sends it)."""
        store = self.store
        if store is None:
            return 0
        now = self.clock.now()
        score = await store.due_ms(self.integration)
        if score is None or score / 1000 > now:
            return 0
        # claim: move the schedule 60 s ahead only if it is still the due time we read
        if not await store.claim(self.integration, int(score), ms(now + 60)):
            return 0
        start_ms = await store.last_ms(self.integration)
        start = start_ms / 1000 if start_ms is not None else score / 1000 - (self.cfg.schedule.every or 0)
        raw = await store.items(self.integration)
        items = [Notification.from_json(v) for v in raw.values()]
        if items:
            try:
                await self._deliver(start, now, items)
            except NotifyError as e:
                if e.retryable:
                    raise  # the claim moved the run 60 s ahead: it is retried then
                log.error("digest_dropped", digest=self.integration, items=len(items), reason=e.reason)
        # Forget exactly what was sent: an item updated meanwhile stays for the next digest.
        await store.forget(self.integration, raw, ms(now), ms(next_run(self.cfg.schedule, now)))
        return 1 if items else 0

    async def _deliver(self, start: float, end: float, items: list[Notification]) -> None:
        msg = self.renderer.digest(self.name, start, end, items, top=self.cfg.top)
        if self.cfg.slack is not None:
            t = self.cfg.slack
            if self._slack is None:
                self._slack = AsyncWebClient(token=t.token(), base_url=t.api_base_url or AsyncWebClient.BASE_URL,
                                             retry_handlers=[])
            try:
                await self._slack.chat_postMessage(channel=t.channel, text=msg.text, blocks=msg.blocks)
            except SlackApiError as e:
                raise slack_api_error(e) from None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                raise NotifyError(f"network error posting digest to Slack: {type(e).__name__}", True) from None
            return
        assert self.cfg.webhook is not None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        body = {"digest": self.name, "start": start, "end": end, "total": len(items), "text": msg.plain,
                "items": [{"incident": (n.incident or {}).get("id"), "title": (n.incident or {}).get("title"),
                           "severity": (n.incident or {}).get("severity"),
                           "confidence": (n.incident or {}).get("confidence"), "status": n.status,
                           "url": (n.incident or {}).get("url"), "group_key": n.group_key} for n in items]}
        try:
            async with self._session.post(self.cfg.webhook.url, json=body) as r:
                if r.status >= 300:
                    raise error_for_status(r.status, await r.text())
        except aiohttp.ClientError as e:
            raise NotifyError(f"network error posting digest to {redact_url(self.cfg.webhook.url)}: "
                              f"{type(e).__name__}", True) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
