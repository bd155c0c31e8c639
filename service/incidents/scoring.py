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

import re
from typing import Any

from .correlation import SERVICE_LABELS, CorrelationConfig

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
    lab = m.get("labels", {})
    return next((lab[k] for k in ("instance", "pod", "host", "node", "container", "device") if lab.get(k)), "")


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


def confidence(members: list[dict[str, Any]], cfg: CorrelationConfig, now: float,
               feedback: dict[str, dict[str, float]] | None = None) -> tuple[float, list[dict[str, Any]], bool]:
    """(confidence 0..1, factors, flapping) that the incident is real and actionable.

    `feedback` maps a member key (service/metric) to decayed counts {"acted": x, "noise": y} of past
    incidents that contained it.
    """
    factors: list[dict[str, Any]] = [_factor("prior", 0.5, 0.5, "every incident starts at an even 0.5")]

    # Detector agreement: the ensemble's own confidence, agreeing detectors, anomaly_confidence labels.
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
        share_high = confs.count("high") / len(confs)
        share_low = confs.count("low") / len(confs)
        c = 0.15 * share_high - 0.15 * share_low
        factors.append(_factor("detector_confidence", {k: confs.count(k) for k in sorted(set(confs))}, c,
                               f"{confs.count('high')} high / {confs.count('low')} low detector confidence"))
    if agree:
        a = sum(agree) / len(agree)
        factors.append(_factor("detector_agreement", round(a, 2), 0.2 * (a - 0.5),
                               f"on average {a:.0%} of the ensemble's detectors agree"))

    # Corroboration: distinct metrics that independently fired together.
    metrics = {member_metric(m) for m in members}
    entities = {member_entity(m) for m in members} - {""}
    c = 0.15 if len(metrics) >= 3 else 0.08 if len(metrics) == 2 or len(entities) >= 2 else 0.0
    factors.append(_factor("corroboration", len(metrics), c,
                           f"{len(metrics)} distinct metrics on {max(1, len(entities))} entities"
                           + ("" if c else " (a single signal)")))

    # Persistence: how long the longest member has fired. A single-point blip is not an outage.
    longest = 0.0
    for m in members:
        end = m.get("ends_at") if m.get("status") == "resolved" and m.get("ends_at") else now
        longest = max(longest, end - m["starts_at"])
    p = 0.15 if longest >= 600 else 0.05 if longest >= 180 else -0.2 if longest < 90 else 0.0
    factors.append(_factor("persistence", round(longest), p, f"longest member has fired {longest:.0f}s"
                           + (" (a blip)" if p < 0 else "")))

    # Flapping: too many state changes within the flapping window.
    flapping = [m for m in members if is_flapping(m, cfg, now)]
    if flapping:
        share = len(flapping) / len(members)
        c = -0.3 if share >= 0.5 else -0.15
        factors.append(_factor("flapping", len(flapping), c,
                               f"{len(flapping)} of {len(members)} alerts changed state >= "
                               f"{cfg.flapping.max_changes} times in {cfg.flapping.window:.0f}s"))

    # Human feedback on past incidents with the same alerts.
    if feedback:
        acted = sum(v.get("acted", 0.0) for v in feedback.values())
        noise = sum(v.get("noise", 0.0) for v in feedback.values())
        if acted + noise > 0:
            c = 0.3 * (acted - noise) / (acted + noise + 1.0)
            factors.append(_factor("feedback_history", {"acted": round(acted, 2), "noise": round(noise, 2)}, c,
                                   f"similar past incidents: {acted:.1f} acted on, {noise:.1f} marked noise"))

    total = sum(f["contribution"] for f in factors)
    value = min(0.99, max(0.01, total))
    return round(value, 3), factors, bool(flapping) and len(flapping) / max(1, len(members)) >= 0.5
