"""Aggregation groups: routing alerts into groups, and flushing groups into notifications.

This is Alertmanager's dispatcher and notification pipeline with the state in Redis:
- `ingest` stores alerts (merged), makes them members of the aggregation group of every route they match, and
  keeps the group timers (Lua `group_upsert`).
- `flush` runs when a group's timer is due (claimed by exactly one replica): it reads the members, removes
  inhibited, silenced and time-muted alerts, asks the notification log (`needs_update`) per receiver
  integration, and commits the decisions and the notifications to the outbox in one script (`commit_flush`).
"""
from __future__ import annotations

import asyncio
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import structlog
from redis.asyncio import Redis

from routing.receivers.registry import send_resolved_default
from routing.inhibition import inhibited
from routing.route_tree import Route, group_key
from routing.time_intervals import active as interval_active
from routing.silences import Silences

from .alerts import AlertStore, Upserted
from .clock import Clock
from .config import Config
from .models import Alert, Notification
from .notify_log import Entry, needs_incident_update, needs_update
from .store import Keys, Scripts, group_id, ms, queue_script

log = structlog.get_logger("tocsin.dispatch")

GROUP_TTL = 7 * 24 * 3600  # idle group state is dropped after a week without alerts
STATE_TTL = 30 * 24 * 3600


def go_quote_meta(s: str) -> str:
    """Go's regexp.QuoteMeta, which Alertmanager applies to the receiver name in webhook payloads."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s)


def _labels_before(a: dict[str, str], b: dict[str, str]) -> int:
    """prometheus/common LabelSet.Before: fewer labels first, then by name and value."""
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    for n in sorted(set(a) | set(b)):
        if n not in a:
            return -1
        if n not in b:
            return 1
        if a[n] != b[n]:
            return -1 if a[n] < b[n] else 1
    return 0


def _alert_cmp(x: Alert, y: Alert) -> int:
    """Alertmanager's AlertSlice order: by job, then instance (present before absent), then LabelSet.Before."""
    for name in ("job", "instance"):
        xv, yv = x.labels.get(name), y.labels.get(name)
        if xv is None and yv is None:
            continue
        if xv is None:
            return 1
        if yv is None:
            return -1
        if xv != yv:
            return -1 if xv < yv else 1
    return _labels_before(x.labels, y.labels)


alert_sort_key = functools.cmp_to_key(_alert_cmp)


@dataclass
class Integration:
    id: str  # "<receiver>/<kind>/<index>"
    receiver: str
    kind: str
    send_resolved: bool
    max_alerts: int = 0


def integrations_of(cfg: Config) -> dict[str, list[Integration]]:
    out: dict[str, list[Integration]] = {}
    for name, r in cfg.receivers.items():
        lst = []
        counts: dict[str, int] = {}
        for kind, c in r.integrations:
            idx = counts.get(kind, 0)
            counts[kind] = idx + 1
            default_resolved = send_resolved_default(kind)  # Alertmanager: slack, email, wechat default to false
            lst.append(Integration(f"{name}/{kind}/{idx}", name, kind, bool(c.get("send_resolved", default_resolved)),
                                   int(c.get("max_alerts", 0) or 0)))
        out[name] = lst
    return out


@dataclass
class GroupState:
    gid: str
    route: Route | None
    key: str
    labels: dict[str, str]
    members: dict[str, str]  # fp -> generation
    nflog: dict[str, Entry]
    alerts: dict[str, Alert]


@dataclass
class FlushPlan:
    nflog: dict[str, Entry] = field(default_factory=dict)
    notifications: list[Notification] = field(default_factory=list)
    removals: dict[str, str] = field(default_factory=dict)
    next_due: float = 0.0
    route: Route | None = None
    incident: dict[str, Any] | None = None


def incident_group_key(route: Route, incident_id: str) -> str:
    return f'{route.key}:{{incident="{incident_id}"}}'


