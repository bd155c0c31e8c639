"""Tocsin runs on Redis Cluster: every script and transaction touches keys of one hash slot only.

The tests run the pipeline against a real 3-master cluster (tests/cluster_kit.py, `redis+cluster://` URL,
redis-py's RedisCluster): a script or MULTI whose keys span slots is refused by the client (declared keys) or by
the server (CROSSSLOT, or a key the node does not own), so a key two scripts touch without a shared hash tag
fails here, not in production.
"""
from __future__ import annotations

import pytest

from service.store.keys import open_redis
from tests.cluster_kit import cluster_fixture
from tests.pipeline_kit import T0, harness
from tests.test_pipeline import alert

CONFIG = """
global: {resolve_timeout: 1h}
route: {receiver: r, group_by: [alertname], group_wait: 10s, group_interval: 60s, repeat_interval: 10m}
receivers: [{name: r, webhook_configs: [{url: "http://127.0.0.1:1/a"}]}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
"""


redis_cluster = cluster_fixture()


@pytest.fixture
async def cluster(redis_cluster):
    client = open_redis(redis_cluster.url, timeout=None, socket_timeout=None, socket_connect_timeout=None)
    yield client
    await client.aclose()


async def test_pipeline_never_crosses_slots(cluster, key_prefix):
    """Ingest, flush, inhibition, silences and delivery all run on a 3-master cluster without CROSSSLOT errors."""
    h = await harness(cluster, CONFIG, key_prefix)
    await h.engine.silences.upsert({
        "matchers": [{"name": "id", "value": "muted", "isRegex": False}], "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2100-01-01T00:00:00Z", "createdBy": "t", "comment": "c"}, h.clock.now())
    await h.post(*(alert(f"A{i % 7}", str(i)) for i in range(50)),
                 alert("Down", "src", severity="critical", cluster="c1"),
                 alert("Slow", "t", severity="warning", cluster="c1"),
                 alert("A0", "muted"))
    await h.advance_to(30)
    await h.post(*(alert(f"A{i % 7}", str(i), ends=30) for i in range(50)))
    await h.advance_to(200)
    assert len({n.group_key for n in h.sent}) == 8
    assert all(a.labels["id"] not in ("t", "muted") for n in h.sent for a in n.alerts)
    await h.engine.dispatcher.store.sweep(T0 + 10_000)


async def test_keys_without_a_shared_hash_tag_fail_on_the_cluster(cluster, redis_cluster):
    """The fixture catches what production would hit: a script's declared keys in two slots, a key a script
    touches without declaring it (owned by another node), and a MULTI across slots all fail."""
    from redis.crc import key_slot
    from redis.exceptions import RedisClusterException, ResponseError

    script = cluster.register_script("redis.call('SET', KEYS[1], 1) return redis.call('SET', KEYS[2], 1)")
    with pytest.raises((RedisClusterException, ResponseError)):  # the client or the server (CROSSSLOT) refuses
        await script(keys=["{a}x", "{b}y"])
    nodes = cluster.get_nodes()
    assert len({n.name for n in nodes}) == 3
    # Two keys owned by different masters: a script declaring one and writing the other is refused.
    owner = {cluster.nodes_manager.get_node_from_slot(key_slot(f"{{k{i}}}".encode())).name: f"{{k{i}}}"
             for i in range(64)}
    assert len(owner) == 3, owner
    first, second = list(owner.values())[:2]
    sneaky = cluster.register_script("return redis.call('SET', ARGV[1], 1)")
    with pytest.raises(ResponseError):
        await sneaky(keys=[first], args=[second])
    with pytest.raises((RedisClusterException, ResponseError)):
        async with cluster.pipeline(transaction=True) as pipe:
            pipe.set(first, 1)
            pipe.set(second, 1)
            await pipe.execute()


# The tests of the pipeline, silences, delivery, incidents, inhibition and digests, run as they are on the
# cluster (REDIS_URL=redis+cluster://...). Left out: tests whose own code (not Tocsin's) talks to Redis in a
# way RedisCluster does not offer (a plain client from REDIS_URL, EVALSHA in a cluster pipeline).
SUITES = ["tests/test_pipeline.py", "tests/test_silences_api.py", "tests/test_delivery_resilience.py",
          "tests/test_incidents_store.py", "tests/test_incident_loop.py", "tests/test_inhibition_rules.py",
          "tests/test_digest.py", "tests/test_notify_log.py"]
NOT_ON_CLUSTER = [
    "tests/test_delivery_resilience.py::test_two_replicas_fire_each_escalation_level_once_even_if_one_dies",
    "tests/test_incidents_store.py::test_racing_replicas_create_one_incident",
    "tests/test_incidents_store.py::test_two_processes_yield_same_incidents_as_one",
]


def test_pipeline_incident_silence_and_delivery_suites_pass_on_the_cluster(redis_cluster):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, REDIS_URL=redis_cluster.url, PYTHONPATH=str(repo))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES,
           *(f"--deselect={t}" for t in NOT_ON_CLUSTER)]
    r = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail


async def test_two_serve_replicas_on_the_cluster_send_exactly_what_one_sends(tmp_path, redis_cluster):
    """Two `tocsin serve` processes on the 3-master cluster, each given half of every group's alerts (then half
    of the resolutions), deliver the same notifications as one process given everything, no duplicates."""
    import time
    import uuid

    from service.core.clock import to_rfc3339
    from tests.test_replicas import notification_set, run_serve

    groups, per_group = 10, 8
    tag = uuid.uuid4().hex[:6]

    def build_wave(n: int, first_sent: float) -> list[dict]:
        firing = [{"labels": {"alertname": "OnCluster", "service": f"svc-{g}", "instance": f"{tag}-{i}"},
                   "startsAt": to_rfc3339(first_sent)} for i in range(per_group) for g in range(groups)]
        if n == 1:
            return firing
        return [dict(a, endsAt=to_rfc3339(time.time())) for a in firing
                if int(a["labels"]["instance"].rsplit("-", 1)[1]) % 2]

    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two = await run_serve(tmp_path / "two", redis_cluster.url, 2, 2, build_wave, groups)
    one = await run_serve(tmp_path / "one", redis_cluster.url, 1, 2, build_wave, groups)
    got, want = notification_set(two), notification_set(one)
    assert len(one) == 2 * groups
    assert all(n == 1 for n in got.values()), f"duplicates: {[k[0] for k, n in got.items() if n > 1]}"
    assert got == want
