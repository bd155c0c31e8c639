"""Score `tocsin replay` output (one notification JSON per line) against a scenario's ground truth.

Definitions (per scenario; "overall" pools the scenarios):
- an *alert* is one ground-truth episode: a series (service, instance, name) firing from start to end.
  A notified alert is mapped to its episode by series and start time. `name` is the `metric` label (or
  `__name__`/`metric_name`) when present, else `alertname`;
- a *new notification* is a firing notification that is not an update: with an incident snapshot, the
  first one per (receiver, incident id); without one (Alertmanager), every firing notification, since
  each is a new message. Resolved notifications are not counted;
- each new notification belongs to the real incident holding most of its alerts, or is *noise* if most
  of its alerts are noise; for incident notifications, the alerts of the incident's LAST snapshot count
  (the message is edited in place as the incident grows);
- incident recall: share of real incidents with at least one new notification belonging to them;
- notifications per incident: new notifications belonging to real incidents / real incidents notified;
- compression: alerts (episodes) in / new notifications out;
- purity and adjusted Rand index: each alert's predicted group is the incident id (or group key) of the
  last notification that carried it; purity is over notified alerts (each predicted group counts its
  majority true class), ARI over all alerts (never-notified alerts are singletons; noise alerts are each
  their own true class);
- root-cause hit@1 / hit@3: in the snapshot holding most of the incident's alerts (its main fragment;
  the latest such), a candidate among the first 1 / 3 has the true metric name and the true entity or
  service;
- time to notify: first new notification belonging to an incident minus the incident's start (negative
  when the incident grew out of an earlier notified alert).
"""
from __future__ import annotations

import bisect
import json
import statistics
import sys
from collections import Counter, defaultdict
from typing import Any

from sklearn.metrics import adjusted_rand_score

from service.core.clock import parse_rfc3339


def _name(labels: dict[str, str]) -> str:
    return labels.get("metric") or labels.get("__name__") or labels.get("metric_name") or labels.get("alertname", "")


class Truth:
    def __init__(self, truth: dict[str, Any]):
        self.raw = truth
        self.incidents: dict[str, dict[str, Any]] = truth["incidents"]
        self.episodes: list[dict[str, Any]] = truth["episodes"]
        self.by_series: dict[tuple[str, str, str], list[tuple[float, int]]] = defaultdict(list)
        for i, e in enumerate(self.episodes):
            self.by_series[(e["service"], e["instance"], e["name"])].append((e["start"], i))
        for v in self.by_series.values():
            v.sort()

    def episode(self, labels: dict[str, str], starts_at: float | None) -> int | None:
        eps = self.by_series.get((labels.get("service", ""), labels.get("instance", ""), _name(labels)))
        if not eps:
            return None
        if starts_at is None:
            return eps[-1][1]
        i = bisect.bisect_right(eps, (starts_at + 1.0, len(self.episodes))) - 1
        return eps[max(0, i)][1]

    def label(self, ep: int) -> str:
        inc = self.episodes[ep]["incident"]
        return inc if inc else f"noise-{ep}"


def _alerts_of(n: dict[str, Any]) -> list[tuple[dict[str, str], float | None]]:
    inc = n.get("incident")
    if inc and inc.get("members") is not None:
        return [(m["labels"], m.get("starts_at")) for m in inc["members"]]
    return [(a["labels"], parse_rfc3339(a.get("startsAt", ""))) for a in n.get("alerts", [])]


def _final_owners(notifications: list[dict[str, Any]], truth: Truth) -> dict[str, str]:
    """incident id -> the true incident (or noise label) most of its alerts belong to, by its last snapshot: an
    incident's message is edited in place, so it is judged by what it finally says."""
    final_owner: dict[str, str] = {}
    for n in notifications:
        inc = n.get("incident")
        if inc:
            eps = [e for e in (truth.episode(lb, st) for lb, st in _alerts_of(n)) if e is not None]
            if eps:
                final_owner[inc["id"]] = Counter(truth.label(e) for e in eps).most_common(1)[0][0]
    return final_owner


