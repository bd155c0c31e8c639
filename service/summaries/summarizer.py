"""SummaryService: one interface over both summarizers, never in the way of the page.

- `summarize(incident)` always computes the evidence summary. With an LLM configured it then looks in the
  cache (by evidence-pack digest: no new call when nothing material changed), takes one unit of the per-hour
  call budget (atomic INCR on a key of the event-time hour), waits for a concurrency slot, and asks Claude.
  Any failure, or an exhausted budget, gives the evidence summary with a note saying why.
- `first_summary(incident)` returns within `deadline_seconds`: the LLM summary if it is ready (or cached),
  else the evidence summary plus the pending task, which later yields the final summary so the caller can
  edit the Slack message / update PagerDuty's custom_details (skip the edit if `.source == "evidence"`).
- Every summary is sanitised (plain text, no mentions, links only to allow-listed hosts, length limits).
  A summary is text; nothing in it is ever interpreted as an action.
- `record_feedback(incident_id, helpful, who)` / `feedback(incident_id)` / `helpful_share()`.

The cache, the budget and the votes are kept in Redis by service/store/summaries.py.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Iterable

import structlog

from service.core.clock import Clock
from service.store.summaries import SummaryStore

from service.summaries.errors import LLMUnavailable
from service.summaries.evidence import EvidencePack, build_evidence
from service.summaries.evidence_summarizer import EvidenceSummarizer
from service.summaries.metrics import LLMMetrics, default_metrics

if TYPE_CHECKING:  # the SDK is imported only when an LLM is configured (service.summaries.config)
    from redis.asyncio import Redis

    from service.summaries.claude import ClaudeSummarizer
from service.summaries.sanitize import sanitize_summary
from service.summaries.schema import Summary

log = structlog.get_logger("tocsin.summaries")

NOTE_BUDGET = "LLM budget exhausted; evidence summary shown"
NOTE_PENDING = "LLM summary pending; evidence summary shown"
OUTCOME_NOTES = {
    "rate_limited": "LLM rate limited",
    "overloaded": "LLM overloaded",
    "server_error": "LLM server error",
    "client_error": "LLM request rejected",
    "timeout": "LLM timed out",
    "connection_error": "LLM unreachable",
    "invalid_answer": "LLM answer was malformed",
    "ungrounded": "LLM answer was not grounded in the evidence",
}

class SummaryService:
    def __init__(
        self,
        evidence_summarizer: EvidenceSummarizer,
        llm: ClaudeSummarizer | None,
        redis: Redis,
        prefix: str,
        clock: Clock,
        *,
        budget_per_hour: int = 60,
        max_concurrency: int = 2,
        deadline_seconds: float = 3.0,
        cache_ttl: int = 7 * 24 * 3600,
        feedback_ttl: int = 90 * 24 * 3600,
        link_allowlist: Iterable[str] = (),
        metrics: LLMMetrics | None = None,
    ) -> None:
        if budget_per_hour < 0:
            raise ValueError("summaries.budget_per_hour: must be >= 0")
        if max_concurrency < 1:
            raise ValueError("summaries.max_concurrency: must be >= 1")
        if deadline_seconds < 0:
            raise ValueError("summaries.deadline_seconds: must be >= 0")
        self.evidence = evidence_summarizer
        self.llm = llm
        self.store = SummaryStore(redis, prefix)
        self.clock = clock
        self.budget_per_hour = budget_per_hour
        self.deadline_seconds = deadline_seconds
        self.cache_ttl = cache_ttl
        self.feedback_ttl = feedback_ttl
        self.link_allowlist = list(link_allowlist)
        self.metrics = metrics or (llm.metrics if llm is not None else default_metrics())
        self._sem = asyncio.Semaphore(max_concurrency)
        self._inflight: dict[str, asyncio.Task[Summary]] = {}  # digest -> task: one call per evidence at a time
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- summaries --------------------------------------------------------------------------------------
    def evidence_summary(self, pack: EvidencePack, note: str = "") -> Summary:
        s = self.evidence.summarize(pack)
        return sanitize_summary(s.model_copy(update={"note": note}), self.link_allowlist)

    async def cached(self, pack: EvidencePack) -> Summary | None:
        raw = await self.store.cached(pack.digest())
        if raw is None:
            return None
        try:
            return Summary.model_validate_json(raw)
        except ValueError:
            return None  # an unreadable entry is a miss

    async def summarize(
        self, incident: dict[str, Any], *, changes: Iterable[dict[str, Any]] = (),
        similar: Iterable[dict[str, Any]] = (),
    ) -> Summary:
        """The best summary available: cached or fresh LLM summary, else the evidence summary with a note."""
        pack = build_evidence(incident, changes=list(changes), similar=list(similar))
        return await self.summarize_pack(pack)

    async def summarize_pack(self, pack: EvidencePack) -> Summary:
        if self.llm is None:
            self.metrics.summaries.labels("evidence", "no_llm").inc()
            return self.evidence_summary(pack)
        digest = pack.digest()
        task = self._inflight.get(digest)
        if task is None:
            task = asyncio.ensure_future(self._llm_or_fallback(pack))
            self._inflight[digest] = task
            task.add_done_callback(lambda _t, d=digest: self._inflight.pop(d, None))
        # shield: a caller giving up (first_summary's deadline) must not cancel the shared call
        return await asyncio.shield(task)

    async def _llm_or_fallback(self, pack: EvidencePack) -> Summary:
        try:
            return await self._llm_summary(pack)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - e.g. Redis down: the page still gets the evidence summary
            self.metrics.summaries.labels("evidence", "error").inc()
            log.error("summary_failed", incident=pack.incident_id, error=type(err).__name__)
            return self.evidence_summary(pack, "summary service error; evidence summary shown")

    async def _llm_summary(self, pack: EvidencePack) -> Summary:
        assert self.llm is not None
        hit = await self.cached(pack)
        if hit is not None:
            self.metrics.summaries.labels("claude", "cache").inc()
            return hit
        hour = int(self.clock.now() // 3600)
        used = await self.store.take_budget(hour)
        if used > self.budget_per_hour:
            self.metrics.summaries.labels("evidence", "budget").inc()
            log.info("summary_budget_exhausted", incident=pack.incident_id, hour=hour, budget=self.budget_per_hour)
            return self.evidence_summary(pack, NOTE_BUDGET)
        try:
            async with self._sem:
                summary = await self.llm.summarize(pack)
        except LLMUnavailable as err:
            self.metrics.summaries.labels("evidence", "llm_error").inc()
            log.warning("summary_llm_failed", incident=pack.incident_id, outcome=err.outcome, detail=err.detail)
            note = OUTCOME_NOTES.get(err.outcome, "LLM unavailable") + "; evidence summary shown"
            return self.evidence_summary(pack, note)
        summary = sanitize_summary(summary, self.link_allowlist)
        await self.store.cache(pack.digest(), summary.model_dump_json(), self.cache_ttl)
        self.metrics.summaries.labels("claude", "llm").inc()
        return summary

    async def first_summary(
        self, incident: dict[str, Any], *, changes: Iterable[dict[str, Any]] = (),
        similar: Iterable[dict[str, Any]] = (),
    ) -> tuple[Summary, asyncio.Task[Summary] | None]:
        """(summary to send now, task yielding the final summary or None). Never waits past the deadline."""
        pack = build_evidence(incident, changes=list(changes), similar=list(similar))
        if self.llm is None:
            return await self.summarize_pack(pack), None
        task = asyncio.ensure_future(self.summarize_pack(pack))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # Waiting on the network is I/O: bounded by real time, not by the event clock.
        done, _ = await asyncio.wait({task}, timeout=self.deadline_seconds)
        if done:
            return task.result(), None
        self.metrics.summaries.labels("evidence", "pending").inc()
        return self.evidence_summary(pack, NOTE_PENDING), task

    async def aclose(self) -> None:
        """Cancel pending LLM work (on shutdown)."""
        tasks = list(self._tasks) + list(self._inflight.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- feedback ---------------------------------------------------------------------------------------
    async def record_feedback(self, incident_id: str, helpful: bool, who: str) -> float | None:
        """Store `who`'s vote on the incident's summary (a new vote replaces theirs); returns the helpful share."""
        if not isinstance(incident_id, str) or not incident_id or len(incident_id) > 200:
            raise ValueError("feedback.incident_id: required, a string of 1..200 characters")
        if not isinstance(who, str) or not who or len(who) > 200:
            raise ValueError("feedback.who: required, a string of 1..200 characters")
        if not isinstance(helpful, bool):
            raise ValueError("feedback.helpful: must be true or false")
        helpful_n, total = await self.store.record_vote(incident_id, who, helpful, self.feedback_ttl)
        self.metrics.feedback.labels("true" if helpful else "false").inc()
        share = helpful_n / total if total else None
        if share is not None:
            self.metrics.helpful_share.set(share)
        return share

    async def feedback(self, incident_id: str) -> dict[str, Any]:
        """The votes on one incident's summary: {"helpful": n, "not_helpful": n, "votes": {who: bool}}."""
        votes = await self.store.votes(incident_id)
        n = sum(votes.values())
        return {"helpful": n, "not_helpful": len(votes) - n, "votes": votes}

    async def helpful_share(self) -> float | None:
        """Share of all summary votes that said helpful, or None before any vote; also sets the gauge."""
        helpful_n, total = await self.store.totals()
        if not total:
            return None
        share = helpful_n / total
        self.metrics.helpful_share.set(share)
        return share
