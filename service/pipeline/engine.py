"""The pipeline, wired: one object that `serve`, `replay` and the tests all drive the same way.

ingest -> alert store + aggregation groups (Redis) -> scheduler claims due groups -> flush decides -> outbox
stream -> delivery to receivers.
"""
from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any, Callable

import structlog

from routing.receivers.base import Receiver
from routing.receivers.console import Recording
from routing.receivers.registry import build_receiver, send_resolved_default
from routing.silences import Silences

from service.core.clock import Clock, SystemClock
from service.config.sections import Config
from service.pipeline.dispatch import Dispatcher
from service.core.metrics import Metrics
from service.core.models import Alert, Notification
from service.pipeline.outbox import Outbox
from service.pipeline.scheduler import Scheduler
from service.store.alerts import AlertStore
from service.store.digests import DigestStore
from service.store.groups import GroupStore
from service.store.keys import Keys, Scripts
from service.store.outbox import OutboxStore
from service.store.silences import SilenceStore

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("tocsin.engine")

ReceiverFactory = Callable[[str, str, dict[str, Any], Config, Clock], Receiver]


def default_receiver_factory(integration: str, kind: str, c: dict[str, Any], cfg: Config, clock: Clock) -> Receiver:
    return build_receiver(integration, kind, c, cfg.global_, cfg.tocsin.delivery.timeout, clock,
                          go_templates=cfg.go_templates)


def recording_factory(sink: list[Notification]) -> ReceiverFactory:
    def make(integration: str, kind: str, c: dict[str, Any], cfg: Config, clock: Clock) -> Receiver:
        return Recording(integration, sink, bool(c.get("send_resolved", send_resolved_default(kind))))

    return make


def build_receivers(cfg: Config, factory: ReceiverFactory, clock: Clock | None = None) -> dict[str, Receiver]:
    clock = clock or SystemClock()
    out: dict[str, Receiver] = {}
    for name, r in cfg.receivers.items():
        counts: dict[str, int] = {}
        for kind, c in r.integrations:
            idx = counts.get(kind, 0)
            counts[kind] = idx + 1
            integration = f"{name}/{kind}/{idx}"
            out[integration] = factory(integration, kind, c, cfg, clock)
    return out


def entity_labels_of(cfg: Config, defaults: list[str]) -> list[str]:
    """The labels that name an entity: what the correlating routes group by (the user said so) that is not a
    service or alert name, then the well-known entity labels, the most specific first."""
    from service.incidents.correlation import SERVICE_LABELS

    first: list[str] = []
    for r in cfg.route.walk():
        if not r.extra.get("correlate", True):
            continue
        for name in r.opts.group_by:
            if name not in SERVICE_LABELS and name not in ("alertname", "severity") and name not in first:
                first.append(name)
    return first + [x for x in defaults if x not in first]


def default_consumer(listen: str) -> str:
    return os.environ.get("TOCSIN_INSTANCE") or f"{socket.gethostname()}:{listen}"


