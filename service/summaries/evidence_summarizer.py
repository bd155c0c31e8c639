"""The deterministic summarizer: what the evidence pack alone says, rendered from a Jinja2 template.

It is always computed. It is what people see when no LLM is configured, or when the LLM is slow, over
budget or failing. The decisions (which root cause, which facts, which next checks, what confidence) are
made here in plain Python; the wording lives in `templates/summary_evidence.txt.j2`, whose macros
`headline`, `reasoning` and `next_checks` are called with the facts chosen here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from service.summaries.evidence import Candidate, EvidencePack, MemberItem
from service.summaries.schema import RootCause, Summary

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
DEFAULT_TEMPLATE = "summary_evidence.txt.j2"


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:.4g}"


def _members_of(pack: EvidencePack, metric: str, entity: str) -> list[MemberItem]:
    return [m for m in pack.members if m.metric == metric and (not entity or m.entity == entity)]


def root_cause_confidence(pack: EvidencePack) -> float | None:
    """Confidence in the top candidate: its score (0..1), lowered when the runner-up scores close to it."""
    if not pack.candidates:
        return None
    top = pack.candidates[0]
    score = min(1.0, max(0.0, top.score if top.score is not None else 0.5))
    if len(pack.candidates) > 1 and top.score and pack.candidates[1].score is not None and top.score > 0:
        margin = max(0.0, min(1.0, (top.score - pack.candidates[1].score) / top.score))
        score *= 0.5 + 0.5 * margin
    if pack.confidence is not None:  # an incident Tocsin is unsure about lowers the root cause too
        score *= 0.5 + 0.5 * min(1.0, max(0.0, pack.confidence))
    return round(score, 2)


class EvidenceSummarizer:
    def __init__(self, templates_dir: Path | str = TEMPLATES_DIR, template: str = DEFAULT_TEMPLATE) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)), autoescape=False,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
        )
        self.env.filters["num"] = _fmt_num
        self.template = self.env.get_template(template)

    def facts(self, pack: EvidencePack) -> dict[str, Any]:
        """The choices the summary is made of, as plain data for the template."""
        top: Candidate | None = pack.candidates[0] if pack.candidates else None
        fallback: MemberItem | None = None
        if top is None and pack.members:
            # No ranked candidates: the earliest-firing, highest-scoring member stands in, with low confidence.
            fallback = min(pack.members, key=lambda m: (m.onset or 0.0, -(m.score or 0.0)))
        rc_metric = top.metric if top else (fallback.metric if fallback else "")
        rc_entity = top.entity if top else (fallback.entity if fallback else "")
        rc_members = _members_of(pack, rc_metric, rc_entity) if rc_metric else []
        rc_member = rc_members[0] if rc_members else fallback
        deviation = None
        if rc_member and rc_member.value is not None and rc_member.expected is not None:
            deviation = rc_member.value - rc_member.expected
        firing = [m for m in pack.members if m.status == "firing"]
        changes_near = [c for c in pack.changes
                        if top is None or not (c.service or c.entity)
                        or c.service in (top.service, "") or c.entity == top.entity]
        return {
            "pack": pack,
            "top": top,
            "fallback": fallback,
            "rc_metric": rc_metric,
            "rc_entity": rc_entity,
            "rc_member": rc_member,
            "deviation": deviation,
            "runner_up": pack.candidates[1] if len(pack.candidates) > 1 else None,
            "n_members": len(pack.members) + pack.omitted_members,
            "n_firing": len(firing) + pack.omitted_members,
            "services": pack.services or sorted({m.service for m in pack.members if m.service}),
            "change": changes_near[0] if changes_near else None,
            "similar": pack.similar[0] if pack.similar else None,
            "confidence": root_cause_confidence(pack) if top else (0.2 if fallback else None),
        }

    def summarize(self, pack: EvidencePack) -> Summary:
        f = self.facts(pack)
        module = self.template.make_module(f)
        headline = " ".join(str(module.headline()).split())  # type: ignore[attr-defined]
        reasoning = "\n".join(line.rstrip() for line in str(module.reasoning()).strip().splitlines() if line.strip())  # type: ignore[attr-defined]
        checks = [line.strip(" -•") for line in str(module.next_checks()).splitlines() if line.strip(" -•")]  # type: ignore[attr-defined]
        cited = [i for i in _cited(reasoning) if i in pack.ids()]
        return Summary(
            headline=headline,
            root_cause=RootCause(metric=f["rc_metric"], entity=f["rc_entity"]) if f["rc_metric"] else None,
            reasoning=reasoning,
            cited=cited,
            next_checks=checks[:5],
            confidence=f["confidence"],
            source="evidence",
            digest=pack.digest(),
        )


def ranked_root_causes(pack: EvidencePack, k: int = 3) -> list[RootCause]:
    """The evidence summarizer's root-cause guesses, best first (for hit@1 / hit@k in bench/correlation):
    the ranked candidates, or, without candidates, members by earliest onset then highest score."""
    out: list[RootCause] = []
    if pack.candidates:
        pairs = [(c.metric, c.entity) for c in pack.candidates]
    else:
        pairs = [(m.metric, m.entity) for m in sorted(pack.members, key=lambda m: (m.onset or 0.0, -(m.score or 0.0)))]
    for metric, entity in pairs:
        rc = RootCause(metric=metric, entity=entity)
        if rc not in out:
            out.append(rc)
    return out[:k]


def _cited(text: str) -> list[str]:
    out: list[str] = []
    for m in re.finditer(r"\[(E\d+)\]", text):
        if m.group(1) not in out:
            out.append(m.group(1))
    return out
