"""Severity and confidence of an incident, each with the factors that produced it. Pure.

Both take the incident's members as snapshot-shaped dicts (see the incident schema: labels,
annotations, status, starts_at, ends_at, score, value, expected, detector) plus two optional
internal keys the store keeps per member: `state_changes` (event times of firing<->resolved
changes) and `detector_info` (confidence, agreeing_detectors, individual_scores).

Severity is a points total (each factor adds or removes points) mapped onto PagerDuty's four levels;
confidence starts from an even prior and each factor moves it. Every factor returns
{"factor", "value", "contribution", "explanation"} so people can see why.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from service.incidents.correlation import ENTITY_LABELS, SERVICE_LABELS, CorrelationConfig

# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

# Declared alert severities seen in the wild (Prometheus rule labels, PagerDuty, Opsgenie P1..P5).
# Points sit half a point above their level's threshold: one mitigating factor (resource-only) keeps
# the declared level, two (also a low-criticality service) lower it by one.
DECLARED = {
    "critical": 4.5, "page": 4.5, "p1": 4.5, "sev1": 4.5, "emergency": 4.5, "fatal": 4.5,
    "error": 3.0, "high": 3.0, "major": 3.0, "p2": 3.0, "sev2": 3.0,
    "warning": 1.5, "warn": 1.5, "medium": 1.5, "minor": 1.5, "p3": 1.5, "sev3": 1.5,
    "info": 0.0, "low": 0.0, "none": 0.0, "p4": 0.0, "p5": 0.0, "sev4": 0.0, "notice": 0.0,
}
# Signals users feel (the RED/golden signals) versus resource signals (USE): an incident that only
# touches resources may never reach a user.
USER_FACING = re.compile(r"error|5xx|fail|latenc|duration|slow|timeout|availab|down|unreach|slo|"
                         r"apdex|success|request|http|status|outage|health", re.I)
RESOURCE = re.compile(r"cpu|mem|disk|(?<![a-z])io(?![a-z])|iops|load|conn|pool|queue|thread|heap|"
                      r"(?<![a-z])gc(?![a-z])|saturat|swap|inode|network|bandwidth|packet|replica|lock", re.I)
CRITICALITY_POINTS = {"critical": 1.5, "high": 1.0, "normal": 0.0, "low": -1.0}
LEVELS = [(4.0, "critical"), (2.5, "error"), (1.0, "warning")]  # points >= threshold; else "info"


def _factor(name: str, value: Any, contribution: float, explanation: str) -> dict[str, Any]:
    return {"factor": name, "value": value, "contribution": round(contribution, 3), "explanation": explanation}


def member_metric(m: dict[str, Any]) -> str:
    lab = m.get("labels", {})
    return str(m.get("metric") or (m.get("detector_info") or {}).get("metric") or lab.get("metric")
               or lab.get("__name__") or lab.get("metric_name") or lab.get("alertname") or "unknown")


def member_service(m: dict[str, Any]) -> str:
    lab = m.get("labels", {})
    return next((lab[k] for k in SERVICE_LABELS if lab.get(k)), "")


def member_entity(m: dict[str, Any]) -> str:
    if m.get("entity"):
        return str(m["entity"])
    lab = m.get("labels", {})
    return next((lab[k] for k in ENTITY_LABELS if lab.get(k)), "")


def member_score(m: dict[str, Any]) -> float | None:
    for v in (m.get("score"), m.get("labels", {}).get("anomaly_score"), m.get("annotations", {}).get("anomaly_score")):
        try:
            if v is not None:
                return float(v)
        except (TypeError, ValueError):
            continue
    return None


def _duration(members: list[dict[str, Any]], now: float) -> float:
    start = min((m["starts_at"] for m in members), default=now)
    end = max(((m.get("ends_at") or now) if m.get("status") == "resolved" else now) for m in members) if members else now
    return max(0.0, end - start)


def is_flapping(m: dict[str, Any], cfg: CorrelationConfig, now: float) -> bool:
    changes = [t for t in m.get("state_changes", []) if now - t <= cfg.flapping.window]
    return len(changes) >= cfg.flapping.max_changes


# --------------------------------------------------------------------------------------------------
# Severity
# --------------------------------------------------------------------------------------------------


def severity(members: list[dict[str, Any]], cfg: CorrelationConfig, now: float) -> tuple[str, list[dict[str, Any]]]:
    """(critical|error|warning|info, factors) from declared severity, detector score, breadth,
    declared criticality, user-facing vs resource signals and duration."""
    factors: list[dict[str, Any]] = []
    firing = [m for m in members if m.get("status") != "resolved"] or members

    declared = [(DECLARED.get(str(m.get("labels", {}).get("severity", "")).lower()), m) for m in firing]
    declared = [(p, m) for p, m in declared if p is not None]
    if declared:
        p, m = max(declared, key=lambda x: x[0])
        factors.append(_factor("declared_severity", m["labels"]["severity"], p,
                               f"highest severity label among firing alerts is {m['labels']['severity']!r}"))

    scores = [s for s in (member_score(m) for m in firing) if s is not None]
    if scores:
        top = max(scores)
        pts = 1.5 if top >= 0.95 else 1.0 if top >= 0.8 else 0.5 if top >= 0.5 else 0.0
        factors.append(_factor("max_detector_score", round(top, 3), pts,
                               f"largest anomaly score {top:.2f}" + ("" if pts else " is modest")))

    services = {member_service(m) for m in members} - {""}
    entities = {member_entity(m) for m in members} - {""}
    metrics = {member_metric(m) for m in members}
    pts = (1.0 if len(services) >= 3 else 0.5 if len(services) == 2 else 0.0) + (0.5 if len(entities) >= 10 else 0.0)
    factors.append(_factor("breadth", {"services": len(services), "entities": len(entities), "metrics": len(metrics)},
                           pts, f"{len(services)} services, {len(entities)} entities, {len(metrics)} metrics affected"))

    crit: list[tuple[float, str]] = []
    for s in services:
        if s in cfg.service_criticality:
            crit.append((CRITICALITY_POINTS[cfg.service_criticality[s]], f"service {s} is {cfg.service_criticality[s]}"))
    for mt in metrics:
        if mt in cfg.metric_criticality:
            crit.append((CRITICALITY_POINTS[cfg.metric_criticality[mt]], f"metric {mt} is {cfg.metric_criticality[mt]}"))
    if crit:
        p, why = max(crit, key=lambda x: x[0]) if any(c[0] > 0 for c in crit) else min(crit, key=lambda x: x[0])
        factors.append(_factor("declared_criticality", why, p, f"config declares {why}"))

    names = [member_metric(m) + " " + str(m.get("labels", {}).get("alertname", "")) for m in members]
    user = sorted({n.strip() for n in names if USER_FACING.search(n)})
    user_services = {member_service(m) for m, n in zip(members, names) if USER_FACING.search(n)} - {""}
    if user:
        # User impact seen at two or more services has spread (a cascade), which weighs more.
        pts = 1.5 if len(user_services) >= 2 else 1.0
        factors.append(_factor("user_facing", user[:5], pts, "user-facing signals involved: " + ", ".join(user[:5])
                               + (f" across {len(user_services)} services" if len(user_services) >= 2 else "")))
    elif any(RESOURCE.search(n) for n in names):
        factors.append(_factor("user_facing", [], -0.5, "only resource signals, no errors/latency/availability"))

    dur = _duration(members, now)
    pts = 1.0 if dur >= 7200 else 0.5 if dur >= 1800 else 0.0
    factors.append(_factor("duration", round(dur), pts, f"lasting {dur / 60:.0f} min"))

    total = sum(f["contribution"] for f in factors)
    level = next((name for threshold, name in LEVELS if total >= threshold), "info")
    factors.append(_factor("total", round(total, 3), 0.0,
                           f"{total:.1f} points: critical >= 4, error >= 2.5, warning >= 1, else info"))
    return level, factors


# --------------------------------------------------------------------------------------------------
# Confidence
# --------------------------------------------------------------------------------------------------

DETECTOR_CONFIDENCE = {"high": 1.0, "medium": 0.0, "low": -1.0}
MODEL_PATH = Path(__file__).with_name("confidence_model.json")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))


def _samples(m: dict[str, Any], now: float) -> float:
    """How many of its source's samples a member has been anomalous for (at least one)."""
    cad = (m.get("history") or {}).get("cadence") or 60.0
    end = m.get("ends_at") if m.get("status") == "resolved" and m.get("ends_at") else now
    return max(1.0, (float(end) - float(m["starts_at"])) / max(1.0, float(cad)))


