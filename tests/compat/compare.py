"""Normalise captured webhook notifications and compare two targets' outputs.

Per receiver, per groupKey, the ordered list of notifications is compared: count, groupKey, status,
receiver, groupLabels, commonLabels, commonAnnotations, and per alert (in order): labels, annotations,
status, fingerprint, generatorURL, startsAt and endsAt. Timestamps are offsets from T0; one the scenario
stated is compared to the millisecond, one a target made up (a missing startsAt = receipt time, a
resolve_timeout endsAt) within TIME_TOLERANCE. Arrival times must agree within ARRIVAL_TOLERANCE.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .harness import Captured, RunResult

TIME_TOLERANCE = 0.6
ARRIVAL_TOLERANCE = 0.75
EXPECT_LATE = 0.95  # how much later than its documented second Alertmanager may send
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_ts(s: str | None, t0: float) -> float | None:
    """RFC 3339 (any fraction length) -> offset from T0 in seconds, ms precision; Go's zero time -> None."""
    if not s or s.startswith("0001-01-01"):
        return None
    m = _TS.match(s)
    if not m:
        return float("nan")
    base, frac, tz = m.groups()
    dt = datetime.fromisoformat(base + ("+00:00" if tz == "Z" else tz)).astimezone(timezone.utc)
    t = dt.timestamp() + (float("0." + frac) if frac else 0.0)
    return round(t - t0, 3)


def normalise(c: Captured, t0: float) -> dict[str, Any]:
    b = c.body
    return {
        "at": c.at,
        "path": c.receiver,
        "contentType": c.content_type,
        "version": b.get("version"),
        "groupKey": b.get("groupKey"),
        "status": b.get("status"),
        "receiver": b.get("receiver"),
        "truncatedAlerts": b.get("truncatedAlerts"),
        "groupLabels": b.get("groupLabels"),
        "commonLabels": b.get("commonLabels"),
        "commonAnnotations": b.get("commonAnnotations"),
        "alerts": [
            {
                "labels": a.get("labels"),
                "annotations": a.get("annotations"),
                "status": a.get("status"),
                "fingerprint": a.get("fingerprint"),
                "generatorURL": a.get("generatorURL"),
                "startsAt": parse_ts(a.get("startsAt"), t0),
                "endsAt": parse_ts(a.get("endsAt"), t0),
            }
            for a in b.get("alerts") or []
        ],
    }


def grouped(notes: list[Captured], t0: float) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(receiver path, groupKey) -> notifications in arrival order."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in sorted(notes, key=lambda c: c.at):
        n = normalise(c, t0)
        out.setdefault((n["path"], str(n["groupKey"])), []).append(n)
    return out


def _kv(d: dict[str, str] | None) -> str:
    if d is None:
        return "<missing>"
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(d.items())) + "}"


def _t(x: float | None) -> str:
    return "-" if x is None else f"{x:+.3f}"


def render(notes: list[Captured], t0: float) -> str:
    """One target's notifications, readable: grouped by receiver and groupKey, in arrival order."""
    lines: list[str] = []
    for (path, gk), ns in sorted(grouped(notes, t0).items()):
        lines.append(f"  receiver path {path!r}  groupKey {gk}")
        for i, n in enumerate(ns, 1):
            lines.append(f"    #{i} @{n['at']:.2f}s {n['status']} receiver={n['receiver']!r} "
                         f"groupLabels={_kv(n['groupLabels'])} commonLabels={_kv(n['commonLabels'])} "
                         f"commonAnnotations={_kv(n['commonAnnotations'])}")
            for a in n["alerts"]:
                lines.append(f"        {a['status']:8} {_kv(a['labels'])} ann={_kv(a['annotations'])} "
                             f"fp={a['fingerprint']} starts={_t(a['startsAt'])} ends={_t(a['endsAt'])}")
    return "\n".join(lines) or "  (no notifications)"


def _time_eq(a: float | None, b: float | None, given: set[float]) -> bool:
    if a is None or b is None:
        return a is b
    if a in given or b in given:
        return abs(a - b) < 0.0015
    return abs(a - b) <= TIME_TOLERANCE


