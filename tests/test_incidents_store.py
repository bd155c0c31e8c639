"""The Redis incident store: atomic assignment, lifecycle, human actions, feedback, the snapshot contract."""
from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import redis.asyncio as aioredis

from service.core.clock import ManualClock
from service.store.cooccurrence import CooccurrenceStore
from service.incidents.correlation import CorrelationConfig
from service.incidents import IncidentConflict, IncidentNotFound, IncidentStore
from service.core.models import Alert
from tests.proc_kit import die_with_parent

T0 = 1_800_000_000.0
TOPO = {"frontend": ["checkout"], "checkout": ["payments", "inventory"], "payments": ["payments-db"],
        "search": ["search-index"]}
CFG = CorrelationConfig(enabled=True, topology=TOPO, quiet_period=300, reopen_cooldown=600, retention=3600)

SCHEMA_KEYS = {"id", "title", "state", "opened_at", "updated_at", "resolved_at", "severity", "severity_factors",
               "confidence", "confidence_factors", "services", "metrics", "entities", "members", "root_causes",
               "summary", "flapping", "held", "acked_by", "acked_at", "snoozed_until", "timeline", "url"}
MEMBER_KEYS = {"entity", "fingerprint", "labels", "annotations", "status", "starts_at", "ends_at", "score", "value",
               "expected", "detector", "generator_url", "joined_by"}


def alert(name: str, service: str, t: float, instance: str = "", **labels: str) -> Alert:
    return Alert(labels={"alertname": name, "service": service, "instance": instance or f"{service}-1", **labels},
                 annotations={"summary": f"{name} on {service}"}, starts_at=t, ends_at=t + 240)


def resolved(a: Alert, t: float) -> Alert:
    return Alert(labels=a.labels, annotations=a.annotations, starts_at=a.starts_at, ends_at=t)


def cascade(t: float = T0) -> list[Alert]:
    return [alert("PgConnectionsHigh", "payments-db", t, metric="pg_connections"),
            alert("PgSlowQueries", "payments-db", t + 15),
            alert("HighLatency", "payments", t + 40), alert("HighErrorRate", "payments", t + 55),
            alert("HighLatency", "checkout", t + 80, instance="co-1"),
            alert("HighLatency", "checkout", t + 85, instance="co-2"),
            alert("HighErrorRate", "frontend", t + 120)]


def store(redis, key_prefix, clock, cfg=CFG) -> IncidentStore:
    return IncidentStore(redis, key_prefix, clock, cfg, external_url="http://tocsin:9093")


async def test_cascade_becomes_one_incident_with_explained_joins(redis, key_prefix):
    """A database fault spreading up the call graph becomes one incident, each join with its reasons."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    ids = set()
    for a in cascade():
        clock.set(a.starts_at)
        iid, decision, created = await st.assign(a)
        ids.add(iid)
    assert len(ids) == 1
    snap = await st.get(ids.pop())
    assert SCHEMA_KEYS <= set(snap) and all(set(m) == MEMBER_KEYS for m in snap["members"])
    assert snap["members"][0]["joined_by"][0]["signal"] == "seed"
    for m in snap["members"][1:]:
        assert m["joined_by"][0]["signal"] == "time" and len(m["joined_by"]) >= 2
        assert all(j["matched"] and j["detail"] for j in m["joined_by"])
    assert snap["root_causes"][0]["service"] == "payments-db"
    assert snap["services"] == ["checkout", "frontend", "payments", "payments-db"]
    assert snap["title"].startswith("payments-db pg_connections + 6 related")
    assert snap["severity"] in ("critical", "error") and snap["severity_factors"][0]["explanation"]
    assert 0 < snap["confidence"] < 1 and snap["confidence_factors"]
    assert snap["url"] == f"http://tocsin:9093/api/v1/incidents/{snap['id']}"
    assert [e["event"] for e in snap["timeline"]] == ["opened"] + ["member_joined"] * 6


async def test_unrelated_alert_opens_second_incident(redis, key_prefix):
    """An alert on a service unrelated by labels and topology opens its own incident."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    a, _, _ = await st.assign(cascade()[0])
    b, decision, created = await st.assign(alert("DiskFull", "logging", T0 + 10))
    assert created and a != b and decision.incident_id is None


