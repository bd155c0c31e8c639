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
import dataclasses
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

from service.ingest.alerts import AlertStore, Upserted, decode_record
from service.core.clock import Clock
from service.config.sections import Config
from service.core.models import Alert, Notification
from service.pipeline.notify_log import Entry, needs_incident_update, needs_update
from service.store.keys import Keys, Scripts, execute_behind, group_id, ms, queue_script

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
        # The silences, when it is known that nothing can change them (replay: a private key prefix, and no
        # silences in its input); None: read them (serve, where the API and other replicas change them).
        self.fixed_silences: list[Any] | None = None
        # A single writer's copy of its timers (service/store/due_mirror.py, replay): told every group due write.
        self.due_log: Any = None
        self.set_config(cfg)

    def set_config(self, cfg: Config) -> None:
        self.cfg = cfg
        self.cfg_hash = cfg.hash  # a sha1 of the whole file: once per configuration, not per request
        self.routes = {r.id: r for r in cfg.route.walk()}
        self.integrations = integrations_of(cfg)
        self._route_cache: dict[str, list[tuple[Route, str, str, dict[str, str]]]] = {}
        self._labels_json: dict[str, str] = {}  # gid -> its group labels as JSON (computed once per group)
        self.external_url = cfg.tocsin.external_url or f"http://{cfg.tocsin.listen}"

    # -- ingest ---------------------------------------------------------------------------------------------

    def _groups_for(self, a: Alert) -> list[tuple[Route, str, str, dict[str, str]]]:
        cached = self._route_cache.get(a.fingerprint)
        if cached is None:
            cached = []
            for r in self.cfg.route.match(a.labels):
                gl = r.group_labels(a.labels)
                gk = group_key(r, gl)
                gid = group_id(r.id, gk)
                if gid not in self._labels_json:
                    self._labels_json[gid] = json.dumps(gl, sort_keys=True)
                cached.append((r, gid, gk, gl))
            if len(self._route_cache) > 200_000:
                self._route_cache.clear()
                self._labels_json.clear()
            self._route_cache[a.fingerprint] = cached
        return cached

    def correlates(self, r: Route) -> bool:
        return self.incidents is not None and bool(r.extra.get("correlate", True))

    async def _incident_for(self, a: Alert, now: float) -> str | None:
        if not a.resolved_at(now):
            iid, decision, _created = await self.incidents.assign(a)
            if getattr(decision, "moved_from", None):
                await self._leave_incident_groups(a.fingerprint, decision.moved_from)
            for other in getattr(decision, "absorb", None) or []:
                # Incidents the store folded into this one (a storm's first drops): their alerts move too.
                await self.regroup_incident(other, iid)
            return iid
        return await self.incidents.on_alert_resolved(a) or await self.incidents.incident_of(a)

    async def _leave_incident_groups(self, fp: str, incident_id: str) -> None:
        """A member that fired again started another incident: its old incident's groups forget it."""
        pipe = self.redis.pipeline(transaction=False)
        for gid in await self.incident_groups(incident_id):
            pipe.hdel(self.keys.group_members(gid), fp)
        await execute_behind(pipe)

    async def incident_groups(self, incident_id: str) -> list[str]:
        """Group ids an incident can have (one per correlating route)."""
        return [group_id(r.id, incident_group_key(r, incident_id)) for r in self.cfg.route.walk() if self.correlates(r)]

    async def touch_incident(self, incident_id: str) -> None:
        """Flush an incident's groups now, so people see a state change (ack, severity, summary) at once."""
        now_ms = ms(self.clock.now())
        pipe = self.redis.pipeline(transaction=False)
        for gid in await self.incident_groups(incident_id):
            pipe.zadd(self.keys.due(self.keys.shard_of(gid)), {gid: now_ms}, xx=True)
            if self.due_log is not None:
                self.due_log.touch_group(gid, now_ms / 1000)
        await execute_behind(pipe)
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
            members: list[Any] = []
            for fp, a in alerts.items():
                members += [fp, f"m{ms(now)}", ms(a.starts_at)]
            head = [new_gid, r.id, new_gk, json.dumps({"incident": to_iid}), ms(r.opts.group_wait)]
            self._queue_group_upserts(pipe, self.keys.shard_of(new_gid), {new_gid: (head, members)}, ms(now))
            (dues,) = await pipe.execute()
            if self.due_log is not None:
                self.due_log.group(new_gid, float(dues[0]) / 1000)
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
        ups = await self.store.upsert_many(alerts, now, self.cfg_hash)

        pipe = self.redis.pipeline(transaction=False)
        queued = 0
        # group shard -> gid -> (group header args, flat membership args)
        memberships: dict[int, dict[str, tuple[list[Any], list[Any]]]] = {}
        grouped: dict[int, list[str]] = {}  # alert shard -> firing alerts whose memberships this request writes
        sources: dict[str, dict[str, int]] = {}  # inhibition source key -> fp -> endsAt ms
        for u in ups:
            a = u.alert
            firing_now = not a.resolved_at(now)
            self._note_inhibit_source(a, sources)
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
            self._add_memberships(memberships, groups, a, u.generation)
            if firing_now:
                grouped.setdefault(self.keys.shard_of(a.fingerprint), []).append(a.fingerprint)
        for k, mapping in sources.items():
            pipe.hset(k, mapping=mapping)
            pipe.expire(k, GROUP_TTL)
            queued += 2
        group_slots: list[int] = []  # positions of group_upsert results in the pipeline
        for shard, items in memberships.items():
            self._queue_group_upserts(pipe, shard, items, now_ms)
            group_slots.append(queued)
            queued += 1
        # Last in the pipeline: a re-send skips the group updates only once every membership above is written (after
        # a crash in between, the next re-send writes them again).
        for shard, fps in grouped.items():
            pipe.hset(self.keys.alerts_grouped(shard), mapping=dict.fromkeys(fps, self.cfg_hash))
            queued += 1
        if queued:
            res = await pipe.execute()
            dues = [float(d) for i in group_slots for d in res[i]]
            if self.due_log is not None:
                for gid, d in zip((gid for items in memberships.values() for gid in items), dues):
                    self.due_log.group(gid, d / 1000)
            if dues:
                self.on_schedule(min(dues) / 1000)
        return ups

    def _note_inhibit_source(self, a: Alert, sources: dict[str, dict[str, int]]) -> None:
        for i, rule in enumerate(self.cfg.inhibit_rules):
            if rule.is_source(a.labels):
                k = self.keys.inhibit_sources(self.cfg.inhibit_rule_ids[i], rule.equal_key(a.labels))
                sources.setdefault(k, {})[a.fingerprint] = ms(a.ends_at)

    def _add_memberships(self, memberships: dict[int, dict[str, tuple[list[Any], list[Any]]]],
                         groups: list[tuple[Route, str, str, dict[str, str]]], a: Alert, generation: str) -> None:
        for r, gid, gk, gl in groups:
            shard_items = memberships.setdefault(self.keys.shard_of(gid), {})
            item = shard_items.get(gid)
            if item is None:
                labels_json = self._labels_json.get(gid) or json.dumps(gl, sort_keys=True)
                item = shard_items[gid] = ([gid, r.id, gk, labels_json, ms(r.opts.group_wait)], [])
            item[1].extend((a.fingerprint, generation, ms(a.starts_at)))

    def _queue_group_upserts(self, pipe: Any, shard: int, items: dict[str, tuple[list[Any], list[Any]]],
                             now_ms: int) -> None:
        """One `group_upsert` call for a shard: per group its header (gid, route, key, labels, group_wait) and
        all the memberships this request writes into it (fp, generation, startsAt), so a batch that brings 64
        alerts of one group writes the group once."""
        keys = [self.keys.due(shard)]
        args: list[Any] = [now_ms, GROUP_TTL]
        for gid, (head, members) in items.items():
            keys += [self.keys.group_meta(gid), self.keys.group_members(gid)]
            args += head
            args.append(len(members) // 3)
            args += members
        queue_script(pipe, self.scripts.group_upsert, keys=keys, args=args)

    # -- flush ----------------------------------------------------------------------------------------------

    async def load_group(self, gid: str) -> GroupState | None:
        return (await self.load_groups([gid]))[gid]

    async def load_groups(self, gids: list[str]) -> dict[str, GroupState | None]:
        """Several groups with their members' alerts, in two round trips whatever their number: the group
        hashes in one pipeline, then the alerts with one HMGET per alert shard."""
        pipe = self.redis.pipeline(transaction=False)
        for gid in gids:
            pipe.hgetall(self.keys.group_meta(gid))
            pipe.hgetall(self.keys.group_members(gid))
            pipe.hgetall(self.keys.nflog(gid))
        res = await pipe.execute()
        raw: dict[str, tuple[dict[str, str], dict[str, str], Any]] = {}
        fps: set[str] = set()
        for i, gid in enumerate(gids):
            meta, members, nflog = res[3 * i: 3 * i + 3]
            if not meta:
                continue
            meta = {_s(k): _s(v) for k, v in meta.items()}
            members = {_s(k): _s(v) for k, v in members.items()}
            fps.update(members)
            raw[gid] = (meta, members, nflog)
        alerts = await self.fetch_alerts(fps)
        out: dict[str, GroupState | None] = dict.fromkeys(gids)
        for gid, (meta, members, nflog) in raw.items():
            out[gid] = GroupState(
                gid=gid, route=self.routes.get(meta["route"]), key=meta["key"], labels=json.loads(meta["labels"]),
                members=members, nflog={_s(k): Entry.from_json(v) for k, v in nflog.items()},
                alerts={fp: alerts[fp] for fp in members if fp in alerts},
            )
        return out

    async def fetch_alerts(self, fps: set[str] | list[str]) -> dict[str, Alert]:
        """Stored alerts by fingerprint: one HMGET per alert shard (all in one round trip)."""
        by_shard: dict[int, list[str]] = {}
        for fp in fps:
            by_shard.setdefault(self.keys.shard_of(fp), []).append(fp)
        if not by_shard:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        order = list(by_shard.items())
        for shard, lst in order:
            pipe.hmget(self.keys.alerts(shard), lst)
        out: dict[str, Alert] = {}
        for (_shard, lst), recs in zip(order, await pipe.execute()):
            for fp, rec in zip(lst, recs):
                if rec is not None:
                    out[fp] = decode_record(fp, rec)
        return out

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
        src_alerts = await self.fetch_alerts(src_fps) if src_fps else {}
        # The store is authoritative: a source whose stored alert has since resolved does not inhibit.
        for key in firing:
            firing[key] = [fp for fp in firing[key] if fp in src_alerts and not src_alerts[fp].resolved_at(now)]

        def sources(i: int, eq: str) -> list[tuple[str, dict[str, str]]]:
            return [(fp, src_alerts[fp].labels) for fp in firing.get((i, eq), [])]

        return {a.fingerprint for a in alerts if inhibited(rules, a.labels, a.fingerprint, sources)}

    def _time_muted(self, opts: Any, now: float) -> bool:
        """Outside the route's active time intervals, or inside one of its mute time intervals."""
        if opts.active_time_intervals and not interval_active(self.cfg.time_intervals, opts.active_time_intervals, now):
            return True
        return bool(opts.mute_time_intervals and interval_active(self.cfg.time_intervals, opts.mute_time_intervals, now))

    async def _context(self, ctx: FlushContext | None, alerts: list[Alert], now: float) -> FlushContext:
        if ctx is not None:
            return ctx
        return FlushContext(await self._silences(), frozenset(await self._inhibited(alerts, now)))

    async def _silences(self) -> list[Any]:
        return self.fixed_silences if self.fixed_silences is not None else await self.silences.all()

    async def plan_flush(self, g: GroupState, now: float, ctx: FlushContext | None = None) -> FlushPlan:
        """Decide what a group flush at `now` notifies. Reads silences/inhibition (from `ctx` when given: a flush
        round reads them once for all its groups); writes nothing."""
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
        ctx = await self._context(ctx, alerts, now)
        muted = set(ctx.inhibited)
        if self._time_muted(opts, now):
            return plan
        for s in ctx.silences:
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
        if snap is not None and not firing and snap.get("state") != "resolved":
            # Every member resolved but the incident has not (its quiet period runs): no delivery now, and the
            # resolved members stay in the group for the incident's one resolve when it does.
            plan.removals = {}
            plan.next_due = now + opts.group_interval
            return plan
        self._notify(plan, g, alerts, firing, resolved, snap, mark, now)
        return plan

    def _notify(self, plan: FlushPlan, g: GroupState, alerts: list[Alert], firing: frozenset[str],
                resolved: frozenset[str], snap: dict[str, Any] | None, mark: str, now: float) -> None:
        """Per receiver integration: ask the notification log, and add the notification (plan_flush's last step)."""
        assert g.route is not None
        opts = g.route.opts
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

    async def _sync_incident(self, g: GroupState, now: float) -> None:
        """Before an incident group is planned: members whose alert resolved by time (its endsAt passed without a
        new post, e.g. Prometheus stopped sending) are recorded as resolved in the incident, so its lifecycle
        (quiet period, the one resolve) runs as if the resolution had been posted."""
        if self.incidents is None or "incident" not in g.labels:
            return
        resolved = {fp: a for fp, a in g.alerts.items() if a.resolved_at(now)}
        for fp in await self.incidents.firing_members(g.labels["incident"], sorted(resolved)):
            await self.incidents.on_alert_resolved(resolved[fp])

    async def _incident_snapshot(self, iid: str) -> dict[str, Any] | None:
        from service.incidents import IncidentNotFound

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
            log.warning("summary_failed", incident=snap.get("id"), error=repr(e), exc_info=True)
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


    def _queue_commit(self, pipe: Any, gid: str, token: str, plan: FlushPlan) -> None:
        shard = self.keys.shard_of(gid)
        args: list[Any] = [gid, token, ms(plan.next_due), max(GROUP_TTL, 5 * 24 * 3600), len(plan.nflog),
                           len(plan.notifications), len(plan.removals), STATE_TTL]
        for integ, e in plan.nflog.items():
            args += [integ, e.to_json()]
        for n in plan.notifications:
            args += [n.integration, n.receiver, notification_json(n)]
        for fp, gen in plan.removals.items():
            args += [fp, gen]
        queue_script(pipe, self.scripts.commit_flush,
                     keys=[self.keys.group_meta(gid), self.keys.group_members(gid), self.keys.due(shard),
                           self.keys.claims(shard), self.keys.nflog(gid), self.keys.outbox(shard), self.keys.seq(gid)],
                     args=args)

    async def commit(self, gid: str, token: str, plan: FlushPlan) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        self._queue_commit(pipe, gid, token, plan)
        (ok,) = await pipe.execute()
        return bool(int(ok))

    async def flush(self, gid: str, token: str) -> FlushPlan | None:
        return (await self.flush_many([(gid, token)]))[0]

    async def flush_many(self, claimed: list[tuple[str, str]]) -> list[FlushPlan | None]:
        """Flush claimed groups together: a constant number of round trips for the whole batch (load, silences,
        inhibition sources, commit), so the cost of a flush round is linear in the alerts it carries and does not
        hold one Redis connection per group. Returns each group's committed plan (None: vanished or claim lost)."""
        if not claimed:
            return []
        now = self.clock.now()
        groups = await self.load_groups([gid for gid, _ in claimed])
        vanished = [gid for gid, _ in claimed if groups[gid] is None]
        if vanished:  # deleted by a commit that raced us: forget their timers
            pipe = self.redis.pipeline(transaction=False)
            for gid in vanished:
                pipe.zrem(self.keys.due(self.keys.shard_of(gid)), gid)
                if self.due_log is not None:
                    self.due_log.group(gid, None)
            await pipe.execute()
        live = [g for g in groups.values() if g is not None]
        everyone = {fp: a for g in live for fp, a in g.alerts.items()}
        ctx = FlushContext(silences=await self._silences(),
                           inhibited=frozenset(await self._inhibited(list(everyone.values()), now)))
        plans: list[FlushPlan | None] = []
        pipe = self.redis.pipeline(transaction=False)
        committing: list[int] = []
        for i, (gid, token) in enumerate(claimed):
            g = groups[gid]
            if g is None:
                plans.append(None)
                continue
            await self._sync_incident(g, now)
            plan = await self.plan_flush(g, now, ctx)
            for hook in self.before_commit:  # e.g. start an escalation: idempotent, so safe before a commit that fails
                await hook(plan)
            self._queue_commit(pipe, gid, token, plan)
            committing.append(i)
            plans.append(plan)
        results = await pipe.execute() if committing else []
        if self.due_log is not None:
            self._log_dues(claimed, groups, plans, committing, results)
        self._committed(claimed, plans, committing, results)
        return plans

    def _log_dues(self, claimed: list[tuple[str, str]], groups: dict[str, GroupState | None],
                  plans: list[FlushPlan | None], committing: list[int], results: list[Any]) -> None:
        """What commit_flush did to each group's timer: deleted the group when every member left (its one
        writer loaded them all), else set the next flush time."""
        for i, ok in zip(committing, results):
            plan, g = plans[i], groups[claimed[i][0]]
            if int(ok) and plan is not None and g is not None:
                gone = len(plan.removals) == len(g.members)
                self.due_log.group(g.gid, None if gone else ms(plan.next_due) / 1000)

    def _committed(self, claimed: list[tuple[str, str]], plans: list[FlushPlan | None], committing: list[int],
                   results: list[Any]) -> None:
        nxt: float | None = None
        for i, ok in zip(committing, results):
            plan = plans[i]
            assert plan is not None
            if not int(ok):
                log.info("flush_claim_lost", gid=claimed[i][0])
                plans[i] = None
            elif plan.next_due and plan.route is not None:
                nxt = plan.next_due if nxt is None else min(nxt, plan.next_due)
        if nxt is not None:
            self.on_schedule(nxt)


@dataclass
class FlushContext:
    """What a flush round reads once for all its groups: the silences, and which alerts are inhibited."""
    silences: list[Any]
    inhibited: frozenset[str]


def _s(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else b


_ALERT_FIELDS = tuple(f.name for f in dataclasses.fields(Alert))
_NOTIFICATION_FIELDS = tuple(f.name for f in dataclasses.fields(Notification))


def notification_json(n: Notification) -> str:
    """Notification.to_json, without the deep copy `dataclasses.asdict` makes of an incident snapshot (a few
    thousand objects for a large incident) only to serialize it: the same fields, the same json.dumps, the same
    document."""
    if n.incident is None and all(a.detector is None for a in n.alerts):
        return n.to_json()  # already the fast path
    d = {f: getattr(n, f) for f in _NOTIFICATION_FIELDS}
    d["alerts"] = [{f: getattr(a, f) for f in _ALERT_FIELDS} for a in n.alerts]
    return json.dumps(d, separators=(",", ":"), sort_keys=True)


def incident_mark(snap: dict[str, Any]) -> str:
    """What a person sees change on an incident's message: state, severity, who acked, the summary."""
    summary = snap.get("summary") or {}
    return "|".join([str(snap.get("state")), str(snap.get("severity")), str(snap.get("acked_by") or ""),
                     str(summary.get("source") or ""), str(summary.get("headline") or "")[:80]])
