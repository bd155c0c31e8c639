"""Render notifications for people: Slack Block Kit, fallback text, PagerDuty fields, plain text, digests.

Every message comes from the Jinja2 templates in the repository's `templates/` folder; a directory
from the config can override any of them by file name. The templates only produce *text fields*
(each value from an alert passes an escaping filter from `escaping`); this module puts those fields
into Block Kit dicts and PagerDuty dicts, so hostile text can never break the JSON, and it enforces the
target limits (50 blocks, 3000 characters per section, 150 per header).

The input is a `service.models.Notification`, with or without an incident snapshot (see the incident
contract); `view()` turns either into one normalised dict, which is what the templates see as `v`.
"""
from __future__ import annotations

import re

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import jinja2

from service.core.clock import to_rfc3339
from service.core.models import Alert, Notification

from routing.receivers import escaping

DEFAULT_TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "templates")

SEVERITIES = ("critical", "error", "warning", "info")
SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "error": ":large_orange_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}
_SEVERITY_ALIASES = {
    "critical": "critical", "page": "critical", "fatal": "critical", "emergency": "critical", "p1": "critical",
    "sev1": "critical", "disaster": "critical",
    "error": "error", "high": "error", "major": "error", "p2": "error", "sev2": "error",
    "warning": "warning", "warn": "warning", "medium": "warning", "minor": "warning", "p3": "warning",
    "sev3": "warning", "average": "warning",
    "info": "info", "informational": "info", "low": "info", "none": "info", "notice": "info", "p4": "info",
    "p5": "info", "sev4": "info", "ok": "info",
}

# Slack action ids of the buttons (the interactivity endpoint maps them back, see routing.slack_actions).
ACTION_IDS = {
    "ack": "tocsin_ack",
    "resolve": "tocsin_resolve",
    "snooze": "tocsin_snooze",
    "noise": "tocsin_noise",
    "summary_helpful": "tocsin_summary_helpful",
    "summary_unhelpful": "tocsin_summary_unhelpful",
}
SNOOZE_CHOICES: list[tuple[int, str]] = [
    (900, "15 minutes"), (1800, "30 minutes"), (3600, "1 hour"), (7200, "2 hours"),
    (14400, "4 hours"), (28800, "8 hours"), (86400, "24 hours"),
]
MAX_BLOCKS = 50


def map_severity(value: Any, default: str = "error") -> str:
    """PagerDuty's four severities from a label value such as "page", "P2" or "warning"."""
    if isinstance(value, str):
        return _SEVERITY_ALIASES.get(value.strip().lower(), default)
    return default


def notification_ref(n: Notification) -> str:
    """What the buttons carry to name their target: the incident id, or a stable id for the group."""
    inc = n.incident or {}
    iid = inc.get("id")
    if isinstance(iid, str) and iid and len(iid) <= 200:
        return iid
    if isinstance(iid, str) and iid:
        return "inc-sha256-" + hashlib.sha256(iid.encode()).hexdigest()[:40]
    return "group:" + hashlib.sha256(n.group_key.encode()).hexdigest()[:40]


def utc(ts: Any) -> str:
    try:
        t = float(ts)
    except (TypeError, ValueError):
        return ""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def slack_date(ts: Any) -> str:
    """Slack's localised date formatting (each reader sees their own time zone), UTC as fallback."""
    try:
        t = int(float(ts))
    except (TypeError, ValueError, OverflowError):
        return ""
    return f"<!date^{t}^{{date_short_pretty}} {{time}}|{utc(t)}>"


# ---------------------------------------------------------------------------------------------------
# The view model


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)) and v == v:
        return float(v)
    return None


def _strs(v: Any) -> list[str]:
    return [_str(x) for x in v] if isinstance(v, (list, tuple)) else []


def _dicts(v: Any) -> list[dict]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, (list, tuple)) else []


def _factor(f: dict) -> dict:
    return {"factor": _str(f.get("factor")), "value": f.get("value"), "contribution": _num(f.get("contribution")),
            "explanation": _str(f.get("explanation"))}


def _entity(labels: dict) -> str:
    for k in ("instance", "pod", "host", "node", "entity", "job"):
        if labels.get(k):
            return _str(labels[k])
    return ""


def _alert_item(name: str, labels: dict, annotations: dict, status: str) -> dict:
    return {
        "name": name or "(no alertname)",
        "entity": _entity(labels),
        "status": status,
        "description": _str(annotations.get("summary") or annotations.get("description") or annotations.get("message")),
    }


