"""A fake Slack on 127.0.0.1 speaking the Web API (chat.postMessage, chat.update) and incoming webhooks.

    async with FakeSlack(token="xoxb-test") as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        ...
        slack.messages          # top-level messages, in order, with their current text/blocks
        slack.replies(ts)       # thread replies to a message
        slack.webhook_posts     # bodies POSTed to slack.webhook_url
        slack.fail_next(429, times=2, retry_after=3)   # programmable failures (Web API and webhook)
        slack.fail_next(200, error="channel_not_found")
        payload = slack.press(ts, "tocsin_ack", user_id="U1")  # what Slack sends for a button press

It checks what the real Slack checks and Tocsin relies on: the Bearer token, `channel`, `text` or
`blocks`, and the Block Kit limits (50 blocks, 3000 characters of section text, 150 of header text,
75 of button text, unique block ids); a violation answers `invalid_blocks` like Slack does.
Also: `sign_action(secret, payload, ts)` builds a correctly signed interactivity request.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import LocalServer


@dataclass
class Failure:
    status: int
    error: str | None = None
    retry_after: float | None = None
    method: str | None = None  # only for this API method / "webhook"; None = any


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    username: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)  # earlier versions, oldest first


def _element_problems(where: str, e: dict[str, Any]) -> list[str]:
    """The limits of one interactive element (`where` its path)."""
    problems = []
    if e.get("type") == "button":
        if not 1 <= len(e.get("text", {}).get("text", "")) <= 75:
            problems.append(f"{where} button text 1..75 chars")
        if len(e.get("value", "")) > 2000:
            problems.append(f"{where} button value > 2000")
    if e.get("type") == "static_select":
        for o in e.get("options", []):
            if len(o.get("value", "")) > 150 or len(o.get("text", {}).get("text", "")) > 75:
                problems.append(f"{where} option too long")
    if len(e.get("action_id", "")) > 255:
        problems.append(f"{where} action_id > 255")
    return problems


def _block_problems(i: int, b: dict[str, Any]) -> list[str]:
    """The limits of one block by its type."""
    t = b["type"]
    txt = b.get("text", {})
    els = b.get("elements", [])
    if t == "header" and (txt.get("type") != "plain_text" or not (1 <= len(txt.get("text", "")) <= 150)):
        return [f"blocks[{i}] header text must be plain_text of 1..150 chars"]
    if t == "section" and not (1 <= len(txt.get("text", "")) <= 3000):
        return [f"blocks[{i}] section text must be 1..3000 chars"]
    if t == "context" and not 1 <= len(els) <= 10:
        return [f"blocks[{i}] context needs 1..10 elements"]
    if t != "actions":
        return []
    problems = [] if 1 <= len(els) <= 25 else [f"blocks[{i}] actions needs 1..25 elements"]
    for j, e in enumerate(els):
        problems += _element_problems(f"blocks[{i}].elements[{j}]", e)
    return problems


def block_kit_problems(blocks: Any) -> list[str]:
    """The Block Kit limit violations Slack would reject with invalid_blocks."""
    problems: list[str] = []
    if blocks is None:
        return problems
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks > 50")
    ids = set()
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or "type" not in b:
            problems.append(f"blocks[{i}] has no type")
            continue
        bid = b.get("block_id")
        if bid is not None:
            if bid in ids:
                problems.append(f"blocks[{i}] duplicate block_id")
            ids.add(bid)
        problems += _block_problems(i, b)
    return problems


class FakeSlack(LocalServer):
    def __init__(self, token: str = "xoxb-fake-token", webhook_path: str = "/services/T000/B000/XXXXXXXX"):
        super().__init__()
        self.token = token
        self.webhook_path = webhook_path
        self.messages: list[Message] = []  # top-level messages in posting order
        self.webhook_posts: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # every API call: {"method", "body", "status"}
        self._by_ts: dict[str, Message] = {}
        self._failures: list[Failure] = []
        self._seq = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post(self.webhook_path, self._webhook)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.webhook_path}"

    # -- programming -----------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None,
                  error: str | None = None, method: str | None = None) -> None:
        """The next `times` matching calls fail with `status` (200 + `error` for an ok:false answer)."""
        for _ in range(times):
            self._failures.append(Failure(status, error, retry_after, method))

    def replies(self, ts: str) -> list[Message]:
        return [m for m in self._by_ts.values() if m.thread_ts == ts]

    def message(self, ts: str) -> Message:
        return self._by_ts[ts]

    def press(self, ts: str, action_id: str, *, user_id: str = "U123", username: str = "alice",
              option: int = 0) -> dict[str, Any]:
        """The block_actions payload Slack would send when a user uses `action_id` on message `ts`.

        The value comes from the button (or the `option`-th choice of a select) as it is in the message,
        so a test presses what was actually posted.
        """
        msg = self._by_ts[ts]
        for b in msg.blocks or []:
            for e in b.get("elements", []) if b.get("type") == "actions" else []:
                if e.get("action_id") == action_id:
                    if e.get("type") == "static_select":
                        return block_action(action_id, user_id=user_id, username=username, channel=msg.channel,
                                            message_ts=ts, selected=e["options"][option]["value"])
                    return block_action(action_id, e.get("value"), user_id=user_id, username=username,
                                        channel=msg.channel, message_ts=ts)
        raise KeyError(f"message {ts} has no element with action_id {action_id}")

    def channel_id(self, channel: str) -> str:
        name = channel.lstrip("#")
        if name.startswith(("C", "G", "D")) and name.isupper():
            return name
        return "C" + hashlib.sha256(name.encode()).hexdigest()[:8].upper()

    # -- handlers --------------------------------------------------------------------------------

    def _take_failure(self, method: str) -> Failure | None:
        for i, f in enumerate(self._failures):
            if f.method is None or f.method == method:
                return self._failures.pop(i)
        return None

    @staticmethod
    def _fail_response(f: Failure, webhook: bool = False) -> web.Response:
        headers = {"Retry-After": str(int(f.retry_after))} if f.retry_after is not None else {}
        if webhook:
            return web.Response(status=f.status, text=f.error or "error", headers=headers)
        if f.status == 200:
            return web.json_response({"ok": False, "error": f.error or "fatal_error"}, headers=headers)
        if f.status == 429:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        return web.Response(status=f.status, text=f.error or "upstream error", headers=headers)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        try:
            body = json.loads(raw) if request.content_type == "application/json" else dict(urllib.parse.parse_qsl(raw.decode()))
        except ValueError:
            body = {}
        record = {"method": method, "body": body, "status": 200}
        self.requests.append(record)
        f = self._take_failure(method)
        if f is not None:
            record["status"] = f.status
            return self._fail_response(f)
        auth = request.headers.get("Authorization", "")
        if not hmac.compare_digest(auth, f"Bearer {self.token}"):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if isinstance(body.get("blocks"), str):
            try:
                body["blocks"] = json.loads(body["blocks"])
            except ValueError:
                return web.json_response({"ok": False, "error": "invalid_blocks"})
        if method == "chat.postMessage":
            return self._post(body)
        if method == "chat.update":
            return self._update(body)
        return web.json_response({"ok": False, "error": "unknown_method"}, status=404)

    def _check(self, body: dict[str, Any]) -> web.Response | None:
        if not body.get("channel"):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if not body.get("text") and not body.get("blocks"):
            return web.json_response({"ok": False, "error": "no_text"})
        problems = block_kit_problems(body.get("blocks"))
        if problems:
            return web.json_response({"ok": False, "error": "invalid_blocks", "errors": problems})
        return None

    def _post(self, body: dict[str, Any]) -> web.Response:
        bad = self._check(body)
        if bad is not None:
            return bad
        if str(body["channel"]).lstrip("#") in ("nonexistent", "missing"):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        self._seq += 1
        ts = f"1700000000.{self._seq:06d}"
        channel = self.channel_id(str(body["channel"]))
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and thread_ts not in self._by_ts:
            return web.json_response({"ok": False, "error": "thread_not_found"})
        msg = Message(channel, ts, body.get("text", ""), body.get("blocks"), thread_ts, body.get("username"))
        self._by_ts[ts] = msg
        if thread_ts is None:
            self.messages.append(msg)
        return web.json_response({"ok": True, "channel": channel, "ts": ts,
                                  "message": {"text": msg.text, "ts": ts}})

    def _update(self, body: dict[str, Any]) -> web.Response:
        bad = self._check(body)
        if bad is not None:
            return bad
        msg = self._by_ts.get(str(body.get("ts")))
        if msg is None or msg.channel != self.channel_id(str(body["channel"])):
            return web.json_response({"ok": False, "error": "message_not_found"})
        msg.edits.append({"text": msg.text, "blocks": msg.blocks})
        msg.text = body.get("text", "")
        msg.blocks = body.get("blocks")
        return web.json_response({"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text})

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        f = self._take_failure("webhook")
        if f is not None:
            return self._fail_response(f, webhook=True)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict) or (not body.get("text") and not body.get("blocks")
                                          and not body.get("attachments")):  # Alertmanager posts attachments only
            return web.Response(status=400, text="no_text")
        if block_kit_problems(body.get("blocks")):
            return web.Response(status=400, text="invalid_blocks")
        self.webhook_posts.append(body)
        return web.Response(status=200, text="ok")


def sign_action(secret: str, payload: dict[str, Any], ts: int | str | None = None) -> tuple[bytes, dict[str, str]]:
    """A Slack interactivity request: (form body, headers) signed with v0 HMAC-SHA256."""
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    ts_s = str(int(time.time()) if ts is None else ts)
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts_s}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Slack-Request-Timestamp": ts_s, "X-Slack-Signature": sig,
                  "Content-Type": "application/x-www-form-urlencoded"}


def block_action(action_id: str, value: str | None = None, *, user_id: str = "U123", username: str = "alice",
                 channel: str = "C1", message_ts: str = "1700000000.000001", selected: str | None = None) -> dict[str, Any]:
    """The payload Slack sends when a button (or a static_select option) in a message is used."""
    action: dict[str, Any] = {"action_id": action_id, "block_id": "tocsin_actions", "action_ts": "1700000001.000000"}
    if selected is not None:
        action.update(type="static_select", selected_option={"text": {"type": "plain_text", "text": "x"}, "value": selected})
    else:
        action.update(type="button", value=value or "")
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": username, "name": username, "team_id": "T1"},
        "team": {"id": "T1", "domain": "example"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "alerts"},
        "message": {"ts": message_ts, "text": "..."},
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
        "trigger_id": "1.2.3",
        "actions": [action],
    }
