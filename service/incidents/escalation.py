"""Escalation policies: ordered levels, each with a delay and targets, repeated a number of times, until
someone acknowledges or resolves the incident (snooze pauses it).

Timers are data in Redis (service/store/escalations.py), claimed atomically like group timers (per-shard sorted
sets, a fencing token per claim), and a fired step commits its notifications to the outbox and the next step in
one script. With several
replicas each step fires exactly once; after a restart no step is lost (a claim whose holder died is retried
after its lease) or repeated (the fencing token stops a late commit).

    tocsin:
      escalation:
        policies:
          db-oncall:
            repeat: 1                       # run through the levels this many extra times
            levels:
              - delay: 5m                   # after the incident's first notification
                targets: [{receiver: oncall-slack, mention: "<@U024BE7LH>"}]
              - delay: 10m
                targets: [{receiver: pagerduty-primary}]

A route opts in with `tocsin: {escalation: db-oncall}`. Levels come on top of the route's own receiver.
"""
from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Literal

import structlog

from service.core.clock import Clock
from service.core.models import Alert, Notification
from service.store.escalations import EscalationStore
from service.store.keys import Keys, Scripts

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("tocsin.escalation")

STOP_STATES = ("acknowledged", "resolved")
TTL = 30 * 24 * 3600


# The policies are a module of their own (a section `tocsin check-config` validates without
# loading Redis or the escalator); these names stay importable from here.
from service.incidents.policies import EscalationConfig, Level, Policy, Target  # noqa: E402

__all__ = ["EscalationConfig", "Escalator", "Level", "Policy", "Target", "decide", "escalation_id", "paged_receivers"]


WATCH_EVERY = 60.0  # after the last level: how often to look whether the incident was acknowledged/resolved


@dataclass(frozen=True)
class Decision:
    kind: Literal["fire", "stop", "pause", "watch"]
    next_step: int  # the step stored after this decision
    next_due: float | None  # None: the escalation is finished


def decide(policy: Policy, step: int, state: str | None, snoozed_until: float | None, now: float) -> Decision:
    """What to do when step `step` of `policy` falls due at `now`, given the incident's state. Pure.

    After the last level the escalation keeps watching the incident (without paging again), so that the
    targets it paged hear of the acknowledgement or resolution (a PagerDuty incident opened by a level is
    acknowledged/resolved with it)."""
    if state is None or state in STOP_STATES:
        return Decision("stop", step, None)
    if state == "snoozed" and snoozed_until is not None and snoozed_until > now:
        return Decision("pause", step, snoozed_until)
    if step >= policy.steps:
        return Decision("watch", step, now + WATCH_EVERY)
    nxt = step + 1
    if nxt >= policy.steps:
        return Decision("fire", nxt, now + WATCH_EVERY)
    return Decision("fire", nxt, now + policy.level(nxt).delay)


def paged_receivers(policy: Policy, step: int) -> list[str]:
    """The receivers the levels before `step` have paged, once each, in order."""
    out: list[str] = []
    for i in range(min(step, policy.steps)):
        for t in policy.level(i).targets:
            if t.receiver not in out:
                out.append(t.receiver)
    return out


def escalation_id(incident_id: str, policy: str) -> str:
    return "e" + hashlib.sha1(f"{incident_id}\x00{policy}".encode()).hexdigest()[:19]


IncidentLookup = Callable[[str], Awaitable[dict[str, Any] | None]]


