"""Ranked root-cause candidates of an incident, with the evidence for each. Pure; no LLM.

A candidate is one (metric, entity, service) among the incident's members. First the entities are ranked
(ENTITY_WEIGHTS: the entity's largest deviation, its breadth, its onset, its place in a declared call graph);
within an entity, the candidates by their own evidence, each scored 0..1 and weighted:
- largest_deviation: the detector score, or how far the value is from the expected band (0.6);
- earliest_onset: causes fire before their effects, per sample of the source's cadence (0.2);
- persistence: how many samples it has been anomalous (0.1); breadth of its entity (0.1);
- topology: in the declared call graph, a fault travels from a dependency up to its callers, so the
  anomalous service that calls no other anomalous service, and that most anomalous services call,
  is the first suspect (0.35);
- cooccurrence: learned history, how often this key came first in past incidents (0.1).
Resource metrics (CPU, connections, pools) on a candidate are usually closer to a cause than the
latency and error symptoms they produce; that breaks ties (a small 0.05 bonus, stated as evidence).
Weights of absent evidence (no topology configured, no detector scores) are spread over the rest. A candidate's
score is ENTITY_SHARE of its entity's score plus the rest of its own.
"""
from __future__ import annotations

from typing import Any, Callable

from service.incidents.correlation import WORKLOAD_LABELS, CorrelationConfig, topology_of
from service.incidents.scoring import RESOURCE, USER_FACING, member_entity, member_metric, member_score, member_service

WEIGHTS = {"earliest_onset": 0.2, "largest_deviation": 0.6, "persistence": 0.1, "breadth": 0.1,
           "topology": 0.35, "cooccurrence": 0.1}
import math  # noqa: E402


def _entity(m: dict[str, Any]) -> str:
    return str(m.get("entity") or member_entity(m))


def _cadence(m: dict[str, Any]) -> float:
    c = (m.get("history") or {}).get("cadence")
    try:
        return max(1.0, float(c)) if c else 60.0
    except (TypeError, ValueError):
        return 60.0


def _deviation(m: dict[str, Any]) -> float | None:
    s = member_score(m)
    if s is not None:
        # 0..1 scores are probabilities; larger ones are z-like (|z| of a robust z-score): compare them on a log
        # scale, so 1e6 (a flat series' MAD floor) does not drown out every other candidate.
        return max(0.0, min(1.0, s)) if s <= 1.0 else 1.0 + math.log(s)
    v, e = m.get("value"), m.get("expected")
    info = m.get("detector_info") or {}
    lo, hi = info.get("lower"), info.get("upper")
    try:
        if v is not None and e is not None:
            band = (float(hi) - float(lo)) / 2 if lo is not None and hi is not None else abs(float(e)) or 1.0
            z = abs(float(v) - float(e)) / (band or 1.0)
            return min(1.0, z / 4.0)  # 4 half-bands off the expectation is as anomalous as it gets
    except (TypeError, ValueError):
        return None
    return None


def rank(members: list[dict[str, Any]], cfg: CorrelationConfig,
         lead_history: Callable[[str], float] | None = None, limit: int = 5) -> list[dict[str, Any]]:
    """Ranked root-cause candidates, best first: [{metric, entity, service, score, evidence[...]}]."""
    if not members:
        return []
    cands: dict[tuple[str, str, str], dict[str, Any]] = {}
    now = max(float(m.get("ends_at") or m["starts_at"]) for m in members)
    for m in members:
        k = (member_metric(m), _entity(m), member_service(m))
        c = cands.setdefault(k, {"onset": m["starts_at"], "dev": None, "samples": 0.0, "cad": _cadence(m)})
        c["onset"] = min(c["onset"], m["starts_at"])
        end = float(m["ends_at"]) if m.get("status") == "resolved" and m.get("ends_at") else now
        c["samples"] = max(c["samples"], max(1.0, (end - float(m["starts_at"])) / c["cad"]))
        d = _deviation(m)
        if d is not None:
            c["dev"] = max(c["dev"] or 0.0, d)

    t0 = min(c["onset"] for c in cands.values())
    max_samples = max(c["samples"] for c in cands.values())
    per_entity: dict[str, int] = {}
    for (_metric, entity, _service) in cands:
        per_entity[entity] = per_entity.get(entity, 0) + 1
    max_dev = max((c["dev"] for c in cands.values() if c["dev"] is not None), default=None)

    topo_score = _topology_scores(cfg, {k[2] for k in cands if k[2]})
    out = [_candidate(k, c, t0, max_samples, max_dev, per_entity, topo_score, lead_history) for k, c in cands.items()]
    scores = _entity_scores(cands, t0, topo_score)
    return _finish(out, limit, scores, _hosts(members, cfg, set(scores)))


