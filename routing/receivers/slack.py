"""The Slack receiver: one Block Kit message per incident, edited in place as the incident changes.

Two modes, chosen by the config:
- **bot-token mode** (`bot_token` / `bot_token_file`, Tocsin's addition): `chat.postMessage` the first
  time, then `chat.update` of the same message (its channel and ts come back in `state`) plus a short
  reply in the message's thread saying what changed. The message has buttons (Acknowledge, Resolve,
  Snooze, Mark as noise, summary feedback) handled by `routing.slack_actions`.
- **incoming-webhook mode** (`api_url` / `api_url_file`, as in Alertmanager): one post per delivery,
  no buttons (the footer says so), no edits (webhooks return no ts).

When the config sets Alertmanager's message keys (`title`, `text`, `pretext`, `fields`, `footer`, `fallback`,
`color`, ... ) or the `templates:` files redefine a `slack.default.*` template, the message is Alertmanager's:
its Go templates rendered by `routing.gotemplate` into notify/slack's attachment payload (in bot-token mode
the same attachment is posted and then edited in place). A template that fails is a delivery error that is
not retried, as in Alertmanager. Otherwise Tocsin's Block Kit message (Jinja2 templates) is sent.

Errors become `NotifyError` through `base.classify`; this receiver never retries by itself (the outbox
does). A 429 pauses only its channel in the shared `ChannelPacer`.
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from service.core.clock import Clock
from service.core.errors import ConfigError
from service.core.models import Notification

from routing.gotemplate import fields as fields_mod
from routing.receivers.ratelimit import ChannelPacer, PacingDelay
from routing.receivers.base import Delivered, NotifyError, classify, redact, redact_url, read_secret_file
from routing.receivers.render import Renderer, change_snapshot, view

# Slack `error` codes (HTTP 200, ok:false) that a later attempt may get past.
RETRYABLE_ERRORS = {"ratelimited", "rate_limited", "service_unavailable", "fatal_error", "internal_error",
                    "request_timeout", "team_added_to_org"}
# chat.update errors after which posting a new message is the right thing (the old one is gone).
REPOST_ERRORS = {"message_not_found", "cant_update_message", "edit_window_closed"}

# Alertmanager slack_configs keys. Those Tocsin uses are listed in from_config; the Go-template and
# attachment keys switch the receiver to Alertmanager's message (routing.gotemplate.fields).
_AM_KEYS = {
    "send_resolved", "api_url", "api_url_file", "channel", "username", "color", "title", "title_link",
    "pretext", "text", "fields", "short_fields", "footer", "fallback", "callback_id", "icon_emoji",
    "icon_url", "image_url", "thumb_url", "link_names", "mrkdwn_in", "actions", "http_config",
    "update_message", "app_token", "app_token_file", "app_url", "message_text", "timeout",
}
_TOCSIN_KEYS = {"bot_token", "bot_token_file", "api_base_url", "signing_secret", "signing_secret_file",
                "thread_updates", "max_wait", "templates_dir"}


def _opt_str(d: dict[str, Any], key: str, path: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{path}.{key}", f"must be a string, not {type(v).__name__}")
    return v


def _credentials(d: dict[str, Any], path: str) -> tuple[str | None, str | None, str | None]:
    """(bot_token, api_url, signing_secret) of a `slack_configs` entry, each given inline or as a file (not both);
    a bot token or a webhook URL is required."""
    for both in (("api_url", "api_url_file"), ("bot_token", "bot_token_file"),
                 ("signing_secret", "signing_secret_file")):
        if d.get(both[0]) is not None and d.get(both[1]) is not None:
            raise ConfigError(f"{path}.{both[1]}", f"at most one of {both[0]} and {both[1]} may be set")
    bot_token = _opt_str(d, "bot_token", path) or read_secret_file(d, "bot_token_file", path)
    api_url = _opt_str(d, "api_url", path) or read_secret_file(d, "api_url_file", path)
    signing_secret = _opt_str(d, "signing_secret", path) or read_secret_file(d, "signing_secret_file", path)
    if bot_token is not None and not bot_token.startswith(("xoxb-", "xoxp-")):
        raise ConfigError(f"{path}.bot_token", "must be a Slack bot token (xoxb-…)")
    if api_url is not None and not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}.api_url", "must be an http(s) URL")
    if not bot_token and not api_url:
        raise ConfigError(path, "one of api_url, api_url_file, bot_token or bot_token_file is required")
    return bot_token, api_url, signing_secret


def _delivery_options(d: dict[str, Any], path: str) -> tuple[str, bool, float]:
    """(api_base_url ending in /, thread_updates, max_wait seconds) of a `slack_configs` entry."""
    api_base_url = _opt_str(d, "api_base_url", path) or "https://slack.com/api/"
    if not api_base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{path}.api_base_url", "must be an http(s) URL")
    if not api_base_url.endswith("/"):
        api_base_url += "/"
    thread_updates = d.get("thread_updates", True)
    if not isinstance(thread_updates, bool):
        raise ConfigError(f"{path}.thread_updates", "must be true or false")
    max_wait = d.get("max_wait", 10.0)
    if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or max_wait < 0:
        raise ConfigError(f"{path}.max_wait", "must be a number of seconds >= 0")
    return api_base_url, thread_updates, float(max_wait)


class SlackReceiver:
    def __init__(
        self,
        integration: str,
        clock: Clock,
        *,
        bot_token: str | None = None,
        webhook_url: str | None = None,
        channel: str | None = None,
        username: str | None = None,
        icon_emoji: str | None = None,
        icon_url: str | None = None,
        send_resolved: bool = False,
        api_base_url: str = "https://slack.com/api/",
        signing_secret: str | None = None,
        thread_updates: bool = True,
        max_wait: float = 10.0,
        pacer: ChannelPacer | None = None,
        renderer: Renderer | None = None,
        timeout: int = 30,
        am_fields: Any = None,
    ):
        if not bot_token and not webhook_url:
            raise ValueError("SlackReceiver needs bot_token or webhook_url")
        self.integration = integration
        self.clock = clock
        self.send_resolved = send_resolved
        self.channel = channel
        self.username = username
        self.icon_emoji = icon_emoji
        self.icon_url = icon_url
        self.signing_secret = signing_secret
        self.thread_updates = thread_updates
        self.max_wait = max_wait
        self.pacer = pacer or ChannelPacer(clock)
        self.renderer = renderer or Renderer()
        self.am_fields = am_fields  # routing.gotemplate.fields.SlackFields: Alertmanager's message, or None
        self.mode = "bot" if bot_token else "webhook"
        self._web: AsyncWebClient | None = None
        self._hook: AsyncWebhookClient | None = None
        self._webhook_url = webhook_url or ""
        if bot_token:
            if not channel:
                raise ValueError("bot-token mode needs a channel")
            # No SDK retry handlers: retrying is the outbox's job, and a 429 must not block a worker.
            self._web = AsyncWebClient(token=bot_token, base_url=api_base_url, timeout=timeout, retry_handlers=[])
        else:
            self._hook = AsyncWebhookClient(webhook_url or "", timeout=timeout, retry_handlers=[])

    @classmethod
    def from_config(cls, d: dict[str, Any], path: str, integration: str, clock: Clock, *,
                    pacer: ChannelPacer | None = None, renderer: Renderer | None = None,
                    go_templates: Any = None) -> "SlackReceiver":
        """Build from one `slack_configs` entry; errors name the offending key under `path`."""
        if not isinstance(d, dict):
            raise ConfigError(path, "must be a mapping")
        for k in d:
            if k not in _AM_KEYS and k not in _TOCSIN_KEYS:
                raise ConfigError(f"{path}.{k}", "unknown key")
        send_resolved = d.get("send_resolved", False)
        if not isinstance(send_resolved, bool):
            raise ConfigError(f"{path}.send_resolved", "must be true or false")
        bot_token, api_url, signing_secret = _credentials(d, path)
        channel = _opt_str(d, "channel", path)
        if bot_token and not channel:
            raise ConfigError(f"{path}.channel", "is required in bot-token mode")
        api_base_url, thread_updates, max_wait = _delivery_options(d, path)
        templates_dir = _opt_str(d, "templates_dir", path)
        if renderer is None and templates_dir:
            renderer = Renderer(templates_dir)
        return cls(
            integration, clock, bot_token=bot_token, webhook_url=None if bot_token else api_url,
            channel=channel, username=_opt_str(d, "username", path), icon_emoji=_opt_str(d, "icon_emoji", path),
            icon_url=_opt_str(d, "icon_url", path), send_resolved=send_resolved, api_base_url=api_base_url,
            signing_secret=signing_secret, thread_updates=thread_updates, max_wait=max_wait,
            pacer=pacer, renderer=renderer, am_fields=fields_mod.SlackFields.build(d, path, go_templates),
        )

    # -- sending -------------------------------------------------------------------------------------

    def _pace_key(self) -> str:
        return "slack:" + (self.channel or redact_url(self._webhook_url) + str(id(self))).lstrip("#")

    async def _pace(self) -> None:
        try:
            await self.pacer.acquire(self._pace_key(), self.max_wait)
        except PacingDelay as e:
            raise NotifyError(f"rate limited: {e}", True, retry_after=e.wait, status=429) from None

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        if self.am_fields is not None:
            return await self._send_alertmanager(n, state or {})
        if self.mode == "webhook":
            return await self._send_webhook(n)
        return await self._send_bot(n, state or {})

    def _am_payload(self, n: Notification) -> dict[str, Any]:
        try:
            return self.am_fields.payload(n, self.clock.now)
        except fields_mod.FieldRenderError as e:
            raise NotifyError(f"template error: {redact(str(e))[:300]}", False) from None

    async def _send_alertmanager(self, n: Notification, state: dict[str, Any]) -> Delivered:
        """Alertmanager's attachment message: posted to the webhook, or posted then edited in bot mode."""
        payload = self._am_payload(n)
        if self.mode == "webhook":
            return await self._post_webhook(payload)
        assert self._web is not None
        att = payload["attachments"]
        text = att[0].get("fallback") or att[0].get("title") or " "
        channel, ts = state.get("channel"), state.get("ts")
        if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
            if state.get("last_id") == n.id:
                return Delivered(state=dict(state))
            try:
                await self._call(self._web.chat_update(channel=channel, ts=ts, text=text, attachments=att))
                return Delivered(state={"channel": channel, "ts": ts, "last_id": n.id})
            except NotifyError as e:
                if getattr(e, "slack_error", None) not in REPOST_ERRORS:
                    raise
        await self._pace()
        ident = {k: payload[k] for k in ("username", "icon_emoji", "icon_url") if k in payload}
        resp = await self._call(self._web.chat_postMessage(
            channel=payload.get("channel") or self.channel, text=text, attachments=att,
            link_names=bool(payload.get("link_names")), **(ident or self._identity())))
        return Delivered(state={"channel": resp.get("channel"), "ts": resp.get("ts"), "last_id": n.id})

    async def _send_bot(self, n: Notification, state: dict[str, Any]) -> Delivered:
        assert self._web is not None
        msg = self.renderer.slack_message(n, interactive=True)
        v = view(n)
        snap = change_snapshot(v)
        channel, ts = state.get("channel"), state.get("ts")
        if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
            if state.get("last_id") == n.id:
                return Delivered(state=dict(state))  # this exact notification was delivered already
            # chat.update has its own (higher) rate limit; pacing applies to posts in the channel.
            try:
                await self._call(self._web.chat_update(channel=channel, ts=ts, text=msg.text, blocks=msg.blocks))
            except NotifyError as e:
                if getattr(e, "slack_error", None) not in REPOST_ERRORS:
                    raise
                return await self._post_new(n, msg, snap)
            if self.thread_updates:
                line = self.renderer.slack_thread_line(n, state.get("snapshot"))
                await self._pace()
                await self._call(self._web.chat_postMessage(
                    channel=channel, thread_ts=ts, text=line, **self._identity()))
            return Delivered(state={"channel": channel, "ts": ts, "last_id": n.id, "snapshot": snap})
        return await self._post_new(n, msg, snap)

    async def _post_new(self, n: Notification, msg: Any, snap: dict[str, Any]) -> Delivered:
        assert self._web is not None
        await self._pace()
        resp = await self._call(self._web.chat_postMessage(
            channel=self.channel, text=msg.text, blocks=msg.blocks, unfurl_links=False, unfurl_media=False,
            **self._identity()))
        return Delivered(state={"channel": resp.get("channel"), "ts": resp.get("ts"), "last_id": n.id, "snapshot": snap})

    def _identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.username:
            out["username"] = self.username
        if self.icon_emoji:
            out["icon_emoji"] = self.icon_emoji
        elif self.icon_url:
            out["icon_url"] = self.icon_url
        return out

    async def _call(self, coro: Any) -> Any:
        """Await one Web API call, turning every failure into a NotifyError (and pausing on 429)."""
        try:
            return await coro
        except SlackApiError as e:
            raise self._api_error(e) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise NotifyError(f"network error: {type(e).__name__}", True) from None

    def _api_error(self, e: SlackApiError) -> NotifyError:
        resp = e.response
        status = getattr(resp, "status_code", 0) or 0
        headers = getattr(resp, "headers", {}) or {}
        data = getattr(resp, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        retry_after = _retry_after(headers)
        if status == 429 or error in ("ratelimited", "rate_limited"):
            wait = retry_after if retry_after is not None else 1.0
            self.pacer.pause(self._pace_key(), wait)
            return NotifyError(f"rate limited: HTTP {status}", True, retry_after=wait, status=429)
        if status != 200:
            retryable, reason = classify(status)
            return NotifyError(f"{reason}: HTTP {status}" + (f": {redact(str(error))}" if error else ""),
                               retryable, retry_after, status)
        err = redact(str(error or "unknown_error"))[:100]
        out = NotifyError(f"slack error: {err}", err in RETRYABLE_ERRORS, retry_after, status)
        out.slack_error = err  # type: ignore[attr-defined]
        return out

    async def _send_webhook(self, n: Notification) -> Delivered:
        msg = self.renderer.slack_message(n, interactive=False)
        return await self._post_webhook({"text": msg.text, "blocks": msg.blocks, "unfurl_links": False,
                                         "unfurl_media": False})

    async def _post_webhook(self, body: dict[str, Any]) -> Delivered:
        assert self._hook is not None
        await self._pace()
        try:
            resp = await self._hook.send_dict(body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise NotifyError(f"network error: {type(e).__name__} ({redact_url(self._webhook_url)})", True) from None
        if resp.status_code == 200:
            return Delivered(state={})
        retry_after = _retry_after(resp.headers or {})
        retryable, reason = classify(resp.status_code)
        if resp.status_code == 429:
            wait = retry_after if retry_after is not None else 1.0
            self.pacer.pause(self._pace_key(), wait)
            retry_after = wait
        body_text = redact(str(resp.body or ""))[:100]
        raise NotifyError(f"{reason}: HTTP {resp.status_code}" + (f": {body_text}" if body_text else ""),
                          retryable, retry_after, resp.status_code)

    async def close(self) -> None:
        for c in (self._web, self._hook):
            session = getattr(c, "session", None)
            if session is not None and not session.closed:
                await session.close()


def _retry_after(headers: Any) -> float | None:
    raw = None
    try:
        for k, v in headers.items():
            if k.lower() == "retry-after":
                raw = v[0] if isinstance(v, list) else v
                break
    except AttributeError:
        return None
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        return None
