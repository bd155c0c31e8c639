"""The `tocsin: llm:` section of the configuration, and the factory that builds a SummaryService from it.

    tocsin:
      llm:
        enabled: true                     # default; false (or no API key in the env): evidence summaries only
        model: claude-sonnet-4-6
        base_url: null                    # default Anthropic API; tests point it at a fake
        api_key_env: ANTHROPIC_API_KEY    # the key comes from the environment, never from the file
        timeout: 20                       # seconds per HTTP attempt
        max_retries: 2                    # SDK retries of 429 / 5xx / timeouts
        total_timeout: 60                 # seconds for one summary, retries included
        max_tokens: 1024
        deadline: 3                       # seconds the first notification may wait for the LLM
        budget_per_hour: 60               # LLM calls per event-time hour, shared by all replicas
        max_concurrency: 2
        cache_ttl: 604800                 # seconds an LLM summary stays cached by evidence digest
        link_allowlist: [grafana.example.com]
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from service.core.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:  # the summarizers (and the Anthropic SDK, a second to import) load only when a service is built
    from redis.asyncio import Redis

    from service.core.clock import Clock

    from service.summaries.claude import ClaudeSummarizer
    from service.summaries.metrics import LLMMetrics
    from service.summaries.summarizer import SummaryService


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    model: str = Field("claude-sonnet-4-6", min_length=1)
    base_url: str | None = None
    api_key_env: str = Field("ANTHROPIC_API_KEY", min_length=1)
    timeout: float = Field(20.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    total_timeout: float = Field(60.0, gt=0)
    max_tokens: int = Field(1024, ge=256, le=8192)
    deadline: float = Field(3.0, ge=0, le=60)
    budget_per_hour: int = Field(60, ge=0)
    max_concurrency: int = Field(2, ge=1, le=64)
    cache_ttl: int = Field(7 * 24 * 3600, ge=60)
    link_allowlist: list[str] = Field(default_factory=list)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, path: str = "tocsin.llm") -> "LLMConfig":
        """Validate the section; errors name the path of each bad field (ConfigErrors)."""
        try:
            return cls.model_validate(dict(raw or {}))
        except ValidationError as e:
            raise ConfigErrors([
                ConfigError(".".join([path, *(str(p) for p in err["loc"])]), err["msg"]) for err in e.errors()
            ]) from None


def build_summary_service(
    cfg: LLMConfig, redis: Redis, prefix: str, clock: Clock, *, metrics: LLMMetrics | None = None,
    env: Mapping[str, str] | None = None,
) -> SummaryService:
    """A SummaryService per the config. Without `enabled` or without a key in the environment, no LLM is used."""
    from service.summaries.evidence_summarizer import EvidenceSummarizer
    from service.summaries.summarizer import SummaryService

    env = os.environ if env is None else env
    llm: ClaudeSummarizer | None = None
    key = env.get(cfg.api_key_env)
    if cfg.enabled and key:
        from service.summaries.claude import ClaudeSummarizer

        llm = ClaudeSummarizer(
            api_key=key, model=cfg.model, base_url=cfg.base_url, timeout=cfg.timeout, max_retries=cfg.max_retries,
            max_tokens=cfg.max_tokens, total_timeout=cfg.total_timeout, metrics=metrics,
        )
    return SummaryService(
        EvidenceSummarizer(), llm, redis, prefix, clock, budget_per_hour=cfg.budget_per_hour,
        max_concurrency=cfg.max_concurrency, deadline_seconds=cfg.deadline, cache_ttl=cfg.cache_ttl,
        link_allowlist=cfg.link_allowlist, metrics=metrics,
    )