class Dispatcher:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, cfg: Config, clock: Clock, silences: Silences,
                 on_schedule: Callable[[float], None] | None = None, metrics: Any = None):
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.clock = clock
        self.silences = silences
        self.store = AlertStore(redis, keys, scripts)
        self.on_schedule = on_schedule or (lambda t: None)
        self.metrics = metrics
        self.incidents: Any = None  # service.incidents.IncidentStore when correlation is on
        self.summaries: Any = None  # service.summaries.summarizer.SummaryService when set up
        self.background: set[Any] = set()
        self.before_commit: list[Any] = []  # async callbacks(plan) run after deciding, before committing
        self.set_config(cfg)

    def set_config(self, cfg: Config) -> None:
        self.cfg = cfg
        self.routes = {r.id: r for r in cfg.route.walk()}
        self.integrations = integrations_of(cfg)
        self._route_cache: dict[str, list[tuple[Route, str, str, dict[str, str]]]] = {}
        self.external_url = cfg.tocsin.external_url or f"http://{cfg.tocsin.listen}"

    # -- ingest ---------------------------------------------------------------------------------------------

    def _groups_for(self, a: Alert) -> list[tuple[Route, str, str, dict[str, str]]]:
        cached = self._route_cache.get(a.fingerprint)
        if cached is None:
            cached = []
            for r in self.cfg.route.match(a.labels):
                gl = r.group_labels(a.labels)
                gk = group_key(r, gl)
                cached.append((r, group_id(r.id, gk), gk, gl))
            if len(self._route_cache) > 200_000:
                self._route_cache.clear()
            self._route_cache[a.fingerprint] = cached
        return cached

    def correlates(self, r: Route) -> bool:
        return self.incidents is not None and bool(r.extra.get("correlate", True))

    async def _incident_for(self, a: Alert, now: float) -> str | None:
        if not a.resolved_at(now):
            iid, decision, _created = await self.incidents.assign(a)
            for other in getattr(decision, "absorb", None) or []:
                # Incidents the store folded into this one (a storm's first drops): their alerts move too.
                await self.regroup_incident(other, iid)
            return iid
        return await self.incidents.on_alert_resolved(a) or await self.incidents.incident_of(a)

    async def incident_groups(self, incident_id: str) -> list[str]:
        """Group ids an incident can have (one per correlating route)."""
        return [group_id(r.id, incident_group_key(r, incident_id)) for r in self.cfg.route.walk() if self.correlates(r)]

    async def touch_incident(self, incident_id: str) -> None:
        """Flush an incident's groups now, so people see a state change (ack, severity, summary) at once."""
        now_ms = ms(self.clock.now())
        pipe = self.redis.pipeline(transaction=False)
        for gid in await self.incident_groups(incident_id):
            pipe.zadd(self.keys.due(self.keys.shard_of(gid)), {gid: now_ms}, xx=True)
        await pipe.execute()
        self.on_schedule(now_ms / 1000)

    async def regroup_incident(self, from_iid: str, to_iid: str, fingerprints: list[str] | None = None) -> int:
        """Move alerts' group membership after a manual merge (all of them) or split (the given ones)."""
        now = self.clock.now()
        moved = 0
        for r in self.cfg.route.walk():
            if not self.correlates(r):
                continue
            old_gid = group_id(r.id, incident_group_key(r, from_iid))
            members = await self.redis.hgetall(self.keys.group_members(old_gid))
            fps = [(k.decode() if isinstance(k, bytes) else k) for k in members]
            if fingerprints is not None:
                fps = [fp for fp in fps if fp in set(fingerprints)]
            if not fps:
                continue
            alerts = await self.store.get_many(fps)
            new_gk = incident_group_key(r, to_iid)
            new_gid = group_id(r.id, new_gk)
            pipe = self.redis.pipeline(transaction=False)
            self._queue_group_upserts(pipe, self.keys.shard_of(new_gid), [
                (new_gid, [new_gid, r.id, new_gk, json.dumps({"incident": to_iid}), fp, f"m{ms(now)}",
                           ms(r.opts.group_wait), ms(a.starts_at)]) for fp, a in alerts.items()], ms(now))
            await pipe.execute()
            await self.redis.hdel(self.keys.group_members(old_gid), *fps)
            moved += len(alerts)
        await self.touch_incident(from_iid)
        return moved

    async def ingest(self, alerts: list[Alert]) -> list[Upserted]:
        """Store alerts durably and update their groups. Returns when Redis has everything (or raises)."""
        if not alerts:
            return []
        now = self.clock.now()
        now_ms = ms(now)
        ups = await self.store.upsert_many(alerts, now, self.cfg.hash)

        pipe = self.redis.pipeline(transaction=False)
        queued = 0
        memberships: dict[int, list[tuple[str, list[Any]]]] = {}  # group shard -> [(gid, script args)]
        grouped: dict[int, list[str]] = {}  # alert shard -> firing alerts whose memberships this request writes
        for u in ups:
            a = u.alert
            firing_now = not a.resolved_at(now)
            for i, rule in enumerate(self.cfg.inhibit_rules):
                if rule.is_source(a.labels):
                    k = self.keys.inhibit_sources(self.cfg.inhibit_rule_ids[i], rule.equal_key(a.labels))
                    pipe.hset(k, a.fingerprint, ms(a.ends_at))
                    pipe.expire(k, GROUP_TTL)
                    queued += 2
            if u.grouped and firing_now:
                continue  # a re-sent firing alert: already a member of its groups, nothing to reschedule
            if a.source == "detector" and not firing_now and not u.was_firing:
                continue  # a detector's "all normal" reading for a metric with no open alert
            groups = self._groups_for(a)
            if self.incidents is not None and any(self.correlates(g[0]) for g in groups):
                iid = await self._incident_for(a, now)
                if iid:
                    groups = [(g[0], group_id(g[0].id, incident_group_key(g[0], iid)), incident_group_key(g[0], iid),
                               {"incident": iid}) if self.correlates(g[0]) else g for g in groups]
            for r, gid, gk, gl in groups:
                memberships.setdefault(self.keys.shard_of(gid), []).append(
                    (gid, [gid, r.id, gk, json.dumps(gl, sort_keys=True), a.fingerprint, u.generation,
                           ms(r.opts.group_wait), ms(a.starts_at)]))
            if firing_now:
                grouped.setdefault(self.keys.shard_of(a.fingerprint), []).append(a.fingerprint)
        group_slots: list[int] = []  # positions of group_upsert results in the pipeline
        for shard, items in memberships.items():
            self._queue_group_upserts(pipe, shard, items, now_ms)
            group_slots.append(queued)
            queued += 1
        # Last in the pipeline: a re-send skips the group updates only once every membership above is written (after
        # a crash in between, the next re-send writes them again).
        for shard, fps in grouped.items():
            pipe.hset(self.keys.alerts_grouped(shard), mapping={fp: self.cfg.hash for fp in fps})
            queued += 1
        if queued:
            res = await pipe.execute()
            dues = [float(d) for i in group_slots for d in res[i]]
            if dues:
                self.on_schedule(min(dues) / 1000)
        return ups

    def _queue_group_upserts(self, pipe: Any, shard: int, items: list[tuple[str, list[Any]]], now_ms: int) -> None:
        keys = [self.keys.due(shard)]
        args: list[Any] = [now_ms, GROUP_TTL]
        for gid, item in items:
            keys += [self.keys.group_meta(gid), self.keys.group_members(gid)]
            args += item
        queue_script(pipe, self.scripts.group_upsert, keys=keys, args=args)

    # -- flush ----------------------------------------------------------------------------------------------

    async def load_group(self, gid: str) -> GroupState | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.group_meta(gid))
        pipe.hgetall(self.keys.group_members(gid))
        pipe.hgetall(self.keys.nflog(gid))
        meta, members, nflog = await pipe.execute()
        if not meta:
            return None
        d = lambda b: b.decode() if isinstance(b, bytes) else b  # noqa: E731
        meta = {d(k): d(v) for k, v in meta.items()}
        members = {d(k): d(v) for k, v in members.items()}
        alerts = await self.store.get_many(list(members))
        return GroupState(
            gid=gid, route=self.routes.get(meta["route"]), key=meta["key"], labels=json.loads(meta["labels"]),
            members=members, nflog={d(k): Entry.from_json(v) for k, v in nflog.items()}, alerts=alerts,
        )

    async def _inhibited(self, alerts: list[Alert], now: float) -> set[str]:
        rules = self.cfg.inhibit_rules
        if not rules:
            return set()
        wanted: dict[tuple[int, str], str] = {}
        for a in alerts:
            for i, rule in enumerate(rules):
                if rule.is_target(a.labels):
                    eq = rule.equal_key(a.labels)
                    wanted[(i, eq)] = self.keys.inhibit_sources(self.cfg.inhibit_rule_ids[i], eq)
        if not wanted:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for k in wanted.values():
            pipe.hgetall(k)
        got = dict(zip(wanted, await pipe.execute()))
        now_ms = ms(now)
        firing: dict[tuple[int, str], list[str]] = {}
        stale = ms(now - 3600)
        prune = self.redis.pipeline(transaction=False)
        pruned = 0
        for key, h in got.items():
            firing[key] = [(fp.decode() if isinstance(fp, bytes) else fp) for fp, e in h.items() if int(e) > now_ms]
            old = [fp for fp, e in h.items() if int(e) < stale]
            if old:  # sources that ended an hour ago: forget them so the index does not grow forever
                prune.hdel(wanted[key], *old)
                pruned += 1
        if pruned:
            await prune.execute()
        # Two-sided rules need the sources' labels.
        src_fps = {fp for fps in firing.values() for fp in fps}
        src_alerts = await self.store.get_many(sorted(src_fps)) if src_fps else {}
        # The store is authoritative: a source whose stored alert has since resolved does not inhibit.
        for key in firing:
            firing[key] = [fp for fp in firing[key] if fp in src_alerts and not src_alerts[fp].resolved_at(now)]

        def sources(i: int, eq: str) -> list[tuple[str, dict[str, str]]]:
            return [(fp, src_alerts[fp].labels) for fp in firing.get((i, eq), [])]

        return {a.fingerprint for a in alerts if inhibited(rules, a.labels, a.fingerprint, sources)}

    async def plan_flush(self, g: GroupState, now: float) -> FlushPlan:
        """Decide what a group flush at `now` notifies. Reads silences/inhibition; writes nothing."""
        plan = FlushPlan(route=g.route)
        if g.route is None:  # the route is gone after a config reload: drop the group
            plan.removals = dict(g.members)
            return plan
        opts = g.route.opts
        snap = None
        if "incident" in g.labels and self.incidents is not None:
            snap = await self._incident_snapshot(g.labels["incident"])
            plan.incident = snap
        plan.next_due = now + opts.group_interval
        alerts = sorted(g.alerts.values(), key=alert_sort_key)
        for fp, gen in g.members.items():
            a = g.alerts.get(fp)
            if a is None or a.resolved_at(now):
                plan.removals[fp] = gen
        if not alerts:
            return plan
        # Muting stages, in Alertmanager's order: inhibition, active/mute time intervals, silences.
        muted = await self._inhibited(alerts, now)
        if opts.active_time_intervals and not interval_active(self.cfg.time_intervals, opts.active_time_intervals, now):
            return plan
        if opts.mute_time_intervals and interval_active(self.cfg.time_intervals, opts.mute_time_intervals, now):
            return plan
        for s in await self.silences.all():
            if s.state(now) == "active":
                muted |= {a.fingerprint for a in alerts if s.matches(a.labels)}
        alerts = [a for a in alerts if a.fingerprint not in muted]
        if not alerts:
            return plan
        firing = frozenset(a.fingerprint for a in alerts if not a.resolved_at(now))
        resolved = frozenset(a.fingerprint for a in alerts if a.resolved_at(now))
        mark = ""
        if snap is not None:
            if snap.get("flapping") and not any(g.nflog.values()):
                return plan  # a flapping incident is held, not paged, until it settles
            if snap.get("merged_into"):
                return plan  # its alerts now notify through the incident it was merged into
            floor = float(g.route.extra.get("min_confidence", self.incidents.cfg.min_confidence))
            if not any(g.nflog.values()) and float(snap.get("confidence") or 0) < floor:
                # Held, not paged: look again after group_wait (it may persist, grow, or resolve unseen).
                plan.next_due = now + max(1.0, min(opts.group_wait, opts.group_interval))
                return plan
            if firing and self.summaries is not None:
                snap = await self._summarize(snap)  # cached by evidence digest: no new work when nothing changed
                plan.incident = snap
            mark = incident_mark(snap)
        for integ in self.integrations.get(opts.receiver, []):
            entry = g.nflog.get(integ.id)
            reason = needs_update(entry, firing, resolved, integ.send_resolved, opts.repeat_interval, now)
            if snap is not None:
                reason = needs_incident_update(entry, firing, mark, snap.get("state") == "acknowledged", reason)
            if reason is None:
                continue
            plan.nflog[integ.id] = Entry(firing, resolved, now, mark)
            sent = alerts if integ.send_resolved else [a for a in alerts if not a.resolved_at(now)]
            if not sent:
                continue  # logged (to clear the firing set) but nothing to send
            truncated = 0
            if integ.max_alerts and len(sent) > integ.max_alerts:
                truncated = len(sent) - integ.max_alerts
                sent = sent[: integ.max_alerts]
            plan.notifications.append(Notification(
                id="", receiver=go_quote_meta(integ.receiver), integration=integ.id, group_key=g.key,
                group_labels=dict(g.labels), status="firing" if any(not a.resolved_at(now) for a in sent) else "resolved",
                alerts=list(sent), timestamp=now, reason=reason, external_url=self.external_url,
                truncated_alerts=truncated, incident=snap,
            ))
        return plan

    async def _incident_snapshot(self, iid: str) -> dict[str, Any] | None:
        from .incidents import IncidentNotFound

        try:
            return await self.incidents.get(iid)
        except IncidentNotFound:
            return None

    async def _summarize(self, snap: dict[str, Any]) -> dict[str, Any]:
        """Attach a summary without delaying the page past the summarizer's deadline; a later LLM answer is
        stored and the incident's groups flushed again, so messages are edited in place."""
        try:
            summary, pending = await self.summaries.first_summary(snap)
        except Exception as e:  # the summary must never block the page
            log.warning("summary_failed", incident=snap.get("id"), error=repr(e))
            return snap
        new = summary.to_incident_summary()
        old = snap.get("summary") or {}
        if old.get("source") == "claude" and new.get("source") != "claude" and pending is not None:
            return snap  # keep showing Claude's summary of the previous evidence while the new one is on its way
        if (old.get("digest"), old.get("source"), old.get("headline")) == (new.get("digest"), new.get("source"),
                                                                          new.get("headline")):
            return snap
        snap = dict(snap, summary=new)
        await self.incidents.set_summary(snap["id"], snap["summary"])
        if pending is not None:
            task = asyncio.ensure_future(self._late_summary(snap["id"], pending))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        return snap

    async def _late_summary(self, iid: str, pending: Any) -> None:
        try:
            summary = await pending
        except Exception as e:
            log.warning("summary_failed", incident=iid, error=repr(e))
            return
        if summary is not None and getattr(summary, "source", "") == "claude":
            await self.incidents.set_summary(iid, summary.to_incident_summary())
            await self.touch_incident(iid)


    async def commit(self, gid: str, token: str, plan: FlushPlan) -> bool:
        shard = self.keys.shard_of(gid)
        args: list[Any] = [gid, token, ms(plan.next_due), max(GROUP_TTL, 5 * 24 * 3600), len(plan.nflog),
                           len(plan.notifications), len(plan.removals), STATE_TTL]
        for integ, e in plan.nflog.items():
            args += [integ, e.to_json()]
        for n in plan.notifications:
            args += [n.integration, n.receiver, n.to_json()]
        for fp, gen in plan.removals.items():
            args += [fp, gen]
        ok = await self.scripts.commit_flush(
            keys=[self.keys.group_meta(gid), self.keys.group_members(gid), self.keys.due(shard), self.keys.claims(shard),
                  self.keys.nflog(gid), self.keys.outbox(shard), self.keys.seq(gid)],
            args=args,
        )
        return bool(int(ok))

    async def flush(self, gid: str, token: str) -> FlushPlan | None:
        now = self.clock.now()
        g = await self.load_group(gid)
        if g is None:
            # Group vanished (deleted by a commit that raced us): forget its timer.
            await self.redis.zrem(self.keys.due(self.keys.shard_of(gid)), gid)
            return None
        plan = await self.plan_flush(g, now)
        for hook in self.before_commit:  # e.g. start an escalation: idempotent, so safe before a commit that fails
            await hook(plan)
        if not await self.commit(gid, token, plan):
            log.info("flush_claim_lost", gid=gid)
            return None
        if plan.next_due and g.route is not None:
            self.on_schedule(plan.next_due)
        return plan


def incident_mark(snap: dict[str, Any]) -> str:
    """What a person sees change on an incident's message: state, severity, who acked, the summary."""
    summary = snap.get("summary") or {}
    return "|".join([str(snap.get("state")), str(snap.get("severity")), str(snap.get("acked_by") or ""),
                     str(summary.get("source") or ""), str(summary.get("headline") or "")[:80]])