class Engine:
    def __init__(self, cfg: Config, redis: Redis, clock: Clock, *, consumer: str | None = None,
                 receiver_factory: ReceiverFactory = default_receiver_factory, metrics: Metrics | None = None):
        self.cfg = cfg
        self.redis = redis
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.keys = Keys(cfg.tocsin.redis.key_prefix, cfg.tocsin.redis.shards)
        self.scripts = Scripts(redis)
        # The stores, built once and passed down: the pipeline decides, they read and write Redis.
        self.alerts = AlertStore(redis, self.keys, self.scripts)
        self.groups = GroupStore(redis, self.keys, self.scripts)
        self.digest_store = DigestStore(redis, self.keys)
        self.silences = Silences(SilenceStore(redis, self.keys))
        self.receiver_factory = receiver_factory
        self.receivers = build_receivers(cfg, receiver_factory, clock)
        self.consumer = consumer or f"{default_consumer(cfg.tocsin.listen)}"
        self.scheduler: Scheduler
        # A lower bound of the next timer of any kind, kept from this process's own scheduling (replay uses it
        # to skip asking Redis); every path that schedules calls _scheduled.
        self.due_hint = float("-inf")
        # True only where this process is the one writer of its key prefix (replay): it may then skip reads of
        # what only it writes. serve is never a single writer (replicas share the state).
        self.single_writer = False
        self._schedules = 0  # calls of _scheduled (a group or escalation timer was set)
        self._seen_dues: tuple[float, float, int] | None = None  # (groups, incidents, _schedules) at next_due
        self.dispatcher = Dispatcher(self.groups, self.alerts, cfg, clock, self.silences,
                                     on_schedule=self._scheduled, metrics=self.metrics)
        self.scheduler = Scheduler(self.groups, self.dispatcher, clock,
                                   replica_id=f"{self.consumer}.{uuid.uuid4().hex[:6]}")
        d = cfg.tocsin.delivery
        self.outbox = Outbox(OutboxStore(redis, self.keys, self.scripts), clock, self.consumer, self.receivers.get,
                             max_attempts=d.max_attempts, backoff_initial=d.backoff_initial,
                             backoff_max=d.backoff_max, metrics=self.metrics)
        self.outbox.go_templates = cfg.go_templates
        self.scheduler.on_flushed.append(self._after_flush)
        self.dispatcher.before_commit.append(self._start_escalation)
        self._bind_digests()
        self.incidents: Any = None
        self._last_tick = float("-inf")
        self.escalator: Any = None
        self.summaries: Any = None
        self._llm: Any = None  # the LLMConfig self.summaries was built from
        self._setup_extensions(cfg)

    def _digests(self) -> list[Any]:
        return [r for r in self.receivers.values() if hasattr(r, "run_due") and hasattr(r, "bind")]

    def _bind_digests(self) -> None:
        for r in self._digests():
            r.bind(self.digest_store, self._notify_receiver)

    async def _notify_receiver(self, name: str, n: Notification) -> None:
        """Queue a notification for every integration of receiver `name` (a digest item that grew), through the
        outbox on a lane of its own per incident and receiver: delivered durably, and later updates of the same
        incident edit the same message."""
        import hashlib
        from dataclasses import replace

        ident = (n.incident or {}).get("id") if isinstance(n.incident, dict) else None
        gid = "d" + hashlib.sha1(f"{ident or n.group_key}\x00{name}".encode()).hexdigest()[:19]
        notes: list[tuple[str, str, str]] = []
        for integ in self.dispatcher.integrations.get(name, []):
            m = replace(n, integration=integ.id, receiver=integ.receiver, reason="escalated from digest")
            notes.append((integ.id, integ.receiver, m.to_json()))
        if notes:
            await self.outbox.store.enqueue(gid, 30 * 24 * 3600, notes)
            self.outbox.wake()

    def _incident_scheduled(self, t: float) -> None:
        """An incident lifecycle time was set: replay must not jump past it (serve's timer loop looks every second)."""
        self.due_hint = min(self.due_hint, t)

    def _scheduled(self, t: float) -> None:
        self._schedules += 1
        self.due_hint = min(self.due_hint, t)
        self.scheduler.wake(t)

    def _setup_extensions(self, cfg: Config) -> None:
        """Correlation (incidents), summaries and escalation, when configured."""
        from service.incidents.escalation import EscalationConfig, Escalator

        from service.incidents.correlation import CorrelationConfig

        corr = CorrelationConfig.model_validate(cfg.tocsin.correlation or {})
        if corr.enabled and "entity_labels" not in (cfg.tocsin.correlation or {}):
            corr.entity_labels = entity_labels_of(cfg, corr.entity_labels)
        if corr.enabled:
            from service.incidents import IncidentStore

            external = cfg.tocsin.external_url or f"http://{cfg.tocsin.listen}"
            if self.incidents is None:
                self.incidents = IncidentStore(self.redis, self.keys.prefix, self.clock, corr, external)
                self.incidents.on_schedule = self._incident_scheduled
            else:
                self.incidents.cfg = corr
            from service.summaries.config import LLMConfig, build_summary_service
            from service.summaries.metrics import metrics_for

            llm = cfg.extensions.llm or LLMConfig.parse(cfg.tocsin.llm or {})  # validated at load when parsed
            if self.summaries is None or llm != self._llm:  # a reload with new LLM settings builds a new service
                self._llm = llm
                self.summaries = build_summary_service(llm, self.redis, self.keys.prefix, self.clock,
                                                       metrics=metrics_for(self.metrics.registry))
        else:
            self.incidents = None
        self.dispatcher.incidents = self.incidents
        self.dispatcher.summaries = self.summaries if self.incidents is not None else None
        esc = EscalationConfig.model_validate(cfg.tocsin.escalation or {})
        if esc.policies and self.incidents is not None:
            self.escalator = Escalator(self.redis, self.keys, self.scripts, self.clock, esc,
                                       lambda name: self.dispatcher.integrations.get(name, []), self._incident,
                                       external_url=self.dispatcher.external_url,
                                       replica_id=self.scheduler.replica_id, on_schedule=self._scheduled)
        else:
            self.escalator = None

    async def _incident(self, iid: str) -> dict[str, Any] | None:
        from service.incidents import IncidentNotFound

        try:
            return await self.incidents.get(iid)
        except IncidentNotFound:
            return None

    async def _after_flush(self, plan: Any) -> None:
        self.metrics.flushes.inc()
        if plan.notifications:
            self.outbox.wake()

    async def _start_escalation(self, plan: Any) -> None:
        if self.escalator is not None and plan.incident is not None and plan.route is not None:
            policy = plan.route.extra.get("escalation")
            if policy and any(n.reason == "first notification" for n in plan.notifications):
                await self.escalator.start(plan.incident["id"], str(policy), plan.route.id, self.clock.now())

    async def start(self) -> None:
        await self.outbox.ensure_groups()

    async def ingest(self, alerts: list[Alert]) -> None:
        self._seen_dues = None  # incident lifecycles may change
        await self.dispatcher.ingest(alerts)

    async def step(self) -> int:
        """Advance everything due at the clock's now, then deliver what was decided (replay and tests)."""
        now = self.clock.now()
        # What _next_due_one_read just saw, when nothing was scheduled since: a timer source that is not due
        # now needs no look (replay steps right after asking).
        seen, self._seen_dues = self._seen_dues, None
        if seen is not None and seen[2] != self._schedules:
            seen = None
        if self.incidents is not None and not (seen is not None and seen[1] > now):
            await self._tick_incidents(now)  # reads only incidents whose lifecycle time has come
        if seen is not None and seen[0] > now and seen[2] == self._schedules:
            n = 0
        else:
            n, _ = await self.scheduler.run_due()
        if self.escalator is not None:
            n += await self.escalator.run_due()
        if not self.single_writer or self.outbox.woken or self.escalator is not None:
            # A single writer (replay) knows when it enqueued something: every enqueue of its own wakes the outbox.
            await self.outbox.drain()
        n += await self._run_digests()
        self.due_hint = float("-inf")  # unknown again until the next exact look
        return n

    async def _run_digests(self) -> int:
        """Send the digests that are due; one failing digest does not hold up the others."""
        n = 0
        for d in self._digests():
            try:
                n += await d.run_due()
            except Exception as e:
                log.warning("digest_failed", digest=d.integration, error=repr(e))
        return n

    async def _tick_incidents(self, now: float) -> None:
        """Incident lifecycles (snooze ends, quiet resolution, retirement) in every correlation domain."""
        domains = await (self.incidents.known_domains() if self.single_writer else self.incidents.domains())
        for domain in domains:
            for iid in await self.incidents.tick(now, domain=domain):
                await self.dispatcher.touch_incident(iid)

    async def next_due(self) -> float | None:
        """The earliest timer of any kind (group flushes, escalation steps)."""
        if self.escalator is None and not self._digests() and (self.incidents is None or self.single_writer):
            return await self._next_due_one_read()
        times = [await self.scheduler.next_due()]
        if self.escalator is not None:
            times.append(await self.escalator.next_due())
        for d in self._digests():
            times.append(await d.next_due())
        if self.incidents is not None:
            for domain in await self.incidents.domains():
                times.append(await self.incidents.next_due(domain))
        times = [t for t in times if t is not None]
        return min(times) if times else None

    async def _next_due_one_read(self) -> float | None:
        """next_due in one round trip: the group timers of every shard and the incident lifecycles of every
        correlation domain (the domains a single writer created itself; see IncidentStore.known_domains)."""
        domains = await self.incidents.known_domains() if self.incidents is not None else []
        zsets = [self.keys.due(shard) for shard in range(self.keys.shards)]
        zsets += [self.incidents.keys(domain).due for domain in domains]
        res = await self.groups.first_scores(zsets)
        groups = [t / 1000 for t in res[:self.keys.shards] if t is not None]
        incidents = [t for t in res[self.keys.shards:] if t is not None]
        inf = float("inf")
        self._seen_dues = (min(groups, default=inf), min(incidents, default=inf), self._schedules)
        times = groups + incidents
        return min(times) if times else None

    async def run_timers(self, every: float = 1.0) -> None:
        """The serve loop for escalations and incident lifecycles (group timers have their own loop)."""
        import asyncio

        while True:
            try:
                if self.incidents is not None:
                    await self._tick_incidents(self.clock.now())
                if self.escalator is not None and await self.escalator.run_due():
                    self.outbox.wake()
                await self._run_digests()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("timers_error", error=repr(e))
            await self.clock.sleep(every)

    async def reload(self, cfg: Config) -> None:
        """Swap in a new configuration: build everything new first, then replace the live parts."""
        receivers = build_receivers(cfg, self.receiver_factory, self.clock)
        old = self.receivers
        self.cfg = cfg
        self.receivers = receivers
        self.outbox.receivers = receivers.get
        self.outbox.go_templates = cfg.go_templates
        self._bind_digests()
        self.dispatcher.set_config(cfg)
        self._setup_extensions(cfg)
        await self._regroup()
        for r in old.values():
            try:
                await r.close()
            except Exception:  # pragma: no cover - best effort
                pass

    async def _regroup(self) -> None:
        """Re-route the grouped alerts under the new route tree (as Alertmanager re-forms its groups on reload).
        A failure leaves the new config running: the alerts move on their next re-send, which re-groups them."""
        from service.pipeline.regroup import regroup

        try:
            await regroup(self.dispatcher, self.clock.now())
        except Exception as e:
            self.metrics.background_errors.labels("regroup").inc()
            log.error("regroup_failed", error=repr(e))

    async def close(self) -> None:
        await self.outbox.close()
        for r in self.receivers.values():
            await r.close()
