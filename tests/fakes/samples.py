"""Sample notifications for receiver tests, including hostile alert text."""
from __future__ import annotations

import copy
import re
from typing import Any

from service.core.models import Alert, Notification

T0 = 1_700_000_000.0

HOSTILE = (
    "🔥 <!channel> <!here> <!everyone> <@U12345> <#C12345|general> <!subteam^S123|@oncall> "
    "@here @channel @everyone hi@here.com "
    '"}]},{"type":"section","text":{"type":"mrkdwn","text":"<!channel> injected"}}]} '
    "`code` *bold* <https://evil.example|click me> "
    "\x00\x07\x1b[31mred\x1b[0m \u202eevil\u202c \r\n"
    "🔥 👩\u200d💻 🇺🇸 done"
)
HUGE = "A&<" * 34_000  # ~100 KB, and every & and < expands when escaped


def hostile_alert(i: int = 0) -> Alert:
    return Alert(
        labels={"alertname": f"Hostile{i} <!channel>", "severity": "critical", "service": "pay<@U1>ments",
                "instance": "db-1 @here"},
        annotations={"summary": HOSTILE, "description": HUGE, "runbook_url": "javascript:alert(1)"},
        starts_at=T0, generator_url="http://prom:9090/graph?g0.expr=up|<!channel>",
    )


def alert(name: str = "HighLatency", status: str = "firing", **labels: str) -> Alert:
    ends = T0 + 50 if status == "resolved" else 0.0
    return Alert(labels={"alertname": name, "severity": "warning", **labels},
                 annotations={"summary": f"{name} is bad", "runbook_url": "https://runbooks.example/x"},
                 starts_at=T0, ends_at=ends, generator_url="http://prom:9090/graph?g0.expr=x")


def incident(**over: Any) -> dict[str, Any]:
    inc = {
        "id": "inc-20261123-7f3a2c", "title": "payments-db latency + 2 related alerts", "state": "triggered",
        "opened_at": T0, "updated_at": T0 + 60, "resolved_at": None, "severity": "critical",
        "severity_factors": [{"factor": "label", "value": "critical", "contribution": 0.6,
                              "explanation": "an alert is labelled severity=critical"}],
        "confidence": 0.82,
        "confidence_factors": [{"factor": "detectors_agree", "value": 3, "contribution": 0.3,
                                "explanation": "3 detectors agree"}],
        "services": ["payments"], "metrics": ["db_latency_seconds"], "entities": ["payments-db-1"],
        "members": [
            {"fingerprint": "f1", "labels": {"alertname": "HighLatency", "service": "payments", "instance": "db-1"},
             "annotations": {"summary": "p99 latency 2s", "runbook_url": "https://runbooks.example/latency"},
             "status": "firing", "starts_at": T0, "ends_at": None, "score": 0.9, "value": 2.0, "expected": 0.2,
             "detector": "ensemble", "generator_url": "http://prom:9090/graph?g0.expr=latency",
             "joined_by": [{"signal": "seed", "score": 1.0, "matched": None, "detail": "opened the incident"}]},
            {"fingerprint": "f2", "labels": {"alertname": "ErrorRate", "service": "payments", "instance": "api-1"},
             "annotations": {"summary": "5xx at 4%"}, "status": "firing", "starts_at": T0 + 30, "ends_at": None,
             "score": 0.7, "value": 0.04, "expected": 0.001, "detector": None,
             "generator_url": "http://prom:9090/graph?g0.expr=errors",
             "joined_by": [{"signal": "topology", "score": 0.8, "matched": "payments-api -> payments-db",
                            "detail": "payments-api depends on payments-db"}]},
        ],
        "root_causes": [{"metric": "db_latency_seconds", "entity": "payments-db-1", "service": "payments", "score": 0.81,
                         "evidence": [{"kind": "earliest_onset", "detail": "deviated 30 s before the others", "weight": 0.5}]}],
        "summary": {"headline": "Database latency is driving API errors", "text": "p99 latency on payments-db rose first.",
                    "root_cause": {"metric": "db_latency_seconds", "entity": "payments-db-1"},
                    "next_checks": ["Check slow queries"], "confidence": 0.7, "source": "claude", "note": ""},
        "flapping": False, "acked_by": None, "acked_at": None, "snoozed_until": None, "timeline": [],
        "url": "http://tocsin.example/api/v1/incidents/inc-20261123-7f3a2c",
    }
    inc.update(over)
    return inc


