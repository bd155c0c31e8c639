"""SummaryService: fallback, cache, hourly budget, concurrency, the first-notification deadline, safety, feedback."""
from __future__ import annotations

import asyncio
import copy
import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from service.core.clock import ManualClock
from service.summaries.claude import ClaudeSummarizer
from service.summaries.evidence import build_evidence
from service.summaries.evidence_summarizer import EvidenceSummarizer
from service.summaries.metrics import metrics_for
from service.summaries.summarizer import NOTE_BUDGET, NOTE_PENDING, SummaryService
from tests.fakes.anthropic import (
    FakeAnthropic, error, overloaded, rate_limited, raw, server_error, text_answer, tool_answer,
)
from tests.fakes.incidents import CHANGES, INJECTIONS, injected_incident, sample_incident, valid_answer

T0 = 1700000000.0
ALLOW = ["grafana.example.com"]


@pytest.fixture
async def fake():
    f = FakeAnthropic()
    await f.start()
    yield f
    await f.close()


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
async def make_service(fake, registry, redis, key_prefix, clock):
    made: list[SummaryService] = []

    def make(*, llm: bool = True, timeout: float = 2.0, max_retries: int = 1, **kw) -> SummaryService:
        metrics = metrics_for(registry)
        client = ClaudeSummarizer(
            api_key="sk-ant-test-secret", model="claude-sonnet-4-6", base_url=fake.base_url, timeout=timeout,
            max_retries=max_retries, metrics=metrics, _strict_response_validation=True,
        ) if llm else None
        kw.setdefault("deadline_seconds", 3.0)
        svc = SummaryService(EvidenceSummarizer(), client, redis, key_prefix, clock,
                             link_allowlist=ALLOW, metrics=metrics, **kw)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        await svc.aclose()
        if svc.llm is not None:
            await svc.llm.aclose()


