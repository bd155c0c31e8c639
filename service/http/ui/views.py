"""What the web pages show, computed from what the API returns. Pure functions, no I/O.

The handlers (service/http/ui/handlers.py) fetch incident snapshots, alerts and silences through the same code as
the HTTP API and hand them here: rows of the incident list and their filters, the alert groups shown when
correlation is off (Alertmanager's own grouping: route, receiver and group_by labels), the timeline chart of an
incident (one row per alert series, bars from onset to resolution, the root cause marked, acknowledgements and
escalation steps as markers), join reasons in words, cited evidence, and silence matcher previews.

All text from alerts stays untrusted: nothing here builds markup; templates escape (Jinja autoescape).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from routing.matchers import Matcher, go_quote

from service.incidents.scoring import member_entity, member_metric, member_service

STATES = ("triggered", "acknowledged", "snoozed", "resolved")
SEVERITIES = ("critical", "error", "warning", "info")
SIGNAL_WORDS = {"time": "time", "topology": "topology", "labels": "shared labels", "text": "similar text",
                "cooccurrence": "learned co-occurrence", "seed": "first alert", "manual": "by hand"}


# ------------------------------------------------------------------------------------------------- formatting

def fmt_time(ts: float | None) -> str:
    """UTC, to the second: 2027-01-15 08:00:00Z."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_age(now: float, ts: float | None) -> str:
    """How long ago, in the largest two units: 45s, 3m 20s, 2h 5m, 3d 4h."""
    if ts is None:
        return ""
    return fmt_span(max(0.0, now - float(ts)))


