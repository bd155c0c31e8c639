"""Offline driver: replay a scenario through IncidentStore (or an Alertmanager-style grouper) without the
full pipeline, writing notifications in `tocsin replay`'s output format. Stand-in until `tocsin replay`
exists, and the way to evaluate correlation directly.

Tocsin mode (what the pipeline is expected to do with incidents; stated so it can be checked):
- every posted alert/event is assigned (re-sends take the store's fast path); a resolution calls
  on_alert_resolved; the store ticks every 30 s of event time;
- an incident's first notification is considered 30 s (group_wait) after it opens and re-considered
  every 60 s while it is held: it is held while flapping or while its confidence is below 0.4;
  an incident that resolves while held is never notified (like Alertmanager inside group_wait);
- after the first notification, changes (members, severity) are sent as updates at most every 60 s,
  and one notification when it resolves. Updates and resolutions are not new notifications.
Baseline mode: Alertmanager grouping with group_by [service], group_wait 30 s, group_interval 5 m,
repeat_interval 4 h, send_resolved true; every notification it sends is a new message.
"""
from __future__ import annotations

import heapq
import json
import time
from typing import Any, Iterable

from redis.asyncio import Redis

from service.core.clock import ManualClock, parse_rfc3339, to_rfc3339
from service.incidents.correlation import CorrelationConfig
from service.incidents import IncidentStore
from service.core.models import Alert

GROUP_WAIT, GROUP_INTERVAL, REPEAT = 30.0, 300.0, 4 * 3600.0
HOLD_CONFIDENCE = 0.4
RESOLVE_TIMEOUT = 300.0


def to_alert(line: dict[str, Any], first_seen: dict[str, float]) -> Alert:
    """One replay line as the Alert the pipeline would build (events: alertname AnomalyDetected)."""
    if line.get("kind") == "event":
        labels = {"alertname": "AnomalyDetected", "metric": line["metric"], **line["labels"]}
        a = Alert(labels=labels, source="detector",
                  detector={k: line.get(k) for k in ("metric", "value", "score", "detector", "expected", "lower",
                                                     "upper", "anomalous")})
        ts = line["timestamp"]
        if line.get("anomalous", True):
            a.starts_at = first_seen.setdefault(a.fingerprint, ts)
            a.ends_at = ts + RESOLVE_TIMEOUT
        else:
            a.starts_at = first_seen.pop(a.fingerprint, ts)
            a.ends_at = ts
        a.annotations = {"summary": f"{line['metric']} anomalous on {line['labels'].get('service', '')}"}
        return a
    starts = parse_rfc3339(line.get("startsAt", "")) or line["timestamp"]
    ends = parse_rfc3339(line.get("endsAt", "")) or line["timestamp"] + RESOLVE_TIMEOUT
    return Alert(labels=dict(line["labels"]), annotations=dict(line.get("annotations", {})), starts_at=starts,
                 ends_at=ends, generator_url=line.get("generatorURL", ""))


def alert_out(a: Alert) -> dict[str, Any]:
    return {"labels": a.labels, "annotations": a.annotations, "fingerprint": a.fingerprint,
            "startsAt": to_rfc3339(a.starts_at), "endsAt": to_rfc3339(a.ends_at if a.ends_at else None)}


class _TocsinRun:
    """The Tocsin mode's state while a scenario is replayed: the store, its clock, the timers of first
    notifications and updates (a heap by due time), and what was sent."""

    def __init__(self, redis: Redis, prefix: str, cfg: CorrelationConfig, receiver: str):
        self.clock = ManualClock(0)
        self.store = IncidentStore(redis, prefix, self.clock, cfg, external_url="http://tocsin")
        self.receiver = receiver
        self.out: list[dict[str, Any]] = []
        self.first_seen: dict[str, float] = {}
        self.alerts: dict[str, Alert] = {}
        self.timers: list[tuple[float, int, str, str]] = []  # (due, seq, kind, incident id)
        self.seq = 0
        self.state: dict[str, dict[str, Any]] = {}  # iid -> {notified, last_sig}
        self.next_tick: float | None = None

    def push(self, t: float, kind: str, iid: str) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (t, self.seq, kind, iid))

    async def notify(self, iid: str, t: float, reason: str) -> None:
        snap = await self.store.get(iid)
        members = [self.alerts[m["fingerprint"]] for m in snap["members"] if m["fingerprint"] in self.alerts]
        self.out.append({"receiver": self.receiver, "group_key": f"incident:{iid}",
                         "status": "resolved" if snap["state"] == "resolved" else "firing", "timestamp": t,
                         "alerts": [alert_out(a) for a in members], "incident": snap, "reason": reason})
        self.state[iid]["last_sig"] = (len(snap["members"]), snap["severity"])

    async def tick(self, nt: float) -> None:
        """The store's lifecycle tick at `nt`: an incident that resolves after being notified says so."""
        self.clock.set(nt)
        for iid in await self.store.tick(nt):
            st = self.state.get(iid)
            snap = await self.store.get(iid)
            if st and st["notified"] and snap["state"] == "resolved":
                await self.notify(iid, nt, "incident resolved")
        self.next_tick = nt + 30.0

    async def fire(self) -> None:
        """The earliest timer: a first notification (held while flapping or unsure) or an update."""
        tt, _, kind, iid = heapq.heappop(self.timers)
        self.clock.set(tt)
        st = self.state[iid]
        snap = await self.store.get(iid)
        if snap["state"] == "resolved" or snap.get("merged_into"):
            return
        if not st["notified"]:
            if snap["flapping"] or snap["confidence"] < HOLD_CONFIDENCE:
                self.push(tt + 60.0, "first", iid)
                return
            st["notified"] = True
            await self.notify(iid, tt, "incident opened")
        elif (len(snap["members"]), snap["severity"]) != st["last_sig"]:
            await self.notify(iid, tt, "incident updated")

    async def due(self, t: float) -> None:
        """Everything due up to `t`, ticks and timers in time order (a tick first on a tie)."""
        while True:
            nt = self.next_tick if self.next_tick is not None and self.next_tick <= t else None
            nd = self.timers[0][0] if self.timers and self.timers[0][0] <= t else None
            if nt is None and nd is None:
                return
            if nd is None or (nt is not None and nt <= nd):
                await self.tick(nt)
            else:
                await self.fire()

    async def take(self, line: dict[str, Any]) -> float:
        """One input line at its event time; returns the seconds spent in the store."""
        t = line["timestamp"]
        await self.due(t)
        self.clock.set(t)
        if self.next_tick is None:
            self.next_tick = t + 30.0
        a = to_alert(line, self.first_seen)
        self.alerts[a.fingerprint] = a
        t0 = time.perf_counter()
        if a.resolved_at(t):
            await self.store.on_alert_resolved(a)
        else:
            iid, decision, created = await self.store.assign(a)
            if created or (decision.reopen and not self.state.get(iid, {}).get("notified")):
                # New, or a never-notified incident reopened: consider its first notification.
                self.state[iid] = {"notified": False, "last_sig": None}
                self.push(t + GROUP_WAIT, "first", iid)
            elif iid in self.state and self.state[iid]["notified"] and decision.detail != "known member, unchanged":
                self.push(t + 60.0, "update", iid)
        return time.perf_counter() - t0