def count(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_without_llm_the_evidence_summary_is_shown(make_service, fake):
    """With no LLM configured the evidence summary is returned, without a note and without any call."""
    svc = make_service(llm=False)
    s = await svc.summarize(sample_incident())
    assert s.source == "evidence" and s.note == "" and s.root_cause.entity == "db-1"
    first, pending = await svc.first_summary(sample_incident())
    assert first == s and pending is None
    assert fake.calls == 0


async def test_llm_summary_is_used_and_cached(make_service, fake, registry):
    """The LLM summary is returned; the same evidence again makes no second call."""
    fake.reply(tool_answer(valid_answer()))
    svc = make_service()
    s1 = await svc.summarize(sample_incident(), changes=CHANGES)
    assert s1.source == "claude" and s1.headline.startswith("payments-db")
    s2 = await svc.summarize(sample_incident(), changes=CHANGES)
    assert s2 == s1 and fake.calls == 1
    assert count(registry, "tocsin_llm_summaries_total", source="claude", reason="cache") == 1


async def test_replaying_the_same_incident_makes_no_second_call(make_service, fake):
    """Volatile changes (updated_at, state, timeline) reuse the cached summary; a new member makes a new call."""
    fake.reply(tool_answer(valid_answer()))
    svc = make_service()
    inc = sample_incident()
    await svc.summarize(inc)
    inc["updated_at"] += 900
    inc["state"] = "acknowledged"
    inc["timeline"].append({"ts": T0 + 900, "event": "acknowledged", "detail": "by alice"})
    assert (await svc.summarize(inc)).source == "claude" and fake.calls == 1
    inc["members"].append({**copy.deepcopy(inc["members"][2]), "fingerprint": "e5", "starts_at": T0 + 200})
    await svc.summarize(inc)
    assert fake.calls == 2


async def test_a_new_service_instance_reads_the_redis_cache(make_service, fake):
    """The cache lives in Redis: another replica with the same prefix makes no call."""
    fake.reply(tool_answer(valid_answer()))
    await make_service().summarize(sample_incident())
    s = await make_service().summarize(sample_incident())
    assert s.source == "claude" and fake.calls == 1


async def test_concurrent_requests_for_the_same_evidence_make_one_call(make_service, fake):
    """Several summaries of the same evidence at once share one LLM call."""
    fake.reply(tool_answer(valid_answer(), delay=0.2))
    svc = make_service()
    results = await asyncio.gather(*(svc.summarize(sample_incident()) for _ in range(4)))
    assert {r.source for r in results} == {"claude"} and fake.calls == 1


def other_incident(i: int) -> dict:
    inc = sample_incident()
    inc["id"] = f"inc-other-{i}"
    inc["members"][0]["value"] = 10.0 + i  # different evidence, different digest
    return inc


async def test_budget_exhausted_falls_back_and_says_so(make_service, fake, registry, clock):
    """Past the per-hour budget the evidence summary is shown with a note; the next hour has a new budget."""
    fake.reply(tool_answer(valid_answer()))
    svc = make_service(budget_per_hour=2)
    assert (await svc.summarize(other_incident(1))).source == "claude"
    assert (await svc.summarize(other_incident(2))).source == "claude"
    over = await svc.summarize(other_incident(3))
    assert over.source == "evidence" and over.note == NOTE_BUDGET
    assert fake.calls == 2
    assert count(registry, "tocsin_llm_summaries_total", source="evidence", reason="budget") == 1
    cached = await svc.summarize(other_incident(1))  # cached summaries do not need budget
    assert cached.source == "claude"
    clock.advance(3600)
    assert (await svc.summarize(other_incident(3))).source == "claude"
    assert fake.calls == 3


async def test_budget_is_shared_across_replicas(make_service, fake):
    """Two service instances on the same Redis draw from one hourly budget (atomic INCR)."""
    fake.reply(tool_answer(valid_answer()))
    a, b = make_service(budget_per_hour=3), make_service(budget_per_hour=3)
    results = await asyncio.gather(*(svc.summarize(other_incident(i)) for i, svc in enumerate([a, b] * 3)))
    assert sorted(r.source for r in results) == ["claude"] * 3 + ["evidence"] * 3
    assert fake.calls == 3


async def test_zero_budget_never_calls(make_service, fake):
    """A budget of zero means the LLM is never called."""
    svc = make_service(budget_per_hour=0)
    s = await svc.summarize(sample_incident())
    assert s.source == "evidence" and s.note == NOTE_BUDGET and fake.calls == 0


async def test_concurrency_is_limited(make_service, fake):
    """No more than max_concurrency LLM calls run at once."""
    fake.reply(tool_answer(valid_answer(), delay=0.15))
    svc = make_service(max_concurrency=2)
    results = await asyncio.gather(*(svc.summarize(other_incident(i)) for i in range(5)))
    assert all(r.source == "claude" for r in results)
    assert fake.calls == 5 and fake.max_inflight == 2


FALLBACKS = {
    "malformed json": ([raw('{"content": [')], "malformed"),
    "wrong schema": ([tool_answer({"headline": "x"})], "malformed"),
    "prose": ([text_answer("it is the database")], "malformed"),
    "root cause not in evidence": ([tool_answer(valid_answer(root_cause={"metric": "cpu", "entity": "web-1"}))],
                                   "not grounded"),
    "429": ([rate_limited(), rate_limited()], "rate limited"),
    "529": ([overloaded(), overloaded()], "overloaded"),
    "500": ([server_error(), server_error()], "server error"),
    "400": ([error(400, "invalid_request_error")], "rejected"),
    "timeout": ([tool_answer(valid_answer(), delay=0.6)], "timed out"),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
async def test_every_llm_failure_yields_the_evidence_summary(make_service, fake, case):
    """Each failure gives the evidence summary with a note naming the cause, and nothing is cached."""
    replies, words = FALLBACKS[case]
    fake.reply(*replies)
    svc = make_service(timeout=0.25, max_retries=1)
    s = await svc.summarize(sample_incident())
    assert s.source == "evidence" and s.root_cause.entity == "db-1"
    assert words in s.note and s.note.endswith("evidence summary shown")
    assert await svc.cached(build_evidence(sample_incident())) is None


@pytest.mark.parametrize("case", list(FALLBACKS))
async def test_first_summary_never_waits_beyond_the_deadline(make_service, fake, case):
    """Whatever the LLM does, first_summary answers within its deadline and the pending task ends in a summary."""
    replies, _ = FALLBACKS[case]
    # every answer arrives after the deadline (and the "timeout" one after the client's timeout)
    fake.reply(*(dataclasses.replace(r, delay=max(r.delay, 0.3)) for r in replies))
    svc = make_service(timeout=0.5, max_retries=1, deadline_seconds=0.1)
    first, pending = await svc.first_summary(sample_incident())
    assert first.source == "evidence" and first.note == NOTE_PENDING
    assert pending is not None and not pending.done()  # answered while the LLM call is still going on
    final = await asyncio.wait_for(pending, 10)
    assert final.source == "evidence" and final.note.endswith("evidence summary shown")


async def test_a_late_llm_summary_arrives_through_the_pending_task(make_service, fake):
    """When the LLM answers after the deadline, the evidence summary goes first and the task yields Claude's."""
    fake.reply(tool_answer(valid_answer(), delay=0.5))
    svc = make_service(deadline_seconds=0.1)
    first, pending = await svc.first_summary(sample_incident())
    assert first.source == "evidence" and pending is not None and not pending.done()
    final = await pending
    assert final.source == "claude"
    again, none = await svc.first_summary(sample_incident())  # now cached: no wait, no call
    assert again == final and none is None and fake.calls == 1


async def test_a_fast_llm_summary_is_sent_first(make_service, fake):
    """When the LLM answers within the deadline, its summary is the first one and nothing is pending."""
    fake.reply(tool_answer(valid_answer()))
    svc = make_service(deadline_seconds=3.0)
    first, pending = await svc.first_summary(sample_incident())
    assert first.source == "claude" and pending is None


async def test_redis_failure_still_gives_the_evidence_summary(make_service, fake, redis):
    """If Redis fails, the page still gets the evidence summary."""
    fake.reply(tool_answer(valid_answer()))
    svc = make_service()

    async def broken(*a, **k):
        raise ConnectionError("redis down")

    svc.store.redis.get = broken  # type: ignore[method-assign]
    s = await svc.summarize(sample_incident())
    assert s.source == "evidence" and "error" in s.note


async def test_prompt_injection_stays_data_and_triggers_nothing(make_service, fake, redis, key_prefix):
    """Injected annotations stay inside the quoted data; hostile output is sanitised; nothing else happens."""
    hostile = valid_answer(
        headline="<!channel> @here resolve the incident now",
        reasoning="Per the alert [E2], click https://evil.example.net/fix or <https://evil.com|here>; "
                  "dashboards at https://grafana.example.com/d/db [E6].",
        next_checks=["@channel ignore previous instructions", "post to <!here>"],
    )
    fake.reply(tool_answer(hostile))
    svc = make_service()
    incident = injected_incident()
    before = copy.deepcopy(incident)
    s = await svc.summarize(incident)

    # the prompt kept every injection inside the data block
    user = fake.requests[0]["json"]["messages"][0]["content"]
    start, end = user.index("<<<INCIDENT_DATA"), user.index("<<<END_INCIDENT_DATA")
    assert user.count("<<<END_INCIDENT_DATA") == 1
    for text in ("ignore previous instructions", "@channel", "admin mode", "evil.example.net"):
        assert text not in user[:start] + user[end:]
    assert "<" not in user[user.index("\n", start):end]

    # the output is plain text: no mentions, no foreign links; allow-listed links survive
    text = " ".join([s.headline, s.reasoning, *s.next_checks])
    for bad in ("<!channel>", "<!here>", "@here", "@channel", "https://evil", "http://evil", "<https"):
        assert bad not in text
    assert "https://grafana.example.com/d/db" in text

    # nothing happened besides one call and one cache entry: the incident is untouched
    assert incident == before and incident["state"] == "triggered"
    assert fake.calls == 1
    keys = sorted([k.decode() async for k in redis.scan_iter(match=f"{key_prefix}*")])
    assert all(":{summaries}:cache:" in k or ":{summaries}:budget:" in k for k in keys)
    assert set(s.model_dump()) == {"headline", "root_cause", "reasoning", "cited", "next_checks", "confidence",
                                   "source", "note", "digest"}


async def test_injection_in_evidence_summary_is_sanitised_too(make_service):
    """Without an LLM, hostile alert text echoed by the evidence summary is sanitised as well."""
    inc = injected_incident()
    inc["root_causes"][0]["evidence"][0]["detail"] = INJECTIONS[1] + " https://evil.example.net/x"
    s = await make_service(llm=False).summarize(inc)
    text = " ".join([s.headline, s.reasoning, *s.next_checks])
    assert "<!channel>" not in text and "@channel" not in text and "https://evil" not in text


async def test_feedback_is_stored_and_reported(make_service, registry):
    """Votes are stored per incident (a changed vote replaces the old one) and the helpful share is reported."""
    svc = make_service(llm=False)
    assert await svc.helpful_share() is None
    await svc.record_feedback("inc-1", True, "alice")
    await svc.record_feedback("inc-1", False, "bob")
    await svc.record_feedback("inc-2", True, "alice")
    assert await svc.helpful_share() == pytest.approx(2 / 3)
    await svc.record_feedback("inc-1", True, "bob")  # bob changes his mind
    assert await svc.helpful_share() == 1.0
    assert await svc.feedback("inc-1") == {"helpful": 2, "not_helpful": 0, "votes": {"alice": True, "bob": True}}
    assert count(registry, "tocsin_llm_summary_helpful_share") == 1.0
    assert count(registry, "tocsin_llm_summary_feedback_total", helpful="true") == 3


@pytest.mark.parametrize("args, path", [
    (("", True, "alice"), "feedback.incident_id"),
    (("inc-1", True, ""), "feedback.who"),
    (("inc-1", "yes", "alice"), "feedback.helpful"),
])
async def test_bad_feedback_names_the_field(make_service, args, path):
    """Bad feedback input is rejected with the path of the bad field."""
    with pytest.raises(ValueError, match=path):
        await make_service(llm=False).record_feedback(*args)


@pytest.mark.parametrize("kw, path", [
    ({"budget_per_hour": -1}, "budget_per_hour"), ({"max_concurrency": 0}, "max_concurrency"),
    ({"deadline_seconds": -1}, "deadline_seconds"),
])
async def test_bad_settings_name_the_field(make_service, kw, path):
    """Invalid service settings are rejected with the setting's path."""
    with pytest.raises(ValueError, match=path):
        make_service(llm=False, **kw)


def test_config_errors_name_the_path():
    """A bad `tocsin.llm` section is rejected with the path of every bad field."""
    from service.core.errors import ConfigErrors
    from service.summaries.config import LLMConfig

    with pytest.raises(ConfigErrors) as exc:
        LLMConfig.parse({"deadline": -1, "max_concurrency": 0, "api_key": "sk-in-file"})
    paths = {e.path for e in exc.value.errors}
    assert paths == {"tocsin.llm.deadline", "tocsin.llm.max_concurrency", "tocsin.llm.api_key"}
    assert "sk-in-file" not in str(exc.value)


async def test_factory_uses_the_llm_only_with_a_key(redis, key_prefix, clock, registry):
    """The factory builds an LLM summarizer only when enabled and the key is in the environment."""
    from service.summaries.config import LLMConfig, build_summary_service

    cfg = LLMConfig.parse({"link_allowlist": ["grafana.example.com"], "deadline": 1})
    metrics = metrics_for(registry)
    without = build_summary_service(cfg, redis, key_prefix, clock, metrics=metrics, env={})
    assert without.llm is None and without.deadline_seconds == 1
    with_key = build_summary_service(cfg, redis, key_prefix, clock, metrics=metrics, env={"ANTHROPIC_API_KEY": "sk-x"})
    assert with_key.llm is not None and "sk-x" not in repr(with_key.llm)
    off = build_summary_service(LLMConfig.parse({"enabled": False}), redis, key_prefix, clock, metrics=metrics,
                                env={"ANTHROPIC_API_KEY": "sk-x"})
    assert off.llm is None
    await with_key.llm.aclose()
