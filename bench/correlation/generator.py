"""Seeded scenario generator for the correlation benchmark: `tocsin replay` input plus ground truth.

Each scenario is a list of *episodes* (one alert series firing from start to end), each labelled with
the real incident it belongs to or as noise. Episodes are expanded into replay lines, time-ordered:
- Prometheus form (services monitored by alert rules): the postable alert is re-posted every 60 s while
  firing (endsAt = now + 4m, as Prometheus does), then posted once more with endsAt = resolution time;
- detector form (services monitored by an anomaly detector): one `{"kind":"event",...}` per minute while
  anomalous, then one with "anomalous": false.
Every line has "timestamp" (epoch seconds, event time at which it is posted).

Usage: python -m bench.correlation.generator OUT_DIR [--seed N] [--scenarios a,b]
writes OUT_DIR/<scenario>.jsonl and OUT_DIR/<scenario>.truth.json.
"""
from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.core.clock import to_rfc3339

RESEND = 60.0
T_START = 1_795_000_000.0  # 2026-11-18, arbitrary

APP_NAMES = ["frontend", "api-gateway", "checkout", "cart", "payments", "orders", "inventory", "search",
             "users", "auth", "notifications", "shipping", "recommendations", "catalog", "pricing", "reviews",
             "ledger", "fraud", "media", "sessions", "billing", "reporting", "profile", "ads"]
STORE_KINDS = {"db": ["postgres", "mysql"], "cache": ["redis", "memcached"], "queue": ["kafka", "rabbitmq"]}

# metric kind -> (Prometheus alert names to pick from, detector metric names to pick from)
ALERTS = {
    "latency": (["HighLatency", "HighRequestLatency", "APILatencyHigh"], ["http_request_duration_p99", "latency_p95"]),
    "errors": (["HighErrorRate", "Http5xxRateHigh", "ErrorBudgetBurn"], ["http_errors_rate", "error_ratio"]),
    "cpu": (["HighCPUUsage", "CPUThrottlingHigh"], ["cpu_usage", "container_cpu_seconds"]),
    "memory": (["HighMemoryUsage", "ContainerMemoryNearLimit"], ["memory_usage", "heap_used_bytes"]),
    "traffic_drop": (["RequestRateDrop", "TrafficAnomaly"], ["request_rate", "rps"]),
    "db_conn": (["PostgresTooManyConnections", "DBConnectionPoolExhausted"], ["db_connections", "pool_active"]),
    "db_slow": (["SlowQueries", "DBQueryLatencyHigh"], ["query_duration_p99", "db_query_latency"]),
    "disk_io": (["DiskIOSaturation", "HighDiskLatency"], ["disk_io_util", "node_disk_io_time"]),
    "repl_lag": (["ReplicationLagHigh"], ["replication_lag_seconds"]),
    "cache_miss": (["CacheHitRateLow"], ["cache_hit_ratio"]),
    "evictions": (["CacheEvictionsHigh"], ["cache_evictions"]),
    "consumer_lag": (["KafkaConsumerLagHigh", "QueueBacklogGrowing"], ["consumer_lag", "queue_depth"]),
    "net": (["PacketLossHigh", "TCPRetransmitsHigh"], ["tcp_retransmits", "packet_loss_ratio"]),
    "down": (["InstanceDown", "TargetDown"], ["up"]),
    "gc": (["LongGCPauses"], ["gc_pause_seconds"]),
}
STORE_ROOT = {"db": ["db_conn", "db_slow", "disk_io", "repl_lag", "cpu"], "cache": ["evictions", "memory", "cache_miss"],
              "queue": ["consumer_lag", "disk_io"]}
SYMPTOM = ["latency", "errors", "latency", "errors", "traffic_drop"]
APP_ROOT = ["cpu", "memory", "gc", "net", "errors"]


@dataclass
class Service:
    name: str
    kind: str  # app | db | cache | queue
    instances: list[str]
    form: str  # prometheus | detector
    calls: list[str] = field(default_factory=list)


@dataclass
class Episode:
    service: Service
    instance: str
    kind: str
    start: float
    end: float
    truth: str | None  # incident id, or None for noise
    noise: str = ""  # blip | flapping | seasonal
    score: float = 0.8