async def test_racing_replicas_create_one_incident(redis_url, key_prefix):
    """Two replicas on separate connections assigning related alerts at the same moment create one incident."""
    clients = [aioredis.from_url(redis_url), aioredis.from_url(redis_url)]
    try:
        for i in range(25):
            clock = ManualClock(T0)
            prefix = f"{key_prefix}r{i}"
            s1, s2 = (IncidentStore(c, prefix, clock, CFG) for c in clients)
            a = alert("PgSlowQueries", "payments-db", T0, run=str(i))
            b = alert("HighLatency", "payments", T0 + 1, run=str(i))
            (i1, _, c1), (i2, _, c2) = await asyncio.gather(s1.assign(a), s2.assign(b))
            assert i1 == i2 and [c1, c2].count(True) == 1
            assert len(await s1.list()) == 1
    finally:
        for c in clients:
            async for k in c.scan_iter(match=f"{key_prefix}*", count=1000):
                await c.delete(k)
            await c.aclose()


WORKER = textwrap.dedent("""
    import asyncio, json, sys
    import redis.asyncio as aioredis
    from service.core.clock import ManualClock
    from service.incidents.correlation import CorrelationConfig
    from service.incidents import IncidentStore
    from service.core.models import Alert

    async def main():
        url, prefix, cfg, alerts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
        r = aioredis.from_url(url)
        clock = ManualClock(0)
        st = IncidentStore(r, prefix, clock, CorrelationConfig(**cfg))
        out = {}
        for a in alerts:
            clock.set(a["starts_at"])
            al = Alert(**a)
            out[al.fingerprint] = (await st.assign(al))[0]
        print(json.dumps(out))
        await r.aclose()
    asyncio.run(main())
""")


async def _run_workers(redis_url: str, prefix: str, parts: list[list[Alert]]) -> dict[str, str]:
    cfg = json.dumps(CFG.model_dump())
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, redis_url, prefix, cfg,
        json.dumps([{"labels": a.labels, "annotations": a.annotations, "starts_at": a.starts_at,
                     "ends_at": a.ends_at} for a in part]),
        stdout=asyncio.subprocess.PIPE, cwd=".", preexec_fn=die_with_parent) for part in parts]
    out: dict[str, str] = {}
    for p in procs:
        stdout, _ = await p.communicate()
        assert p.returncode == 0
        out.update(json.loads(stdout))
    return out


