"""Aggregation groups: routing alerts into groups, and flushing groups into notifications.

This is Alertmanager's dispatcher and notification pipeline with the state in Redis:
- `ingest` stores alerts (merged), makes them members of the aggregation group of every route they match, and
  keeps the group timers (Lua `group_upsert`).
- `flush` runs when a group's timer is due (claimed by exactly one replica): it reads the groups and what a
  round reads once (silences, inhibition sources: `read_context`), plans each group through a chain of stages
  with one signature, like Alertmanager's notify.Stage (`STAGES`: route, incident, members, inhibit, time
  intervals, silence, hold, summary, quiet, dedup, build; the last two a pure decision: `dedup` and `build`),
  then applies what planning found to write (the inhibition index prune, a new incident summary) and commits
  the decisions and the notifications to the outbox in one script per group (`commit_flush`). Planning reads
  and never writes; the writes are the store's (service/store/groups.py).
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
from service.core import fastjson as json
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import structlog

from routing.receivers.registry import send_resolved_default
from routing.inhibition import inhibited
from routing.route_tree import Route, group_key
from routing.time_intervals import active as interval_active
from routing.silences import Silences

from service.core.clock import Clock
from service.config.sections import Config
from service.core.models import Alert, Notification
from service.pipeline.notify_log import Entry, needs_incident_update, needs_update
from service.store.alerts import AlertStore, Upserted
from service.store.groups import Commit, GroupStore, Memberships
from service.store.keys import group_id, ms

log = structlog.get_logger("tocsin.dispatch")


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
    summary: dict[str, Any] | None = None  # a new summary of `incident` to store before the commit
    pending: Any = None  # the LLM's summary on its way (stored and flushed again when it comes)
    # The incident's hold changed: ("hold", {floor, confidence, since, receiver}) held below the floor, ("release",
    # None) paged after a hold; stored by apply() before the commit, shown in every snapshot.
    hold: tuple[str, dict[str, Any] | None] | None = None


def incident_group_key(route: Route, incident_id: str) -> str:
    return f'{route.key}:{{incident="{incident_id}"}}'


class Dispatcher:
    def __init__(self, groups: GroupStore, store: AlertStore, cfg: Config, clock: Clock, silences: Silences,
                 on_schedule: Callable[[float], None] | None = None, metrics: Any = None):
        self.groups = groups
        self.keys = groups.keys
        self.clock = clock
        self.silences = silences
        self.store = store
        self.on_schedule = on_schedule or (lambda t: None)
        self.metrics = metrics
        self.incidents: Any = None  # service.incidents.IncidentStore when correlation is on
        self.summaries: Any = None  # service.summaries.summarizer.SummaryService when set up
        self.background: set[Any] = set()
        self.before_commit: list[Any] = []  # async callbacks(plan) run after deciding, before committing
        # The silences, when it is known that nothing can change them (replay: a private key prefix, and no
        # silences in its input); None: read them (serve, where the API and other replicas change them).
        self.fixed_silences: list[Any] | None = None
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
        await self.groups.drop_members([(gid, [fp]) for gid in await self.incident_groups(incident_id)], behind=True)

    async def incident_groups(self, incident_id: str) -> list[str]:
        """Group ids an incident can have (one per correlating route)."""
        return [group_id(r.id, incident_group_key(r, incident_id)) for r in self.cfg.route.walk() if self.correlates(r)]

    async def touch_incident(self, incident_id: str) -> None:
        """Flush an incident's groups now, so people see a state change (ack, severity, summary) at once."""
        now_ms = ms(self.clock.now())
        await self.groups.touch(await self.incident_groups(incident_id), now_ms)
        self.on_schedule(now_ms / 1000)

    async def regroup_incident(self, from_iid: str, to_iid: str, fingerprints: list[str] | None = None) -> int:
        """Move alerts' group membership after a manual merge (all of them) or split (the given ones)."""
        now = self.clock.now()
        moved = 0
        for r in self.cfg.route.walk():
            if not self.correlates(r):
                continue
            old_gid = group_id(r.id, incident_group_key(r, from_iid))
            fps = await self.groups.member_fingerprints(old_gid)
            if fingerprints is not None:
                fps = [fp for fp in fps if fp in set(fingerprints)]
            if not fps:
                continue
            alerts = await self.store.get_many(fps)
            new_gk = incident_group_key(r, to_iid)
            new_gid = group_id(r.id, new_gk)
            members: list[Any] = []
            for fp, a in alerts.items():
                members += [fp, f"m{ms(now)}", ms(a.starts_at)]
            head = [new_gid, r.id, new_gk, json.dumps({"incident": to_iid}), ms(r.opts.group_wait)]
            await self.groups.upsert({self.keys.shard_of(new_gid): {new_gid: (head, members)}}, ms(now))
            await self.groups.drop_members([(old_gid, fps)])
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

        # group shard -> gid -> (group header args, flat membership args)
        memberships: Memberships = {}
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
        # One round trip; the grouped marks go last: a re-send skips the group updates only once every
        # membership is written (after a crash in between, the next re-send writes them again).
        dues = await self.groups.write_ingest(sources, memberships, grouped, self.cfg_hash, now_ms)
        if dues:
            self.on_schedule(min(dues) / 1000)
        return ups

    def _note_inhibit_source(self, a: Alert, sources: dict[str, dict[str, int]]) -> None:
        for i, rule in enumerate(self.cfg.inhibit_rules):
            if rule.is_source(a.labels):
                k = self.keys.inhibit_sources(self.cfg.inhibit_rule_ids[i], rule.equal_key(a.labels))
                sources.setdefault(k, {})[a.fingerprint] = ms(a.ends_at)

    def _add_memberships(self, memberships: Memberships,
                         groups: list[tuple[Route, str, str, dict[str, str]]], a: Alert, generation: str) -> None:
        for r, gid, gk, gl in groups:
            shard_items = memberships.setdefault(self.keys.shard_of(gid), {})
            item = shard_items.get(gid)
            if item is None:
                labels_json = self._labels_json.get(gid) or json.dumps(gl, sort_keys=True)
                item = shard_items[gid] = ([gid, r.id, gk, labels_json, ms(r.opts.group_wait)], [])
            item[1].extend((a.fingerprint, generation, ms(a.starts_at)))

    # -- flush ----------------------------------------------------------------------------------------------

    async def load_group(self, gid: str) -> GroupState | None:
        return (await self.load_groups([gid]))[gid]

    async def load_groups(self, gids: list[str]) -> dict[str, GroupState | None]:
        """Several groups with their members' alerts, in two round trips whatever their number: the group
        hashes in one pipeline, then the alerts with one HMGET per alert shard."""
        raw = await self.groups.load(gids)
        fps: set[str] = set()
        for g in raw.values():
            fps.update(g.members)
        alerts = await self.store.fetch(fps)
        out: dict[str, GroupState | None] = dict.fromkeys(gids)
        for gid, g in raw.items():
            out[gid] = GroupState(
                gid=gid, route=self.routes.get(g.meta["route"]), key=g.meta["key"], labels=json.loads(g.meta["labels"]),
                members=g.members, nflog={k: Entry.from_json(v) for k, v in g.nflog.items()},
                alerts={fp: alerts[fp] for fp in g.members if fp in alerts},
            )
        return out

    async def _inhibited(self, alerts: list[Alert], now: float) -> tuple[set[str], dict[str, list[str]]]:
        """Which of `alerts` are inhibited, and the index's sources that ended an hour ago (key -> fps: for the
        commit step to forget, so the index does not grow forever). Reads only."""
        rules = self.cfg.inhibit_rules
        if not rules:
            return set(), {}
        wanted: dict[tuple[int, str], str] = {}
        for a in alerts:
            for i, rule in enumerate(rules):
                if rule.is_target(a.labels):
                    eq = rule.equal_key(a.labels)
                    wanted[(i, eq)] = self.keys.inhibit_sources(self.cfg.inhibit_rule_ids[i], eq)
        if not wanted:
            return set(), {}
        got = dict(zip(wanted, await self.groups.inhibit_sources(list(wanted.values()))))
        now_ms = ms(now)
        firing: dict[tuple[int, str], list[str]] = {}
        stale = ms(now - 3600)
        prune: dict[str, list[str]] = {}
        for key, h in got.items():
            firing[key] = [fp for fp, e in h.items() if e > now_ms]
            old = [fp for fp, e in h.items() if e < stale]
            if old:
                prune[wanted[key]] = old
        # Two-sided rules need the sources' labels.
        src_fps = {fp for fps in firing.values() for fp in fps}
        src_alerts = await self.store.fetch(src_fps) if src_fps else {}
        # The store is authoritative: a source whose stored alert has since resolved does not inhibit.
        for key in firing:
            firing[key] = [fp for fp in firing[key] if fp in src_alerts and not src_alerts[fp].resolved_at(now)]

        def sources(i: int, eq: str) -> list[tuple[str, dict[str, str]]]:
            return [(fp, src_alerts[fp].labels) for fp in firing.get((i, eq), [])]

        return {a.fingerprint for a in alerts if inhibited(rules, a.labels, a.fingerprint, sources)}, prune

    def _time_muted(self, opts: Any, now: float) -> bool:
        """Outside the route's active time intervals, or inside one of its mute time intervals."""
        if opts.active_time_intervals and not interval_active(self.cfg.time_intervals, opts.active_time_intervals, now):
            return True
        return bool(opts.mute_time_intervals and interval_active(self.cfg.time_intervals, opts.mute_time_intervals, now))

    async def read_context(self, alerts: list[Alert], now: float) -> FlushContext:
        """What a flush round reads once for all its groups (silences, inhibition); reads only."""
        inhibited_fps, stale = await self._inhibited(alerts, now)
        return FlushContext(await self._silences(), frozenset(inhibited_fps), stale)

    async def _silences(self) -> list[Any]:
        return self.fixed_silences if self.fixed_silences is not None else await self.silences.all()

    async def plan_flush(self, g: GroupState, now: float, ctx: FlushContext | None = None) -> FlushPlan:
        """Decide what a group flush at `now` notifies: the group through every stage of STAGES, until one says
        stop. Reads the incident and the summary (silences and inhibition from `ctx`, read once per round; read
        here when not given); writes nothing: what planning found to write is on the plan, for `apply`."""
        if ctx is None:
            ctx = await self.read_context(list(g.alerts.values()), now)
        f = Flush(g, now, ctx, FlushPlan(route=g.route))
        for stage in STAGES:
            if not await stage(self, f):
                break
        return f.plan

    # -- the stages: each takes the flush so far and says whether to go on (False: the plan is final) --------

    async def _route_stage(self, f: Flush) -> bool:
        if f.g.route is None:  # the route is gone after a config reload: drop the group
            f.plan.removals = dict(f.g.members)
            return False
        return True

    async def _incident_stage(self, f: Flush) -> bool:
        if "incident" in f.g.labels and self.incidents is not None:
            f.snap = f.plan.incident = await self._incident_snapshot(f.g.labels["incident"])
        return True

    async def _members_stage(self, f: Flush) -> bool:
        """The group's alerts in notification order; members resolved (or gone) leave with this flush."""
        g, now = f.g, f.now
        f.plan.next_due = now + f.opts.group_interval
        f.alerts = sorted(g.alerts.values(), key=alert_sort_key)
        for fp, gen in g.members.items():
            a = g.alerts.get(fp)
            if a is None or a.resolved_at(now):
                f.plan.removals[fp] = gen
        return bool(f.alerts)

    # Muting stages, in Alertmanager's order: inhibition, active/mute time intervals, silences.
    async def _inhibit_stage(self, f: Flush) -> bool:
        return f.keep(lambda a: a.fingerprint not in f.ctx.inhibited)

    async def _time_stage(self, f: Flush) -> bool:
        return not self._time_muted(f.opts, f.now)

    async def _silence_stage(self, f: Flush) -> bool:
        active = [s for s in f.ctx.silences if s.state(f.now) == "active"]
        return f.keep(lambda a: not any(s.matches(a.labels) for s in active)) if active else True

    async def _hold_stage(self, f: Flush) -> bool:
        """An incident that must not page yet: flapping, merged into another, or below the confidence floor."""
        snap, g = f.snap, f.g
        if snap is None:
            return True
        assert g.route is not None
        # Paged means notified through the route's own receiver (a held receiver's digest is not a page).
        notified = any(g.nflog.get(i.id) for i in self.integrations.get(f.opts.receiver, []))
        if snap.get("flapping") and not notified:
            return False  # a flapping incident is held, not paged, until it settles
        if snap.get("merged_into"):
            return False  # its alerts now notify through the incident it was merged into
        floor = float(g.route.extra.get("min_confidence", self.incidents.cfg.min_confidence))
        conf = float(snap.get("confidence") or 0)
        if not notified and conf < floor:
            # Held, not paged: look again after group_wait (it may persist, grow, or resolve unseen).
            f.plan.next_due = f.now + max(1.0, min(f.opts.group_wait, f.opts.group_interval))
            to = g.route.extra.get("held_receiver")
            if not snap.get("held"):
                f.plan.hold = ("hold", {"since": f.now, "floor": floor, "confidence": conf, "receiver": to})
            if to and to != f.opts.receiver:
                await self._to_held_receiver(f, to)
            return False
        if snap.get("held") and not notified:
            f.plan.hold = ("release", None)
        return True

    async def _to_held_receiver(self, f: Flush, receiver: str) -> None:
        """A held incident goes to the route's `held_receiver` (a digest, a low-urgency channel) instead of the
        pager, through the same quiet rule, notification log and build as a page."""
        if not await self._quiet_stage(f):
            return
        f.mark = incident_mark(f.snap) if f.snap is not None else ""
        f.updates = dedup(self.integrations.get(receiver, []), f.g.nflog, f.firing, f.resolved, f.snap, f.mark,
                          f.opts.repeat_interval, f.now)
        if f.updates:
            await self._build_stage(f)

    async def _summary_stage(self, f: Flush) -> bool:
        if f.snap is None:
            return True
        if f.firing and self.summaries is not None:
            # cached by evidence digest: no new work when nothing changed
            f.snap, f.plan.summary, f.plan.pending = await self._summarize(f.snap)
            f.plan.incident = f.snap
        f.mark = incident_mark(f.snap)
        return True

    async def _quiet_stage(self, f: Flush) -> bool:
        if f.snap is not None and not f.firing and f.snap.get("state") != "resolved":
            # Every member resolved but the incident has not (its quiet period runs): no delivery now, and the
            # resolved members stay in the group for the incident's one resolve when it does.
            f.plan.removals = {}
            f.plan.next_due = f.now + f.opts.group_interval
            return False
        return True

    async def _dedup_stage(self, f: Flush) -> bool:
        assert f.g.route is not None
        f.updates = dedup(self.integrations.get(f.opts.receiver, []), f.g.nflog, f.firing, f.resolved, f.snap,
                          f.mark, f.opts.repeat_interval, f.now)
        return bool(f.updates)

    async def _build_stage(self, f: Flush) -> bool:
        build(f.plan, f.updates, f.g, f.alerts, f.firing, f.resolved, f.snap, f.mark, f.now, self.external_url)
        return True

    # -- applying a plan --------------------------------------------------------------------------------------

    async def apply(self, plan: FlushPlan) -> None:
        """The writes planning found (before the commit): a new incident summary, and the task that waits for the
        LLM's one."""
        if plan.incident is None:
            return
        iid = plan.incident["id"]
        if plan.hold is not None:
            await self.incidents.set_hold(iid, plan.hold[1])
        if plan.summary is None:
            return
        await self.incidents.set_summary(iid, plan.summary)
        if plan.pending is not None:
            task = asyncio.ensure_future(self._late_summary(iid, plan.pending))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

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

    async def _summarize(self, snap: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, Any]:
        """Attach a summary without delaying the page past the summarizer's deadline: (the snapshot with it, the
        summary to store or None when nothing changed, the LLM's answer on its way or None). `apply` stores it;
        a later LLM answer is stored and the incident's groups flushed again, so messages are edited in place."""
        try:
            summary, pending = await self.summaries.first_summary(snap)
        except Exception as e:  # the summary must never block the page
            log.warning("summary_failed", incident=snap.get("id"), error=repr(e), exc_info=True)
            return snap, None, None
        new = summary.to_incident_summary()
        old = snap.get("summary") or {}
        if old.get("source") == "claude" and new.get("source") != "claude" and pending is not None:
            return snap, None, None  # keep showing Claude's summary of the previous evidence meanwhile
        if (old.get("digest"), old.get("source"), old.get("headline")) == (new.get("digest"), new.get("source"),
                                                                          new.get("headline")):
            return snap, None, None
        return dict(snap, summary=new), new, pending

    async def _late_summary(self, iid: str, pending: Any) -> None:
        try:
            summary = await pending
        except Exception as e:
            log.warning("summary_failed", incident=iid, error=repr(e))
            return
        if summary is not None and getattr(summary, "source", "") == "claude":
            await self.incidents.set_summary(iid, summary.to_incident_summary())
            await self.touch_incident(iid)


    def _commit_of(self, gid: str, token: str, plan: FlushPlan, g: GroupState | None = None) -> Commit:
        """What the store commits for a plan (serialized now: the plan's snapshot is not read again)."""
        return Commit(gid, token, ms(plan.next_due), [(integ, e.to_json()) for integ, e in plan.nflog.items()],
                      [(n.integration, n.receiver, notification_json(n)) for n in plan.notifications],
                      list(plan.removals.items()), empties=g is not None and len(plan.removals) == len(g.members))

    async def commit(self, gid: str, token: str, plan: FlushPlan) -> bool:
        (ok,) = await self.groups.commit([self._commit_of(gid, token, plan)])
        return ok

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
            await self.groups.forget_timers(vanished)
        live = [g for g in groups.values() if g is not None]
        everyone = {fp: a for g in live for fp, a in g.alerts.items()}
        ctx = await self.read_context(list(everyone.values()), now)
        await self.groups.prune_inhibit_sources(ctx.stale_sources)
        plans: list[FlushPlan | None] = []
        commits: list[Commit] = []
        committing: list[int] = []
        for i, (gid, token) in enumerate(claimed):
            g = groups[gid]
            if g is None:
                plans.append(None)
                continue
            await self._sync_incident(g, now)
            plan = await self.plan_flush(g, now, ctx)
            await self.apply(plan)  # before the next group's plan, which may read the same incident
            for hook in self.before_commit:  # e.g. start an escalation: idempotent, so safe before a commit that fails
                await hook(plan)
            commits.append(self._commit_of(gid, token, plan, g))
            committing.append(i)
            plans.append(plan)
        results = await self.groups.commit(commits)
        self._committed(claimed, plans, committing, results)
        return plans

    def _committed(self, claimed: list[tuple[str, str]], plans: list[FlushPlan | None], committing: list[int],
                   results: list[Any]) -> None:
        nxt: float | None = None
        for i, ok in zip(committing, results):
            plan = plans[i]
            assert plan is not None
            if not ok:
                log.info("flush_claim_lost", gid=claimed[i][0])
                plans[i] = None
            elif plan.next_due and plan.route is not None:
                nxt = plan.next_due if nxt is None else min(nxt, plan.next_due)
        if nxt is not None:
            self.on_schedule(nxt)


