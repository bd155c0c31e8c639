"""The PagerDuty receiver: Events API v2 trigger / acknowledge / resolve over aiohttp.

One dedup_key per incident (the incident id; the group key when there is no incident, hashed when it
is over 255 characters), so PagerDuty shows one incident per Tocsin incident and an acknowledge or
resolve reaches the right one. 400 means the event is wrong and is never retried; 429, 5xx and network
errors are retryable (the outbox retries with bounded backoff). The routing key is a secret: it never
appears in errors or in the returned state.

Keys written as Alertmanager Go templates (`description`, `client`, `client_url`, `details`, `source`,
`severity`, `class`, `component`, `group`, `links`, `images`) are rendered by `routing.gotemplate` over the
notification's template data and replace Tocsin's values for those fields (`description` is the summary); a
failing template is a delivery error that is not retried, as in Alertmanager. A rendered severity that is not
one of PagerDuty's four falls back to Tocsin's (PagerDuty would reject the event).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import aiohttp

from service.core.clock import Clock, to_rfc3339
from service.core.errors import ConfigError
from service.core.models import Notification

from routing.gotemplate.fields import FieldRenderError, PagerDutyFields
from routing.receivers.ratelimit import ChannelPacer, PacingDelay
from routing.receivers.base import Delivered, NotifyError, error_for_status, redact, redact_url, read_secret_file
from routing.receivers.escaping import one_line
from routing.receivers.render import SEVERITIES, Renderer, view

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_AM_KEYS = {
    "send_resolved", "routing_key", "routing_key_file", "service_key", "service_key_file", "url", "client",
    "client_url", "description", "details", "images", "links", "source", "severity", "class", "component",
    "group", "http_config", "timeout",
}
_TOCSIN_KEYS = {"events_url", "templates_dir"}


def dedup_key_for(n: Notification) -> str:
    """The PagerDuty dedup_key for a notification: one per incident, else one per group (<= 255 chars)."""
    inc = n.incident if isinstance(n.incident, dict) else {}
    key = inc.get("id") if isinstance(inc.get("id"), str) and inc.get("id") else n.group_key
    if len(key) <= 255:
        return key
    return "tocsin-sha256-" + hashlib.sha256(key.encode()).hexdigest()


def _literal(d: dict[str, Any], key: str, path: str) -> str | None:
    """A literal string option (values written as Go templates are rendered per event by go_fields)."""
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{path}.{key}", f"must be a string, not {type(v).__name__}")
    return None if "{{" in v else v


def _routing_key(d: dict[str, Any], path: str) -> str:
    """The one routing (or service) key of a `pagerduty_configs` entry, inline or from its file, unstripped."""
    keys = [k for k in ("routing_key", "routing_key_file", "service_key", "service_key_file") if d.get(k) is not None]
    if len(keys) > 1:
        raise ConfigError(f"{path}.{keys[1]}", f"only one of routing_key, routing_key_file, service_key, service_key_file may be set (also {keys[0]})")
    if not keys:
        raise ConfigError(path, "one of routing_key, routing_key_file, service_key or service_key_file is required")
    k = keys[0]
    if k.endswith("_file"):
        return read_secret_file(d, k, path)
    routing_key = d[k]
    if not isinstance(routing_key, str) or not routing_key.strip():
        raise ConfigError(f"{path}.{k}", "must be a non-empty string")
    return routing_key


def _static_details(d: dict[str, Any], path: str) -> dict[str, str]:
    """`details`: a mapping of strings; the values that are Go templates are rendered per event elsewhere
    (PagerDutyFields), the others are kept as they are."""
    details = d.get("details") or {}
    if not isinstance(details, dict) or not all(isinstance(k_, str) for k_ in details):
        raise ConfigError(f"{path}.details", "must be a mapping of strings")
    for k_, v_ in details.items():
        if not isinstance(v_, str):
            raise ConfigError(f"{path}.details.{k_}", "must be a string")
    return {k_: v_ for k_, v_ in details.items() if "{{" not in v_}


class PagerDutyReceiver:
    def __init__(
        self,
        integration: str,
        clock: Clock,
        *,
        routing_key: str,
        events_url: str = DEFAULT_EVENTS_URL,
        send_resolved: bool = True,
        source: str | None = None,
        client: str = "Tocsin",
        client_url: str | None = None,
        severity: str | None = None,
        component: str | None = None,
        group: str | None = None,
        class_: str | None = None,
        details: dict[str, str] | None = None,
        links: list[dict[str, str]] | None = None,
        images: list[dict[str, str]] | None = None,
        renderer: Renderer | None = None,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        pacer: ChannelPacer | None = None,
        max_wait: float = 10.0,
        go_fields: Any = None,
    ):
        if not routing_key:
            raise ValueError("routing_key is required")
        self.integration = integration
        self.clock = clock
        self._routing_key = routing_key
        self.events_url = events_url
        self.send_resolved = send_resolved
        self.source = source
        self.client = client
        self.client_url = client_url
        self.severity = severity
        self.component = component
        self.group = group
        self.class_ = class_
        self.details = details or {}
        self.links = links or []
        self.images = images or []
        self.renderer = renderer or Renderer()
        self.timeout = timeout
        self._session = session
        self._own_session = session is None
        # Optional pacing per routing key (PagerDuty allows about 120 events/min per key: interval 0.5 s).
        self.pacer = pacer
        self.max_wait = max_wait
        self.go_fields = go_fields  # routing.gotemplate.fields.PagerDutyFields, or None
        self._pace_key = "pagerduty:" + hashlib.sha256(routing_key.encode()).hexdigest()[:16]

    @classmethod
    def from_config(cls, d: dict[str, Any], path: str, integration: str, clock: Clock, *,
                    renderer: Renderer | None = None, go_templates: Any = None) -> "PagerDutyReceiver":
        """Build from one `pagerduty_configs` entry; errors name the offending key under `path`."""
        if not isinstance(d, dict):
            raise ConfigError(path, "must be a mapping")
        for k in d:
            if k not in _AM_KEYS and k not in _TOCSIN_KEYS:
                raise ConfigError(f"{path}.{k}", "unknown key")
        routing_key = _routing_key(d, path)
        send_resolved = d.get("send_resolved", True)
        if not isinstance(send_resolved, bool):
            raise ConfigError(f"{path}.send_resolved", "must be true or false")
        if d.get("url") is not None and d.get("events_url") is not None:
            raise ConfigError(f"{path}.events_url", "at most one of url and events_url may be set")
        url = d.get("events_url", d.get("url")) or DEFAULT_EVENTS_URL
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.{'events_url' if 'events_url' in d else 'url'}", "must be an http(s) URL")
        severity = _literal(d, "severity", path)
        if severity is not None and severity not in SEVERITIES:
            raise ConfigError(f"{path}.severity", f"must be one of {', '.join(SEVERITIES)}")
        details = _static_details(d, path)
        links = _link_list(d, "links", ("href", "text"), path)
        images = _link_list(d, "images", ("src", "href", "alt"), path)
        timeout = d.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            timeout = 10.0
        templates_dir = _literal(d, "templates_dir", path)
        if renderer is None and templates_dir:
            renderer = Renderer(templates_dir)
        return cls(
            integration, clock, routing_key=routing_key.strip(), events_url=url, send_resolved=send_resolved,
            source=_literal(d, "source", path), client=_literal(d, "client", path) or "Tocsin",
            client_url=_literal(d, "client_url", path), severity=severity,
            component=_literal(d, "component", path), group=_literal(d, "group", path),
            class_=_literal(d, "class", path), details=details, links=links, images=images,
            renderer=renderer, timeout=float(timeout), go_fields=PagerDutyFields.build(d, path, go_templates),
        )

    # -- events ---------------------------------------------------------------------------------------

    def build_event(self, n: Notification) -> dict[str, Any]:
        """The Events API v2 body for `n`: resolve when it (or its incident) is resolved, else trigger."""
        v = view(n)
        dk = dedup_key_for(n)
        if n.status == "resolved" or v["state"] == "resolved":
            return {"routing_key": self._routing_key, "event_action": "resolve", "dedup_key": dk}
        go = self._go_render(n)
        sev = go.get("severity") if go.get("severity") in SEVERITIES else (self.severity or v["severity"])
        source = (go.get("source") or self.source or (v["services"][0] if v["services"] else "")
                  or (v["alerts"][0]["entity"] if v["alerts"] else ""))
        details = dict(self.details, **go.get("details", {}))
        payload: dict[str, Any] = {
            "summary": go["description"] if go.get("description") else self.renderer.pagerduty_summary(n),
            "source": one_line(source or "tocsin", 255) or "tocsin",
            "severity": sev if sev in SEVERITIES else "error",
            "custom_details": self.renderer.pagerduty_custom_details(n, details),
        }
        if v["opened_at"]:
            payload["timestamp"] = to_rfc3339(v["opened_at"])
        component = go.get("component") or self.component or (v["metrics"][0] if v["metrics"] else None)
        if component:
            payload["component"] = one_line(component, 255)
        group = go.get("group") or self.group or (v["services"][0] if v["services"] else None)
        if group:
            payload["group"] = one_line(group, 255)
        if go.get("class") or self.class_:
            payload["class"] = go.get("class") or self.class_
        links = self.links + go.get("links", []) + self.renderer.pagerduty_links(n)
        event: dict[str, Any] = {
            "routing_key": self._routing_key, "event_action": "trigger", "dedup_key": dk, "payload": payload,
            "client": go.get("client") or self.client, "links": links[:20],
        }
        client_url = go.get("client_url") or self.client_url or v["url"] or n.external_url
        if client_url:
            event["client_url"] = client_url
        images = self.images + go.get("images", [])
        if images:
            event["images"] = images
        return event

    def _go_render(self, n: Notification) -> dict[str, Any]:
        if self.go_fields is None:
            return {}
        try:
            return self.go_fields.render(n, self.clock.now)
        except FieldRenderError as e:
            raise NotifyError(f"template error: {redact(str(e))[:300]}", False) from None

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        """Trigger (or update) the PagerDuty incident for `n`, or resolve it when `n` is resolved."""
        event = self.build_event(n)
        prev = (state or {}).get("action")
        if event["event_action"] == "resolve" and prev == "resolve":
            return Delivered(state={"dedup_key": event["dedup_key"], "action": "resolve"})
        await self._post(event)
        action = event["event_action"]
        if action == "trigger" and view(n)["state"] == "acknowledged":
            # Acknowledged in Tocsin (e.g. the Slack button): PagerDuty stops escalating too.
            await self._post({"routing_key": event["routing_key"], "event_action": "acknowledge",
                              "dedup_key": event["dedup_key"]})
            action = "acknowledge"
        return Delivered(state={"dedup_key": event["dedup_key"], "action": action})

    async def acknowledge(self, dedup_key: str, routing_key: str | None = None) -> Delivered:
        """Acknowledge the PagerDuty incident with `dedup_key` (e.g. after Acknowledge in Slack)."""
        return await self._simple("acknowledge", dedup_key, routing_key)

    async def resolve(self, dedup_key: str, routing_key: str | None = None) -> Delivered:
        return await self._simple("resolve", dedup_key, routing_key)

    async def _simple(self, action: str, dedup_key: str, routing_key: str | None) -> Delivered:
        if not dedup_key or len(dedup_key) > 255:
            raise NotifyError(f"invalid dedup_key for {action}", False)
        await self._post({"routing_key": routing_key or self._routing_key, "event_action": action, "dedup_key": dedup_key})
        return Delivered(state={"dedup_key": dedup_key, "action": action})

    async def _post(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        key = self._pace_key if event["routing_key"] == self._routing_key else \
            "pagerduty:" + hashlib.sha256(str(event["routing_key"]).encode()).hexdigest()[:16]
        if self.pacer is not None:
            try:
                await self.pacer.acquire(key, self.max_wait)
            except PacingDelay as e:
                raise NotifyError(f"rate limited: {e}", True, retry_after=e.wait, status=429) from None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False)
            self._own_session = True
        try:
            async with self._session.post(
                self.events_url, data=body, headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                text = await resp.text(errors="replace")
                if 200 <= resp.status < 300:
                    return
                err = error_for_status(resp.status, _scrub(text, event["routing_key"]), resp.headers.get("Retry-After"))
                if resp.status == 429 and self.pacer is not None:
                    self.pacer.pause(key, err.retry_after if err.retry_after is not None else 1.0)
                raise err
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise NotifyError(f"network error: {type(e).__name__} ({redact_url(self.events_url)})", True) from None

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()


def _scrub(text: str, secret: str) -> str:
    return redact(text.replace(secret, "<redacted>")) if secret else redact(text)


def _link_list(d: dict[str, Any], key: str, fields: tuple[str, ...], path: str) -> list[dict[str, str]]:
    raw = d.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{path}.{key}", "must be a list")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}.{key}[{i}]", "must be a mapping")
        for k in item:
            if k not in fields:
                raise ConfigError(f"{path}.{key}[{i}].{k}", "unknown key")
            if not isinstance(item[k], str):
                raise ConfigError(f"{path}.{key}[{i}].{k}", "must be a string")
        if not any("{{" in v for v in item.values()):  # templated entries are rendered per event (go_fields)
            out.append(dict(item))
    return out