def fmt_span(secs: float) -> str:
    s = int(secs)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m" if s % 3600 // 60 else f"{s // 3600}h"
    return f"{s // 86400}d {s % 86400 // 3600}h" if s % 86400 // 3600 else f"{s // 86400}d"


def labels_text(labels: Mapping[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


# ------------------------------------------------------------------------------------------------- incident list

def incident_row(snap: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One row of the incident list (also the JSON the list page polls)."""
    members = snap.get("members") or []
    firing = sum(1 for m in members if m.get("status") == "firing")
    return {
        "id": snap["id"], "state": snap["state"], "severity": snap["severity"], "title": snap.get("title", ""),
        "services": list(snap.get("services") or []), "entities": list(snap.get("entities") or []),
        "alerts": len(members), "firing": firing, "opened_at": fmt_time(snap.get("opened_at")),
        "age": fmt_age(now, snap.get("opened_at")), "acked_by": snap.get("acked_by") or "",
        "noise": bool(snap.get("noise")), "merged_into": snap.get("merged_into") or "",
        "confidence": snap.get("confidence"), "held": bool(snap.get("held")),
    }


def matches_filters(snap: Mapping[str, Any], service: str, text: str) -> bool:
    """The list filters the API does not take: a service (exact, among the incident's services) and free text
    (case-insensitive, in the title, id, services, entities and every member's labels and annotations)."""
    if service and service not in (snap.get("services") or []):
        return False
    if not text:
        return True
    needle = text.lower()
    hay = [snap.get("id", ""), snap.get("title", ""), *(snap.get("services") or []), *(snap.get("entities") or [])]
    for m in snap.get("members") or []:
        hay.extend(f"{k}={v}" for k, v in (m.get("labels") or {}).items())
        hay.extend((m.get("annotations") or {}).values())
    return any(needle in str(h).lower() for h in hay)


def check_choice(value: str, allowed: Iterable[str], name: str) -> str | None:
    """None if `value` is empty or allowed, else the 400 reason (the API's own wording)."""
    allowed = tuple(allowed)
    if value and value not in allowed:
        return f"{name}: must be {', '.join(allowed[:-1])} or {allowed[-1]}"
    return None


# ------------------------------------------------------------------------------------------------- alert groups

@dataclass
class AlertGroup:
    receiver: str
    labels: dict[str, str]
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.receiver}|{labels_text(self.labels)}"


def alert_groups(alerts: list[dict[str, Any]], route: Any) -> list[AlertGroup]:
    """Alertmanager's GET /api/v2/alerts/groups from the API's alert list: for every route an alert matches, its
    receiver and the alert's group_by labels form a group. Sorted by receiver, then group labels."""
    groups: dict[tuple[str, str, str], AlertGroup] = {}
    for a in alerts:
        for r in route.match(a["labels"]):
            gl = r.group_labels(a["labels"])
            k = (r.id, r.opts.receiver, labels_text(gl))
            g = groups.get(k)
            if g is None:
                g = groups[k] = AlertGroup(r.opts.receiver, gl)
            g.alerts.append(a)
    return sorted(groups.values(), key=lambda g: (g.receiver, labels_text(g.labels)))


# ------------------------------------------------------------------------------------------------- incident detail

def join_reasons(member: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    """Why a member joined, in words: 'joined by topology (0.81): checkout calls payments-db ...'."""
    out = []
    for r in member.get("joined_by") or []:
        sig = str(r.get("signal", ""))
        word = SIGNAL_WORDS.get(sig, sig)
        score = r.get("score")
        head = f"joined by {word}" if sig != "seed" else "opened the incident"
        if isinstance(score, (int, float)) and sig != "seed":
            head += f" ({score:.2f})"
        detail = str(r.get("detail", ""))
        matched = r.get("matched")
        if matched and matched in names and names[matched] not in detail:
            detail += f" [with {names[matched]}]"
        out.append(f"{head}: {detail}" if detail else head)
    return out


def member_name(m: Mapping[str, Any]) -> str:
    svc = member_service(m)  # type: ignore[arg-type]
    metric = member_metric(m)  # type: ignore[arg-type]
    return f"{metric} on {svc}" if svc else metric


def is_root(m: Mapping[str, Any], root: Mapping[str, Any] | None) -> bool:
    if not root:
        return False
    return (member_metric(m), member_entity(m), member_service(m)) == (  # type: ignore[arg-type]
        root.get("metric"), root.get("entity"), root.get("service"))


def evidence_index(pack: Mapping[str, Any] | None) -> dict[str, str]:
    """Evidence id (E1, E2, ...) -> what it says, from the evidence pack."""
    out: dict[str, str] = {}
    if not pack:
        return out
    for c in pack.get("candidates") or []:
        where = c.get("service") or c.get("entity") or ""
        out[c["id"]] = f"root-cause candidate #{c.get('rank')}: {c.get('metric')}" + (f" on {where}" if where else "") \
            + (f" (score {c['score']})" if c.get("score") is not None else "")
        for e in c.get("evidence") or []:
            out[e["id"]] = f"{e.get('kind')}: {e.get('detail')}"
    for m in pack.get("members") or []:
        out[m["id"]] = f"alert {m.get('alertname') or m.get('metric')} on {m.get('service') or m.get('entity')}" \
            f" ({m.get('status')})" + (f": {m['summary']}" if m.get("summary") else "")
    for scale in ("severity_factors", "confidence_factors"):
        for f in pack.get(scale) or []:
            out[f["id"]] = f"{f.get('scale')} factor {f.get('factor')}: {f.get('explanation')}"
    for key in ("changes", "timeline"):
        for t in pack.get(key) or []:
            out[t["id"]] = f"{t.get('kind') or t.get('event')}: {t.get('detail')}"
    for s in pack.get("similar") or []:
        out[s["id"]] = f"similar incident {s.get('incident_id')}: {s.get('title')}"
    return out


def cited(summary: Mapping[str, Any] | None, index: Mapping[str, str]) -> list[tuple[str, str]]:
    if not summary:
        return []
    return [(c, index.get(c, "(not in the evidence pack)")) for c in summary.get("cited") or []]


@dataclass
class Escalation:
    """An incident's escalation as the store holds it (see routing/escalation.py)."""
    policy: str
    steps: int
    fired: int
    done: bool
    next_due: float | None
    fired_at: list[tuple[int, float]]  # (level number, when), for the steps whose time can be told
    stopped: str = ""


@dataclass
class Chart:
    width: int
    height: int
    left: int
    rows: list[dict[str, Any]]
    markers: list[dict[str, Any]]
    ticks: list[dict[str, Any]]
    start: float
    end: float
    hidden: int = 0  # members beyond MAX_ROWS


MAX_ROWS = 60  # chart rows; an incident with more members lists them all in the member table
ROW_H = 26
TOP = 40
TICK_STEPS = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]
LEFT = 280
WIDTH = 900


def _label_lanes(markers: list[dict[str, Any]]) -> None:
    """Marker labels go in one of two lines above the chart, so that labels of nearby markers do not overlap."""
    ends = [float("-inf"), float("-inf")]
    for m in sorted(markers, key=lambda m: m["x"]):
        width = 7.0 * len(m["label"]) + 8
        lane = 0 if m["x"] >= ends[0] else (1 if m["x"] >= ends[1] else 0)
        m["ly"] = 14 if lane == 0 else 28
        m["anchor"], m["lx"] = ("end", m["x"] - 3) if m["x"] + width > WIDTH else ("start", m["x"] + 3)
        ends[lane] = m["x"] + width


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def timeline_chart(snap: Mapping[str, Any], now: float, escalations: list[Escalation] | None = None) -> Chart:
    """The timeline chart: one row per alert series (member), a bar from onset to resolution (or now), the
    root-cause candidate's rows marked, and markers for acknowledgements, snoozes, resolution and escalation
    steps. Coordinates are in SVG user units; the template draws them."""
    members = list(snap.get("members") or [])[:MAX_ROWS]
    root = (snap.get("root_causes") or [None])[0]
    events = [t for t in snap.get("timeline") or [] if t.get("event") in
              ("acknowledged", "unacknowledged", "snoozed", "resolved", "reopened", "marked_noise", "merged", "split")]
    esc_points = [(lvl, t, e.policy) for e in escalations or [] for lvl, t in e.fired_at]
    esc_next = [(e.fired + 1, e.next_due, e.policy) for e in escalations or [] if e.next_due is not None and not e.done]
    times = [m["starts_at"] for m in members] + [m["ends_at"] for m in members if m.get("ends_at")]
    times += [t["ts"] for t in events] + [p[1] for p in esc_points] + [p[1] for p in esc_next]
    start = min(times, default=now)
    end = max(times + [now if snap.get("state") != "resolved" else start])
    end = max(end, start + 60.0)
    end += (end - start) * 0.03  # room for the last marker
    span = end - start
    plot_w = WIDTH - LEFT - 40

    def x(t: float) -> float:
        return round(LEFT + (t - start) / span * plot_w, 1)

    rows = []
    for i, m in enumerate(members):
        y = TOP + i * ROW_H
        stop = m.get("ends_at") or (now if m.get("status") == "firing" else m["starts_at"])
        x0, x1 = x(m["starts_at"]), x(max(stop, m["starts_at"]))
        root_row = is_root(m, root)
        rows.append({
            "y": y, "x": x0, "w": max(3.0, round(x1 - x0, 1)), "label": _short(member_name(m), 32),
            "root": root_row, "status": m.get("status", "firing"), "fingerprint": m.get("fingerprint", ""),
            "title": f"{member_name(m)}: {fmt_time(m['starts_at'])} – "
                     + (fmt_time(m.get("ends_at")) if m.get("ends_at") else "still firing")
                     + (" (root cause)" if root_row else ""),
        })
    bottom = TOP + max(1, len(members)) * ROW_H
    markers = []
    for t in events:
        markers.append({"x": x(t["ts"]), "kind": t["event"], "label": t["event"].replace("_", " "),
                        "title": f"{fmt_time(t['ts'])}: {t.get('detail', '')}"})
    for lvl, t, policy in esc_points:
        markers.append({"x": x(t), "kind": "escalation", "label": f"L{lvl}",
                        "title": f"{fmt_time(t)}: escalation {policy} level {lvl} paged"})
    for lvl, t, policy in esc_next:
        markers.append({"x": x(t), "kind": "escalation-next", "label": f"L{lvl}?",
                        "title": f"{fmt_time(t)}: escalation {policy} level {lvl} due"})
    if snap.get("state") != "resolved" and start <= now <= end:
        markers.append({"x": x(now), "kind": "now", "label": "now", "title": f"now: {fmt_time(now)}"})
    _label_lanes(markers)
    step = next((st for st in TICK_STEPS if span / st <= 6), TICK_STEPS[-1])
    ticks = [{"x": x(start), "label": fmt_time(start)[11:19], "anchor": "start"}]
    k = 1
    while start + k * step <= end and k < 40:
        ticks.append({"x": x(start + k * step), "label": "+" + fmt_span(k * step), "anchor": "middle"})
        k += 1
    return Chart(WIDTH, bottom + 34, LEFT, rows, markers, ticks, start, end,
                 max(0, len(snap.get("members") or []) - MAX_ROWS))


def escalation_from_state(policy_name: str, policy: Any, raw: Mapping[str, str], due: float | None,
                          state: str) -> Escalation:
    """Read an escalation hash (step, done) and its due time into what the page shows. A fired step's time is
    known backwards from the next due time (each step schedules the next one `delay` after it fired)."""
    steps = policy.steps
    fired = int(raw.get("step", 0) or 0)
    done = str(raw.get("done", "0")) == "1"
    fired_at: list[tuple[int, float]] = []
    if due is not None and not done and 0 < fired < steps:
        t = due - policy.level(fired).delay
        for s in range(fired - 1, -1, -1):
            fired_at.append((s % len(policy.levels) + 1, t))
            if s == 0:
                break
            t -= policy.level(s).delay
        fired_at.reverse()
    stopping = state in ("acknowledged", "resolved")  # the next due check stops it without paging
    stopped = f"stopped: {state}" if stopping else ("finished" if done else "")
    return Escalation(policy_name, steps, min(fired, steps), done or stopping, None if done or stopping else due,
                      fired_at, stopped)


# ------------------------------------------------------------------------------------------------- silences

def matchers_text(labels: Mapping[str, str], skip: Iterable[str] = ()) -> str:
    """An alert's labels as Alertmanager matchers: {alertname="X", service="y"} (the silence form's default)."""
    skip = set(skip)
    return "{" + ", ".join(f"{k}={go_quote(v)}" for k, v in sorted(labels.items()) if k not in skip) + "}"


def silence_body(matchers: list[Matcher], starts: float, ends: float, who: str, comment: str) -> dict[str, Any]:
    """A PostableSilence (API v2) from parsed matchers."""
    from service.core.clock import to_rfc3339

    return {"matchers": [{"name": m.name, "value": m.value, "isRegex": m.op in ("=~", "!~"),
                          "isEqual": m.op in ("=", "=~")} for m in matchers],
            "startsAt": to_rfc3339(starts), "endsAt": to_rfc3339(ends), "createdBy": who, "comment": comment}


def preview(matchers: list[Matcher], alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The current alerts a silence with these matchers would mute."""
    if not matchers:
        return []
    return [a for a in alerts if all(m.matches(a["labels"]) for m in matchers)]


def silence_matchers_text(s: Mapping[str, Any]) -> str:
    ops = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return ", ".join(f"{m['name']}{ops[(m['isRegex'], m['isEqual'])]}{go_quote(m['value'])}"
                     for m in s.get("matchers") or [])
