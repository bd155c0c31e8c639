"""A fake Anthropic Messages API (POST /v1/messages) on 127.0.0.1, driven by the real `anthropic` client.

Program it with replies, served in order (the last one repeats when the queue runs dry):

    fake = FakeAnthropic()
    base_url = await fake.start()
    fake.reply(tool_answer({...}), error(429, "rate_limit_error", retry_after="0.01"))
    ...
    fake.requests  # every request: {"headers": {...}, "json": {...}}
    await fake.close()

Responses follow the real shapes (docs/PROTOCOLS.md "Anthropic"), so a client built with
`_strict_response_validation=True` rejects any drift.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> raw text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds of (real) network slowness before answering


def message(content: list[dict[str, Any]], *, stop_reason: str = "tool_use", usage: dict[str, Any] | None = None,
            model: str = "claude-sonnet-4-6") -> dict[str, Any]:
    return {
        "id": "msg_fake_1", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason, "stop_sequence": None,
        "usage": usage or {"input_tokens": 1200, "output_tokens": 180,
                           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900},
    }


def tool_answer(tool_input: dict[str, Any], *, name: str = "report_incident_summary", delay: float = 0.0,
                usage: dict[str, Any] | None = None) -> Reply:
    """A valid structured answer: one tool_use block carrying `tool_input`."""
    block = {"type": "tool_use", "id": "toolu_fake_1", "name": name, "input": tool_input}
    return Reply(body=message([block], usage=usage), delay=delay)


def text_answer(text: str) -> Reply:
    """The model answered in prose instead of calling the tool."""
    return Reply(body=message([{"type": "text", "text": text}], stop_reason="end_turn"))


def raw(body: str, status: int = 200, content_type: str = "application/json") -> Reply:
    """Anything at all, e.g. malformed JSON."""
    return Reply(status=status, body=body, headers={"Content-Type": content_type})


def error(status: int, type_: str, message_: str = "fake error", *, retry_after: str | None = None,
          delay: float = 0.0) -> Reply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Reply(status=status, body={"type": "error", "error": {"type": type_, "message": message_}},
                 headers=headers, delay=delay)


def rate_limited(retry_after: str = "0.01") -> Reply:
    return error(429, "rate_limit_error", "rate limited", retry_after=retry_after)


def overloaded(retry_after: str = "0.01") -> Reply:
    return error(529, "overloaded_error", "overloaded", retry_after=retry_after)


def server_error(retry_after: str = "0.01") -> Reply:
    return error(500, "api_error", "internal error", retry_after=retry_after)


class FakeAnthropic:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._queue: list[Reply] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.inflight = 0
        self.max_inflight = 0  # the most requests being answered at once

    def reply(self, *replies: Reply) -> None:
        """Queue replies; each request takes the next, and the last one keeps being served."""
        self._queue.extend(replies)

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        self.requests.append({"headers": dict(request.headers), "json": payload})
        if not self._queue:
            return web.json_response({"type": "error", "error": {"type": "api_error", "message": "no reply queued"}},
                                     status=500)
        r = self._queue.pop(0) if len(self._queue) > 1 else self._queue[0]
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if r.delay:
                await asyncio.sleep(r.delay)  # simulated network slowness, not a test waiting for a timer
        finally:
            self.inflight -= 1
        headers = {"request-id": f"req_fake_{len(self.requests)}", **r.headers}
        if isinstance(r.body, str):
            return web.Response(status=r.status, text=r.body, headers=headers)
        return web.json_response(r.body, status=r.status, headers=headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