async def run_tocsin(redis: Redis, prefix: str, lines: Iterable[dict[str, Any]], cfg: CorrelationConfig,
                     receiver: str = "oncall") -> tuple[list[dict[str, Any]], dict[str, float]]:
    run = _TocsinRun(redis, prefix, cfg, receiver)
    n_lines = 0
    t_wall = time.perf_counter()
    assign_time = 0.0
    t = 0.0
    for line in lines:
        n_lines += 1
        t = line["timestamp"]
        assign_time += await run.take(line)
    if n_lines:
        await run.due(t + 3 * 3600)  # let incidents resolve and their last notifications go out
    stats = {"lines": n_lines, "wall_s": time.perf_counter() - t_wall, "store_s": assign_time}
    return run.out, stats


def run_alertmanager(lines: Iterable[dict[str, Any]], group_by: str = "service",
                     receiver: str = "oncall") -> list[dict[str, Any]]:
    """Alertmanager's dispatcher for one route: aggregation groups by `group_by`, default timers."""
    out: list[dict[str, Any]] = []
    first_seen: dict[str, float] = {}
    alerts: dict[str, Alert] = {}
    groups: dict[str, dict[str, Any]] = {}

    def flush(key: str, g: dict[str, Any], now: float) -> None:
        members = [alerts[fp] for fp in sorted(g["fps"])]
        firing = {a.fingerprint for a in members if not a.resolved_at(now)}
        resolved = {a.fingerprint for a in members if a.resolved_at(now)}
        first = g["last_notified"] is None
        reason = None
        if first:
            reason = "first flush" if firing else None
        elif firing - g["notified_firing"]:
            reason = "new alerts"
        elif resolved & g["notified_firing"]:
            reason = "resolved alerts" if firing else "all resolved"
        elif firing and now - g["last_notified"] >= REPEAT:
            reason = "repeat interval elapsed"
        if reason:
            out.append({"receiver": receiver, "group_key": f'{{}}:{{{group_by}="{key}"}}',
                        "status": "firing" if firing else "resolved", "timestamp": now,
                        "alerts": [alert_out(a) for a in members], "incident": None, "reason": reason})
            g["last_notified"] = now
            g["notified_firing"] = set(firing)
        # Resolved alerts leave the group once notified; an empty group is deleted.
        g["fps"] -= resolved if (reason or not firing) else set()
        if not g["fps"]:
            del groups[key]
        else:
            g["next"] = now + GROUP_INTERVAL

    def due(t: float) -> None:
        while True:
            ready = [(g["next"], k) for k, g in groups.items() if g["next"] <= t]
            if not ready:
                return
            nt, k = min(ready)
            flush(k, groups[k], nt)

    t = 0.0
    for line in lines:
        t = line["timestamp"]
        due(t)
        a = to_alert(line, first_seen)
        alerts[a.fingerprint] = a
        key = a.labels.get(group_by, "")
        g = groups.get(key)
        if g is None:
            if a.resolved_at(t):
                continue
            g = groups[key] = {"fps": set(), "next": t + GROUP_WAIT, "last_notified": None, "notified_firing": set()}
        g["fps"].add(a.fingerprint)
    due(t + 24 * 3600)
    return out


def read_lines(path: str) -> list[dict[str, Any]]:
    with open(path) as fh:
        return [json.loads(x) for x in fh if x.strip()]
