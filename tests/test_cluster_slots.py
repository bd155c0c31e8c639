"""Tocsin runs on Redis Cluster: every script and transaction touches keys of one hash slot only.

A single-node Redis Cluster owning all 16384 slots rejects any command or script whose keys span slots
(CROSSSLOT), so running the whole pipeline against it proves the key layout, without needing six nodes.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from service.embedded_redis import redis_server_binary
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


@pytest.fixture(scope="module")
def cluster_url():
    d = Path(tempfile.mkdtemp(prefix="tocsin-cluster-"))
    sock = d / "r.sock"
    proc = subprocess.Popen([redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(d),
                             "--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.02)
        c = redis.Redis(unix_socket_path=str(sock))
        c.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
        for _ in range(200):
            if b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO"):
                break
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_pipeline_never_crosses_slots(cluster_url, key_prefix):
    """Ingest, flush, inhibition, silences and delivery all run on a cluster node without CROSSSLOT errors."""
    client = aioredis.from_url(cluster_url)
    try:
        with pytest.raises(redis.exceptions.ClusterCrossSlotError):
            await client.mset({"{a}x": 1, "{b}y": 2})  # the node does enforce slots
        h = await harness(client, CONFIG, key_prefix)
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
    finally:
        await client.aclose()