class World:
    """A microservice estate: apps in layers calling down to data stores, some components unconnected."""

    def __init__(self, rng: random.Random, n_apps: int = 14):
        self.rng = rng
        self.names = {k: rng.choice(v) for k, v in ALERTS.items()}  # this estate's naming habits
        self.metric = {k: rng.choice(v[1]) for k, v in ALERTS.items()}
        self.alertname = {k: rng.choice(v[0]) for k, v in ALERTS.items()}
        apps = rng.sample(APP_NAMES, n_apps)
        self.cluster = rng.choice(["prod-eu1", "prod-us2", "prod-ap1"])
        self.namespace: dict[str, str] = {}
        self.zone: dict[str, str] = {}
        self.services: dict[str, Service] = {}
        for a in apps:
            self._add(a, "app")
        stores = []
        for a in apps:
            if rng.random() < 0.45:
                kind = rng.choice(["db", "db", "cache", "queue"])
                stores.append(self._add(f"{a}-{rng.choice(STORE_KINDS[kind])}", kind).name)
        for shared in ("shared-postgres", "shared-redis"):
            stores.append(self._add(shared, "db" if "postgres" in shared else "cache").name)
        # layers: edge -> mid -> leaf apps -> stores; each app calls 1-3 of the next layer
        rng.shuffle(apps)
        edge, mid, leaf = apps[:2], apps[2: 2 + len(apps) // 2], apps[2 + len(apps) // 2:]
        for layer, nxt in ((edge, mid), (mid, leaf)):
            for a in layer:
                self.services[a].calls = rng.sample(nxt, k=min(len(nxt), rng.randint(1, 3)))
        for a in leaf + mid:
            own = [s for s in stores if s.startswith(a + "-")]
            extra = [rng.choice(stores)] if rng.random() < 0.4 else []
            self.services[a].calls += sorted(set(own + extra) - set(self.services[a].calls))

    def _add(self, name: str, kind: str) -> Service:
        n = self.rng.randint(1, 3) if kind != "app" else self.rng.randint(2, 4)
        insts = [f"{name}-{self.rng.randrange(16**5):05x}" if kind == "app" else f"{name}-{i}" for i in range(n)]
        s = Service(name, kind, insts, "detector" if self.rng.random() < 0.35 else "prometheus")
        self.services[name] = s
        self.namespace[name] = name.split("-")[0]
        self.zone[name] = self.rng.choice(["a", "b", "c"])
        return s

    def topology(self) -> dict[str, list[str]]:
        return {s.name: list(s.calls) for s in self.services.values() if s.calls}

    def callers(self, name: str) -> list[str]:
        return [s.name for s in self.services.values() if name in s.calls]

    def name_of(self, s: Service, kind: str) -> str:
        return self.alertname[kind] if s.form == "prometheus" else self.metric[kind]


class Scenario:
    def __init__(self, name: str, seed: int, n_apps: int = 14):
        self.name = name
        self.rng = random.Random(seed)
        self.world = World(self.rng, n_apps)
        self.episodes: list[Episode] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.duration = 3 * 3600.0
        self.rack: str | None = None
        self.rack_entities: set[str] = set()

    # ---------------------------------------------------------------- building blocks

    def ep(self, s: Service, kind: str, start: float, length: float, truth: str | None, noise: str = "",
           instance: str | None = None, score: float | None = None) -> Episode:
        # Whole seconds: times survive the RFC 3339 round trip exactly.
        start, length = float(round(start)), float(max(1, round(length)))
        e = Episode(s, instance or self.rng.choice(s.instances), kind, start, start + length, truth, noise,
                    score if score is not None else round(self.rng.uniform(0.72, 0.99), 3))
        self.episodes.append(e)
        return e

    def cascade(self, iid: str, root: str, t0: float, hop_delay: tuple[float, float] = (20, 90),
                length: float = 1500, max_hops: int = 4, root_kinds: list[str] | None = None) -> None:
        """A fault at `root` spreads to its callers, hop by hop, with delays; each affected service shows
        symptoms on some instances. The root's first metric is the true root cause."""
        w, rng = self.world, self.rng
        rs = w.services[root]
        kinds = root_kinds or rng.sample(STORE_ROOT.get(rs.kind, APP_ROOT), k=min(2, len(STORE_ROOT.get(rs.kind, APP_ROOT))))
        first = self.ep(rs, kinds[0], t0, length, iid, score=round(rng.uniform(0.9, 0.99), 3))
        for i, k in enumerate(kinds[1:]):
            self.ep(rs, k, t0 + rng.uniform(10, 60), length - 60, iid)
        self.incidents[iid] = {"start": t0, "root_cause": {"metric": w.name_of(rs, kinds[0]), "entity": first.instance,
                                                           "service": root}, "kind": "cascade"}
        frontier, seen = [(root, t0)], {root}
        for hop in range(max_hops):
            nxt = []
            for svc, t in frontier:
                for c in w.callers(svc):
                    if c in seen or rng.random() < 0.15:  # some callers degrade gracefully
                        continue
                    seen.add(c)
                    tc = t + rng.uniform(*hop_delay)
                    cs = w.services[c]
                    for k in rng.sample(SYMPTOM, k=rng.randint(1, 2)):
                        for inst in rng.sample(cs.instances, k=rng.randint(1, len(cs.instances))):
                            self.ep(cs, k, tc + rng.uniform(0, 40), max(300.0, length - (tc - t0)), iid,
                                    instance=inst, score=round(rng.uniform(0.6, 0.95), 3))
                    nxt.append((c, tc))
            frontier = nxt

    def noise_blips(self, rate_per_hour: float, t0: float = 0.0, t1: float | None = None) -> None:
        w, rng = self.world, self.rng
        t1 = t1 if t1 is not None else self.duration
        t = t0 + rng.expovariate(rate_per_hour / 3600)
        while t < t1:
            s = rng.choice(list(w.services.values()))
            kind = rng.choice(["latency", "errors", "cpu", "memory", "gc", "net", "disk_io"])
            self.ep(s, kind, T_START + t, rng.uniform(20, 100), None, "blip", score=round(rng.uniform(0.5, 0.8), 3))
            t += rng.expovariate(rate_per_hour / 3600)

    def flapping(self, t0: float, total: float = 2400) -> None:
        s = self.rng.choice(list(self.world.services.values()))
        kind, inst, t = self.rng.choice(["memory", "latency", "consumer_lag"]), self.rng.choice(s.instances), t0
        while t < t0 + total:
            on = self.rng.uniform(60, 150)
            self.ep(s, kind, T_START + t, on, None, "flapping", instance=inst, score=0.55)
            t += on + self.rng.uniform(60, 150)

    def seasonal(self, every: float = 3600, length: float = 420) -> None:
        """A nightly-style batch job: every `every` seconds the same batch metrics look anomalous."""
        s = self.rng.choice([x for x in self.world.services.values() if x.kind in ("db", "queue")]
                            or list(self.world.services.values()))
        off = self.rng.uniform(0, every)
        t = off
        while t < self.duration:
            inst = s.instances[0]
            self.ep(s, "cpu", T_START + t, length, None, "seasonal", instance=inst, score=round(self.rng.uniform(0.6, 0.75), 3))
            self.ep(s, "disk_io", T_START + t + 30, length - 60, None, "seasonal", instance=inst, score=0.6)
            t += every

    def roots(self, kinds: tuple[str, ...] = ("db", "cache", "queue")) -> list[str]:
        """Services with at least one caller (so a cascade has somewhere to go)."""
        w = self.world
        out = [s.name for s in w.services.values() if s.kind in kinds and w.callers(s.name)]
        return out or [s.name for s in w.services.values() if w.callers(s.name)]

    # ---------------------------------------------------------------- output

    def lines(self) -> list[dict[str, Any]]:
        w = self.world
        out: list[dict[str, Any]] = []
        for e in self.episodes:
            s = e.service
            base = {"service": s.name, "instance": e.instance, "namespace": w.namespace[s.name],
                    "cluster": w.cluster, "zone": w.zone[s.name]}
            if self.rack and e.instance in self.rack_entities:
                base["rack"] = self.rack
            if s.form == "prometheus":
                labels = {"alertname": w.alertname[e.kind], **base,
                          "severity": "critical" if e.kind in ("errors", "down") else "warning"}
                ann = {"summary": f"{w.alertname[e.kind]} on {s.name} ({e.instance})",
                       "description": f"{e.kind.replace('_', ' ')} is outside its normal range"}
                url = f"http://prometheus:9090/graph?g0.expr={w.alertname[e.kind]}"
                t = e.start
                while t < e.end:
                    out.append({"labels": labels, "annotations": ann, "startsAt": to_rfc3339(e.start),
                                "endsAt": to_rfc3339(t + 4 * RESEND), "generatorURL": url, "timestamp": t})
                    t += RESEND
                out.append({"labels": labels, "annotations": ann, "startsAt": to_rfc3339(e.start),
                            "endsAt": to_rfc3339(e.end), "generatorURL": url, "timestamp": e.end})
            else:
                metric = w.metric[e.kind]
                expected = round(self.rng.uniform(10, 100), 2)
                t = e.start
                while t < e.end:
                    out.append({"kind": "event", "metric": metric, "labels": base, "value": round(expected * (1.5 + e.score * 2), 2),
                                "score": e.score, "detector": "ensemble", "expected": expected,
                                "lower": round(expected * 0.7, 2), "upper": round(expected * 1.3, 2),
                                "timestamp": t, "anomalous": True})
                    t += RESEND
                out.append({"kind": "event", "metric": metric, "labels": base, "value": expected, "score": 0.1,
                            "detector": "ensemble", "expected": expected, "lower": round(expected * 0.7, 2),
                            "upper": round(expected * 1.3, 2), "timestamp": e.end, "anomalous": False})
        out.sort(key=lambda x: x["timestamp"])
        return out

    def truth(self) -> dict[str, Any]:
        w = self.world
        eps = []
        for e in sorted(self.episodes, key=lambda e: e.start):
            eps.append({"service": e.service.name, "instance": e.instance, "name": w.name_of(e.service, e.kind),
                        "start": e.start, "end": e.end, "incident": e.truth, "noise": e.noise})
        return {"scenario": self.name, "topology": w.topology(), "incidents": self.incidents, "episodes": eps}


# -------------------------------------------------------------------- the scenarios


def cascade_db(seed: int) -> Scenario:
    sc = Scenario("cascade_db", seed)
    r = sc.rng.choice(sc.roots(("db",)))
    sc.cascade("db-fault", r, T_START + 1800)
    sc.noise_blips(4)
    return sc


def cascade_network(seed: int) -> Scenario:
    sc = Scenario("cascade_network", seed)
    r = sc.rng.choice(sc.roots(("app",)))
    sc.cascade("net-fault", r, T_START + 2400, hop_delay=(5, 45), root_kinds=["net", "errors"])
    sc.noise_blips(4)
    return sc


def overlapping(seed: int) -> Scenario:
    sc = Scenario("overlapping", seed, n_apps=18)
    roots = sc.rng.sample(sc.roots(), k=min(3, len(sc.roots())))
    for i, r in enumerate(roots):
        sc.cascade(f"overlap-{i}", r, T_START + 1800 + i * sc.rng.uniform(60, 400), max_hops=2)
    sc.noise_blips(6)
    return sc


def noisy_day(seed: int) -> Scenario:
    sc = Scenario("noisy_day", seed)
    sc.duration = 6 * 3600.0
    sc.noise_blips(10)
    sc.flapping(3000)
    sc.seasonal()
    sc.cascade("real-one", sc.rng.choice(sc.roots()), T_START + 4 * 3600, max_hops=2)
    return sc


def storm(seed: int) -> Scenario:
    """A top-of-rack switch dies: 1,000+ targets go down within a minute, then their callers complain."""
    sc = Scenario("storm", seed, n_apps=20)
    w, rng = sc.world, sc.rng
    t0 = T_START + 1200
    iid = "storm"
    # The switch is an entity of its own (network gear monitored by Prometheus).
    switch = Service("network", "infra", ["tor-switch-7"], "prometheus")
    w.services["network"], w.namespace["network"], w.zone["network"] = switch, "infra", "b"
    first = sc.ep(switch, "net", t0, 1800, iid, instance="tor-switch-7", score=0.99)
    sc.incidents[iid] = {"start": t0, "root_cause": {"metric": w.name_of(switch, "net"), "entity": first.instance,
                                                     "service": "network"}, "kind": "storm"}
    apps = [s for s in w.services.values() if s.kind == "app"]
    # Half of the estates label targets with their rack (node/SNMP exporters often do), half do not.
    sc.rack = "r07" if rng.random() < 0.5 else None
    sc.rack_entities = {"tor-switch-7"}
    n = 0
    while n < 1100:
        s = rng.choice(apps)
        inst = f"{s.name}-{rng.randrange(16**6):06x}"  # targets behind the rack, not in the noise pool
        sc.ep(s, "down", t0 + 5 + rng.uniform(0, 55), 1500, iid, instance=inst, score=1.0)
        sc.rack_entities.add(inst)
        n += 1
    sc.noise_blips(4)
    return sc


def slow_growth(seed: int) -> Scenario:
    """A memory leak: one service degrades, and over 40 minutes its callers follow one by one."""
    sc = Scenario("slow_growth", seed)
    r = sc.rng.choice(sc.roots(("app", "cache")))
    sc.cascade("leak", r, T_START + 1800, hop_delay=(240, 420), length=4200, max_hops=4,
               root_kinds=["memory", "gc"])
    sc.noise_blips(4)
    return sc


SCENARIOS = {f.__name__: f for f in (cascade_db, cascade_network, overlapping, noisy_day, storm, slow_growth)}


def generate(out_dir: str | Path, seed: int = 1, names: list[str] | None = None) -> list[str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(names or list(SCENARIOS)):
        sc = SCENARIOS[name](seed * 1000 + i)
        with open(out / f"{name}.jsonl", "w") as fh:
            for line in sc.lines():
                fh.write(json.dumps(line, separators=(",", ":")) + "\n")
        (out / f"{name}.truth.json").write_text(json.dumps(sc.truth(), indent=1))
        written.append(name)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenarios", default="")
    a = ap.parse_args()
    print("\n".join(generate(a.out_dir, a.seed, [s for s in a.scenarios.split(",") if s] or None)))


if __name__ == "__main__":
    main()
