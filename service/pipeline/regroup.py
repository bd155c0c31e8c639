"""Re-forming aggregation groups after a configuration reload.

Alertmanager rebuilds its dispatcher on reload and re-routes every alert into freshly formed groups. Tocsin keeps
groups in Redis keyed by route id (`routing.route_tree.route_id`, which survives edits to other routes), so a reload
only has to move the alerts whose routing changed: `moves` decides, from each firing alert's current memberships
and the groups the new route tree puts it in, which memberships to add and which to drop (a pure function);
`regroup` reads the groups (service/store/groups.py), asks `moves`, and writes the result through the group store
(new memberships first, so an alert is never in no group).

An alert in an incident group keeps its incident: its correlating routes map to the same incident's groups. An
alert whose correlating route has no known incident (correlation was just turned on) keeps its memberships; its
next re-send assigns it (the reload changed the config hash, so re-sends go through grouping again).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from service.core.models import Alert
from service.store.keys import group_id, ms

log = structlog.get_logger("tocsin.regroup")

CHUNK = 500  # groups read per pipeline


@dataclass(frozen=True)
class Target:
    """A group an alert belongs in under the new route tree."""

    gid: str
    route_id: str
    key: str
    labels: dict[str, str]
    group_wait: float


@dataclass(frozen=True)
class Move:
    fingerprint: str
    generation: str
    add: tuple[Target, ...]
    drop: tuple[str, ...]  # group ids


def moves(current: dict[str, dict[str, str]], targets: dict[str, list[Target] | None]) -> list[Move]:
    """What to change, per alert: `current` maps fingerprint -> {gid: generation} (its memberships now),
    `targets` fingerprint -> the groups it belongs in now (None: unknown, keep everything as it is)."""
    out: list[Move] = []
    for fp, groups in current.items():
        want = targets.get(fp)
        if want is None:
            continue
        wanted = {t.gid for t in want}
        add = tuple(t for t in want if t.gid not in groups)
        drop = tuple(sorted(g for g in groups if g not in wanted))
        if add or drop:
            out.append(Move(fp, next(iter(groups.values())), add, drop))
    return out


async def _memberships(dispatcher: Any) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """fingerprint -> {gid: generation} over every group, and gid -> incident id for incident groups."""
    current, labels = await dispatcher.groups.memberships(CHUNK)
    return current, {gid: gl["incident"] for gid, gl in labels.items() if "incident" in gl}


def _targets(dispatcher: Any, a: Alert, iids: set[str]) -> list[Target] | None:
    from service.pipeline.dispatch import incident_group_key

    out: list[Target] = []
    for r, gid, gk, gl in dispatcher._groups_for(a):
        if dispatcher.correlates(r):
            if len(iids) != 1:
                return None
            (iid,) = iids
            gk, gl = incident_group_key(r, iid), {"incident": iid}
            gid = group_id(r.id, gk)
        out.append(Target(gid, r.id, gk, gl, r.opts.group_wait))
    return out


async def regroup(dispatcher: Any, now: float) -> int:
    """Move firing alerts into the groups the dispatcher's (new) route tree gives them. Returns how many alerts
    moved."""
    current, incident = await _memberships(dispatcher)
    alerts = await dispatcher.store.get_many(sorted(current))
    targets: dict[str, list[Target] | None] = {}
    for fp, groups in current.items():
        a = alerts.get(fp)
        if a is None or a.resolved_at(now):
            continue  # a resolved alert stays where its resolved notification is due
        targets[fp] = _targets(dispatcher, a, {incident[g] for g in groups if g in incident})
    todo = moves(current, targets)
    if not todo:
        return 0
    keys, now_ms = dispatcher.keys, ms(now)
    by_shard: dict[int, dict[str, tuple[list[Any], list[Any]]]] = {}
    for m in todo:
        a = alerts[m.fingerprint]
        for t in m.add:
            items = by_shard.setdefault(keys.shard_of(t.gid), {})
            head, members = items.setdefault(t.gid, ([t.gid, t.route_id, t.key, json.dumps(t.labels, sort_keys=True),
                                                      ms(t.group_wait)], []))
            members.extend((m.fingerprint, m.generation, ms(a.starts_at)))
    dues = await dispatcher.groups.upsert(by_shard, now_ms)
    await dispatcher.groups.drop_members([(gid, [m.fingerprint]) for m in todo for gid in m.drop])
    if dues:
        dispatcher.on_schedule(min(dues) / 1000)
    log.info("regrouped", alerts=len(todo))
    return len(todo)