def _rate_per_day(m: dict[str, Any]) -> float | None:
    """How often the member's series fired before it joined (episodes per day), if the store knows."""
    h = m.get("history") or {}
    if "episodes" not in h:
        return None
    return float(h["episodes"]) / max(1.0, float(h.get("span") or 0.0) / 86400.0)


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic regression over the evidence features below: P(a person treats the incident as real) =
    sigmoid(bias + sum(weight * feature)). The shipped default (confidence_model.json, trained by
    bench/realdata/train_confidence.py on the labelled real streams) is data, not code; an installation's own
    verdicts move it online (IncidentStore._learn_from_verdict), so the product's number is its team's."""

    bias: float
    weights: dict[str, float]
    source: str = "default"

    @classmethod
    @lru_cache(maxsize=4)
    def load(cls, path: Path = MODEL_PATH) -> "ConfidenceModel":
        d = json.loads(path.read_text())
        return cls(float(d["bias"]), {k: float(v) for k, v in d["weights"].items()}, d.get("source", "default"))

    def adjusted(self, delta: dict[str, float]) -> "ConfidenceModel":
        """This model with an installation's learned offsets (`bias` and one per feature) added."""
        if not delta:
            return self
        w = {k: v + delta.get(k, 0.0) for k, v in self.weights.items()}
        return ConfidenceModel(self.bias + delta.get("bias", 0.0), w, "default + this installation's feedback")

    def logit(self, x: dict[str, float]) -> float:
        return self.bias + sum(self.weights.get(k, 0.0) * v for k, v in x.items())