def _hosts(members: list[dict[str, Any]], cfg: CorrelationConfig, entities: set[str]) -> dict[str, str]:
    """entity -> the entity of the incident it runs on: its `node`/`host` label names that entity, or that entity's
    alerts carry the same host label and no workload label (a node exporter named by its instance)."""
    machines: dict[tuple[str, str], str] = {}
    for m in members:
        lab = m.get("labels") or {}
        if not any(lab.get(k) for k in WORKLOAD_LABELS):
            for name in cfg.host_labels:
                if lab.get(name):
                    machines.setdefault((name, lab[name]), _entity(m))
    out: dict[str, str] = {}
    for m in members:
        e, lab = _entity(m), m.get("labels") or {}
        for name in cfg.host_labels:
            h = lab.get(name)
            if not h:
                continue
            host = h if h in entities else machines.get((name, h)) if any(lab.get(k) for k in WORKLOAD_LABELS) else None
            if host and host != e:
                out.setdefault(e, host)
                break
    return out


def _more_specific_first(out: list[dict[str, Any]], hosted_on: dict[str, str]) -> None:
    """A Kubernetes pod outranks its node: a machine that runs a single anomalous entity of the incident shows that
    entity's fault (its CPU, memory, network), so its candidates rank just below that entity's best. A machine
    under several anomalous entities is their common factor and keeps its own rank."""
    tenants: dict[str, list[str]] = {}
    for e, h in sorted(hosted_on.items()):
        tenants.setdefault(h, []).append(e)
    for h, es in tenants.items():
        if len(es) != 1:
            continue
        cap = max(c["score"] for c in out if c["entity"] == es[0])
        for c in out:
            if c["entity"] == h and c["score"] >= cap:
                c["score"] = round(max(0.0, cap - 0.001), 4)
                c["evidence"].append({"kind": "runs_one_suspect", "weight": 0.0,
                                      "detail": f"{h} runs {es[0]}, the one anomalous entity on it: ranked after it"})


# Which entity is the cause: its largest deviation first (robust z on a log scale against the largest of the
# incident), its breadth (how many of its metrics are anomalous) second, its onset third, and the declared call
# graph when there is one. A faulty pod deviates most and on most of its metrics; its callers show a few latency
# symptoms that may even fire first. (BARO, RCAEval: deviation from the series' own normal is among the strongest
# untrained rankers.)
ENTITY_WEIGHTS = {"deviation": 1.0, "breadth": 0.5, "onset": 0.25, "topology": 1.0}
ENTITY_SHARE = 0.6  # of a candidate's final score; the rest ranks the metrics within the entity


def _entity_scores(cands: dict[tuple[str, str, str], dict[str, Any]], t0: float,
                   topo_score: dict[str, tuple[float, str]]) -> dict[str, float]:
    ents: dict[str, dict[str, Any]] = {}
    for (_metric, entity, service), c in cands.items():
        e = ents.setdefault(entity, {"dev": None, "n": 0, "onset": c["onset"], "cad": c["cad"], "topo": None})
        e["n"] += 1
        e["onset"] = min(e["onset"], c["onset"])
        if c["dev"] is not None:
            e["dev"] = max(e["dev"] or 0.0, c["dev"])
        if topo_score and service:
            e["topo"] = max(e["topo"] or 0.0, topo_score.get(service, (0.3, ""))[0])
    max_dev = max((e["dev"] for e in ents.values() if e["dev"] is not None), default=None)
    max_n = max(e["n"] for e in ents.values())
    out: dict[str, float] = {}
    for name, e in ents.items():
        parts = {"breadth": math.log1p(e["n"]) / math.log1p(max_n),
                 "onset": 1.0 / (1.0 + (e["onset"] - t0) / e["cad"])}
        if max_dev:
            parts["deviation"] = (e["dev"] or 0.0) / max_dev
        if topo_score:
            parts["topology"] = e["topo"] if e["topo"] is not None else 0.3
        out[name] = sum(ENTITY_WEIGHTS[k] * v for k, v in parts.items()) / sum(ENTITY_WEIGHTS[k] for k in parts)
    return out


