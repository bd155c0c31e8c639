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

import math
import re
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

DETECTOR_CONFIDENCE = {"high": 0.15, "medium": 0.0, "low": -0.15}


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


PRIOR_LOG_ODDS = 0.6  # a lone, new, unscored alert: sigmoid(0.6) = 0.65, above the default hold of 0.4


def confidence(members: list[dict[str, Any]], cfg: CorrelationConfig, now: float,
               feedback: dict[str, dict[str, float]] | None = None) -> tuple[float, list[dict[str, Any]], bool]:
    """(confidence 0..1, factors, flapping) that the incident is real and actionable.

    Log-odds evidence, each factor's contribution shown: the detector's deviation (log of |z| over the usual
    threshold of 4, or a 0..1 score), persistence (log of the samples the longest member has been anomalous),
    breadth (log of the distinct metrics), novelty (a series that fires every day is less news than one that
    never did: -0.5 log(1 + episodes per day)), the detectors' own confidence and agreement, flapping and
    people's feedback on similar incidents. `feedback` maps a member key (service/metric) to decayed counts
    {"acted": x, "noise": y} of past incidents that contained it.
    """
    factors: list[dict[str, Any]] = [_factor("prior", round(_sigmoid(PRIOR_LOG_ODDS), 3), PRIOR_LOG_ODDS,
                                             "a lone new alert with no other evidence (log-odds)")]
    scores = [s for s in (member_score(m) for m in members) if s is not None]
    if scores:
        top = max(scores)
        c = min(3.0, math.log(top / 4.0)) if top > 1.0 else 2.0 * (top - 0.5)
        factors.append(_factor("deviation", round(top, 3), c, f"largest anomaly score {top:.3g}"
                               + (" (|z| relative to 4)" if top > 1.0 else "")))
    longest = max(_samples(m, now) for m in members)
    factors.append(_factor("persistence", round(longest, 1), math.log(longest),
                           f"the longest member has been anomalous for {longest:.0f} sample(s)"
                           + (" (a blip)" if longest <= 1.0 else "")))
    metrics = {member_metric(m) for m in members}
    entities = {member_entity(m) for m in members} - {""}
    factors.append(_factor("corroboration", len(metrics), math.log(len(metrics)),
                           f"{len(metrics)} distinct metrics on {max(1, len(entities))} entities"
                           + ("" if len(metrics) > 1 else " (a single signal)")))
    rates = [r for r in (_rate_per_day(m) for m in members) if r is not None]
    if rates:
        r = min(rates)
        factors.append(_factor("novelty", round(r, 2), -0.5 * math.log1p(r),
                               f"its rarest series fired {r:.1f} times a day before"))

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
    if confs:
        c = 4.0 * (0.15 * confs.count("high") - 0.15 * confs.count("low")) / len(confs)
        factors.append(_factor("detector_confidence", {k: confs.count(k) for k in sorted(set(confs))}, c,
                               f"{confs.count('high')} high / {confs.count('low')} low detector confidence"))
    if agree:
        a = sum(agree) / len(agree)
        factors.append(_factor("detector_agreement", round(a, 2), 0.8 * (a - 0.5),
                               f"on average {a:.0%} of the ensemble's detectors agree"))

    flapping = [m for m in members if is_flapping(m, cfg, now)]
    if flapping:
        share = len(flapping) / len(members)
        factors.append(_factor("flapping", len(flapping), -1.2 if share >= 0.5 else -0.6,
                               f"{len(flapping)} of {len(members)} alerts changed state >= "
                               f"{cfg.flapping.max_changes} times in {cfg.flapping.window:.0f}s"))
    if feedback:
        acted = sum(v.get("acted", 0.0) for v in feedback.values())
        noise = sum(v.get("noise", 0.0) for v in feedback.values())
        if acted + noise > 0:
            factors.append(_factor("feedback_history", {"acted": round(acted, 2), "noise": round(noise, 2)},
                                   1.2 * (acted - noise) / (acted + noise + 1.0),
                                   f"similar past incidents: {acted:.1f} acted on, {noise:.1f} marked noise"))

    total = sum(f["contribution"] for f in factors)
    value = min(0.99, max(0.01, _sigmoid(total)))
    return round(value, 3), factors, bool(flapping) and len(flapping) / max(1, len(members)) >= 0.5