@dataclass
class FlushContext:
    """What a flush round reads once for all its groups: the silences, which alerts are inhibited, and the
    inhibition sources that ended long ago (index key -> fps, forgotten by the round)."""
    silences: list[Any]
    inhibited: frozenset[str]
    stale_sources: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Flush:
    """One group's flush on its way through the stages: what is left to notify, and the plan so far."""
    g: GroupState
    now: float
    ctx: FlushContext
    plan: FlushPlan
    alerts: list[Alert] = field(default_factory=list)  # still to notify, in notification order
    firing: frozenset[str] = frozenset()  # of `alerts`
    resolved: frozenset[str] = frozenset()
    snap: dict[str, Any] | None = None  # the incident, for an incident group
    mark: str = ""  # incident_mark(snap)
    updates: list[tuple[Integration, str]] = field(default_factory=list)  # (integration, reason) to notify

    @property
    def opts(self) -> Any:
        assert self.g.route is not None
        return self.g.route.opts

    def keep(self, pred: Callable[[Alert], bool]) -> bool:
        """Keep the alerts `pred` lets through; False (stop) when none is left."""
        self.alerts = [a for a in self.alerts if pred(a)]
        self.firing = frozenset(a.fingerprint for a in self.alerts if not a.resolved_at(self.now))
        self.resolved = frozenset(a.fingerprint for a in self.alerts if a.resolved_at(self.now))
        return bool(self.alerts)


