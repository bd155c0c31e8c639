"""The settings of a detector (`DetectorParams`, one default for every series) and the `tocsin.detect` section of
the configuration file (`DetectSection`), validated at load time by `service.config` with errors naming the path.

Windows are counted in points (samples), so the same default fits 1-minute, 5-minute and hourly series; the
seasonal period is the only thing derived from time (one day in points, from the sampling step).
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.core.errors import pydantic_errors
from service.core.models import check_label_names

METHODS = ("zscore", "ema", "seasonal", "shift", "knn", "iforest", "ensemble")
Method = Literal["zscore", "ema", "seasonal", "shift", "knn", "iforest", "ensemble"]
_DUR = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(v: str | int | float) -> float:
    """'30s', '5m', '1h', or a number of seconds."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    m = _DUR.match(str(v).strip())
    if not m:
        raise ValueError(f"not a duration: {v!r} (use e.g. 30s, 5m, 1h)")
    return float(m.group(1)) * _UNIT[m.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectorParams(_Strict):
    """One detector setting. The defaults are the benchmarked setting (bench/detect/RESULTS.md)."""

    method: Method = "ensemble"
    window: int = Field(288, ge=16, description="baseline window (points) for median/MAD and scales")
    warmup: int = Field(150, ge=8, description="points seen before any alert may open")
    calibration: int = Field(8064, ge=32, description="points of score history a series is calibrated on")
    margin: float = Field(1.3, ge=1.0, description="an alert needs a deviation this many times the largest "
                                                   "non-alerting deviation of the calibration history")
    floor: float = Field(5.0, gt=0, description="and at least this many robust standard deviations")
    relearn: float = Field(0.5, ge=0, description="alerting deviations enter the calibration history divided by "
                                                   "margin**relearn (0: as they are)")
    open: float = Field(1.0, gt=0, description="calibrated score (1 = the calibrated line) that opens an alert")
    close: float = Field(0.5, gt=0, description="an open alert closes below this calibrated score (hysteresis)")
    evidence: int = Field(1, ge=1, description="consecutive points at or above `open` before an alert opens")
    sustain_level: float = Field(0.7, gt=0, description="or this calibrated score on `sustain_points` consecutive "
                                                         "points opens an alert too")
    sustain_points: int = Field(4, ge=1)
    hold: int = Field(3, ge=1, description="an open alert stays open at least this many points")
    max_open: int = Field(288, ge=1, description="an alert open this long is closed: the new level is normal")
    refractory: int = Field(72, ge=0, description="points after an alert opened during which no new one opens")
    ema_span: int = Field(48, ge=2)
    shift_points: int = Field(6, ge=2, description="points averaged by the level-shift scorer")
    season_days: int = Field(3, ge=1, description="days of history of the seasonal baseline")
    knn_points: int = Field(3, ge=1, description="points of the shape the nearest-neighbour novelty compares")
    knn_long_points: int = Field(4, ge=0, description="blocks of the longer shape it also compares (0: none); "
                                                      "it ranks the anomaly_score, it opens no alert")
    knn_long_block: int = Field(12, ge=1, description="points per block of the longer shape (a block counts by its "
                                                     "point farthest from the block's mean)")
    range_tolerance: float = Field(0.05, ge=0, description="the ensemble's anomaly_score counts a value beyond every "
                                                           "value the series had by this fraction of its range "
                                                           "(0: off)")
    knn_history: int = Field(4032, ge=128, description="points of history it compares against")
    knn_refit: int = Field(288, ge=16, description="points between re-indexing that history")
    knn_least: int = Field(1008, ge=16, description="points of history it needs before it scores")
    iforest_trees: int = Field(50, ge=10)
    iforest_refit: int = Field(1000, ge=50, description="points between Isolation Forest refits")

    @model_validator(mode="after")
    def _levels(self) -> "DetectorParams":
        if self.close >= self.open:
            raise ValueError("close must be below open (hysteresis)")
        return self


class QueryConfig(_Strict):
    """A PromQL query; each series of its result is one detector input, its labels kept."""

    query: str = Field(min_length=1)
    metric: str | None = Field(None, description="metric name in events (default: the series' __name__, else "
                                                 "the query's name)")
    name: str | None = None
    entity: list[str] | None = Field(None, description="labels naming an entity: the queries sharing `group` are "
                                                       "scored together by Isolation Forest per entity")
    group: str | None = None
    labels: dict[str, str] = Field(default_factory=dict, description="labels added to every event")

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        return check_label_names(v)


class DetectSection(_Strict):
    """`tocsin.detect`: Prometheus URL, queries, step, method; `serve: true` runs it inside `tocsin serve`."""

    prometheus: str = Field(min_length=1, description="Prometheus base URL, e.g. http://127.0.0.1:9090")
    queries: list[QueryConfig] = Field(min_length=1)
    step: str | int | float = "60s"
    backfill: str | int | float = "1d"
    lag: str | int | float = "0s"
    timeout: str | int | float = "30s"
    serve: bool = False
    shadow: bool = False
    detector_name: str = "tocsin"
    alertname: str = "AnomalyDetected"
    params: DetectorParams = DetectorParams()

    @field_validator("step", "backfill", "lag", "timeout")
    @classmethod
    def _duration(cls, v: str | int | float) -> str | int | float:
        if seconds(v) < 0:
            raise ValueError("must not be negative")
        return v

    @model_validator(mode="after")
    def _positive_step(self) -> "DetectSection":
        if seconds(self.step) <= 0:
            raise ValueError("step must be positive")
        return self

    @property
    def step_s(self) -> float:
        return seconds(self.step)

    @property
    def backfill_s(self) -> float:
        return seconds(self.backfill)

    @property
    def lag_s(self) -> float:
        return seconds(self.lag)

    @property
    def timeout_s(self) -> float:
        return seconds(self.timeout)


def parse_section(raw: dict | None) -> DetectSection | None:
    """The validated `tocsin.detect` section (None when absent); raises pydantic's ValidationError."""
    if not raw:
        return None
    return DetectSection.model_validate(raw)


def section_errors(raw: dict | None) -> list:
    """`tocsin.detect` problems as ConfigErrors naming the path of each bad key (called by service.config)."""
    try:
        parse_section(raw)
    except ValidationError as e:
        return pydantic_errors(e, "tocsin.detect")
    return []
