"""The evidence pack: everything Tocsin knows about an incident, computed without any LLM.

`build_evidence(incident, changes=..., similar=...)` turns an incident snapshot (see the incident
snapshot contract) into an `EvidencePack`. Every item in the pack gets a stable id (E1, E2, ...) that
summaries cite. Ids are given in a fixed order: candidates (and their evidence), members, severity and
confidence factors, changes, similar incidents, and the timeline last, so that a growing timeline
does not renumber the rest.

`EvidencePack.digest()` hashes the material content only (no `updated_at`, no timeline, no state;
floats rounded to 3 significant digits), so re-sent alerts with jittering values do not bust the
summary cache. All text copied from alerts stays untrusted: it is truncated here, and quoted as
data by the prompt builder.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Iterable

from pydantic import BaseModel, Field

MAX_CANDIDATES = 5
MAX_CANDIDATE_EVIDENCE = 6
MAX_MEMBERS = 25
MAX_FACTORS = 8
MAX_CHANGES = 10
MAX_SIMILAR = 5
MAX_TIMELINE = 25
MAX_TEXT = 300
CHANGE_LOOKBACK = 6 * 3600.0  # changes up to this long before the incident opened are relevant

# Where a member alert's metric / entity / service come from, first present label wins. This mirrors the
# correlation features (service/scoring.py member_metric/member_entity/member_service) so that root-cause
# candidates and members name things the same way.
METRIC_LABELS = ("metric", "__name__", "metric_name", "alertname")
ENTITY_LABELS = ("instance", "pod", "host", "node", "container", "device")
SERVICE_LABELS = ("service", "app", "application", "job")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def clean_text(value: Any, limit: int = MAX_TEXT) -> str:
    """Untrusted text made safe to carry: a string, no control characters, at most `limit` characters."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    s = _CONTROL.sub(" ", s).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class CandidateEvidence(BaseModel):
    id: str
    kind: str
    detail: str
    weight: float | None = None


class Candidate(BaseModel):
    id: str
    rank: int
    metric: str
    entity: str
    service: str = ""
    score: float | None = None
    evidence: list[CandidateEvidence] = Field(default_factory=list)


class MemberItem(BaseModel):
    id: str
    fingerprint: str
    alertname: str
    metric: str
    entity: str
    service: str = ""
    status: str = "firing"
    severity: str = ""
    onset: float | None = None
    ended_at: float | None = None
    score: float | None = None
    value: float | None = None
    expected: float | None = None
    detector: str = ""
    summary: str = ""  # untrusted annotation text
    joined_by: list[str] = Field(default_factory=list)


class FactorItem(BaseModel):
    id: str
    scale: str  # "severity" | "confidence"
    factor: str
    value: str
    contribution: float | None = None
    explanation: str = ""


class ChangeItem(BaseModel):
    id: str
    ts: float | None = None
    kind: str = "change"
    service: str = ""
    entity: str = ""
    detail: str = ""


class SimilarItem(BaseModel):
    id: str
    incident_id: str
    title: str = ""
    root_cause: str = ""
    resolution: str = ""
    similarity: float | None = None


class TimelineItem(BaseModel):
    id: str
    ts: float | None = None
    event: str
    detail: str = ""