def normalise_snapshot(alerts: Any, silences: Any, t0: float, silence_names: dict[str, str]) -> dict[str, Any]:
    """GET /api/v2/alerts and /api/v2/silences answers, keyed by fingerprint / scenario silence name."""
    out: dict[str, Any] = {"alerts": {}, "silences": {}}
    if not isinstance(alerts, list):
        out["alerts"] = alerts
    else:
        for a in alerts:
            st = a.get("status") or {}
            out["alerts"][a.get("fingerprint")] = {
                "labels": a.get("labels"), "annotations": a.get("annotations"),
                "generatorURL": a.get("generatorURL"),
                "startsAt": parse_ts(a.get("startsAt"), t0), "endsAt": parse_ts(a.get("endsAt"), t0),
                "state": st.get("state"),
                "silencedBy": sorted(silence_names.get(i, i) for i in st.get("silencedBy") or []),
                "inhibitedBy": sorted(st.get("inhibitedBy") or []),
                "receivers": sorted(r.get("name") for r in a.get("receivers") or []),
            }
    if silences is None:
        pass
    elif not isinstance(silences, list):
        out["silences"] = silences
    else:
        for s in silences:
            name = silence_names.get(s.get("id"), s.get("id"))
            out["silences"][name] = {
                "matchers": sorted((m.get("name"), m.get("value"), bool(m.get("isRegex")), m.get("isEqual", True))
                                   for m in s.get("matchers") or []),
                "state": (s.get("status") or {}).get("state"),
                "createdBy": s.get("createdBy"), "comment": s.get("comment"),
                "endsAt": parse_ts(s.get("endsAt"), t0),
            }
    return out


def _snapshot_diffs(result: RunResult, given: set[float]) -> list[str]:
    left, right = result.runs
    diffs: list[str] = []
    if [n for n, _, _ in left.snapshots] != [n for n, _, _ in right.snapshots]:
        return [f"snapshots taken differ: {[n for n, _, _ in left.snapshots]} vs {[n for n, _, _ in right.snapshots]}"]
    for (name, la, ls), (_, ra, rs) in zip(left.snapshots, right.snapshots):
        a = normalise_snapshot(la, ls, result.t0, left.silence_names)
        b = normalise_snapshot(ra, rs, result.t0, right.silence_names)
        for kind in ("alerts", "silences"):
            x, y = a[kind], b[kind]
            if not isinstance(x, dict) or not isinstance(y, dict):
                if x != y:
                    diffs.append(f"snapshot {name} GET {kind}: {left.label}={x!r} {right.label}={y!r}")
                continue
            for key in sorted(set(x) | set(y), key=str):
                if key not in x or key not in y:
                    diffs.append(f"snapshot {name} GET {kind}: {key} only from "
                                 f"{left.label if key in x else right.label}: {x.get(key) or y.get(key)}")
                    continue
                for f in x[key]:
                    if f in ("startsAt", "endsAt"):
                        ok = _time_eq(x[key][f], y[key][f], given)
                    else:
                        ok = x[key][f] == y[key][f]
                    if not ok:
                        diffs.append(f"snapshot {name} GET {kind} {key} ({_kv(x[key].get('labels'))}): {f} "
                                     f"{left.label}={x[key][f]!r} {right.label}={y[key][f]!r}")
    return diffs