def _links(pairs: list[tuple[Any, str]]) -> list[dict]:
    out: list[dict] = []
    seen: set[str] = set()
    for href, text in pairs:
        u = escaping.safe_url(href)
        if u and u not in seen:
            seen.add(u)
            out.append({"href": u, "text": text})
    return out


def view(n: Notification) -> dict[str, Any]:
    """One normalised dict for the templates, from an incident snapshot or a plain Alertmanager group.

    Values are still raw (untrusted) text: the templates escape them for their target.
    """
    inc = n.incident if isinstance(n.incident, dict) else None
    if inc is not None:
        return _incident_view(n, inc)
    return _group_view(n)


def _group_view(n: Notification) -> dict[str, Any]:
    firing = [a for a in n.alerts if not a.resolved_at(n.timestamp)]
    resolved = [a for a in n.alerts if a.resolved_at(n.timestamp)]
    common = n.common_labels()
    sev_values = [map_severity(a.labels.get("severity"), "") for a in n.alerts]
    sev = next((s for s in SEVERITIES if s in sev_values), map_severity(common.get("severity")))
    name = common.get("alertname") or (n.alerts[0].labels.get("alertname", "") if n.alerts else "")
    extra = " ".join(v for k, v in sorted(n.group_labels.items()) if k != "alertname")
    title = f"[{n.status.upper()}:{len(firing) if n.status == 'firing' else len(resolved)}] {name} {extra}".strip()
    link_pairs: list[tuple[Any, str]] = []
    for a in n.alerts:
        rb = a.annotations.get("runbook_url") or a.annotations.get("runbook")
        if rb:
            link_pairs.append((rb, "Runbook"))
    for a in n.alerts:
        link_pairs.append((a.generator_url, "Source"))
    if n.external_url:
        link_pairs.append((n.external_url, "Alertmanager"))
    services = sorted({a.labels["service"] for a in n.alerts if a.labels.get("service")})
    grouped = [{"alert": "group_by", "signal": "labels", "score": None,
                "detail": ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items())) or "all alerts"}] if n.group_labels else []
    return {
        "incident_id": "", "url": "", "title": title, "state": "resolved" if n.status == "resolved" else "",
        "status": n.status, "severity": sev, "severity_emoji": SEVERITY_EMOJI[sev],
        "severity_factors": [], "confidence": None, "confidence_factors": [],
        "services": services, "metrics": [], "entities": [],
        "alerts": [_alert_item(a.labels.get("alertname", ""), a.labels, a.annotations,
                               "resolved" if a.resolved_at(n.timestamp) else "firing") for a in n.alerts],
        "num_firing": len(firing), "num_resolved": len(resolved),
        "grouped_why": grouped, "root_causes": [], "summary": None, "flapping": False,
        "acked_by": None, "acked_at": None, "snoozed_until": None, "resolved_at": None,
        "opened_at": min((a.starts_at for a in n.alerts if a.starts_at), default=None),
        "updated_at": n.timestamp, "links": _links(link_pairs), "reason": n.reason,
        "group_key": n.group_key, "ref": notification_ref(n),
    }