def _partition(assignment: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for fp, iid in assignment.items():
        groups.setdefault(iid, set()).add(fp)
    return {frozenset(g) for g in groups.values()}


async def test_two_processes_yield_same_incidents_as_one(redis_url, key_prefix, redis):
    """Concurrent ingestion of two overlapping cascades and a stray alert, split across two processes,
    groups the alerts exactly as one process does."""
    alerts = sorted(cascade(T0) + [alert("DiskFull", "logging", T0 + 30), alert("IndexLag", "search-index", T0 + 20),
                                   alert("HighLatency", "search", T0 + 50), alert("HighErrorRate", "search", T0 + 60)],
                    key=lambda a: a.starts_at)
    single = await _run_workers(redis_url, key_prefix + "one", [alerts])
    double = await _run_workers(redis_url, key_prefix + "two", [alerts[0::2], alerts[1::2]])
    assert _partition(single) == _partition(double)
    assert len(_partition(single)) == 3
    for c in (key_prefix + "one", key_prefix + "two"):
        async for k in redis.scan_iter(match=f"{c}*", count=1000):
            await redis.delete(k)


async def test_resend_changes_nothing(redis, key_prefix):
    """A re-sent firing alert returns its incident without adding members or timeline entries."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    a = cascade()[0]
    iid, _, _ = await st.assign(a)
    before = await st.get(iid)
    for _ in range(5):
        clock.advance(60)
        resend = Alert(labels=a.labels, annotations=a.annotations, starts_at=a.starts_at, ends_at=clock.now() + 240)
        i2, d, created = await st.assign(resend)
        assert i2 == iid and not created and d.detail == "known member, unchanged"
    after = await st.get(iid)
    assert after["timeline"] == before["timeline"] and len(after["members"]) == 1


async def test_resolve_after_quiet_period_then_a_refire_opens_a_new_incident_then_retire(redis, key_prefix):
    """All members resolved + quiet period -> resolved; a member firing again after that starts a NEW incident
    (it does not reopen the old one: no chaining of episodes days apart); after the cool-down the old incident
    retires and its keys expire, while the member keeps its new incident."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    a, b = cascade()[:2]
    iid, _, _ = await st.assign(a)
    await st.assign(b)
    clock.set(T0 + 100)
    await st.on_alert_resolved(resolved(a, T0 + 100))
    assert await st.tick() == []
    await st.on_alert_resolved(resolved(b, T0 + 100))
    assert await st.next_due() == T0 + 400
    clock.set(T0 + 399)
    assert await st.tick() == []  # quiet period not over yet
    clock.set(T0 + 400)
    assert await st.tick() == [iid]
    assert (await st.get(iid))["state"] == "resolved"
    clock.set(T0 + 700)
    i2, d, created = await st.assign(Alert(labels=a.labels, starts_at=T0 + 700))
    assert created and i2 != iid and d.moved_from == iid
    old, new = await st.get(iid), await st.get(i2)
    assert old["state"] == "resolved" and a.fingerprint not in {m["fingerprint"] for m in old["members"]}
    assert [m["fingerprint"] for m in new["members"]] == [a.fingerprint]
    assert old["timeline"][-1]["event"] == "member_left"
    clock.set(T0 + 1000)  # past the 600 s cool-down of the old incident: retired
    await st.tick()
    assert 0 < await redis.ttl(st.keys("default").meta(iid)) <= 3600
    assert await st.incident_of(Alert(labels=a.labels, starts_at=T0 + 700)) == i2


async def test_flapping_member_marks_incident(redis, key_prefix):
    """An alert that fires and resolves repeatedly marks the incident flapping; its confidence moves as the
    shipped model weighs flapping (learned from the real streams), with the factor shown."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    a = cascade()[0]
    iid, _, _ = await st.assign(a)
    steady = (await st.get(iid))["confidence"]
    for i in range(3):
        clock.advance(60)
        await st.on_alert_resolved(resolved(a, clock.now()))
        clock.advance(60)
        await st.assign(Alert(labels=a.labels, starts_at=clock.now()))
    snap = await st.get(iid)
    from service.incidents.scoring import ConfidenceModel

    assert snap["flapping"] and (snap["confidence"] > steady) == (ConfidenceModel.load().weights["flapping"] > 0)
    assert any(f["factor"] == "flapping" for f in snap["confidence_factors"])


async def test_ack_snooze_and_snooze_end(redis, key_prefix):
    """Ack records who and when; a snooze ends at its time through tick and returns to acknowledged."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    iid, _, _ = await st.assign(cascade()[0])
    await st.ack(iid, "alice")
    snap = await st.get(iid)
    assert (snap["state"], snap["acked_by"], snap["acked_at"]) == ("acknowledged", "alice", T0)
    await st.snooze(iid, T0 + 600, "alice")
    assert (await st.get(iid))["state"] == "snoozed"
    clock.set(T0 + 601)
    assert await st.tick() == [iid]
    snap = await st.get(iid)
    assert snap["state"] == "acknowledged" and snap["snoozed_until"] is None
    assert [e["event"] for e in snap["timeline"]] == ["opened", "acknowledged", "snoozed", "snooze_ended"]


async def test_noise_feedback_lowers_confidence_of_similar_incidents(redis, key_prefix):
    """After people mark an incident as noise, the next incident with the same alerts is less confident."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    a = alert("QueueBacklog", "batch", T0)
    iid, _, _ = await st.assign(a)
    before = (await st.get(iid))["confidence"]
    await st.mark_noise(iid, "bob")
    await st.mark_noise(iid, "carol")
    clock.set(T0 + 60)
    await st.on_alert_resolved(resolved(a, T0 + 60))
    for t in (T0 + 400, T0 + 1100):  # resolve after the quiet period, retire after the cool-down
        clock.set(t)
        await st.tick()
    st2 = store(redis, key_prefix, clock)
    clock.set(T0 + 100_000)
    j, _, _ = await st2.assign(alert("QueueBacklog", "batch", T0 + 100_000, instance="batch-2"))
    snap = await st2.get(j)
    assert j != iid and snap["confidence"] < before
    assert any(f["factor"] == "feedback_history" for f in snap["confidence_factors"])


async def test_merge_and_split_move_members_and_teach_cooccurrence(redis, key_prefix):
    """Merge moves members (reason: manual) and raises the pair weight; split moves them out and lowers it."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock, CorrelationConfig(enabled=True, text_similarity=False))
    a = alert("QueueDepth", "mq", T0)
    b = alert("BatchLate", "reports", T0 + 30)
    ia, _, _ = await st.assign(a)
    clock.set(T0 + 30)
    ib, _, created = await st.assign(b)
    assert created and ia != ib
    await st.merge(ia, ib, "dave")
    snap = await st.get(ia)
    assert {m["fingerprint"] for m in snap["members"]} == {a.fingerprint, b.fingerprint}
    moved = next(m for m in snap["members"] if m["fingerprint"] == b.fingerprint)
    assert moved["joined_by"][-1]["signal"] == "manual" and "dave" in moved["joined_by"][-1]["detail"]
    other = await st.get(ib)
    assert other["state"] == "resolved" and other["merged_into"] == ia and other["members"] == []
    co = CooccurrenceStore(redis, key_prefix)
    merged_w = await co.weight("mq/QueueDepth", "reports/BatchLate", T0 + 30)
    assert merged_w > 0
    assert (await st.incident_of(b)) == ia
    new = await st.split(ia, [b.fingerprint], "erin")
    assert (await st.incident_of(b)) == new
    assert [m["fingerprint"] for m in (await st.get(new))["members"]] == [b.fingerprint]
    assert await co.weight("mq/QueueDepth", "reports/BatchLate", T0 + 30) < merged_w
    try:
        await st.split(ia, [a.fingerprint], "erin")
        raise AssertionError("splitting the last member must fail")
    except IncidentConflict as e:
        assert "at least one member" in str(e)


async def test_closed_incidents_teach_cooccurrence_that_later_joins(redis, key_prefix):
    """Pairs that closed together in several incidents later join on learned co-occurrence alone."""
    clock = ManualClock(T0)
    cfg = CorrelationConfig(enabled=True, text_similarity=False, quiet_period=60, reopen_cooldown=60)
    st = store(redis, key_prefix, clock, cfg)
    t = T0
    for _ in range(4):
        a, b = alert("QueueDepth", "mq", t), alert("BatchLate", "reports", t + 20)
        clock.set(t)
        ia, _, _ = await st.assign(a)
        clock.set(t + 20)
        ib, _, _ = await st.assign(b)
        if ia != ib:
            await st.merge(ia, ib, "ops")
        clock.set(t + 100)
        await st.on_alert_resolved(resolved(a, t + 100))
        await st.on_alert_resolved(resolved(b, t + 100))
        clock.set(t + 200)
        await st.tick()
        clock.set(t + 300)
        await st.tick()
        t += 3600
    clock.set(t)
    ia, _, _ = await st.assign(alert("QueueDepth", "mq", t))
    clock.set(t + 20)
    ib, d, created = await st.assign(alert("BatchLate", "reports", t + 20))
    assert ib == ia and not created
    assert any(r.signal == "cooccurrence" for r in d.reasons)


async def test_list_reads_a_page_in_a_constant_number_of_round_trips(redis, key_prefix, monkeypatch):
    """list() reads 12 incidents in as many Redis round trips as 3, and each row equals the incident's get()."""
    from redis.asyncio.connection import AbstractConnection

    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    for i in range(12):
        clock.set(T0 + i * 5000)  # unrelated: each its own incident
        iid, _, _ = await st.assign(alert("HighCPU", f"svc-{i}", T0 + i * 5000))
        if i % 2:
            await st.ack(iid, "x")
    sent = []
    real = AbstractConnection.send_packed_command

    async def counting(self, command, check_health=True):
        sent.append(1)
        return await real(self, command, check_health)

    for limit in (3, 12):  # warm up: connections (one per node on a cluster) open before anything is counted
        await st.list(limit=limit)
    await st.list(state="acknowledged", limit=6)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    trips = {}
    for limit in (3, 12):
        sent.clear()
        rows = await st.list(limit=limit)
        trips[limit] = len(sent)
        assert len(rows) == limit
    sent.clear()
    acked = await st.list(state="acknowledged", limit=6)
    assert len(sent) == trips[3]
    monkeypatch.setattr(AbstractConnection, "send_packed_command", real)
    assert trips[12] == trips[3]
    assert [r["state"] for r in acked] == ["acknowledged"] * 6
    assert rows == [await st.get(r["id"]) for r in rows]
    assert [r["opened_at"] for r in rows] == sorted((r["opened_at"] for r in rows), reverse=True)


async def test_list_by_service_finds_matches_past_the_first_batch(redis, key_prefix):
    """list(service=...) returns the incidents with an alert of that service, newest first, however many others
    are newer; with a state too, both must hold."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    want = []
    for i in range(130):  # more than one LIST_BATCH
        clock.set(T0 + i * 5000)
        svc = "search" if i in (3, 7) else f"svc-{i}"
        iid, _, _ = await st.assign(alert("HighCPU", svc, T0 + i * 5000, instance=f"{svc}-{i}"))
        if svc == "search":
            want.append(iid)
    assert len(set(want)) == 2
    await st.ack(want[1], "x")
    assert [s["id"] for s in await st.list(service="search", limit=5)] == want[::-1]
    assert [s["id"] for s in await st.list(service="search", state="acknowledged")] == [want[1]]
    assert [s["id"] for s in await st.list(service="search", limit=1)] == [want[1]]
    assert await st.list(service="nowhere") == []


async def test_domains_never_mix(redis, key_prefix):
    """With domain_labels, identical alerts of two tenants land in separate incidents, each readable by id."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock, CorrelationConfig(enabled=True, domain_labels=["tenant"]))
    i1, _, _ = await st.assign(alert("HighCPU", "api", T0, tenant="a"))
    i2, _, _ = await st.assign(alert("HighCPU", "api", T0, tenant="b"))
    assert i1 != i2
    assert (await st.get(i2))["members"][0]["labels"]["tenant"] == "b"


async def test_list_filters_and_missing_incident(redis, key_prefix):
    """list filters by state and time; an unknown id raises IncidentNotFound."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    i1, _, _ = await st.assign(alert("DiskFull", "logging", T0))
    clock.set(T0 + 5000)
    i2, _, _ = await st.assign(alert("HighCPU", "search", T0 + 5000))
    await st.ack(i2, "x")
    assert [s["id"] for s in await st.list()] == [i2, i1]
    assert [s["id"] for s in await st.list(state="acknowledged")] == [i2]
    assert [s["id"] for s in await st.list(until=T0 + 10)] == [i1]
    try:
        await st.get("inc-nope")
        raise AssertionError("expected IncidentNotFound")
    except IncidentNotFound as e:
        assert "inc-nope" in str(e)


async def test_verdicts_teach_this_installations_confidence_model(redis, key_prefix):
    """People's verdicts move the installation's own model (kept in Redis, seen by every replica): after many
    incidents marked noise, a new incident of a never-seen alert type is less confident than it would be on a
    fresh installation, and acknowledgements move it back up."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    fresh = store(redis, key_prefix + "-fresh", clock)

    async def lone(s: IncidentStore, name: str, t: float) -> str:
        clock.set(t)
        iid, _, _ = await s.assign(alert(name, f"svc-{name}", t))
        return iid

    for i in range(12):
        await st.mark_noise(await lone(st, f"Noise{i}", T0 + 1000 * i), "oncall")
    learned = {k.decode(): float(v) for k, v in (await redis.hgetall(st.keys("default").cmodel)).items()}
    assert learned["verdicts"] == 12 and learned["bias"] < 0
    probe_t = T0 + 50_000
    baseline = (await fresh.get(await lone(fresh, "NeverSeen", probe_t)))["confidence"]
    other_replica = store(redis, key_prefix, clock)
    after_noise = (await other_replica.get(await lone(other_replica, "NeverSeen", probe_t)))["confidence"]
    assert after_noise < baseline
    for i in range(24):
        await st.ack(await lone(st, f"Real{i}", probe_t + 1000 * (i + 1)), "oncall")
    snap = await st.get(await lone(st, "NeverSeenEither", probe_t + 100_000))
    assert snap["confidence"] > after_noise
    assert "feedback" in snap["confidence_factors"][0]["explanation"]


async def test_an_entity_that_joined_once_rejoins_only_within_its_own_rolling_window(redis, key_prefix):
    """The cascade's checkout joined while young; payments-db keeps the incident alive with new alerts; checkout
    firing again long after its own last onset is a new incident, not a member of the old one."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    alerts = cascade()
    iid, _, _ = await st.assign(alerts[0])
    for a in alerts[1:5]:
        await st.assign(a)
    assert "co-1" in {m["labels"].get("instance") for m in (await st.get(iid))["members"]}
    clock.set(T0 + 140)  # checkout's alert resolves a minute after it fired (while it fires, checkout is in)
    await st.on_alert_resolved(resolved(alerts[4], T0 + 140))
    for k, t in enumerate(range(250, 1000, 200)):  # payments-db misbehaves on, within its own window each time
        clock.set(T0 + t)
        j, _, _ = await st.assign(alert(f"PgLocks{k}", "payments-db", T0 + t, instance="payments-db-1"))
        assert j == iid
    clock.set(T0 + 1000)
    later, _, created = await st.assign(alert("HighErrorRate", "checkout", T0 + 1000, instance="co-1"))
    assert created and later != iid


async def test_an_entity_keeps_its_incident_while_one_of_its_members_still_fires(redis, key_prefix):
    """A disk that stays full keeps db-1's incident: a new alert of db-1 twenty minutes later (far outside the
    rolling window of its latest onset) joins it. Once the disk alert resolves, db-1's next alert outside the window
    opens a new incident. The count of firing members per entity is kept in Redis, through every transition."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    disk = Alert(labels={"alertname": "DiskFull", "service": "db", "instance": "db-1"},
                 annotations={"summary": "disk full"}, starts_at=T0)
    iid, _, created = await st.assign(disk)
    assert created
    clock.set(T0 + 1200)
    io = alert("HighIO", "db", T0 + 1200, instance="db-1")
    j, _, created = await st.assign(io)
    assert j == iid and not created
    joined = next(m for m in (await st.get(iid))["members"] if m["labels"]["alertname"] == "HighIO")
    assert "still has a firing member" in joined["joined_by"][0]["detail"]
    for a, t in ((io, T0 + 1440), (disk, T0 + 1500)):
        clock.set(t)
        await st.on_alert_resolved(resolved(a, t))
    clock.set(T0 + 3000)  # 1800 s after db-1's latest onset: outside its window (5 steps of the 240 s it learned)
    later, _, created = await st.assign(alert("HighLatency", "db", T0 + 3000, instance="db-1"))
    assert created and later != iid


