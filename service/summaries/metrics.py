"""Prometheus metrics of the summarizers (prefix `tocsin_llm_`).

One `LLMMetrics` per registry, from `metrics_for(registry)`: production uses `default_metrics()` (the global
REGISTRY); tests pass `metrics_for(CollectorRegistry())` and read values with `registry.get_sample_value(...)`.
"""
from __future__ import annotations

import weakref

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class LLMMetrics:
    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        self.requests = Counter(
            "tocsin_llm_requests_total", "Calls to the LLM by outcome "
            "(ok, rate_limited, overloaded, server_error, client_error, timeout, connection_error, invalid_answer, ungrounded).",
            ["outcome"], registry=registry)
        self.tokens = Counter(
            "tocsin_llm_tokens_total", "Tokens billed by the LLM, by kind (input, output, cache_read, cache_creation).",
            ["kind"], registry=registry)
        self.latency = Histogram(
            "tocsin_llm_request_seconds", "Time an LLM summary call took, retries included.",
            buckets=(0.5, 1, 2, 3, 5, 10, 20, 40, 80), registry=registry)
        self.summaries = Counter(
            "tocsin_llm_summaries_total", "Summaries produced, by source (claude, evidence) and reason "
            "(llm, cache, no_llm, budget, llm_error, pending).",
            ["source", "reason"], registry=registry)
        self.feedback = Counter(
            "tocsin_llm_summary_feedback_total", "Summary feedback votes, by answer.", ["helpful"], registry=registry)
        self.helpful_share = Gauge(
            "tocsin_llm_summary_helpful_share", "Share of summary votes that said helpful (0..1).", registry=registry)


_by_registry: "weakref.WeakKeyDictionary[CollectorRegistry, LLMMetrics]" = weakref.WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry) -> LLMMetrics:
    """The one LLMMetrics of a registry (created on first use; a registry cannot hold the same metric twice)."""
    m = _by_registry.get(registry)
    if m is None:
        m = _by_registry[registry] = LLMMetrics(registry)
    return m


def default_metrics() -> LLMMetrics:
    """The process-wide metrics on the global registry."""
    return metrics_for(REGISTRY)