def _incident_view(n: Notification, inc: dict) -> dict[str, Any]:
    members = _dicts(inc.get("members"))
    sev = inc.get("severity") if inc.get("severity") in SEVERITIES else map_severity(inc.get("severity"))
    state = inc.get("state") if inc.get("state") in ("triggered", "acknowledged", "snoozed", "resolved") else "triggered"
    if n.status == "resolved" and state != "resolved" and not any(m.get("status") == "firing" for m in members):
        state = "resolved"
    alerts = []
    grouped = []
    link_pairs: list[tuple[Any, str]] = []
    for m in members:
        labels = m.get("labels") if isinstance(m.get("labels"), dict) else {}
        ann = m.get("annotations") if isinstance(m.get("annotations"), dict) else {}
        name = _str(labels.get("alertname"))
        alerts.append(_alert_item(name, labels, ann, "resolved" if m.get("status") == "resolved" else "firing"))
        joins = _dicts(m.get("joined_by"))
        if joins:
            best = max(joins, key=lambda j: _num(j.get("score")) or 0.0)
            grouped.append({"alert": name or _str(m.get("fingerprint")), "signal": _str(best.get("signal")),
                            "score": _num(best.get("score")),
                            "detail": _str(best.get("detail") or best.get("matched"))})
        rb = ann.get("runbook_url") or ann.get("runbook")
        if rb:
            link_pairs.append((rb, "Runbook"))
    for m in members:
        link_pairs.append((m.get("generator_url"), "Source"))
    url = _str(inc.get("url"))
    if url:
        link_pairs.insert(0, (url, "Incident in Tocsin"))
    if not members:  # a producer that sent no members: fall back to the alerts themselves
        alerts = [_alert_item(a.labels.get("alertname", ""), a.labels, a.annotations,
                              "resolved" if a.resolved_at(n.timestamp) else "firing") for a in n.alerts]
        link_pairs += [(a.generator_url, "Source") for a in n.alerts]
    root_causes = []
    for rc in _dicts(inc.get("root_causes")):
        root_causes.append({"metric": _str(rc.get("metric")), "entity": _str(rc.get("entity")),
                            "service": _str(rc.get("service")), "score": _num(rc.get("score")),
                            "evidence": [{"kind": _str(e.get("kind")), "detail": _str(e.get("detail")),
                                          "weight": _num(e.get("weight"))} for e in _dicts(rc.get("evidence"))]})
    summary = None
    s = inc.get("summary")
    if isinstance(s, dict) and (s.get("headline") or s.get("text")):
        summary = {"headline": _str(s.get("headline")), "text": _str(s.get("text")),
                   "next_checks": _strs(s.get("next_checks")), "source": _str(s.get("source")),
                   "note": _str(s.get("note")), "confidence": _num(s.get("confidence"))}
    num_firing = sum(1 for a in alerts if a["status"] == "firing")
    conf = _num(inc.get("confidence"))
    return {
        "incident_id": _str(inc.get("id")), "url": url, "title": _str(inc.get("title")) or "Incident",
        "state": state, "status": n.status, "severity": sev, "severity_emoji": SEVERITY_EMOJI[sev],
        "severity_factors": [_factor(f) for f in _dicts(inc.get("severity_factors"))],
        "confidence": None if conf is None else max(0.0, min(1.0, conf)),
        "confidence_factors": [_factor(f) for f in _dicts(inc.get("confidence_factors"))],
        "services": _strs(inc.get("services")), "metrics": _strs(inc.get("metrics")),
        "entities": _strs(inc.get("entities")),
        "alerts": alerts, "num_firing": num_firing, "num_resolved": len(alerts) - num_firing,
        "grouped_why": grouped, "root_causes": root_causes, "summary": summary,
        "flapping": bool(inc.get("flapping")),
        "acked_by": _str(inc.get("acked_by")) or None, "acked_at": _num(inc.get("acked_at")),
        "snoozed_until": _num(inc.get("snoozed_until")), "resolved_at": _num(inc.get("resolved_at")),
        "opened_at": _num(inc.get("opened_at")), "updated_at": _num(inc.get("updated_at")) or n.timestamp,
        "links": _links(link_pairs), "reason": n.reason, "group_key": n.group_key, "ref": notification_ref(n),
    }


def change_snapshot(v: dict[str, Any]) -> dict[str, Any]:
    """What a delivery remembers so the next one can say what changed (kept in Delivered.state)."""
    return {"severity": v["severity"], "members": len(v["alerts"]), "firing": v["num_firing"],
            "state": v["state"] or v["status"]}


def describe_changes(prev: dict[str, Any] | None, v: dict[str, Any]) -> list[str]:
    """Short phrases for the thread reply: what changed between the last delivery and this one (pure)."""
    cur = change_snapshot(v)
    prev = prev or {}
    out: list[str] = []
    if prev.get("state") != cur["state"]:
        st = cur["state"]
        if st == "acknowledged":
            out.append(f"Acknowledged by {v['acked_by'] or 'someone'}" + (f" at {utc(v['acked_at'])}" if v["acked_at"] else ""))
        elif st == "resolved":
            out.append("Resolved")
        elif st == "snoozed":
            out.append("Snoozed" + (f" until {utc(v['snoozed_until'])}" if v["snoozed_until"] else ""))
        elif prev.get("state") in ("acknowledged", "snoozed", "resolved"):
            out.append("Firing again" if prev.get("state") == "resolved" else "No longer acknowledged")
    if prev.get("severity") and prev["severity"] != cur["severity"]:
        out.append(f"Severity {prev['severity']} → {cur['severity']}")
    if isinstance(prev.get("members"), int) and cur["members"] > prev["members"]:
        out.append(f"+{cur['members'] - prev['members']} alerts (now {cur['members']})")
    if isinstance(prev.get("firing"), int) and cur["firing"] < prev["firing"] and cur["state"] != "resolved":
        out.append(f"{prev['firing'] - cur['firing']} alerts resolved, {cur['firing']} still firing")
    if not out:
        out.append(f"Still {'firing' if cur['firing'] else cur['state']} ({v['reason']})")
    return out


# ---------------------------------------------------------------------------------------------------
# Rendering