def hostile_incident() -> dict[str, Any]:
    inc = incident()
    inc["title"] = "Incident " + HOSTILE
    inc["services"] = [HOSTILE, "x" * 5000]
    inc["metrics"] = [HOSTILE] * 40
    inc["members"] = [copy.deepcopy(inc["members"][0]) for _ in range(300)]
    for m in inc["members"]:
        m["labels"]["alertname"] = HOSTILE
        m["annotations"] = {"summary": HOSTILE, "description": HUGE, "runbook_url": "https://ok.example/<!channel>|x"}
        m["joined_by"] = [{"signal": "text", "score": 0.5, "matched": HOSTILE, "detail": HOSTILE}]
    inc["severity_factors"] = [{"factor": HOSTILE, "value": HOSTILE, "contribution": 0.1, "explanation": HUGE}] * 10
    inc["root_causes"] = [{"metric": HOSTILE, "entity": HOSTILE, "service": HOSTILE, "score": 0.5,
                           "evidence": [{"kind": "text", "detail": HUGE, "weight": 1.0}]}] * 5
    inc["summary"] = {"headline": HOSTILE, "text": HUGE, "root_cause": None, "next_checks": [HOSTILE] * 10,
                      "confidence": 0.5, "source": "claude", "note": HOSTILE}
    inc["acked_by"] = "<@U999> @here"
    return inc


def notification(*, incident_snapshot: dict[str, Any] | None = None, alerts: list[Alert] | None = None,
                 status: str = "firing", nid: str = "n1", reason: str = "first flush",
                 group_key: str = '{}:{alertname="HighLatency"}', timestamp: float = T0 + 60) -> Notification:
    return Notification(
        id=nid, receiver="team-x", integration="slack/0", group_key=group_key,
        group_labels={"alertname": "HighLatency"}, status=status,  # type: ignore[arg-type]
        alerts=alerts if alerts is not None else [alert()], timestamp=timestamp, reason=reason,
        external_url="http://tocsin.example", incident=incident_snapshot,
    )


_ALLOWED_ANGLE = re.compile(r"<(?:!date\^\d+\^[^|<>]*\|[^<>]*|https?://[^|<>\s]+\|[^<>]*)>")
_BROADCAST = re.compile(r"(?<![\w@])@(here|channel|everyone)\b", re.IGNORECASE)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def unsafe_mrkdwn(text: str) -> list[str]:
    """What in a mrkdwn string could ping, link or control: [] when it is safe."""
    problems = []
    rest = _ALLOWED_ANGLE.sub("", text)
    if "<" in rest or ">" in rest:
        i = rest.find("<") if "<" in rest else rest.find(">")
        problems.append(f"raw angle bracket: {rest[max(0, i - 20):i + 30]!r}")
    if _BROADCAST.search(text):
        problems.append("bare broadcast mention")
    if _CONTROL.search(text):
        problems.append("control character")
    return problems


def unsafe_plain(text: str) -> list[str]:
    problems = []
    if _BROADCAST.search(text):
        problems.append("bare broadcast mention")
    if _CONTROL.search(text):
        problems.append("control character")
    return problems


def texts(obj: Any) -> list[tuple[str, str]]:
    """Every (kind, text) in a Block Kit structure: kind is "mrkdwn" or "plain_text"."""
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        if obj.get("type") in ("mrkdwn", "plain_text") and isinstance(obj.get("text"), str):
            out.append((obj["type"], obj["text"]))
        for v in obj.values():
            out.extend(texts(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(texts(v))
    return out
