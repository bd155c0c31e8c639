"""What replay may skip because it is the one writer of its keys (service/store/due_mirror.py,
service/store/read_cache.py, TocsinRedis.lean) changes no notification, and its copies never disagree with Redis."""
from __future__ import annotations

import json
import random

import pytest
from redis.exceptions import ResponseError

from routing.receivers.console import notification_record
from service.config.sections import parse_config
from service.core.clock import to_rfc3339
from service.pipeline.replay import replay
from service.store.embedded import EmbeddedRedis
from service.store.keys import is_cluster_url, open_redis
from service.store.read_cache import ReadCache

T0 = 1_800_000_000.0

CONFIG = """
global: {resolve_timeout: 2m}
route:
  receiver: hook
  group_by: [entity]
  group_wait: 10s
  group_interval: 30s
  repeat_interval: 10m
  routes:
    - matchers: ['severity="critical"']
      receiver: hook
      group_by: ['...']
      group_wait: 2s
      tocsin: {correlate: false}
receivers:
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:9/hook", send_resolved: true}]
tocsin:
  correlation: {enabled: true}
"""


@pytest.fixture(scope="module")
def server_url(redis_url, tmp_path_factory):
    """One Redis server: the lean client path and the read cache are the single-server client's (replay runs on its
    own embedded server), so with REDIS_URL naming a cluster these tests start an embedded server of their own."""
    if not is_cluster_url(redis_url):
        yield redis_url
        return
    er = EmbeddedRedis(str(tmp_path_factory.mktemp("redis")), persist=False)
    yield er.start()
    er.stop()


def traffic(seed: int) -> list[str]:
    """Anomalies on a few entities that fire, re-fire, resolve and overlap; now and then a critical one."""
    rnd = random.Random(seed)
    rows = []
    for i in range(80):
        start = T0 + i * rnd.choice([5, 20, 40, 90])
        ent, metric = f"host-{rnd.randrange(4)}", f"m{rnd.randrange(6)}"
        labels = {"alertname": "MetricAnomaly", "entity": ent, "metric": metric}
        if rnd.random() < 0.1:
            labels["severity"] = "critical"
        firing = {"labels": labels, "annotations": {"score": f"{rnd.uniform(3, 9):.2f}"}, "startsAt": to_rfc3339(start)}
        end = start + rnd.choice([30, 60, 300, 900])
        rows.append((start, 1, {"at": to_rfc3339(start), **firing}))
        rows.append((end, 0, {"at": to_rfc3339(end), **firing, "endsAt": to_rfc3339(end)}))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [json.dumps(r[2]) for r in rows]


@pytest.mark.parametrize("seed", [1, 2])
async def test_replay_with_and_without_shortcuts_prints_the_same(server_url, seed):
    outs = []
    for shortcuts in (True, False):
        printed: list[str] = []
        await replay(parse_config(CONFIG), traffic(seed), lambda n: printed.append(json.dumps(notification_record(n),
                     sort_keys=True)), redis_url=server_url, shortcuts=shortcuts)
        outs.append(printed)
    assert len(outs[0]) > 10
    assert outs[0] == outs[1]


async def test_the_timer_copy_is_never_later_than_redis(redis_url):
    """Before every line: the copy's next timer is at or before the earliest group or incident timer in Redis."""
    checked = 0

    async def check(sim, line):
        nonlocal checked
        eng = sim.engine
        pipe = eng.redis.pipeline(transaction=False)
        for shard in range(eng.keys.shards):
            pipe.zrange(eng.keys.due(shard), 0, 0, withscores=True)
        domains = await eng.incidents.known_domains()
        for d in domains:
            pipe.zrange(eng.incidents.keys(d).due, 0, 0, withscores=True)
        res = await pipe.execute()
        times = [float(r[0][1]) / 1000 for r in res[:eng.keys.shards] if r]
        times += [float(r[0][1]) for r in res[eng.keys.shards:] if r]
        mine = sim.mirror.next()
        if times:
            assert mine is not None and mine <= min(times)
            checked += 1

    await replay(parse_config(CONFIG), traffic(3), lambda n: None, redis_url=redis_url, before_line=check)
    assert checked > 20