def _root_cause_hits(real: dict[str, Any], last_snapshot: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    """(incidents whose first ranked cause is the true one, those with it in the top 3, incidents)."""
    hits1 = hits3 = rc_total = 0
    for i, inc in real.items():
        rc_total += 1
        snap = last_snapshot.get(i)
        if not snap:
            continue
        want = inc["root_cause"]
        ranked = snap.get("root_causes") or []
        ok = [c["metric"] == want["metric"] and (c.get("entity") == want["entity"] or c.get("service") == want["service"])
              for c in ranked[:3]]
        hits1 += bool(ok[:1] and ok[0])
        hits3 += any(ok)
    return hits1, hits3, rc_total


def _purity(true_lab: list[str], last_group: dict[int, str]) -> float | None:
    """Share of notified alerts whose last group's majority is their own true incident."""
    clusters: dict[str, Counter[str]] = defaultdict(Counter)
    for i, lab in enumerate(true_lab):
        if i in last_group:
            clusters[last_group[i]][lab] += 1
    n_notified = sum(sum(c.values()) for c in clusters.values())
    return sum(c.most_common(1)[0][1] for c in clusters.values()) / n_notified if n_notified else None


def score(notifications: list[dict[str, Any]], truth_json: dict[str, Any]) -> dict[str, Any]:
    truth = Truth(truth_json)
    seen_incident: set[tuple[str, str]] = set()
    new: list[tuple[dict[str, Any], str]] = []  # (notification, owner label)
    last_group: dict[int, str] = {}
    last_snapshot: dict[str, dict[str, Any]] = {}
    best_size: dict[str, int] = {}
    # replay prints RFC 3339 event times; accept epoch seconds too
    from service.core.clock import parse_rfc3339

    notifications = [dict(n, timestamp=n["timestamp"] if isinstance(n["timestamp"], (int, float))
                          else parse_rfc3339(n["timestamp"])) for n in notifications]
    notifications = sorted(notifications, key=lambda n: n["timestamp"])
    final_owner = _final_owners(notifications, truth)
    for n in notifications:
        eps = [truth.episode(lb, st) for lb, st in _alerts_of(n)]
        eps = [e for e in eps if e is not None]
        inc = n.get("incident")
        group = f"incident:{inc['id']}" if inc else n.get("group_key", "")
        for e in eps:
            last_group[e] = group
        if not eps:
            continue
        owner = final_owner[inc["id"]] if inc else Counter(truth.label(e) for e in eps).most_common(1)[0][0]
        if inc and owner in truth.incidents:
            # The incident's main fragment: the snapshot holding most of its alerts (latest on ties).
            mine = sum(1 for e in eps if truth.label(e) == owner)
            if mine >= best_size.get(owner, 0):
                best_size[owner] = mine
                last_snapshot[owner] = inc
        if n.get("status") != "firing":
            continue
        if inc:
            key = (n.get("receiver", ""), inc["id"])
            if key in seen_incident:
                continue
            seen_incident.add(key)
        new.append((n, owner))

    real = truth.incidents
    per_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)
    noise_notes = 0
    for n, owner in new:
        if owner in real:
            per_incident[owner].append(n)
        else:
            noise_notes += 1
    notified = [i for i in real if per_incident.get(i)]
    delays = [min(n["timestamp"] for n in per_incident[i]) - real[i]["start"] for i in notified]

    hits1, hits3, rc_total = _root_cause_hits(real, last_snapshot)
    n_eps = len(truth.episodes)
    true_lab = [truth.label(i) for i in range(n_eps)]
    pred_lab = [last_group.get(i, f"unnotified-{i}") for i in range(n_eps)]
    purity = _purity(true_lab, last_group)
    return {
        "alerts_in": n_eps,
        "real_incidents": len(real),
        "new_notifications": len(new),
        "incident_recall": len(notified) / len(real) if real else None,
        "notifications_per_incident": (sum(len(v) for v in per_incident.values()) / len(notified)) if notified else None,
        "noise_notifications": noise_notes,
        "compression": n_eps / len(new) if new else None,
        "purity": purity,
        "ari": adjusted_rand_score(true_lab, pred_lab),
        "rootcause_hit1": hits1 / rc_total if rc_total and last_snapshot else None,
        "rootcause_hit3": hits3 / rc_total if rc_total and last_snapshot else None,
        "time_to_notify_median_s": statistics.median(delays) if delays else None,
        "time_to_notify_max_s": max(delays) if delays else None,
        "missed": sorted(set(real) - set(notified)),
    }


def pool(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Overall figures: sums for counts, incident-weighted means for rates."""
    rs = list(results.values())
    if not rs:
        return {}
    inc = sum(r["real_incidents"] for r in rs)
    new = sum(r["new_notifications"] for r in rs)

    def wmean(key: str, weight: str = "real_incidents") -> float | None:
        pairs = [(r[key], r[weight]) for r in rs if r[key] is not None]
        tw = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / tw if tw else None

    return {
        "alerts_in": sum(r["alerts_in"] for r in rs), "real_incidents": inc, "new_notifications": new,
        "incident_recall": wmean("incident_recall"), "notifications_per_incident": wmean("notifications_per_incident"),
        "noise_notifications": sum(r["noise_notifications"] for r in rs),
        "compression": sum(r["alerts_in"] for r in rs) / new if new else None,
        "purity": wmean("purity", "alerts_in"), "ari": wmean("ari", "alerts_in"),
        "rootcause_hit1": wmean("rootcause_hit1"), "rootcause_hit3": wmean("rootcause_hit3"),
        "time_to_notify_median_s": statistics.median([r["time_to_notify_median_s"] for r in rs
                                                      if r["time_to_notify_median_s"] is not None] or [0]),
        "time_to_notify_max_s": max([r["time_to_notify_max_s"] for r in rs if r["time_to_notify_max_s"] is not None] or [0]),
        "missed": [m for r in rs for m in r["missed"]],
    }


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bench.correlation.scorer REPLAY_OUTPUT.jsonl TRUTH.json")
    with open(sys.argv[1]) as fh:
        notes = [json.loads(x) for x in fh if x.strip()]
    with open(sys.argv[2]) as fh:
        truth = json.load(fh)
    print(json.dumps(score(notes, truth), indent=1))


if __name__ == "__main__":
    main()
