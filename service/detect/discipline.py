"""Alerting discipline, pure: when does a series' alert open, and when does it close.

Calibration (per series, per method): a raw deviation is divided by the series' own line, the larger of
`floor` robust sds and `margin` times the largest deviation of the last `calibration` points that did not alert.
A calibrated score of 1 then means the same everywhere: "clearly beyond anything this series did lately", so one
setting fits every series. Points that alert stay out of the history (an anomaly does not raise the bar for the
next one); the baselines themselves adapt, so a level shift becomes the new normal.

The alert itself: it opens after `evidence` consecutive points at or above `open`, or `sustain_points` at or
above `sustain_level` (a lasting moderate deviation is as much evidence as one large one), once `warmup` points were
seen and at least `refractory` points after the previous opening; it stays open at least `hold` points, closes
below `close` (hysteresis), and at the latest after `max_open` points.

The sliding maximum is a monotonic deque (amortised O(1) per point); no library offers one for a stream.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from service.detect.params import DetectorParams


IFOREST_LINE = 0.75


class SlidingMax:
    """Maximum of the values pushed during the last `size` ticks."""

    def __init__(self, size: int, items: list[list[float]] | None = None):
        self.size = size
        self.q: deque[tuple[int, float]] = deque((int(i), float(v)) for i, v in (items or []))

    def push(self, tick: int, v: float) -> None:
        q = self.q
        while q and q[-1][1] <= v:
            q.pop()
        q.append((tick, v))

    def max(self, tick: int) -> float:
        q = self.q
        while q and q[0][0] <= tick - self.size:
            q.popleft()
        return q[0][1] if q else 0.0

    def dump(self) -> list[list[float]]:
        return [[i, v] for i, v in self.q]


@dataclass
class AlertState:
    """The alert of one series. `tick` counts the points the series has had."""

    tick: int = 0
    open: bool = False
    run: int = 0  # consecutive points at or above `open` while closed
    run_lo: int = 0  # consecutive points at or above `sustain_level` while closed
    open_len: int = 0
    last_open: int = -10**9

    def step(self, s: float, p: DetectorParams, warmup: int | None = None) -> bool:
        """Advance one point with calibrated score `s`; True when an alert opens at this point. `warmup`
        overrides the parameters' (a seasonal series warms up for at least one period)."""
        warmup = p.warmup if warmup is None else warmup
        self.tick += 1
        if self.open:
            self.open_len += 1
            if (self.open_len >= p.hold and s < p.close) or self.open_len >= p.max_open:
                self.open = False
                self.run = 0
            return False
        self.run = self.run + 1 if s >= p.open else 0
        self.run_lo = self.run_lo + 1 if s >= p.sustain_level else 0
        evident = self.run >= p.evidence or self.run_lo >= p.sustain_points
        if evident and self.tick > warmup and self.tick - self.last_open > p.refractory:
            self.open, self.open_len, self.last_open, self.run, self.run_lo = True, 1, self.tick, 0, 0
            return True
        return False

    def dump(self) -> dict[str, Any]:
        return {"tick": self.tick, "open": self.open, "run": self.run, "run_lo": self.run_lo, "open_len": self.open_len,
                "last_open": self.last_open}


@dataclass
class Calibrator:
    """Per-method lines of one series (see the module docstring)."""

    p: DetectorParams
    maxes: dict[str, SlidingMax] = field(default_factory=dict)

    def line(self, method: str, tick: int) -> float:
        if method == "iforest":  # relative to its training extremes already (core._iforest_chunk); isolation
            return IFOREST_LINE  # saturates there, so the line sits just below them
        m = self.maxes.get(method)
        past = m.max(tick) if m else 0.0
        return max(self.p.floor, self.p.margin * past)

    def learn(self, method: str, tick: int, raw: float) -> None:
        m = self.maxes.get(method)
        if m is None:
            m = self.maxes[method] = SlidingMax(self.p.calibration)
        m.push(tick, raw)

    def dump(self) -> dict[str, list[list[float]]]:
        return {k: v.dump() for k, v in self.maxes.items()}

    @classmethod
    def load(cls, p: DetectorParams, d: dict[str, list[list[float]]]) -> "Calibrator":
        return cls(p, {k: SlidingMax(p.calibration, v) for k, v in d.items()})


def to_unit(s: float) -> float:
    """Calibrated score (1 = the line) onto 0..1; the line maps to 0.5."""
    return s / (1.0 + s) if s > 0 else 0.0
