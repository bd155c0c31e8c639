"""ClaudeSummarizer driven through the real anthropic client against a fake Messages API on 127.0.0.1."""
from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry

from service.summaries.claude import ClaudeSummarizer, LLMUnavailable
from service.summaries.evidence import build_evidence
from service.summaries.metrics import metrics_for
from tests.fakes.anthropic import (
    FakeAnthropic, error, overloaded, rate_limited, raw, server_error, text_answer, tool_answer,
)
from tests.fakes.incidents import CHANGES, injected_incident, sample_incident, valid_answer


@pytest.fixture
async def fake():
    f = FakeAnthropic()
    await f.start()
    yield f
    await f.close()


@pytest.fixture
def registry():
    return CollectorRegistry()


def make_llm(fake: FakeAnthropic, registry: CollectorRegistry, *, timeout: float = 2.0, max_retries: int = 1,
             total_timeout: float | None = None) -> ClaudeSummarizer:
    return ClaudeSummarizer(
        api_key="sk-ant-test-secret", model="claude-sonnet-4-6", base_url=fake.base_url, timeout=timeout,
        max_retries=max_retries, total_timeout=total_timeout, metrics=metrics_for(registry),
        _strict_response_validation=True,
    )


def sample(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_valid_structured_answer_becomes_a_claude_summary(fake, registry):
    """A valid tool answer grounded in the evidence becomes a summary with source "claude"."""
    fake.reply(tool_answer(valid_answer(root_cause={"metric": "PG_QUERY_LATENCY_SECONDS", "entity": "DB-1"})))
    llm = make_llm(fake, registry)
    pack = build_evidence(sample_incident(), changes=CHANGES)
    s = await llm.summarize(pack)
    assert s.source == "claude"
    assert (s.root_cause.metric, s.root_cause.entity) == ("pg_query_latency_seconds", "db-1")  # the pack's spelling
    assert s.cited == ["E1", "E2", "E3", "E6"]
    assert s.confidence == 0.8 and s.digest == pack.digest()
    assert sample(registry, "tocsin_llm_requests_total", outcome="ok") == 1
    await llm.aclose()


async def test_tokens_are_counted(fake, registry):
    """Input, output, cache-read and cache-creation tokens are added to the tocsin_llm_tokens_total counter."""
    usage = {"input_tokens": 1500, "output_tokens": 200, "cache_creation_input_tokens": 1100, "cache_read_input_tokens": 0}
    fake.reply(tool_answer(valid_answer(), usage=usage), tool_answer(valid_answer()))
    llm = make_llm(fake, registry)
    pack = build_evidence(sample_incident())
    await llm.summarize(pack)
    await llm.summarize(pack)
    assert sample(registry, "tocsin_llm_tokens_total", kind="input") == 2700
    assert sample(registry, "tocsin_llm_tokens_total", kind="output") == 380
    assert sample(registry, "tocsin_llm_tokens_total", kind="cache_creation") == 1100
    assert sample(registry, "tocsin_llm_tokens_total", kind="cache_read") == 900
    await llm.aclose()


async def test_request_caches_instructions_and_quotes_alert_text(fake, registry):
    """The request has a cached system block, a forced tool, and alert text only inside the quoted data block."""
    fake.reply(tool_answer(valid_answer()))
    llm = make_llm(fake, registry)
    await llm.summarize(build_evidence(injected_incident()))
    req = fake.requests[0]
    body = req["json"]
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert "sk-ant-test-secret" in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["tool_choice"] == {"type": "tool", "name": "report_incident_summary"}
    assert body["tools"][0]["name"] == "report_incident_summary"
    user = body["messages"][0]["content"]
    start, end = user.index("<<<INCIDENT_DATA"), user.index("<<<END_INCIDENT_DATA")
    data = user[user.index("\n", start) + 1:end]
    assert "ignore previous instructions" in data
    assert "ignore previous instructions" not in user[:start] + user[end:]
    assert "<" not in data and ">" not in data and "END_INCIDENT_DATA 000000000000" in data
    assert "temperature" not in body
    await llm.aclose()


# (replies, expected outcome, expected number of HTTP calls) with max_retries=1
FAILURES = {
    "prose instead of tool": ([text_answer("The database is slow.")], "invalid_answer", 1),
    "wrong schema": ([tool_answer({"headline": "x", "root_cause": None})], "invalid_answer", 1),
    "extra field": ([tool_answer(valid_answer(action="resolve_incident"))], "invalid_answer", 1),
    "confidence out of range": ([tool_answer(valid_answer(confidence=7))], "invalid_answer", 1),
    "malformed json": ([raw('{"id": "msg_1", "type": "message", "content": [')], "invalid_answer", 1),
    "wrong response shape": ([raw('{"hello": "world"}')], "invalid_answer", 1),
    "root cause not in evidence": (
        [tool_answer(valid_answer(root_cause={"metric": "disk_full", "entity": "db-9"}))], "ungrounded", 1),
    "metric of one, entity of another": (
        [tool_answer(valid_answer(root_cause={"metric": "pg_query_latency_seconds", "entity": "checkout-7"}))],
        "ungrounded", 1),
    "cites a missing id": ([tool_answer(valid_answer(cited_evidence=["E1", "E99"]))], "ungrounded", 1),
    "missing id in reasoning": ([tool_answer(valid_answer(reasoning="See [E42]."))], "ungrounded", 1),
    "root cause without citations": ([tool_answer(valid_answer(cited_evidence=[], reasoning="It is the db."))],
                                     "ungrounded", 1),
    "429 twice": ([rate_limited(), rate_limited()], "rate_limited", 2),
    "529 twice": ([overloaded(), overloaded()], "overloaded", 2),
    "500 twice": ([server_error(), server_error()], "server_error", 2),
    "400": ([error(400, "invalid_request_error", "bad")], "client_error", 1),
    "401": ([error(401, "authentication_error", "bad key")], "client_error", 1),
    "404": ([error(404, "not_found_error", "no model")], "client_error", 1),
    "slow answer": ([tool_answer(valid_answer(), delay=0.6)], "timeout", 2),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_failures_raise_llm_unavailable(fake, registry, case):
    """Every bad answer or error ends in LLMUnavailable with the right outcome; only 429/5xx/timeouts retry."""
    replies, outcome, calls = FAILURES[case]
    fake.reply(*replies)
    llm = make_llm(fake, registry, timeout=0.25, max_retries=1)
    with pytest.raises(LLMUnavailable) as exc:
        await llm.summarize(build_evidence(sample_incident()))
    assert exc.value.outcome == outcome
    assert fake.calls == calls
    assert sample(registry, "tocsin_llm_requests_total", outcome=outcome) == 1
    assert "sk-ant" not in str(exc.value)
    await llm.aclose()


@pytest.mark.parametrize("first", [rate_limited(), overloaded(), server_error()])
async def test_transient_error_then_success_backs_off_and_succeeds(fake, registry, first):
    """After one 429/529/500 the SDK backs off (honouring retry-after) and the retry's answer is used."""
    fake.reply(first, tool_answer(valid_answer()))
    llm = make_llm(fake, registry, max_retries=2)
    s = await llm.summarize(build_evidence(sample_incident()))
    assert s.source == "claude" and fake.calls == 2
    await llm.aclose()


async def test_huge_retry_after_is_capped_by_the_total_timeout(fake, registry):
    """A 429 asking to retry in an hour ends at the total timeout, as a timeout."""
    fake.reply(rate_limited(retry_after="3600"))
    llm = make_llm(fake, registry, max_retries=2, total_timeout=0.3)
    with pytest.raises(LLMUnavailable) as exc:
        await llm.summarize(build_evidence(sample_incident()))
    assert exc.value.outcome == "timeout"
    assert fake.calls == 1  # the retry an hour later never happened
    await llm.aclose()


async def test_connection_refused_is_connection_error(registry):
    """An unreachable API is a connection_error, not a crash."""
    fake = FakeAnthropic()
    await fake.start()
    await fake.close()  # the port is now closed
    llm = make_llm(fake, registry, max_retries=0)
    with pytest.raises(LLMUnavailable) as exc:
        await llm.summarize(build_evidence(sample_incident()))
    assert exc.value.outcome == "connection_error"
    await llm.aclose()


async def test_repr_hides_the_key(fake, registry):
    """The summarizer's repr never shows the API key."""
    llm = make_llm(fake, registry)
    assert "sk-ant" not in repr(llm)
    await llm.aclose()


async def test_cancellation_propagates(fake, registry):
    """Cancelling a summary call cancels it (it is not swallowed as a failure)."""
    fake.reply(tool_answer(valid_answer(), delay=1.0))
    llm = make_llm(fake, registry)
    task = asyncio.ensure_future(llm.summarize(build_evidence(sample_incident())))
    while fake.calls == 0:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await llm.aclose()


def test_answer_schema_is_json_serialisable():
    """The tool input schema is plain JSON (it is sent on every request)."""
    from service.summaries.prompt import tool_definition

    json.dumps(tool_definition())