async def test_a_new_alert_after_every_member_resolved_opens_a_new_incident(redis, key_prefix):
    """db-1's only alert fired for 240 s and resolved. Another alert of db-1 at +900 s, inside the rolling window of
    db-1's latest onset (5 steps of the 240 s learned) but 660 s after the incident went quiet (more than the cross
    window of 2 steps), is a new wave: a new incident, with a new page. The same series flapping back instead
    rejoins its incident (db-2's case); with the new wave firing, db-1's flap joins the wave, where db-1 is active."""
    clock = ManualClock(T0)
    st = store(redis, key_prefix, clock)
    disk, disk2 = alert("DiskLatency", "db", T0, instance="db-1"), alert("DiskLatency", "db", T0, instance="db-2")
    iid, _, _ = await st.assign(disk)
    iid2, _, _ = await st.assign(disk2)
    assert iid2 != iid
    clock.set(T0 + 240)
    await st.on_alert_resolved(resolved(disk, T0 + 240))
    await st.on_alert_resolved(resolved(disk2, T0 + 240))
    clock.set(T0 + 900)
    wave, _, created = await st.assign(alert("HighIO", "db", T0 + 900, instance="db-1"))
    assert created and wave != iid
    again, _, created = await st.assign(alert("DiskLatency", "db", T0 + 900, instance="db-2"))
    assert again == iid2 and not created
    flap, _, created = await st.assign(alert("DiskLatency", "db", T0 + 900, instance="db-1"))
    assert flap == wave and not created