def differences(result: RunResult) -> list[str]:
    """Every way the second run differs from the first (empty when they agree)."""
    left, right = result.runs
    L, R, t0 = left.label, right.label, result.t0
    given = result.scenario.given_times()
    diffs: list[str] = []
    lsteps = [(at, what, st) for at, what, st in left.steps]
    rsteps = [(at, what, st) for at, what, st in right.steps]
    if lsteps != rsteps:
        diffs.append(f"API answers differ: {L}={lsteps} {R}={rsteps}")
    diffs += _snapshot_diffs(result, given)
    lg, rg = grouped(left.notifications, t0), grouped(right.notifications, t0)
    for key in sorted(set(lg) | set(rg)):
        path, gk = key
        where = f"receiver {path!r} groupKey {gk}"
        ln, rn = lg.get(key, []), rg.get(key, [])
        if len(ln) != len(rn):
            diffs.append(f"{where}: {len(ln)} notification(s) from {L} at {[n['at'] for n in ln]}, "
                         f"{len(rn)} from {R} at {[n['at'] for n in rn]}")
            continue
        for i, (a, b) in enumerate(zip(ln, rn), 1):
            w = f"{where} #{i}"
            if abs(a["at"] - b["at"]) > ARRIVAL_TOLERANCE:
                diffs.append(f"{w}: arrived at {a['at']:.2f}s ({L}) vs {b['at']:.2f}s ({R})")
            for f in ("contentType", "version", "status", "receiver", "truncatedAlerts", "groupLabels", "commonLabels",
                      "commonAnnotations"):
                if a[f] != b[f]:
                    diffs.append(f"{w}: {f} {L}={a[f]!r} {R}={b[f]!r}")
            fa = [x["fingerprint"] for x in a["alerts"]]
            fb = [x["fingerprint"] for x in b["alerts"]]
            if fa != fb:
                diffs.append(f"{w}: alerts (fingerprints, in order) {L}={fa} {R}={fb}; labels "
                             f"{L}={[_kv(x['labels']) for x in a['alerts']]} "
                             f"{R}={[_kv(x['labels']) for x in b['alerts']]}")
                continue
            for x, y in zip(a["alerts"], b["alerts"]):
                aw = f"{w} alert {_kv(x['labels'])}"
                for f in ("labels", "annotations", "status", "generatorURL"):
                    if x[f] != y[f]:
                        diffs.append(f"{aw}: {f} {L}={x[f]!r} {R}={y[f]!r}")
                for f in ("startsAt", "endsAt"):
                    if not _time_eq(x[f], y[f], given):
                        diffs.append(f"{aw}: {f} (offset s) {L}={_t(x[f])} {R}={_t(y[f])}")
    return diffs


def explain(result: RunResult) -> str:
    """The assertion message: the differences, then both sides in full."""
    left, right = result.runs
    out = [f"scenario {result.scenario.name!r}: {left.kind} ({left.label}) and {right.kind} ({right.label}) differ:"]
    out += [f" - {d}" for d in differences(result)]
    for r in (left, right):
        out.append(f"\n{r.kind} ({r.label}) sent; API answers {r.steps}:")
        out.append(render(r.notifications, result.t0))
    for r in (left, right):
        if r.kind == "tocsin" and r.log_tail:
            out.append(f"\n{r.label} log tail:\n{r.log_tail[-1500:]}")
    return "\n".join(out)


def _short(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def expectation_mismatch(notes: list[Captured], t0: float, expect: tuple[str, ...], late: float) -> str | None:
    """Why the notifications do not match the scenario's documented summary, or None when they do.

    Each `@N` of `expect` must be met by an arrival no earlier than N - ARRIVAL_TOLERANCE and less than a second
    after N, plus `late`: how far behind its offsets the driver reached the target (a loaded machine starts every
    timer that much later). The scenarios' timers are a second apart or more, so a wrong tick still fails.
    """
    rows = _summary_rows(notes, t0)
    got = tuple(text for _, text in rows)
    unmatched = list(rows)
    why = None
    for e in expect:  # each expected row takes the earliest same-content arrival in its time window
        want, _, rest = e.partition(" ")
        hit = next((r for r in unmatched if r[1].partition(" ")[2] == rest
                    and -ARRIVAL_TOLERANCE <= r[0] - float(want[1:]) < EXPECT_LATE + late), None)
        if hit is None:
            why = f"nothing matched {e!r} (the driver was up to {late:.2f}s late)"
            break
        unmatched.remove(hit)
    if why is None and unmatched:
        why = f"unexpected {[text for _, text in unmatched]}"
    return None if why is None else why + "; summary:\n" + "\n".join(got)


def _summary_rows(notes: list[Captured], t0: float) -> list[tuple[float, str]]:
    rows = []
    for c in notes:
        n = normalise(c, t0)
        alerts = " ".join(("+" if a["status"] == "firing" else "-") + "{" + _short(a["labels"] or {}) + "}"
                          for a in n["alerts"])
        rows.append((round(c.at), n["path"], str(n["groupKey"]), c.at,
                     f"@{round(c.at)} {n['path']} {{{_short(n['groupLabels'] or {})}}} {n['status']}: {alerts}"))
    return [(r[3], r[4]) for r in sorted(rows)]


def summarise(notes: list[Captured], t0: float) -> tuple[str, ...]:
    """A compact, timing-robust summary: `@<second> <path> <groupLabels> <status>: +firing -resolved`."""
    return tuple(text for _, text in _summary_rows(notes, t0))
