"""Root-cause ranking: onset, deviation, topology position, learned history."""
from __future__ import annotations

from service.incidents.correlation import CorrelationConfig
from service.incidents.rootcause import rank

T0 = 1_800_000_000.0
TOPO = {"frontend": ["checkout"], "checkout": ["payments"], "payments": ["payments-db"]}


def m(alertname: str, t: float, service: str, instance: str = "", score=None, value=None, expected=None) -> dict:
    return {"labels": {"alertname": alertname, "service": service, "instance": instance or service + "-1"},
            "annotations": {}, "starts_at": t, "status": "firing", "score": score, "value": value,
            "expected": expected}


def test_most_upstream_node_ranks_first_even_if_not_earliest():
    """With a call graph, the anomalous dependency nobody else's fault explains ranks first."""
    ms = [m("HighLatency", T0, "checkout"), m("HighLatency", T0 + 5, "frontend"),
          m("PgConnections", T0 + 20, "payments-db", score=0.9), m("HighLatency", T0 + 10, "payments")]
    ranked = rank(ms, CorrelationConfig(enabled=True, topology=TOPO))
    assert (ranked[0]["service"], ranked[0]["metric"]) == ("payments-db", "PgConnections")
    kinds = {e["kind"] for e in ranked[0]["evidence"]}
    assert {"earliest_onset", "topology", "largest_deviation"} <= kinds
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)


def test_without_topology_earliest_and_largest_deviation_win():
    """Without a graph, the earliest onset with the largest deviation ranks first."""
    ms = [m("Latency", T0 + 60, "api", score=0.6), m("DiskIO", T0, "storage", value=100, expected=10),
          m("Errors", T0 + 90, "api", score=0.7)]
    ranked = rank(ms, CorrelationConfig(enabled=True))
    assert ranked[0]["service"] == "storage"
    assert ranked[0]["evidence"][0] == {"kind": "earliest_onset", "weight": 1.0, "detail": "first to fire"}


def test_learned_lead_history_is_evidence():
    """A key that came first in past incidents gets co-occurrence evidence and a higher score."""
    ms = [m("A", T0, "x"), m("B", T0, "y")]
    ranked = rank(ms, CorrelationConfig(enabled=True), lead_history=lambda k: 0.9 if k == "y/B" else 0.0)
    assert ranked[0]["service"] == "y"
    assert any(e["kind"] == "cooccurrence" for e in ranked[0]["evidence"])


def test_empty_incident_has_no_candidates():
    """No members, no candidates."""
    assert rank([], CorrelationConfig()) == []


def k8s(metric: str, t: float, entity: str, node: str, score: float) -> dict:
    return {"labels": {"alertname": "MetricAnomaly", "entity": entity, "node": node, "metric": metric,
                       "service": "node" if entity == node else entity.split("-")[0]},
            "annotations": {}, "starts_at": t, "status": "firing", "score": score, "entity": entity}


def test_a_pod_outranks_the_node_that_runs_only_it():
    """The node's CPU rose with its one anomalous pod's (and deviates more): the pod is named first."""
    ms = [k8s("NodeCpuUsageRate", T0, "node-1", "node-1", 9.0), k8s("CpuUsageRate", T0 + 60, "cart-7f-x", "node-1", 5.0)]
    ranked = rank(ms, CorrelationConfig(enabled=True))
    assert ranked[0]["entity"] == "cart-7f-x" and ranked[1]["entity"] == "node-1"


def test_a_node_under_several_anomalous_pods_keeps_its_rank():
    """Two pods of different services on one node went anomalous with it: the node is their common factor."""
    ms = [k8s("NodeCpuUsageRate", T0, "node-1", "node-1", 9.0), k8s("CpuUsageRate", T0 + 60, "cart-7f-x", "node-1", 5.0),
          k8s("CpuUsageRate", T0 + 60, "ads-5c-y", "node-1", 5.0)]
    assert rank(ms, CorrelationConfig(enabled=True))[0]["entity"] == "node-1"


def test_a_pod_outranks_the_node_exporter_of_the_node_that_runs_only_it():
    """The node's alert is named by its exporter's instance and carries the node label: still the pod's machine."""
    node = {"labels": {"alertname": "NodeCPUHigh", "instance": "10.0.0.1:9100", "node": "node-1"}, "annotations": {},
            "starts_at": T0, "status": "firing", "score": 9.0, "entity": "10.0.0.1:9100"}
    pod = {"labels": {"alertname": "HighCPU", "pod": "cart-7f-x", "node": "node-1", "service": "cart"},
           "annotations": {}, "starts_at": T0 + 60, "status": "firing", "score": 5.0, "entity": "cart-7f-x"}
    ranked = rank([node, pod], CorrelationConfig(enabled=True))
    assert ranked[0]["entity"] == "cart-7f-x" and ranked[1]["entity"] == "10.0.0.1:9100"
