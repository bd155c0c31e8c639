"""The Claude summarizer: structured output by forced tool use, grounded in the evidence pack.

`ClaudeSummarizer.summarize(pack)` either returns a `Summary` with source "claude" or raises
`LLMUnavailable(outcome, detail)`; the caller (SummaryService) then shows the evidence summary. Outcomes:
- rate_limited (429) / overloaded (529) / server_error (other 5xx) / timeout / connection_error: the SDK
  already retried them (bounded by `max_retries`, honouring retry-after); a total deadline caps the whole
  call, because the SDK would honour a retry-after of an hour.
- client_error (other 4xx): the SDK does not retry them.
- invalid_answer: no tool call, or its input does not validate against `LLMAnswer`.
- ungrounded: the root cause is not a (metric, entity) of a candidate or member, or a cited id does not exist.
Token usage (input, output, cache read, cache creation) is counted on every answered call.
"""
from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import anthropic
from pydantic import ValidationError

from service.summaries.errors import LLMUnavailable
from service.summaries.evidence import EvidencePack
from service.summaries.metrics import LLMMetrics, default_metrics
from service.summaries.prompt import TOOL_NAME, build_request
from service.summaries.schema import LLMAnswer, RootCause, Summary

__all__ = ["ClaudeSummarizer", "LLMUnavailable"]

_CITATION = re.compile(r"\bE\d+\b")


def _outcome_of(err: BaseException) -> str:
    if isinstance(err, anthropic.RateLimitError):
        return "rate_limited"
    if isinstance(err, anthropic.APIStatusError) and err.status_code == 529:
        return "overloaded"
    if isinstance(err, anthropic.InternalServerError):
        return "server_error"
    if isinstance(err, anthropic.APIStatusError):
        return "client_error"
    if isinstance(err, (anthropic.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(err, anthropic.APIConnectionError):
        return "connection_error"
    return "invalid_answer"  # APIResponseValidationError, undecodable bodies and the like


def ground(answer: LLMAnswer, pack: EvidencePack) -> tuple[RootCause | None, list[str]]:
    """The answer's root cause in the pack's spelling and its citations, or LLMUnavailable("ungrounded")."""
    ids = pack.ids()
    cited = list(dict.fromkeys(c.strip().strip("[]") for c in answer.cited_evidence))
    for c in cited + _CITATION.findall(answer.reasoning) + [x for t in answer.next_checks for x in _CITATION.findall(t)]:
        if c not in ids:
            raise LLMUnavailable("ungrounded", f"cited evidence {c[:20]!r} does not exist")
    rc: RootCause | None = None
    if answer.root_cause is not None:
        key = (answer.root_cause.metric.strip().lower(), answer.root_cause.entity.strip().lower())
        choice = pack.root_cause_choices().get(key)
        if choice is None:
            raise LLMUnavailable("ungrounded", "root cause is not among the evidence's candidates or members")
        rc = RootCause(metric=choice[0], entity=choice[1])
        if not cited:
            raise LLMUnavailable("ungrounded", "a root cause without cited evidence")
    for c in _CITATION.findall(answer.reasoning):
        if c not in cited:
            cited.append(c)
    return rc, cited


class ClaudeSummarizer:
    def __init__(
        self,
        api_key: str | None = None,
        model: str = "claude-sonnet-4-6",
        base_url: str | None = None,
        timeout: float = 20.0,
        max_retries: int = 2,
        *,
        max_tokens: int = 1024,
        total_timeout: float | None = None,
        metrics: LLMMetrics | None = None,
        client: anthropic.AsyncAnthropic | None = None,
        **client_options: Any,
    ) -> None:
        """`api_key` None reads ANTHROPIC_API_KEY (the SDK does). `client_options` go to AsyncAnthropic
        (tests pass `_strict_response_validation=True`). `total_timeout` caps a call, retries included."""
        self.model = model
        self.max_tokens = max_tokens
        self.total_timeout = total_timeout if total_timeout is not None else timeout * (max_retries + 1) + 10.0
        self.metrics = metrics or default_metrics()
        self.client = client or anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, **client_options
        )

    def __repr__(self) -> str:  # never show the key
        return f"ClaudeSummarizer(model={self.model!r})"

    async def aclose(self) -> None:
        await self.client.close()

    async def summarize(self, pack: EvidencePack) -> Summary:
        request = build_request(pack, model=self.model, max_tokens=self.max_tokens)
        started = time.perf_counter()  # metrics only: how long the network call took
        try:
            message = await asyncio.wait_for(self.client.messages.create(**request), self.total_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure is a fallback, classified for metrics
            outcome = _outcome_of(err)
            self.metrics.requests.labels(outcome).inc()
            status = getattr(err, "status_code", None)
            raise LLMUnavailable(outcome, f"HTTP {status}" if status else type(err).__name__) from err
        finally:
            self.metrics.latency.observe(time.perf_counter() - started)

        self._count_tokens(message.usage)
        block = next((b for b in message.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
        if block is None:
            self.metrics.requests.labels("invalid_answer").inc()
            raise LLMUnavailable("invalid_answer", f"no {TOOL_NAME} call (stop_reason {message.stop_reason})")
        try:
            answer = LLMAnswer.model_validate(block.input)
        except ValidationError as err:
            self.metrics.requests.labels("invalid_answer").inc()
            first = err.errors()[0]
            path = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise LLMUnavailable("invalid_answer", f"{path}: {first['msg']}") from None
        try:
            root_cause, cited = ground(answer, pack)
        except LLMUnavailable as err:
            self.metrics.requests.labels(err.outcome).inc()
            raise
        self.metrics.requests.labels("ok").inc()
        return Summary(
            headline=answer.headline, root_cause=root_cause, reasoning=answer.reasoning, cited=cited,
            next_checks=answer.next_checks[:5], confidence=answer.confidence, source="claude", digest=pack.digest(),
        )

    def _count_tokens(self, usage: Any) -> None:
        if usage is None:
            return
        for kind, attr in (("input", "input_tokens"), ("output", "output_tokens"),
                           ("cache_read", "cache_read_input_tokens"), ("cache_creation", "cache_creation_input_tokens")):
            n = getattr(usage, attr, None)
            if n:
                self.metrics.tokens.labels(kind).inc(n)
