"""A small language for timed Alertmanager scenarios.

A scenario is an Alertmanager YAML config plus steps at offsets (seconds) from a shared start time T0.
Every timestamp in a scenario is an offset from T0, so the same scenario can run against two targets
at once and their outputs compare exactly. In the config, the string `CAPTURE` stands for the base URL
of the capture server for that target (`url: CAPTURE/web-a` -> one capture path per receiver).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class A:
    """One alert as posted: labels, annotations, and startsAt/endsAt as offsets from T0 (None = omitted)."""

    labels: dict[str, str]
    starts: float | None = None
    ends: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Post:
    """POST /api/v2/alerts with these alerts in one batch."""

    alerts: tuple[A, ...]


@dataclass(frozen=True)
class Silence:
    """POST /api/v2/silences; `name` remembers the id per target. Matchers are (name, op, value)."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]
    ends: float = 3600.0
    starts: float | None = None  # None: the step's own time


@dataclass(frozen=True)
class Expire:
    """DELETE /api/v2/silence/{id} of the silence created under `name`."""

    name: str


@dataclass(frozen=True)
class Snapshot:
    """GET /api/v2/alerts (once per query string in `alert_queries`) and /api/v2/silences, recorded under `name`."""

    name: str
    alert_queries: tuple[str, ...] = ("",)


Action = Union[Post, Silence, Expire, Snapshot]


@dataclass(frozen=True)
class Step:
    at: float
    action: Action


@dataclass(frozen=True)
class Scenario:
    """A config, timed steps, and the time (offset) at which capture stops.

    `expect` is the compact summary of what Alertmanager 0.25 sends (see compare.summarise); the
    suite checks Alertmanager still does exactly that, which proves the scenario exercises what it claims.
    """

    name: str
    config: str
    steps: tuple[Step, ...]
    settle: float
    expect: tuple[str, ...] = ()
    doc: str = ""
    expect_api: tuple[int, ...] = ()  # Alertmanager's HTTP status per step, when the scenario is about it

    def given_times(self) -> set[float]:
        """Every startsAt/endsAt offset the scenario states explicitly (compared exactly)."""
        out: set[float] = set()
        for s in self.steps:
            if isinstance(s.action, Post):
                for a in s.action.alerts:
                    for t in (a.starts, a.ends):
                        if t is not None:
                            out.add(round(t, 3))
        return out


def at(t: float, action: Action) -> Step:
    return Step(t, action)


def post(*alerts: A) -> Post:
    return Post(tuple(alerts))


def alert(starts: float | None = None, ends: float | None = None, annotations: dict[str, str] | None = None,
          **labels: str) -> A:
    """Shorthand: alert(starts=0, alertname="X", team="a")."""
    return A(dict(labels), starts, ends, dict(annotations or {}))


def silence(name: str, *matchers: tuple[str, str, str], ends: float = 3600.0, starts: float | None = None) -> Silence:
    return Silence(name, tuple(matchers), ends, starts)


def expire(name: str) -> Expire:
    return Expire(name)


def snapshot(name: str, *alert_queries: str) -> Snapshot:
    """snapshot("x") reads GET /api/v2/alerts; snapshot("x", "", "?silenced=false") also with those queries."""
    return Snapshot(name, tuple(alert_queries) or ("",))
