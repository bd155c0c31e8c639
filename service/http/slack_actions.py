"""Slack's interactivity endpoint: button presses on Tocsin's messages become `SlackAction`s.

    handler = make_slack_actions_handler(signing_secret, clock, on_action, allowed_users={"U123"})
    app.router.add_post("/slack/actions", handler)

Each request is checked before anything else: the v0 signature (HMAC-SHA256 over
`v0:{timestamp}:{raw body}`, constant-time compare, via slack_sdk's SignatureVerifier on our Clock),
a timestamp within 300 s of now (a non-numeric one gets 400; a correctly signed body that is not UTF-8
gets 400 about the body), and a replay guard (the same signed
request seen before within the window gets 401). Then the handler answers 200 at once, as Slack wants
an answer within 3 s, and runs `on_action` as a background task. `drain()` awaits those tasks (tests,
shutdown).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Protocol

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from service.core.clock import Clock
from service.store.keys import Keys
from service.store.once import Once

from routing.receivers.render import ACTION_IDS

log = logging.getLogger(__name__)

WINDOW_SECONDS = 300
_ACTIONS_BY_ID = {v: k for k, v in ACTION_IDS.items()}
MAX_SNOOZE_SECONDS = 7 * 86400


@dataclass(frozen=True)
class SlackAction:
    action: str  # ack | resolve | snooze | noise | summary_helpful | summary_unhelpful
    incident_id: str  # the button's value: an incident id, or "group:<hash>" (render.notification_ref)
    user_id: str
    user_name: str
    channel: str | None
    message_ts: str | None
    snooze_seconds: int | None = None
    response_url: str | None = None
    team_id: str | None = None
    action_ts: str | None = None


class _ClockAdapter:
    """slack_sdk's verifier asks a clock for `now()`; ours is injected."""

    def __init__(self, clock: Clock):
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()


class ReplayGuard(Protocol):
    async def first_time(self, key: str, now: float) -> bool: ...


class MemoryReplayGuard:
    """Remembers request signatures for the replay window (one process)."""

    def __init__(self, window: float = WINDOW_SECONDS * 2):
        self.window = window
        self._seen: dict[str, float] = {}

    async def first_time(self, key: str, now: float) -> bool:
        if len(self._seen) > 1000:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        self._seen[key] = now + self.window
        return True


class RedisReplayGuard:
    """Remembers request signatures in Redis (SET NX with a TTL), so replicas share the memory."""

    def __init__(self, redis: Any, prefix: str, window: int = WINDOW_SECONDS * 2):
        self.once = Once(redis)
        self.keys = Keys(prefix)
        self.window = window

    async def first_time(self, key: str, now: float) -> bool:
        return await self.once.claim(self.keys.slack_replay(key), self.window)


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def parse_action(payload: dict[str, Any]) -> SlackAction | None:
    """The SlackAction in a block_actions payload, or None when it is not one of Tocsin's buttons.

    Raises ValueError (with the path of the bad field) for a malformed Tocsin action.
    """
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise ValueError("payload.actions: missing")
    a = actions[0]
    kind = _ACTIONS_BY_ID.get(str(a.get("action_id", "")))
    if kind is None:
        return None
    user = _obj(payload.get("user"))
    user_id = str(user.get("id") or "")
    if not user_id:
        raise ValueError("payload.user.id: missing")
    user_name = str(user.get("username") or user.get("name") or user_id)
    container = _obj(payload.get("container"))
    channel = container.get("channel_id") or _obj(payload.get("channel")).get("id")
    message_ts = container.get("message_ts") or _obj(payload.get("message")).get("ts")
    snooze: int | None = None
    if kind == "snooze":
        opt = a.get("selected_option") if isinstance(a.get("selected_option"), dict) else {}
        raw = str(opt.get("value") or "")
        secs, sep, ref = raw.partition("|")
        if not sep or not ref:
            raise ValueError("payload.actions[0].selected_option.value: expected '<seconds>|<incident id>'")
        try:
            snooze = int(secs)
        except ValueError:
            raise ValueError("payload.actions[0].selected_option.value: seconds must be an integer") from None
        if not 0 < snooze <= MAX_SNOOZE_SECONDS:
            raise ValueError("payload.actions[0].selected_option.value: seconds out of range")
        incident_id = ref
    else:
        incident_id = str(a.get("value") or "")
        if not incident_id:
            raise ValueError("payload.actions[0].value: missing incident id")
    team = _obj(payload.get("team"))
    return SlackAction(
        action=kind, incident_id=incident_id, user_id=user_id, user_name=user_name,
        channel=str(channel) if channel else None, message_ts=str(message_ts) if message_ts else None,
        snooze_seconds=snooze, response_url=_str(payload.get("response_url")), team_id=_str(team.get("id")),
        action_ts=_str(a.get("action_ts")),
    )


