"""Shared fixtures. State always lives in a real Redis: REDIS_URL if set, else a private embedded one."""
from __future__ import annotations

import os
import tempfile
import uuid

import pytest
from service.store.embedded import EmbeddedRedis
from service.store.keys import open_redis

os.environ.pop("HTTP_PROXY", None)
os.environ.pop("HTTPS_PROXY", None)
os.environ.pop("http_proxy", None)
os.environ.pop("https_proxy", None)


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    d = tempfile.mkdtemp(prefix="tocsin-test-redis-")
    er = EmbeddedRedis(d, persist=False)
    url = er.start()
    yield url
    er.stop()


@pytest.fixture
def key_prefix():
    """A unique key prefix per test: tests share one Redis and never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis(redis_url, key_prefix):
    # also a redis+cluster:// URL (tests/test_cluster_slots.py runs suites on one); no timeouts: a loaded machine
    client = open_redis(redis_url, timeout=None, socket_timeout=None, socket_connect_timeout=None)
    yield client
    # Clean up this test's keys (SCAN by prefix; tests only, never in Tocsin's own code).
    async for k in client.scan_iter(match=f"{key_prefix}*", count=1000):
        await client.delete(k)
    await client.aclose()


@pytest.fixture
def config_text(redis_url, key_prefix):
    """The kit's BASE config, in this test's Redis and prefix."""
    from tests.pipeline_kit import BASE, with_redis

    return with_redis(BASE, redis_url, key_prefix)


@pytest.fixture
async def h(tmp_path, config_text, redis):
    """The whole app serving `config_text` (override that fixture to serve another config)."""
    from tests.pipeline_kit import serving

    async with serving(tmp_path, config_text) as harness:
        yield harness