class Escalator:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, clock: Clock, cfg: EscalationConfig,
                 integrations: Callable[[str], list[Any]], incident: IncidentLookup, external_url: str = "",
                 lease: float = 30.0, replica_id: str | None = None,
                 on_schedule: Callable[[float], None] | None = None):
        self.store = EscalationStore(redis, keys, scripts, TTL)
        self.clock = clock
        self.cfg = cfg
        self.integrations = integrations
        self.incident = incident
        self.external_url = external_url
        self.lease = lease
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self.on_schedule = on_schedule or (lambda t: None)

    async def start(self, incident_id: str, policy_name: str, route_id: str, now: float) -> bool:
        policy = self.cfg.policies.get(policy_name)
        if policy is None:
            log.warning("escalation_policy_unknown", policy=policy_name)
            return False
        due = now + policy.levels[0].delay
        started = await self.store.start(escalation_id(incident_id, policy_name), incident_id, policy_name, route_id,
                                         due)
        if started:
            self.on_schedule(due)
        return started

    async def next_due(self) -> float | None:
        return await self.store.next_due()

    async def run_due(self) -> int:
        now = self.clock.now()
        fired = 0
        for eid, token in await self.store.claim_due(now, self.lease, f"{self.replica_id}.{next(self._counter)}"):
            try:
                fired += await self._fire(eid, token, now)
            except Exception as e:  # one broken escalation must not stop the others; retried after the lease
                log.error("escalation_failed", escalation=eid, error=repr(e))
        return fired

    async def state(self, incident_id: str, policy_name: str) -> tuple[dict[str, str], float | None]:
        """An escalation's stored fields ({} if it never started) and when its next step is due (read only)."""
        eid = escalation_id(incident_id, policy_name)
        h = await self.store.read(eid)
        return h, (await self.store.due_at(eid) if h else None)

    async def _fire(self, eid: str, token: str, now: float) -> int:
        h = await self.store.read(eid)
        policy = self.cfg.policies.get(h.get("policy", ""))
        step = int(h.get("step", 0))
        snap = await self.incident(h["incident"]) if h.get("incident") else None
        if policy is None:
            d = Decision("stop", step, None)
        else:
            d = decide(policy, step, snap.get("state") if snap else None, snap.get("snoozed_until") if snap else None, now)
        notes: list[Notification] = []
        if d.kind == "fire" and policy is not None and snap is not None:
            level = policy.level(step)
            for t in level.targets:
                for integ in self.integrations(t.receiver):
                    notes.append(self._notification(eid, integ, t, snap, step, policy, now))
        elif d.kind == "stop" and policy is not None and snap is not None and step > 0:
            # Tell every target already paged that the incident is acknowledged or resolved.
            for name in paged_receivers(policy, step):
                for integ in self.integrations(name):
                    notes.append(self._notification(eid, integ, Target(receiver=name), snap, step - 1, policy, now,
                                                    closing=True))
        if not await self.store.commit(eid, token, d.next_due, d.next_step,
                                       [(n.integration, n.receiver, n.to_json()) for n in notes]):
            return 0
        if notes:
            log.info("escalation_fired", incident=h.get("incident"), policy=h.get("policy"), level=step % len(policy.levels) + 1 if policy else None)
        return 1 if d.kind == "fire" else 0

    def _notification(self, eid: str, integ: Any, target: Target, snap: dict[str, Any], step: int, policy: Policy,
                      now: float, closing: bool = False) -> Notification:
        level_no = step % len(policy.levels) + 1
        cycle = step // len(policy.levels)
        alerts = [Alert(labels=m.get("labels", {}), annotations=m.get("annotations", {}),
                        starts_at=m.get("starts_at") or now, ends_at=m.get("ends_at") or now + 3600,
                        generator_url=m.get("generator_url", ""), fingerprint=m.get("fingerprint", ""))
                  for m in snap.get("members", [])[:50]]
        incident = dict(snap, escalation={"level": level_no, "of": len(policy.levels), "cycle": cycle,
                                          "mention": target.mention})
        if closing:
            incident = dict(snap)  # no escalation banner: this is the update that closes the page
            reason = f"escalation stopped: {snap.get('state')}"
        else:
            reason = f"escalation level {level_no}" + (f" (repeat {cycle})" if cycle else "")
        return Notification(
            id="", receiver=integ.receiver, integration=integ.id, group_key=f"escalation:{snap.get('id')}",
            group_labels={"incident": str(snap.get("id"))},
            status="resolved" if closing and snap.get("state") == "resolved" else "firing", alerts=alerts,
            timestamp=now, reason=reason, external_url=self.external_url, incident=incident,
        )
