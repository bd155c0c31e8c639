"""What a summary is, whoever wrote it: the evidence summarizer or Claude.

`Summary` is what the rest of Tocsin sees; `to_incident_summary()` gives the `summary` dict of the
incident snapshot contract. `LLMAnswer` is the structured answer Claude must give (the tool's input
schema); it is validated, grounded against the evidence pack, and only then turned into a `Summary`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RootCause(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, max_length=200)
    entity: str = Field(min_length=0, max_length=200)


class Summary(BaseModel):
    headline: str
    root_cause: RootCause | None = None
    reasoning: str = ""
    cited: list[str] = Field(default_factory=list)  # evidence ids, e.g. ["E1", "E4"]
    next_checks: list[str] = Field(default_factory=list)
    confidence: float | None = None  # 0..1
    source: Literal["evidence", "claude"] = "evidence"
    note: str = ""  # e.g. "LLM budget exhausted; evidence summary shown"
    digest: str = ""  # the evidence pack digest this summary was made from

    def to_incident_summary(self) -> dict[str, Any]:
        """The `summary` field of the incident snapshot contract."""
        return {
            "headline": self.headline,
            "text": self.reasoning,
            "root_cause": self.root_cause.model_dump() if self.root_cause else None,
            "next_checks": list(self.next_checks),
            "confidence": self.confidence,
            "source": self.source,
            "note": self.note,
            "cited": list(self.cited),
            "digest": getattr(self, "digest", None),  # of the evidence it was made from
        }


class LLMAnswer(BaseModel):
    """The structured answer Claude gives by calling the summary tool."""

    model_config = ConfigDict(extra="forbid")

    headline: str = Field(min_length=1, max_length=300, description="One line saying what is probably wrong.")
    root_cause: RootCause | None = Field(
        description="The probable root cause: a metric and entity copied exactly from a root-cause candidate "
        "or member alert in the evidence, or null if the evidence does not support one."
    )
    reasoning: str = Field(
        min_length=1, max_length=2000,
        description="Two to five sentences of reasoning. Cite evidence items by their ids in brackets, e.g. [E1].",
    )
    cited_evidence: list[str] = Field(
        max_length=30, description="The ids of the evidence items the reasoning relies on, e.g. [\"E1\", \"E4\"]."
    )
    next_checks: list[str] = Field(
        max_length=6, description="Up to five concrete things the on-call engineer should check first."
    )
    confidence: float = Field(ge=0.0, le=1.0, description="Your confidence in the root cause, 0 to 1.")
