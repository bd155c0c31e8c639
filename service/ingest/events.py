"""Detector outputs: Tocsin's own event schema (POST /api/v1/events), and the documented mapping of the
common open anomaly-detector result shapes onto it (PROTOCOLS.md, "What detectors in the wild send").

An anomalous event opens (or keeps open) the alert for its metric and labels; an event that is not anomalous
resolves it. The alert's labels are the event's labels plus `alertname` (default "AnomalyDetected") and
`metric`, so the same metric on the same entity is one alert whichever detector reports it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from service.core.clock import clamp_time, in_range
from service.core.models import Alert, check_label_names

# A JSON number: an int or a float, never a boolean or a numeric string (the schema says "number").
Num = Annotated[float, Strict()]

# Field names of the detector families Tocsin accepts as they are, mapped onto the event schema.
SCORE_FIELDS = ("score", "anomaly_score", "combined_score", "z_score", "seasonal_z_score", "reconstruction_error")
EXPECTED_FIELDS = ("expected", "expected_for_period")

# The same mapping, published in the JSON schema (and so in the OpenAPI document): alias -> (schema, meaning).
_NUM = {"type": "number"}
DETECTOR_ALIASES: dict[str, tuple[dict[str, Any], str]] = {
    "is_anomaly": ({"type": "boolean"}, "Same as `anomalous` (every detector family)"),
    "z_score": (_NUM, "Rolling z-score: read as `score` with score_kind z"),
    "seasonal_z_score": (_NUM, "Seasonal profile: read as `score` with score_kind z"),
    "anomaly_score": (_NUM, "IsolationForest / exporter: read as `score` with score_kind probability (0..1)"),
    "combined_score": (_NUM, "Ensemble: read as `score` with score_kind probability (0..1)"),
    "reconstruction_error": (_NUM, "LSTM autoencoder: read as `score` with score_kind error (with `threshold`)"),
    "expected_for_period": (_NUM, "Seasonal profile: same as `expected`"),
    "upper_bound": (_NUM, "EMA with bounds: same as `upper`"),
    "lower_bound": (_NUM, "EMA with bounds: same as `lower`"),
    "deviation": (_NUM, "EMA with bounds: kept as the annotation `deviation`"),
    "metric_name": ({"type": "string"}, "Exporter form: same as `metric`"),
    "detector_type": ({"type": "string"}, "Exporter form: same as `detector`"),
}


def _publish_aliases(schema: dict[str, Any]) -> None:
    props = schema.setdefault("properties", {})
    for name, (typ, doc) in DETECTOR_ALIASES.items():
        props[name] = {**typ, "description": doc}
    # `anomalous` may be given as `is_anomaly`, `metric` as `metric_name`: require one of each pair.
    schema["required"] = [r for r in schema.get("required", []) if r not in ("anomalous", "metric")]
    schema["allOf"] = [{"anyOf": [{"required": ["anomalous"]}, {"required": ["is_anomaly"]}]},
                       {"anyOf": [{"required": ["metric"]}, {"required": ["metric_name"]}]}]


_SAME_AS = {"is_anomaly": "anomalous", "expected_for_period": "expected", "upper_bound": "upper",
            "lower_bound": "lower", "metric_name": "metric", "detector_type": "detector"}


def _conflict(alias: str, name: str) -> Exception:
    from pydantic_core import PydanticCustomError

    return PydanticCustomError("alias_conflict", f"{alias} and {name} are both given and disagree",
                               {"loc": alias})


def _drop_agreeing_aliases(d: dict[str, Any]) -> dict[str, Any]:
    """A field given under its name and an alias (the schema allows it): they must agree; the alias goes."""
    for alias, name in _SAME_AS.items():
        if alias in d and name in d:
            if d[alias] != d[name] or type(d[alias]) is not type(d[name]):
                raise _conflict(alias, name)
            d.pop(alias)
    return d


class DetectorEvent(BaseModel):
    """One detector result. `metric`, `timestamp` and whether it is anomalous are required; the rest is evidence."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False,
                              json_schema_extra=lambda schema, cls: _publish_aliases(schema))

    kind: Literal["event"] = "event"
    metric: str = Field(min_length=1, description="The metric the detector watches, e.g. http_request_latency_p99")
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="Where: service, instance/entity, cluster, namespace, ...")
    value: Num | None = Field(None, description="The observed value")
    score: Num | None = Field(None, description="Anomaly score as the detector reports it")
    score_kind: Literal["probability", "z", "ratio", "error"] | None = Field(
        None, description="How to read `score`: probability (0..1), z (standard deviations), ratio of the "
                          "detector's threshold, or a raw reconstruction error")
    threshold: Num | None = None
    detector: str = Field("detector", description="Detector name, e.g. zscore, ema, seasonal, isolation_forest")
    expected: Num | None = None
    lower: Num | None = None
    upper: Num | None = None
    anomalous: bool
    timestamp: datetime
    alertname: str = "AnomalyDetected"
    summary: str | None = None
    confidence: Literal["high", "medium", "low"] | float | None = None
    individual_scores: dict[str, Num] | None = None
    agreeing_detectors: list[str] | None = None
    period_key: str | None = None
    features: list[Num] | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    generator_url: str = ""

    @model_validator(mode="before")
    @classmethod
    def _map_detector_shapes(cls, d: Any) -> Any:
        """Accept each documented detector family's field names as they are."""
        if not isinstance(d, dict):
            return d
        d = _drop_agreeing_aliases(dict(d))
        if "is_anomaly" in d and "anomalous" not in d:
            d["anomalous"] = d.pop("is_anomaly")
        for f in SCORE_FIELDS[1:]:
            if f in d and "score" in d:
                if d[f] != d["score"]:
                    raise _conflict(f, "score")
                d.pop(f)
            if f in d and "score" not in d:
                d["score"] = d[f]
                d.setdefault("score_kind", {"anomaly_score": "probability", "combined_score": "probability",
                                            "z_score": "z", "seasonal_z_score": "z",
                                            "reconstruction_error": "error"}[f])
                d.pop(f)
        if "expected_for_period" in d and "expected" not in d:
            d["expected"] = d.pop("expected_for_period")
        if "upper_bound" in d and "upper" not in d:
            d["upper"] = d.pop("upper_bound")
        if "lower_bound" in d and "lower" not in d:
            d["lower"] = d.pop("lower_bound")
        if "deviation" in d and isinstance(d.get("annotations", {}), dict):
            d.setdefault("annotations", {})
            d["annotations"] = dict(d["annotations"], deviation=str(d.pop("deviation")))
        if "metric_name" in d and "metric" not in d:
            d["metric"] = d.pop("metric_name")
        if "detector_type" in d and "detector" not in d:
            d["detector"] = d.pop("detector_type")
        return d

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence(cls, v: Any) -> Any:
        # One clear error at "confidence" instead of one per member of the union.
        if v is None or v in ("high", "medium", "low") or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            return v
        raise ValueError("must be \"high\", \"medium\", \"low\" or a number")

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        return check_label_names(v)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("timestamp needs a time zone (e.g. a trailing Z)")
        if not in_range(v.timestamp()):
            raise ValueError("outside the times RFC 3339 can express (years 0001-9999 UTC)")
        return v

    def normalized_score(self) -> float | None:
        """The score on a 0..1 scale, so that detectors of different families can be compared."""
        if self.score is None:
            return None
        k = self.score_kind or ("probability" if 0 <= self.score <= 1 else "z")
        if k == "probability":
            return max(0.0, min(1.0, self.score))
        if k == "z":
            # |z| of 3 is the usual alarm line; map 3 -> 0.75, 6 -> ~0.94 with a smooth squash.
            z = abs(self.score)
            return z * z / (z * z + 3.0)
        if k in ("ratio", "error") and self.threshold:
            r = self.score / self.threshold
            return r / (r + 1.0 / 3.0) if r > 0 else 0.0
        return None

    def to_alert(self, now: float, resolve_after: float) -> Alert:
        labels = {k: v for k, v in self.labels.items() if v != ""}
        labels.setdefault("alertname", self.alertname)
        labels["metric"] = self.metric
        ts = self.timestamp.timestamp()
        annotations = dict(self.annotations)
        if self.summary:
            annotations.setdefault("summary", self.summary)
        else:
            exp = f", expected {self.expected:g}" if self.expected is not None else ""
            val = f" = {self.value:g}" if self.value is not None else ""
            annotations.setdefault("summary", f"{self.metric}{val}{exp} ({self.detector})")
        evidence = {
            "metric": self.metric, "value": self.value, "score": self.normalized_score(), "raw_score": self.score,
            "score_kind": self.score_kind, "detector": self.detector, "expected": self.expected,
            "lower": self.lower, "upper": self.upper, "anomalous": self.anomalous, "confidence": self.confidence,
            "individual_scores": self.individual_scores, "agreeing_detectors": self.agreeing_detectors,
            "threshold": self.threshold, "observed_at": ts,
        }
        if self.anomalous:
            return Alert(labels=labels, annotations=annotations, starts_at=ts, ends_at=clamp_time(ts + resolve_after),
                         generator_url=self.generator_url, updated_at=now, timeout=True, source="detector",
                         detector=evidence)
        # Not anomalous: resolves the alert this metric opened (endsAt = the event's time).
        return Alert(labels=labels, annotations=annotations, starts_at=ts, ends_at=ts, generator_url=self.generator_url,
                     updated_at=now, timeout=False, source="detector", detector=evidence)
