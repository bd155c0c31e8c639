"""The `tocsin.escalation` section: escalation policies (levels of receivers with delays, repeats). Pure
configuration; the escalator that runs them is service/incidents/escalation.py."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routing.durations import parse_duration


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receiver: str
    mention: str | None = Field(None, description="A Slack mention to add, e.g. <@U024BE7LH> or <!subteam^S123>")


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delay: float
    targets: list[Target] = Field(min_length=1)

    @field_validator("delay", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v, "delay", numbers_as_seconds=True)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    levels: list[Level] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=100)

    @property
    def steps(self) -> int:
        return len(self.levels) * (self.repeat + 1)

    def level(self, step: int) -> Level:
        return self.levels[step % len(self.levels)]


class EscalationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policies: dict[str, Policy] = {}