class EvidencePack(BaseModel):
    incident_id: str
    title: str = ""
    state: str = ""
    severity: str = ""
    confidence: float | None = None
    opened_at: float | None = None
    updated_at: float | None = None
    services: list[str] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)
    members: list[MemberItem] = Field(default_factory=list)
    omitted_members: int = 0
    severity_factors: list[FactorItem] = Field(default_factory=list)
    confidence_factors: list[FactorItem] = Field(default_factory=list)
    changes: list[ChangeItem] = Field(default_factory=list)
    similar: list[SimilarItem] = Field(default_factory=list)
    timeline: list[TimelineItem] = Field(default_factory=list)

    def items(self) -> Iterable[BaseModel]:
        """Every citable item, in id order."""
        for c in self.candidates:
            yield c
            yield from c.evidence
        yield from self.members
        yield from self.severity_factors
        yield from self.confidence_factors
        yield from self.changes
        yield from self.similar
        yield from self.timeline

    def ids(self) -> set[str]:
        return {item.id for item in self.items()}  # type: ignore[attr-defined]

    def item(self, item_id: str) -> BaseModel | None:
        for it in self.items():
            if it.id == item_id:  # type: ignore[attr-defined]
                return it
        return None

    def root_cause_choices(self) -> dict[tuple[str, str], tuple[str, str]]:
        """Allowed (metric, entity) root causes, keyed case-insensitively, mapped to the pack's spelling."""
        out: dict[tuple[str, str], tuple[str, str]] = {}
        for m in self.members:
            out.setdefault((m.metric.strip().lower(), m.entity.strip().lower()), (m.metric, m.entity))
        for c in self.candidates:  # candidates win the spelling
            out[(c.metric.strip().lower(), c.entity.strip().lower())] = (c.metric, c.entity)
        return out

    def digest(self) -> str:
        """A hash of the material content: what would change a summary. Volatile fields are left out."""
        material = self.model_dump(exclude={"updated_at", "state", "timeline", "title"})
        raw = json.dumps(_round_floats(material), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _round_floats(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.3g}")
    if isinstance(obj, dict):
        return {k: _round_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round_floats(v) for v in obj]
    return obj


def _first_label(labels: dict[str, Any], names: tuple[str, ...]) -> str:
    for n in names:
        v = labels.get(n)
        if v:
            return str(v)
    return ""


def member_identity(member: dict[str, Any]) -> tuple[str, str, str]:
    """(metric, entity, service) of a member alert: explicit keys first, then labels."""
    labels = member.get("labels") or {}
    metric = (member.get("metric") or (member.get("detector_info") or {}).get("metric")
              or _first_label(labels, METRIC_LABELS) or "unknown")
    entity = member.get("entity") or _first_label(labels, ENTITY_LABELS)
    service = member.get("service") or _first_label(labels, SERVICE_LABELS)
    return clean_text(metric, 200), clean_text(entity, 200), clean_text(service, 200)


def _member_score(member: dict[str, Any]) -> float | None:
    score = _num(member.get("score"))
    if score is None:  # Prometheus alerts built on anomaly exporters carry the score as a label/annotation
        for src in (member.get("labels") or {}, member.get("annotations") or {}):
            score = _num(src.get("anomaly_score"))
            if score is not None:
                break
    return score


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return clean_text(json.dumps(v, sort_keys=True, default=str), 120)
    return clean_text(v, 120)


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"E{self.n}"


def _candidates(incident: dict[str, Any], new_id: _Ids) -> list[Candidate]:
    candidates: list[Candidate] = []
    for rank, rc in enumerate((incident.get("root_causes") or [])[:MAX_CANDIDATES], start=1):
        if not isinstance(rc, dict) or not rc.get("metric"):
            continue
        cid = new_id()
        evs = [
            CandidateEvidence(
                id=new_id(), kind=clean_text(e.get("kind"), 40) or "evidence",
                detail=clean_text(e.get("detail")), weight=_num(e.get("weight")),
            )
            for e in (rc.get("evidence") or [])[:MAX_CANDIDATE_EVIDENCE]
            if isinstance(e, dict)
        ]
        candidates.append(Candidate(
            id=cid, rank=rank, metric=clean_text(rc.get("metric"), 200), entity=clean_text(rc.get("entity"), 200),
            service=clean_text(rc.get("service"), 200), score=_num(rc.get("score")), evidence=evs,
        ))
    return candidates


def _member(m: dict[str, Any], new_id: _Ids) -> MemberItem:
    labels = m.get("labels") or {}
    ann = m.get("annotations") or {}
    metric, entity, service = member_identity(m)
    return MemberItem(
        id=new_id(), fingerprint=clean_text(m.get("fingerprint"), 32), alertname=clean_text(labels.get("alertname"), 200),
        metric=metric, entity=entity, service=service, status=clean_text(m.get("status") or "firing", 20),
        severity=clean_text(labels.get("severity"), 40), onset=_num(m.get("starts_at")), ended_at=_num(m.get("ends_at")),
        score=_member_score(m), value=_num(m.get("value")), expected=_num(m.get("expected")),
        detector=clean_text(m.get("detector"), 60),
        summary=clean_text(ann.get("summary") or ann.get("description") or ann.get("message")),
        joined_by=[clean_text(f"{j.get('signal')}: {j.get('detail', '')}", 160)
                   for j in (m.get("joined_by") or [])[:4] if isinstance(j, dict)],
    )


def _members(incident: dict[str, Any], new_id: _Ids) -> tuple[list[MemberItem], int]:
    """The most informative members (highest score, then earliest onset; the fingerprint breaks ties stably), in
    onset order, and how many were left out."""
    raw_members = [m for m in (incident.get("members") or []) if isinstance(m, dict)]
    raw_members.sort(key=lambda m: (-(_member_score(m) or 0.0), _num(m.get("starts_at")) or 0.0,
                                    str(m.get("fingerprint", ""))))
    kept = raw_members[:MAX_MEMBERS]
    kept.sort(key=lambda m: (_num(m.get("starts_at")) or 0.0, str(m.get("fingerprint", ""))))
    return [_member(m, new_id) for m in kept], max(0, len(raw_members) - len(kept))


def _factors(incident: dict[str, Any], key: str, scale: str, new_id: _Ids) -> list[FactorItem]:
    out = []
    for f in (incident.get(key) or [])[:MAX_FACTORS]:
        if isinstance(f, dict) and f.get("factor"):
            out.append(FactorItem(
                id=new_id(), scale=scale, factor=clean_text(f.get("factor"), 80), value=_fmt_value(f.get("value")),
                contribution=_num(f.get("contribution")), explanation=clean_text(f.get("explanation")),
            ))
    return out


def _change_time(ch: dict[str, Any]) -> float | None:
    return _num(ch.get("ts", ch.get("timestamp")))


def _changes(changes: Iterable[dict[str, Any]], opened: float | None, until: float | None,
             new_id: _Ids) -> list[ChangeItem]:
    """The newest changes from CHANGE_LOOKBACK before the incident opened until it resolved (or was updated)."""
    chosen: list[dict[str, Any]] = []
    for ch in changes:
        if not isinstance(ch, dict):
            continue
        ts = _change_time(ch)
        if ts is not None and opened is not None and ts < opened - CHANGE_LOOKBACK:
            continue
        if ts is not None and until is not None and ts > until:
            continue
        chosen.append(ch)
    chosen.sort(key=lambda c: -(_change_time(c) or 0.0))  # newest first
    items = []
    for ch in chosen[:MAX_CHANGES]:
        labels = ch.get("labels") or {}
        items.append(ChangeItem(
            id=new_id(), ts=_change_time(ch),
            kind=clean_text(ch.get("kind") or ch.get("type") or "change", 40),
            service=clean_text(ch.get("service") or labels.get("service"), 200),
            entity=clean_text(ch.get("entity") or labels.get("instance") or labels.get("entity"), 200),
            detail=clean_text(ch.get("detail") or ch.get("description") or ch.get("summary") or ch.get("version")),
        ))
    return items


def _similar(similar: Iterable[dict[str, Any]], new_id: _Ids) -> list[SimilarItem]:
    items = []
    for s in list(similar)[:MAX_SIMILAR]:
        if not isinstance(s, dict):
            continue
        rc = s.get("root_cause")
        if isinstance(rc, dict):
            rc = f"{rc.get('metric', '')} on {rc.get('entity', '')}".strip()
        items.append(SimilarItem(
            id=new_id(), incident_id=clean_text(s.get("incident_id") or s.get("id"), 80), title=clean_text(s.get("title")),
            root_cause=clean_text(rc), resolution=clean_text(s.get("resolution") or s.get("resolution_note") or s.get("note")),
            similarity=_num(s.get("similarity", s.get("score"))),
        ))
    return items


def _timeline(incident: dict[str, Any], new_id: _Ids) -> list[TimelineItem]:
    tl = [t for t in (incident.get("timeline") or []) if isinstance(t, dict)]
    tl.sort(key=lambda t: _num(t.get("ts")) or 0.0)
    return [
        TimelineItem(id=new_id(), ts=_num(t.get("ts")), event=clean_text(t.get("event"), 60) or "event",
                     detail=clean_text(t.get("detail")))
        for t in tl[:MAX_TIMELINE]
    ]


def build_evidence(
    incident: dict[str, Any],
    *,
    changes: Iterable[dict[str, Any]] = (),
    similar: Iterable[dict[str, Any]] = (),
) -> EvidencePack:
    """Assemble the evidence pack of an incident snapshot. Tolerates missing optional keys.

    Evidence ids (E1, E2, ...) are given in the order of the pack: candidates, members, factors, changes, similar
    incidents, timeline."""
    if not isinstance(incident, dict):
        raise ValueError(f"incident: expected an object, got {type(incident).__name__}")
    inc_id = incident.get("id")
    if not isinstance(inc_id, str) or not inc_id:
        raise ValueError("incident.id: required, a non-empty string")
    new_id = _Ids()
    candidates = _candidates(incident, new_id)
    members, omitted = _members(incident, new_id)
    severity_factors = _factors(incident, "severity_factors", "severity", new_id)
    confidence_factors = _factors(incident, "confidence_factors", "confidence", new_id)
    opened = _num(incident.get("opened_at"))
    until = _num(incident.get("resolved_at")) or _num(incident.get("updated_at"))
    change_items = _changes(changes, opened, until, new_id)
    similar_items = _similar(similar, new_id)
    timeline = _timeline(incident, new_id)
    return EvidencePack(
        incident_id=clean_text(inc_id, 120), title=clean_text(incident.get("title")), state=clean_text(incident.get("state"), 20),
        severity=clean_text(incident.get("severity"), 20), confidence=_num(incident.get("confidence")),
        opened_at=opened, updated_at=_num(incident.get("updated_at")),
        services=[clean_text(s, 200) for s in (incident.get("services") or [])[:20]],
        candidates=candidates, members=members, omitted_members=omitted,
        severity_factors=severity_factors, confidence_factors=confidence_factors,
        changes=change_items, similar=similar_items, timeline=timeline,
    )