@pytest.mark.parametrize("blocking", [False, True])
async def test_the_read_cache_answers_what_redis_answers(server_url, key_prefix, blocking):
    """Random writes and reads through a client with the cache, each read compared with a plain client's (over
    the event loop's connections, and over replay's blocking ones)."""
    cached = open_redis(server_url, timeout=None, socket_timeout=None, socket_connect_timeout=None)
    cached.lean = True
    cached.blocking = blocking
    cached.read_cache = ReadCache()
    plain = open_redis(server_url, timeout=None, socket_timeout=None, socket_connect_timeout=None)
    script = cached.register_script("redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) redis.call('RPUSH', KEYS[2], ARGV[2])")
    rnd = random.Random(7)
    s, h, lst = f"{key_prefix}:s", f"{key_prefix}:h", f"{key_prefix}:l"
    reads = [("get", (s,)), ("hgetall", (h,)), ("hget", (h, "a")), ("hmget", (h, ["a", "b", "c"])), ("hvals", (h,)),
             ("hkeys", (h,)), ("hlen", (h,)), ("lrange", (lst, 0, -1))]
    try:
        for _ in range(400):
            await _random_write(cached, script, rnd, s, h, lst)
            for name, args in rnd.sample(reads, 3):
                try:
                    want = await getattr(plain, name)(*args)
                except Exception as e:  # a wrong type (INCR on a non-number string): both fail
                    want = type(e)
                try:
                    got = await getattr(cached, name)(*args)
                except Exception as e:
                    got = type(e)
                assert got == want, (name, args)
        assert cached.read_cache.hits > 100
    finally:
        for k in (s, h, lst):
            await plain.delete(k)
        await cached.aclose()
        await plain.aclose()


async def _random_write(cached, script, rnd, s, h, lst):
    op = rnd.randrange(10)
    v = rnd.choice(["x", "y", 3, 2.5, "é"])
    f = rnd.choice(["a", "b", "c"])
    if op == 0:
        await cached.set(s, v)
    elif op == 1:
        await cached.hset(h, mapping={f: v, "b": rnd.randrange(9)})
    elif op == 2:
        await cached.hdel(h, f)
    elif op == 3:
        await cached.rpush(lst, v, "z")
    elif op == 4:
        await cached.ltrim(lst, -rnd.randrange(1, 5), -1)
    elif op == 5:
        await cached.delete(rnd.choice([s, h, lst]))
    elif op == 6:
        await script(keys=[h, lst], args=[f, str(v)])
    elif op == 7:  # a transaction
        async with cached.pipeline(transaction=True) as p:
            p.hset(h, f, "t")
            p.incr(s) if rnd.random() < 0.2 else p.set(s, "t")
            p.rpush(lst, "t")
            try:
                await p.execute()
            except ResponseError:  # INCR of a string that is no number: the other writes happened
                pass
    elif op == 8:  # a pipeline that reads what it just wrote
        p = cached.pipeline(transaction=False)
        p.hgetall(h)
        p.hset(h, f, "p")
        p.hget(h, f)
        got = await p.execute()
        assert got[2] == b"p"


async def test_the_blocking_lean_client_answers_what_the_pool_answers(server_url, key_prefix):
    """Replay's blocking connections (TocsinRedis.blocking) give the same parsed replies and the same errors as
    redis-py's pool: plain commands, pipelines, transactions, scripts, sorted sets with scores, wrong types."""
    from service.store.keys import BlockingConnection

    fast = open_redis(server_url, timeout=None, socket_timeout=None, socket_connect_timeout=None)
    fast.lean = True
    fast.blocking = True
    plain = open_redis(server_url, timeout=None, socket_timeout=None, socket_connect_timeout=None)
    k = f"{key_prefix}:b"

    async def run(c, tag):
        out = []
        script = c.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")

        async def call(coro):
            try:
                out.append(await coro)
            except Exception as e:
                out.append((type(e).__name__, str(e)))

        await call(c.set(f"{k}:{tag}:s", "é"))
        await call(c.get(f"{k}:{tag}:s"))
        await call(c.incr(f"{k}:{tag}:s"))  # not a number
        await call(c.hset(f"{k}:{tag}:h", mapping={"a": 1, "b": "x"}))
        await call(c.hgetall(f"{k}:{tag}:h"))
        await call(c.zadd(f"{k}:{tag}:z", {"m1": 1.5, "m2": 3}))
        await call(c.zrange(f"{k}:{tag}:z", 0, -1, withscores=True))
        await call(c.zrangebyscore(f"{k}:{tag}:z", 0, 2, withscores=True))
        await call(c.lpush(f"{k}:{tag}:h", "x"))  # wrong type
        await call(script(keys=[f"{k}:{tag}:s"], args=["a", 2]))
        p = c.pipeline(transaction=False)
        p.hgetall(f"{k}:{tag}:h")
        p.incr(f"{k}:{tag}:s")
        p.exists(f"{k}:{tag}:h")
        await call(p.execute(raise_on_error=False))
        async with c.pipeline(transaction=True) as t:
            t.hset(f"{k}:{tag}:h", "c", 3)
            t.hgetall(f"{k}:{tag}:h")
            t.zscore(f"{k}:{tag}:z", "m2")
            await call(t.execute())
        await call(c.delete(f"{k}:{tag}:s", f"{k}:{tag}:h", f"{k}:{tag}:z"))
        return [repr(x).replace(f"{k}:{tag}", "K") for x in out]

    try:
        want = await run(plain, "plain")
        got = await run(fast, "fast")
        assert got == want
        assert any(isinstance(c, BlockingConnection) for c in fast._lean_idle)
    finally:
        await fast.aclose()
        await plain.aclose()