def _topology_scores(cfg: CorrelationConfig, services: set[str]) -> dict[str, tuple[float, str]]:
    """Per anomalous service of the call graph: (score, why) of being the most upstream fault."""
    topo = topology_of(cfg) if cfg.topology else None
    anomalous_nodes = {s for s in services if topo and s in topo.nodes}
    topo_score: dict[str, tuple[float, str]] = {}
    if topo and len(anomalous_nodes) >= 2:
        for s in anomalous_nodes:
            deps = [o for o in anomalous_nodes if o != s and topo.calls(s, o)]
            callers = [o for o in anomalous_nodes if o != s and topo.calls(o, s)]
            if deps:
                topo_score[s] = (0.1, f"{s} calls anomalous {', '.join(sorted(deps)[:3])}: likely a symptom")
            else:
                share = len(callers) / (len(anomalous_nodes) - 1)
                topo_score[s] = (0.5 + 0.5 * share, f"most upstream anomalous node: calls no anomalous service; "
                                 f"{len(callers)} of {len(anomalous_nodes) - 1} anomalous services depend on it")

    return topo_score


def _candidate(key: tuple[str, str, str], c: dict[str, Any], t0: float, max_samples: float, max_dev: float | None,
               per_entity: dict[str, int], topo_score: dict[str, tuple[float, str]],
               lead_history: Callable[[str], float] | None) -> dict[str, Any]:
    """One candidate with its evidence (weights 0..1, each with what it means)."""
    metric, entity, service = key
    ev: list[dict[str, Any]] = []
    lag = c["onset"] - t0
    # Onset evidence falls off per sample of the source's cadence: a cause fires before its effects, but
    # alerts within one scrape are near-equal (evaluation jitter).
    ev.append({"kind": "earliest_onset", "weight": round(1.0 / (1.0 + lag / c["cad"]), 3),
               "detail": "first to fire" if lag == 0 else f"fired {lag:.0f}s after the first alert"})
    ev.append({"kind": "persistence", "weight": round(math.log1p(c["samples"]) / math.log1p(max_samples), 3),
               "detail": f"anomalous for {c['samples']:.0f} samples of {c['cad']:.0f}s"})
    if len(per_entity) > 1:
        share = per_entity[entity] / max(per_entity.values())
        ev.append({"kind": "breadth", "weight": round(share, 3),
                   "detail": f"{per_entity[entity]} anomalous metrics on {entity or service or metric}"})
    if max_dev is not None:
        d = c["dev"]
        ev.append({"kind": "largest_deviation", "weight": round((d or 0.0) / max_dev if max_dev else 0.0, 3),
                   "detail": f"deviation {d:.2f} (largest in incident {max_dev:.2f})" if d is not None
                   else "no detector score"})
    if topo_score:
        ts, why = topo_score.get(service, (0.3, f"{service or entity or metric} is not in the call graph"))
        ev.append({"kind": "topology", "weight": round(ts, 3), "detail": why})
    if lead_history is not None:
        h = lead_history(f"{service}/{metric}" if service else metric)
        if h > 0:
            ev.append({"kind": "cooccurrence", "weight": round(h, 3),
                       "detail": f"came first in past incidents (learned {h:.2f})"})
    return {"metric": metric, "entity": entity, "service": service, "evidence": ev, "_onset": c["onset"]}


def _finish(out: list[dict[str, Any]], limit: int, entity_score: dict[str, float],
            hosted_on: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Score each candidate over the evidence kinds present, blend in its entity's score, rank, and keep the
    best `limit`."""
    # Evidence kinds that exist for any candidate count for all (absent = 0), so a candidate is not
    # helped by lacking evidence others have.
    kinds = {e["kind"] for c in out for e in c["evidence"] if e["weight"] > 0 or e["kind"] != "cooccurrence"}
    total_w = sum(WEIGHTS[k] for k in sorted(kinds))  # a fixed order: the same sum in every process
    for c in out:
        ev, metric = c["evidence"], c["metric"]
        score = sum(WEIGHTS[e["kind"]] * e["weight"] for e in ev) / total_w
        c["_name"] = f"{metric} {c['entity']}"
        if RESOURCE.search(metric) and not USER_FACING.search(metric):
            score += 0.05
            ev.append({"kind": "resource_signal", "weight": 0.05,
                       "detail": f"{metric} is a resource signal, more often a cause than a symptom"})
        if len(entity_score) > 1:
            es = entity_score.get(c["entity"], 0.0)
            ev.append({"kind": "entity_rank", "weight": round(es, 3),
                       "detail": f"{c['entity'] or metric}: largest deviation, breadth and onset among the entities"})
            score = ENTITY_SHARE * es + (1 - ENTITY_SHARE) * score
        c["score"] = round(min(1.0, score), 4)
    _more_specific_first(out, hosted_on or {})
    out.sort(key=lambda c: (-c["score"], c["_onset"], c["_name"]))
    for c in out:
        del c["_onset"], c["_name"]
    return out[:limit]