class SlackActionsHandler:
    """The aiohttp handler (callable with a request); build it with make_slack_actions_handler."""

    def __init__(self, signing_secret: str, clock: Clock, on_action: Callable[[SlackAction], Awaitable[Any]], *,
                 allowed_users: Iterable[str] | None = None,
                 on_denied: Callable[[SlackAction], Awaitable[Any]] | None = None,
                 replay_guard: ReplayGuard | None = None):
        self.clock = clock
        self.on_action = on_action
        self.on_denied = on_denied
        self.allowed = set(allowed_users) if allowed_users else None
        self.replay_guard = replay_guard or MemoryReplayGuard()
        self._verifier = SignatureVerifier(signing_secret, clock=_ClockAdapter(clock))  # type: ignore[arg-type]
        self._secret = signing_secret.encode()
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, request: web.Request) -> web.Response:
        raw = await request.read()  # the signature is over the raw body: read it before parsing
        ts = request.headers.get("X-Slack-Request-Timestamp")
        sig = request.headers.get("X-Slack-Signature")
        if ts is None or sig is None:
            return web.Response(status=401, text="missing signature")
        try:
            int(ts)
        except ValueError:
            return web.Response(status=400, text="bad timestamp")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            # slack_sdk verifies text; a body that is not UTF-8 is verified over its bytes, the same v0 scheme.
            valid = self._verifier.is_valid(text, ts, sig) if text is not None else self._valid_bytes(raw, ts, sig)
        except (ValueError, OverflowError):
            return web.Response(status=400, text="bad timestamp")
        if not valid:
            return web.Response(status=401, text="invalid or stale signature")
        if text is None:
            return web.Response(status=400, text="body: not UTF-8 (Slack sends a UTF-8 form body)")
        if not await self.replay_guard.first_time(hashlib.sha256(sig.encode()).hexdigest(), self.clock.now()):
            return web.Response(status=401, text="replayed request")
        try:
            form = urllib.parse.parse_qs(text, strict_parsing=False)
            payload = json.loads(form["payload"][0])
            if not isinstance(payload, dict):
                raise ValueError("payload: must be an object")
            action = parse_action(payload)
        except (KeyError, IndexError, UnicodeDecodeError):
            return web.Response(status=400, text="payload: missing")
        except ValueError as e:
            return web.Response(status=400, text=str(e) if str(e).startswith("payload") else "payload: invalid JSON")
        if action is None:
            return web.Response(status=200)
        # Only the immutable user id counts: usernames can be changed by their owners.
        if self.allowed is not None and action.user_id not in self.allowed:
            log.info("slack action from a user not on the allow-list: %s", action.user_id)
            if self.on_denied is not None:
                self._spawn(self.on_denied(action))
            return web.Response(status=200)
        self._spawn(self.on_action(action))
        return web.Response(status=200)

    def _valid_bytes(self, raw: bytes, ts: str, sig: str) -> bool:
        """The v0 check of slack_sdk's SignatureVerifier, over a body that is not text."""
        if abs(self.clock.now() - int(ts)) > WINDOW_SECONDS:
            return False
        expected = "v0=" + hmac.new(self._secret, b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace"))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("slack action handler failed: %r", task.exception())

    async def drain(self) -> None:
        """Wait for the background action tasks started so far."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def make_slack_actions_handler(signing_secret: str, clock: Clock, on_action: Callable[[SlackAction], Awaitable[Any]], *,
                               allowed_users: Iterable[str] | None = None,
                               on_denied: Callable[[SlackAction], Awaitable[Any]] | None = None,
                               replay_guard: ReplayGuard | None = None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for Slack's interactivity requests (see the module docstring).

    The result is a plain coroutine function (what aiohttp wants) with `.drain()` (await the background
    action tasks) and `.impl` (the SlackActionsHandler) attached.
    """
    impl = SlackActionsHandler(signing_secret, clock, on_action, allowed_users=allowed_users,
                               on_denied=on_denied, replay_guard=replay_guard)

    async def handler(request: web.Request) -> web.Response:
        return await impl(request)

    handler.drain = impl.drain  # type: ignore[attr-defined]
    handler.impl = impl  # type: ignore[attr-defined]
    return handler  # type: ignore[return-value]