Stage = Callable[[Dispatcher, Flush], Awaitable[bool]]

STAGES: tuple[Stage, ...] = (
    Dispatcher._route_stage, Dispatcher._incident_stage, Dispatcher._members_stage,
    Dispatcher._inhibit_stage, Dispatcher._time_stage, Dispatcher._silence_stage,
    Dispatcher._hold_stage, Dispatcher._summary_stage, Dispatcher._quiet_stage,
    Dispatcher._dedup_stage, Dispatcher._build_stage,
)


def dedup(integrations: list[Integration], nflog: dict[str, Entry], firing: frozenset[str], resolved: frozenset[str],
          snap: dict[str, Any] | None, mark: str, repeat_interval: float, now: float) -> list[tuple[Integration, str]]:
    """Per receiver integration, whether the notification log says to notify now, and why. Pure."""
    out: list[tuple[Integration, str]] = []
    for integ in integrations:
        entry = nflog.get(integ.id)
        reason = needs_update(entry, firing, resolved, integ.send_resolved, repeat_interval, now)
        if snap is not None:
            reason = needs_incident_update(entry, firing, mark, snap.get("state") == "acknowledged", reason)
        if reason is not None:
            out.append((integ, reason))
    return out


def build(plan: FlushPlan, updates: list[tuple[Integration, str]], g: GroupState, alerts: list[Alert],
          firing: frozenset[str], resolved: frozenset[str], snap: dict[str, Any] | None, mark: str, now: float,
          external_url: str) -> None:
    """The notification log entries and the notifications of `updates`, onto the plan. Pure."""
    for integ, reason in updates:
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
            alerts=list(sent), timestamp=now, reason=reason, external_url=external_url,
            truncated_alerts=truncated, incident=snap,
        ))


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