@dataclass
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def _section(text: str) -> dict[str, Any] | None:
    text = text.strip("\n")
    if not text.strip():
        return None
    return {"type": "section", "text": {"type": "mrkdwn", "text": escaping.truncate(text, escaping.SLACK_SECTION_TEXT)}}


def _context(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text:
        return None
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": escaping.truncate(text, escaping.SLACK_FIELD_TEXT)}]}


def _button(label: str, action: str, value: str, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": label[:75], "emoji": True},
                         "action_id": ACTION_IDS[action], "value": value}
    if style:
        b["style"] = style
    return b


class Renderer:
    """Renders notifications with the templates (repository defaults, optionally overridden by file name)."""

    def __init__(self, override_dir: str | None = None, templates_dir: str = DEFAULT_TEMPLATES_DIR):
        dirs = [d for d in (override_dir, templates_dir) if d]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(dirs),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
        )
        escaping.register_filters(self.env)
        self.env.filters["slack_date"] = slack_date
        self.env.filters["utc"] = utc

    def _blocks(self, name: str, **ctx: Any) -> dict[str, str]:
        tmpl = self.env.get_template(name)
        context = tmpl.new_context(ctx)
        return {bname: "".join(fn(context)) for bname, fn in tmpl.blocks.items()}

    def render_block(self, template: str, block: str, **ctx: Any) -> str:
        tmpl = self.env.get_template(template)
        return "".join(tmpl.blocks[block](tmpl.new_context(ctx)))

    # -- Slack ---------------------------------------------------------------------------------------

    def slack_message(self, n: Notification, *, interactive: bool = True) -> SlackMessage:
        """The Block Kit message and its fallback text; buttons only when `interactive` (bot-token mode)."""
        v = view(n)
        parts = self._blocks("slack.j2", v=v, interactive=interactive, changes=[])
        blocks: list[dict[str, Any]] = []
        header = escaping.truncate(escaping.one_line(parts["header"]), escaping.SLACK_PLAIN_TEXT) or "Alert"
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}})
        esc = (n.incident or {}).get("escalation") if isinstance(n.incident, dict) else None
        if isinstance(esc, dict):
            # The mention comes from Tocsin's own configuration (trusted), never from alert text; only Slack's
            # user, user-group and channel reference forms are let through.
            mention = esc.get("mention") or ""
            ok = re.fullmatch(r"<(@[UW][A-Z0-9]+|!subteam\^[A-Z0-9]+|#[CG][A-Z0-9]+|!here|!channel)>", mention)
            line = f":rotating_light: Escalation level {int(esc.get('level', 1))} of {int(esc.get('of', 1))}"
            line += f": {mention}" if ok else ""
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
        for name in ("status", "state_line", "summary", "reasons", "scope", "root_causes", "grouping", "alerts", "links"):
            b = _section(parts[name])
            if b:
                blocks.append(b)
        if interactive:
            blocks.extend(self._action_blocks(v))
        footer = _context(parts["footer"])
        if footer:
            blocks.append(footer)
        blocks = blocks[:MAX_BLOCKS]
        text = escaping.truncate(parts["text"].strip(), escaping.SLACK_FALLBACK_TEXT)
        return SlackMessage(text=text, blocks=blocks)

    def _action_blocks(self, v: dict[str, Any]) -> list[dict[str, Any]]:
        ref = v["ref"]
        out: list[dict[str, Any]] = []
        if str(ref).startswith("group:"):
            return out  # without an incident (correlation off) there is nothing for the buttons to act on
        state = v["state"]
        elements: list[dict[str, Any]] = []
        if state not in ("resolved",) and v["status"] != "resolved":
            if state != "acknowledged":
                elements.append(_button("Acknowledge", "ack", ref, "primary"))
            elements.append(_button("Resolve", "resolve", ref))
            elements.append({
                "type": "static_select", "action_id": ACTION_IDS["snooze"],
                "placeholder": {"type": "plain_text", "text": "Snooze…"},
                "options": [{"text": {"type": "plain_text", "text": label}, "value": f"{secs}|{ref}"}
                            for secs, label in SNOOZE_CHOICES],
            })
            elements.append(_button("Mark as noise", "noise", ref, "danger"))
        if elements:
            out.append({"type": "actions", "block_id": "tocsin_actions", "elements": elements})
        if v["summary"]:
            out.append({"type": "actions", "block_id": "tocsin_feedback", "elements": [
                _button("👍 Summary helpful", "summary_helpful", ref),
                _button("👎 Not helpful", "summary_unhelpful", ref),
            ]})
        return out

    def slack_thread_line(self, n: Notification, previous: dict[str, Any] | None) -> str:
        v = view(n)
        line = self.render_block("slack.j2", "thread", v=v, interactive=True, changes=describe_changes(previous, v))
        return escaping.truncate(line.strip(), escaping.SLACK_SECTION_TEXT)

    # -- PagerDuty -----------------------------------------------------------------------------------

    def pagerduty_summary(self, n: Notification) -> str:
        v = view(n)
        s = self.render_block("pagerduty.j2", "summary", v=v)
        return escaping.one_line(s, escaping.PAGERDUTY_SUMMARY) or "Tocsin alert"

    def pagerduty_custom_details(self, n: Notification, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Members, factors and summary as structured data, bounded so the event stays under 512 KB."""
        v = view(n)
        inc = n.incident if isinstance(n.incident, dict) else None
        d: dict[str, Any]
        if inc is not None:
            members = []
            for m in _dicts(inc.get("members")):
                members.append({
                    "fingerprint": m.get("fingerprint"), "status": m.get("status"),
                    "labels": m.get("labels"), "annotations": m.get("annotations"),
                    "starts_at": to_rfc3339(_num(m.get("starts_at"))) if _num(m.get("starts_at")) else None,
                    "score": m.get("score"), "value": m.get("value"), "expected": m.get("expected"),
                    "detector": m.get("detector"), "generator_url": m.get("generator_url"),
                    "joined_by": m.get("joined_by"),
                })
            d = {
                "incident_id": v["incident_id"], "state": v["state"], "url": v["url"],
                "severity": v["severity"], "severity_factors": v["severity_factors"],
                "confidence": v["confidence"], "confidence_factors": v["confidence_factors"],
                "services": v["services"], "metrics": v["metrics"], "entities": v["entities"],
                "root_causes": v["root_causes"], "summary": v["summary"], "flapping": v["flapping"],
                "num_firing": v["num_firing"], "num_resolved": v["num_resolved"], "members": members,
            }
        else:
            def _a(a: Alert) -> dict[str, Any]:
                return {"labels": a.labels, "annotations": a.annotations, "starts_at": to_rfc3339(a.starts_at),
                        "generator_url": a.generator_url, "fingerprint": a.fingerprint}
            firing = [a for a in n.alerts if not a.resolved_at(n.timestamp)]
            resolved = [a for a in n.alerts if a.resolved_at(n.timestamp)]
            d = {"group_labels": n.group_labels, "num_firing": len(firing), "num_resolved": len(resolved),
                 "firing": [_a(a) for a in firing], "resolved": [_a(a) for a in resolved]}
        if extra:
            d.update({k: v_ for k, v_ in extra.items() if k not in d})
        return escaping.bound_json(d, escaping.PAGERDUTY_DETAILS_BYTES)

    def pagerduty_links(self, n: Notification) -> list[dict[str, str]]:
        return [{"href": l["href"], "text": escaping.one_line(l["text"], 100)} for l in view(n)["links"][:10]]

    # -- plain text ----------------------------------------------------------------------------------

    def plain_text(self, n: Notification, limit: int = 4000) -> str:
        """Plain text for webhook/chat targets without Block Kit (no buttons)."""
        v = view(n)
        return escaping.truncate(self.render_block("webhook_text.j2", "text", v=v).strip(), limit)

    # -- digest --------------------------------------------------------------------------------------

    def digest(self, name: str, start: float, end: float, notifications: list[Notification], top: int = 10) -> "DigestMessage":
        """One digest message for the notifications collected between `start` and `end`."""
        views = [view(n) for n in notifications]
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        views.sort(key=lambda x: (rank[x["severity"]], -(x["confidence"] or 0.0), -x["num_firing"]))
        counts = [(s, sum(1 for x in views if x["severity"] == s)) for s in SEVERITIES]
        d = {"name": name, "start": start, "end": end, "entries": views[:top], "total": len(views),
             "by_severity": [(s, c) for s, c in counts if c]}
        parts = self._blocks("digest.j2", d=d)
        blocks = [{"type": "header", "text": {"type": "plain_text", "emoji": True,
                                              "text": escaping.truncate(escaping.one_line(parts["header"]), escaping.SLACK_PLAIN_TEXT)}}]
        for b in (_section(parts["counts"]), _section(parts["items"])):
            if b:
                blocks.append(b)
        return DigestMessage(text=escaping.truncate(parts["text"].strip(), escaping.SLACK_FALLBACK_TEXT), blocks=blocks,
                             plain=escaping.truncate(parts["plain"].strip(), 8000))


@dataclass
class DigestMessage(SlackMessage):
    plain: str = ""