def _detector_features(members: list[dict[str, Any]]) -> dict[str, tuple[float, Any, str]]:
    confs: list[str] = []
    agree: list[float] = []
    for m in members:
        info = m.get("detector_info") or {}
        c = info.get("confidence") or m.get("labels", {}).get("anomaly_confidence") \
            or m.get("annotations", {}).get("anomaly_confidence")
        if isinstance(c, str) and c.lower() in DETECTOR_CONFIDENCE:
            confs.append(c.lower())
        ind = info.get("individual_scores")
        ag = info.get("agreeing_detectors")
        if isinstance(ind, dict) and ind and isinstance(ag, list):
            agree.append(min(1.0, len(ag) / len(ind)))
    out: dict[str, tuple[float, Any, str]] = {}
    if confs:
        x = sum(DETECTOR_CONFIDENCE[c] for c in confs) / len(confs)
        out["detector_confidence"] = (x, {k: confs.count(k) for k in sorted(set(confs))},
                                      f"{confs.count('high')} high / {confs.count('low')} low detector confidence")
    if agree:
        a = sum(agree) / len(agree)
        out["detector_agreement"] = (a - 0.5, round(a, 2), f"on average {a:.0%} of the ensemble's detectors agree")
    return out


def confidence_features(members: list[dict[str, Any]], cfg: CorrelationConfig, now: float,
                        feedback: dict[str, dict[str, float]] | None = None) -> dict[str, tuple[float, Any, str]]:
    """The model's inputs, each as (feature value x, value shown, explanation). Absent evidence is absent
    (x = 0): the detector's deviation (log of |z| over the usual threshold of 4, or a 0..1 score), persistence
    (log of the samples the longest member has been anomalous), breadth in metrics and in entities (logs),
    novelty (log(1 + episodes per day) of the rarest series), the detectors' own confidence and agreement, the
    share of flapping members, the highest declared severity, and people's past verdicts on the same series
    and alert types (log of (acted + 1) / (noise + 1), decayed counts kept by the store)."""
    out: dict[str, tuple[float, Any, str]] = {}
    scores = [s for s in (member_score(m) for m in members) if s is not None]
    if scores:
        top = max(scores)
        x = max(-2.0, min(3.0, math.log(top / 4.0))) if top > 1.0 else 2.0 * (top - 0.5)
        out["deviation"] = (x, round(top, 3), f"largest anomaly score {top:.3g}" + (" (|z| relative to 4)" if top > 1.0 else ""))
    longest = max(_samples(m, now) for m in members)
    out["persistence"] = (math.log(longest), round(longest, 1), f"the longest member has been anomalous for "
                          f"{longest:.0f} sample(s)" + (" (a blip)" if longest <= 1.0 else ""))
    metrics = {member_metric(m) for m in members}
    entities = {member_entity(m) for m in members} - {""}
    out["corroboration"] = (math.log(len(metrics)), len(metrics), f"{len(metrics)} distinct metrics"
                            + ("" if len(metrics) > 1 else " (a single signal)"))
    out["entities"] = (math.log(max(1, len(entities))), len(entities), f"{max(1, len(entities))} entities affected")
    rates = [r for r in (_rate_per_day(m) for m in members) if r is not None]
    if rates:
        r = min(rates)
        out["novelty"] = (math.log1p(r), round(r, 2), f"its rarest series fired {r:.1f} times a day before")
    out.update(_detector_features(members))
    flapping = [m for m in members if is_flapping(m, cfg, now)]
    if flapping:
        out["flapping"] = (len(flapping) / len(members), len(flapping), f"{len(flapping)} of {len(members)} alerts "
                           f"changed state >= {cfg.flapping.max_changes} times in {cfg.flapping.window:.0f}s")
    declared = [DECLARED[v] for v in (str(m.get("labels", {}).get("severity", "")).lower() for m in members)
                if v in DECLARED]
    if declared:
        out["declared_severity"] = (max(declared) / 4.5, max(declared), "highest declared severity label")
    if feedback:
        # The same verdict is counted for the series ("s:...") and for its alert type ("t:..."): average the
        # levels present instead of counting it twice.
        levels: dict[str, list[float]] = {}
        for name, v in feedback.items():
            lv = levels.setdefault(name[:2] if name[:2] in ("s:", "t:") else "t:", [0.0, 0.0])
            lv[0] += v.get("acted", 0.0)
            lv[1] += v.get("noise", 0.0)
        acted = sum(a for a, _ in levels.values()) / len(levels)
        noise = sum(n for _, n in levels.values()) / len(levels)
        if acted + noise > 0:
            out["feedback_history"] = (math.log((acted + 1.0) / (noise + 1.0)),
                                       {"acted": round(acted, 2), "noise": round(noise, 2)},
                                       f"people's past verdicts on these series and alert types: {acted:.1f} acted "
                                       f"on, {noise:.1f} marked noise")
    return out


def confidence(members: list[dict[str, Any]], cfg: CorrelationConfig, now: float,
               feedback: dict[str, dict[str, float]] | None = None,
               model: ConfidenceModel | None = None) -> tuple[float, list[dict[str, Any]], bool]:
    """(confidence, factors, flapping): the probability that a person would treat this incident as real
    (acknowledge it rather than mark it noise), from `model` (the shipped default unless an installation's
    feedback adjusted it). Each factor shows its feature value `x` and its contribution (weight * x) to the
    log-odds, after the model's base rate."""
    model = model or ConfidenceModel.load()
    feats = confidence_features(members, cfg, now, feedback)
    factors = [dict(_factor("base_rate", round(_sigmoid(model.bias), 3), model.bias,
                            f"how often an incident with no evidence at all is real ({model.source} model)"), x=0.0)]
    for name, (x, shown, why) in feats.items():
        factors.append(dict(_factor(name, shown, model.weights.get(name, 0.0) * x, why), x=round(x, 4)))
    value = min(0.99, max(0.01, _sigmoid(model.logit({k: v[0] for k, v in feats.items()}))))
    flapping = "flapping" in feats and feats["flapping"][0] >= 0.5
    return round(value, 3), factors, flapping
