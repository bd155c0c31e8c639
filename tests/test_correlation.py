"""The pure join decision: signals, the combination rule, config validation."""
from __future__ import annotations

import pytest

from service.incidents.correlation import AlertFeatures, Context, CorrelationConfig, IncidentView, decide, label_rarity, parse_duration, representatives, tokens
from service.core.errors import ConfigError
from service.core.models import Alert

T0 = 1_800_000_000.0
TOPO = {"frontend": ["checkout"], "checkout": ["payments", "inventory"], "payments": ["payments-db"],
        "inventory": ["inventory-db"], "search": ["search-index"]}


def feat(alertname: str, t: float = T0, **labels: str) -> AlertFeatures:
    return AlertFeatures.from_alert(Alert(labels={"alertname": alertname, **labels}, starts_at=t))


def cfg(**kw) -> CorrelationConfig:
    return CorrelationConfig(enabled=True, topology=TOPO, **kw)


def inc(iid: str, *members: AlertFeatures, state: str = "triggered", firing: bool = True,
        resolved_at: float | None = None) -> IncidentView:
    return IncidentView(id=iid, state=state, opened_at=min(m.onset for m in members), members=list(members),
                        firing=firing, resolved_at=resolved_at)


def test_features_pick_service_entity_metric_and_score():
    """Features come from labels, with the detector's metric and score winning over labels."""
    a = Alert(labels={"alertname": "HighAnomalyScore", "service": "api", "instance": "api-1",
                      "metric_name": "http_latency"}, annotations={"summary": "Latency of api is unusual"},
              starts_at=T0, detector={"metric": "p99_latency", "score": 0.93})
    f = AlertFeatures.from_alert(a)
    assert (f.service, f.entity, f.metric, f.score) == ("api", "api-1", "p99_latency", 0.93)
    assert f.key == "api/p99_latency"
    assert "latency" in f.tokens and "anomaly" in f.tokens


def test_anomaly_score_label_is_used_when_no_detector():
    """A Prometheus anomaly-exporter alert's anomaly_score label becomes the feature score."""
    f = feat("HighAnomalyScore", anomaly_score="0.87", metric_name="cpu")
    assert f.score == 0.87 and f.metric == "cpu"


def test_tokens_split_camel_case_and_bound_untrusted_text():
    """Alert names are split into words, stopwords dropped, and hostile text is bounded."""
    assert tokens("HighHTTPErrorRate on the API") == ["http", "error", "rate", "api"]
    assert len(tokens("word " * 10_000)) <= 48


def test_caller_joins_dependency_incident_via_topology():
    """An alert on a direct caller of a failing dependency (another entity) joins its incident: time and the
    call edge, two kinds of evidence, each a reason."""
    db = feat("PostgresSlowQueries", service="payments-db", instance="db-1")
    d = decide(feat("HighLatency", T0 + 40, service="payments", instance="pay-1"), [inc("i1", db)], T0 + 40, cfg())
    assert d.incident_id == "i1" and d.hop == 1
    sig = {r.signal: r for r in d.reasons}
    assert sig["time"].score > 0.8 and sig["topology"].matched == db.fingerprint
    assert "payments calls payments-db" in sig["topology"].detail

def test_same_entity_joins_within_the_rolling_window():
    """Two alerts of the same entity within the rolling window join; the reason names the entity."""
    a = feat("HighCPU", service="search", instance="s-1")
    d = decide(feat("HighMemory", T0 + 100, service="search", instance="s-1"), [inc("i1", a)], T0 + 100, cfg())
    assert d.incident_id == "i1" and d.hop == 0
    assert any(r.signal == "labels" and "same entity s-1" in r.detail for r in d.reasons)

def test_unrelated_services_with_similar_names_stay_apart():
    """Same alert name on services the call graph says are unrelated does not join (text alone is weak)."""
    a = feat("HighErrorRate", service="search", cluster="prod")
    d = decide(feat("HighErrorRate", T0 + 5, service="inventory", cluster="prod"), [inc("i1", a)], T0 + 5, cfg())
    assert d.incident_id is None


def test_text_plus_label_joins_without_topology():
    """Without a call graph, the same alert name on the same namespace joins (two weak signals agree)."""
    c = CorrelationConfig(enabled=True)
    a = feat("KafkaConsumerLag", namespace="streaming", consumer="a")
    d = decide(feat("KafkaConsumerLag", T0 + 10, namespace="streaming", consumer="b"), [inc("i1", a)], T0 + 10, c)
    assert d.incident_id == "i1"


def test_the_rolling_window_runs_from_the_latest_onset_and_scales_with_the_cadence():
    """Past the rolling window of the incident's latest onset even the same entity starts a new incident; the
    window is at least `window_samples` steps of the source's cadence (300 s is one sample of 5-minute data)."""
    db = feat("HighCPU", service="payments-db", instance="db-1")
    mid = feat("HighIO", T0 + 250, service="payments-db", instance="db-1")
    late = feat("HighConnections", T0 + 500, service="payments-db", instance="db-1")
    assert decide(late, [inc("i1", db)], T0 + 500, cfg()).incident_id is None
    assert decide(late, [inc("i1", db, mid)], T0 + 500, cfg()).incident_id == "i1"  # rolling: 250 s after mid
    five_minutes = Context(cadence=300.0)  # window max(300 s, 5 x 300 s)
    assert decide(feat("X", T0 + 1400, service="payments-db", instance="db-1"), [inc("i1", db)], T0 + 1400, cfg(),
                  ctx=five_minutes).incident_id == "i1"
    assert decide(feat("X", T0 + 1600, service="payments-db", instance="db-1"), [inc("i1", db)], T0 + 1600, cfg(),
                  ctx=five_minutes).incident_id is None


def test_each_entity_s_rolling_window_runs_from_its_own_latest_onset():
    """An incident kept alive by one entity's alerts does not keep taking another entity that joined it once: that
    entity rejoins only within the rolling window of its own latest onset in the incident."""
    a0 = feat("HighCPU", T0, service="ads", instance="ads-1")
    b0 = feat("HighLatency", T0 + 30, service="cart", instance="cart-1")
    a1 = feat("HighCPU", T0 + 600, service="ads", instance="ads-1")
    view = IncidentView(id="i1", state="triggered", opened_at=T0, members=[a0, b0, a1], seed_entity="ads-1",
                        entities={"ads-1": 0, "cart-1": 1}, last_onset=T0 + 600,
                        entity_onsets={"ads-1": T0 + 600, "cart-1": T0 + 30})
    late_b = feat("HighLatency", T0 + 700, service="cart", instance="cart-1")
    d = decide(late_b, [view], T0 + 700, cfg())
    assert d.incident_id is None  # 670 s after cart-1's own latest onset, though 100 s after the incident's
    assert decide(feat("HighIO", T0 + 700, service="ads", instance="ads-1"), [view], T0 + 700, cfg()).incident_id == "i1"
    view.entity_onsets["cart-1"] = T0 + 500
    assert decide(late_b, [view], T0 + 700, cfg()).incident_id == "i1"


def test_an_entity_with_a_member_still_firing_takes_its_new_onsets_however_late():
    """As an Alertmanager group lives while any of its alerts fires: while one of an entity's members still fires in
    the incident, a new onset of that entity joins it, far beyond the rolling window of its latest onset; once none
    fires, the rolling window decides again."""
    a0 = feat("DiskFull", T0, service="db", instance="db-1")
    view = IncidentView(id="i1", state="triggered", opened_at=T0, members=[a0], seed_entity="db-1",
                        entities={"db-1": 0}, last_onset=T0, entity_onsets={"db-1": T0},
                        firing_entities=frozenset({"db-1"}))
    late = feat("HighIO", T0 + 3600, service="db", instance="db-1")
    d = decide(late, [view], T0 + 3600, cfg())
    assert d.incident_id == "i1" and any("still has a firing member" in r.detail for r in d.reasons)
    quiet = IncidentView(**{**view.__dict__, "firing_entities": frozenset()})
    assert decide(late, [quiet], T0 + 3600, cfg()).incident_id is None
    other = feat("HighIO", T0 + 3600, service="db", instance="db-2")  # another entity gains nothing from it
    assert decide(other, [view], T0 + 3600, cfg()).incident_id is None
    assert decide(feat("HighIO", T0 + 86400 + 1, service="db", instance="db-1"), [view], T0 + 86400 + 1,
                  cfg()).incident_id is None  # the life cap still holds


def test_after_every_member_resolved_a_new_series_of_the_entity_is_a_new_wave():
    """An incident whose members all resolved takes its entity's new onsets only within the cross window of going
    quiet: a different alert of the same machine ten minutes later (inside the rolling window of its latest onset)
    pages as a new incident, as Alertmanager's next group would; the incident's own series flapping back rejoins."""
    blip = feat("DiskLatency", T0, service="db", instance="db-1")
    view = IncidentView(id="i1", state="triggered", opened_at=T0, members=[blip], seed_entity="db-1",
                        entities={"db-1": 0}, last_onset=T0, entity_onsets={"db-1": T0}, firing=False,
                        quiet_since=T0 + 60)
    c = cfg(window=1500)
    other = feat("HighIO", T0 + 660, service="db", instance="db-1")
    d = decide(other, [view], T0 + 660, c)
    assert d.incident_id is None
    assert decide(feat("HighIO", T0 + 150, service="db", instance="db-1"), [view], T0 + 150, c).incident_id == "i1"
    flap = feat("DiskLatency", T0 + 660, service="db", instance="db-1")
    flapping = IncidentView(**{**view.__dict__, "member_fps": frozenset([flap.fingerprint])})
    assert decide(flap, [flapping], T0 + 660, c).incident_id == "i1"
    firing = IncidentView(**{**view.__dict__, "firing": True, "quiet_since": None})
    assert decide(other, [firing], T0 + 660, c).incident_id == "i1"  # while something fires, the window decides


def test_another_entity_joins_only_if_the_entity_it_relates_to_is_active_now():
    """Time and structure must point at the same entity: checkout calls payments, but when payments (the seed)
    went quiet long ago and only an unrelated noisy member keeps the incident's latest onset fresh, a new checkout
    alert is a new incident; with payments active a minute ago, it joins."""
    seed = feat("HighLatency", T0, service="payments", instance="pay-1")
    noisy = feat("HighCPU", T0 + 30, service="search", instance="search-1")
    view = IncidentView(id="i1", state="triggered", opened_at=T0, members=[seed, noisy], seed_entity="pay-1",
                        entities={"pay-1": 0, "search-1": 2}, last_onset=T0 + 590,
                        entity_onsets={"pay-1": T0, "search-1": T0 + 590})
    caller = feat("HighErrorRate", T0 + 600, service="checkout", instance="co-1")
    d = decide(caller, [view], T0 + 600, cfg())
    assert d.incident_id is None
    view.entity_onsets["pay-1"] = T0 + 540
    d = decide(caller, [view], T0 + 600, cfg())
    assert d.incident_id == "i1" and any(r.signal == "topology" for r in d.reasons)


def test_a_pod_and_the_node_it_runs_on_are_related():
    """A pod's `node` label names its node: the node's alert joins the pod's young incident (and the other way
    round), while a pod on another node with no other relation does not."""
    pod = feat("MetricAnomaly", T0, entity="cart-7f-x", node="node-1", metric="CpuUsageRate")
    node = feat("MetricAnomaly", T0 + 60, entity="node-1", node="node-1", metric="NodeCpuUsageRate")
    other = feat("MetricAnomaly", T0 + 60, entity="node-2", node="node-2", metric="NodeCpuUsageRate")
    c = cfg(entity_labels=["entity"])
    pod, node, other = (AlertFeatures.from_alert(Alert(labels={"alertname": x.alertname, **x.labels}, starts_at=x.onset),
                                                 c.labels, c.entity_labels) for x in (pod, node, other))
    d = decide(node, [inc("i1", pod)], T0 + 60, c)
    assert d.incident_id == "i1" and any("cart-7f-x runs on node-1" in r.detail for r in d.reasons)
    assert decide(pod, [inc("i2", node)], T0 + 60, c).incident_id == "i2"
    assert decide(other, [inc("i1", pod)], T0 + 60, c).incident_id is None
    assert decide(node, [inc("i1", pod)], T0 + 60, cfg(entity_labels=["entity"], host_labels=[])).incident_id is None


def test_a_pod_and_the_node_exporter_of_its_node_are_related_but_two_pods_of_one_node_are_not():
    """In a cluster the node's alert is named by its exporter's instance; it carries the node label and no pod label:
    the pod running there relates to it, a pod of another service on the same node does not (siblings)."""
    c = cfg()
    pod = feat("HighCPU", T0, pod="cart-7f-x", node="node-1", namespace="shop")
    node = feat("NodeCPUHigh", T0 + 30, instance="10.0.0.1:9100", node="node-1")
    sibling = feat("HighLatency", T0 + 30, pod="ads-5c-y", node="node-1", namespace="shop")
    d = decide(node, [inc("i1", pod)], T0 + 30, c)
    assert d.incident_id == "i1" and any("cart-7f-x runs on 10.0.0.1:9100" in r.detail for r in d.reasons)
    assert decide(pod, [inc("i2", node)], T0 + 30, c).incident_id == "i2"
    assert decide(sibling, [inc("i1", pod)], T0 + 30, c).incident_id is None


def test_an_incident_takes_nothing_after_its_life_cap():
    """An entity that keeps misbehaving is a page a day (max_life), not one unbounded incident."""
    c = cfg(max_life=3600)
    ms = [feat("A", T0 + i * 200, instance="h-1") for i in range(18)]  # every 200 s for an hour
    assert decide(feat("B", T0 + 3500, instance="h-1"), [inc("i1", *ms)], T0 + 3500, c).incident_id == "i1"
    assert decide(feat("B", T0 + 3700, instance="h-1"), [inc("i1", *ms)], T0 + 3700, c).incident_id is None

def test_a_resolved_incident_takes_no_new_alerts():
    """A series that fires again after its incident went quiet and resolved starts a new incident."""
    db = feat("HighCPU", service="payments-db", instance="db-1")
    again = feat("HighCPU", T0 + 200, service="payments-db", instance="db-1")
    d = decide(again, [inc("i1", db, state="resolved", firing=False, resolved_at=T0 + 100)], T0 + 200, cfg())
    assert d.incident_id is None

def test_best_candidate_wins():
    """With two related incidents the alert joins the more strongly related one."""
    pay = feat("HighCPU", service="payments-db", instance="db-1")
    inv = feat("HighCPU", T0 + 10, service="inventory-db", instance="db-2")
    d = decide(feat("HighLatency", T0 + 30, service="payments"), [inc("inv", inv), inc("pay", pay)], T0 + 30, cfg())
    assert d.incident_id == "pay"


def test_shared_labels_alone_never_join_different_entities():
    """A namespace (or any label every alert of a cluster shares) is not a relation between two entities; learned
    co-activation far above chance is, together with time."""
    assert label_rarity(1) == 1.0 and label_rarity(3) < 0.5 < label_rarity(2)
    c = CorrelationConfig(enabled=True, text_similarity=False)
    a = feat("A", T0, namespace="shop", pod="cart-1")
    b = feat("B", T0 + 30, namespace="shop", pod="web-1")
    assert decide(b, [inc("i1", a)], T0 + 30, c).incident_id is None
    learned = Context(cadence=60.0, lift=lambda x, y: (12.0, 5.0) if {x, y} == {"cart-1", "web-1"} else (0.0, 0.0))
    d = decide(b, [inc("i1", a)], T0 + 30, c, ctx=learned)
    assert d.incident_id == "i1" and any(r.signal == "cooccurrence" and "12.0x" in r.detail for r in d.reasons)
    rare = Context(cadence=60.0, lift=lambda x, y: (12.0, 2.0))  # not seen often enough (lift_support 3)
    assert decide(b, [inc("i1", a)], T0 + 30, c, ctx=rare).incident_id is None
    chance = Context(cadence=60.0, lift=lambda x, y: (1.2, 40.0))  # together often, but no more than chance
    assert decide(b, [inc("i1", a)], T0 + 30, c, ctx=chance).incident_id is None


def test_no_chaining_an_entity_must_relate_to_the_seed_or_a_direct_neighbour():
    """Related to a neighbour's neighbour only is not enough: incidents do not grow along chains of members."""
    topo = {"a": ["b"], "b": ["c"], "c": ["d"]}
    c = CorrelationConfig(enabled=True, topology=topo, topology_max_hops=1, text_similarity=False)
    d_ = feat("X", T0, service="d", instance="d-1")
    c_ = feat("X", T0 + 10, service="c", instance="c-1")
    b_ = feat("X", T0 + 20, service="b", instance="b-1")
    a_ = feat("X", T0 + 30, service="a", instance="a-1")
    view = IncidentView(id="i1", state="triggered", opened_at=T0, members=[d_, c_, b_], seed_entity="d-1",
                        entities={"d-1": 0, "c-1": 1, "b-1": 2})
    assert decide(a_, [view], T0 + 30, c).incident_id is None  # a calls b (hop 2): a chain
    view.entities["b-1"] = 1  # had b been a direct neighbour of the seed, a would join, two hops from the seed
    d = decide(a_, [view], T0 + 30, c)
    assert d.incident_id == "i1" and d.hop == 2

def test_learned_cooccurrence_joins_unlabelled_pair():
    """A learned co-occurrence weight joins alerts that share no labels or topology."""
    a = feat("QueueDepth", service="mq")
    b = feat("BatchLate", T0 + 60, service="reports")
    c = CorrelationConfig(enabled=True, text_similarity=False)
    assert decide(b, [inc("i1", a)], T0 + 60, c).incident_id is None
    lookup = lambda x, y: 0.8 if {x, y} == {"mq/QueueDepth", "reports/BatchLate"} else 0.0  # noqa: E731
    d = decide(b, [inc("i1", a)], T0 + 60, c, cooc=lookup)
    assert d.incident_id == "i1" and any(r.signal == "cooccurrence" for r in d.reasons)


def test_metric_names_learned_together_do_not_relate_two_machines():
    """Keys without a service are bare metric names: that a machine's m11 and m12 fired together in its own
    incidents says nothing about another machine, so the weight joins nothing across entities (it did, and merged
    two servers' separate incidents on ASD). Two instances of one service are the same case."""
    a = feat("MetricAnomaly", T0, entity="omi-3", metric="m12")
    b = feat("MetricAnomaly", T0 + 60, entity="omi-5", metric="m11")
    c = CorrelationConfig(enabled=True, text_similarity=False, entity_labels=["entity"])
    a, b = (AlertFeatures.from_alert(Alert(labels={"alertname": x.alertname, **x.labels}, starts_at=x.onset),
                                     c.labels, c.entity_labels) for x in (a, b))
    lookup = lambda x, y: 0.9 if {x, y} == {"m11", "m12"} else 0.0  # noqa: E731
    assert decide(b, [inc("i1", a)], T0 + 60, c, cooc=lookup).incident_id is None
    a2 = feat("QueueDepth", T0, service="mq", instance="mq-1")
    b2 = feat("BatchLate", T0 + 60, service="mq", instance="mq-2")
    same = lambda x, y: 0.9 if {x, y} == {"mq/QueueDepth", "mq/BatchLate"} else 0.0  # noqa: E731
    assert decide(b2, [inc("i2", a2)], T0 + 60, c, cooc=same).incident_id is None


def test_disabled_correlation_always_opens_new():
    """With correlation disabled every new alert opens its own incident."""
    a = feat("HighCPU", service="search")
    assert decide(feat("HighMem", T0, service="search"), [inc("i1", a)], T0,
                  CorrelationConfig(enabled=False)).incident_id is None


def test_representatives_are_bounded_and_distinct():
    """The comparison sample keeps one member per shape and at most `limit`, oldest and newest."""
    ms = [feat("Down", T0 + i, service="web", instance=f"w{i}") for i in range(100)]
    reps = representatives(ms + ms[:10], 10)
    assert len(reps) == 10 and reps[0].onset == T0 and reps[-1].onset == T0 + 99


@pytest.mark.parametrize("raw,seconds", [(30, 30.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0)])
def test_durations(raw, seconds):
    """Durations accept seconds or Prometheus duration strings."""
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("data,path", [
    ({"window": "5 minutes"}, "tocsin.correlation.window"),
    ({"weights": {"text": 2}}, "tocsin.correlation.weights.text"),
    ({"labels": {"service": 1.5}}, "tocsin.correlation.labels"),
    ({"topology": {"a": "b"}}, "tocsin.correlation.topology.a"),
    ({"bogus": 1}, "tocsin.correlation.bogus"),
    ({"service_criticality": {"api": "extreme"}}, "tocsin.correlation.service_criticality.api"),
])
def test_config_errors_name_the_path(data, path):
    """Bad config raises ConfigError whose path names the bad field."""
    with pytest.raises(ConfigError) as e:
        CorrelationConfig.parse(data)
    assert e.value.path == path


def test_config_accepts_label_list_and_durations():
    """A plain label list gets default weights and durations parse."""
    c = CorrelationConfig.parse({"enabled": True, "labels": ["service", "team"], "window": "2m", "quiet_period": "10m"})
    assert c.labels == {"service": 0.8, "team": 0.5} and c.window == 120 and c.quiet_period == 600


def test_storm_of_identical_alerts_joins_across_unrelated_services():
    """Ten or more identical alerts starting within a minute on distinct entities join despite the graph."""
    c = cfg()
    storm = [feat("InstanceDown", T0 + i, service=s, instance=f"{s}-{i}", cluster="prod")
             for i, s in enumerate(["search", "payments-db", "frontend", "inventory", "search-index"] * 2)]
    late = feat("InstanceDown", T0 + 30, service="mailer", instance="mail-9", cluster="prod")
    d = decide(late, [inc("i1", *storm)], T0 + 30, c)
    assert d.incident_id == "i1" and any("burst" in r.detail for r in d.reasons)
    d = decide(late, [inc("i1", *storm[:5])], T0 + 30, c)  # five is a coincidence, not a storm
    assert d.incident_id is None


def test_storm_absorbs_incidents_opened_by_its_first_drops():
    """Once a storm is visible, incidents made only of its earlier drops are marked for absorption."""
    c = cfg()
    drops = [inc(f"d{i}", feat("InstanceDown", T0 + i, service=s, instance=f"{s}-{i}"))
             for i, s in enumerate(["search", "payments-db", "frontend", "inventory", "search-index"])]
    big = inc("big", *[feat("InstanceDown", T0 + 5 + i, service="mailer", instance=f"m-{i}") for i in range(6)])
    d = decide(feat("InstanceDown", T0 + 20, service="mailer", instance="m-99"), drops + [big], T0 + 20, c)
    assert d.incident_id == "big" and sorted(d.absorb) == ["d0", "d1", "d2", "d3", "d4"]


def test_a_dependency_that_broke_after_its_caller_is_not_pulled_in_by_weak_evidence():
    """An alert on a dependency that fired minutes after its (already explained) caller is neither a cause nor
    an effect in the call graph: shared namespace and similar names do not make it join; the same alert
    firing before its caller does join, as the likely cause."""
    inv_db = feat("DiskIOSaturation", T0, service="inventory-db", namespace="shop", instance="inv-db-0")
    checkout = feat("HighLatency", T0 + 30, service="checkout", namespace="shop", instance="co-1")
    late = feat("DiskIOSaturation", T0 + 240, service="payments-db", namespace="shop", instance="pay-db-0")
    payments = feat("HighLatency", T0 + 40, service="payments", namespace="shop", instance="pay-1")
    incident2 = inc("i1", inv_db, checkout, payments)
    d = decide(late, [incident2], T0 + 240, cfg())
    assert d.incident_id is None, d
    early = feat("DiskIOSaturation", T0 + 35, service="payments-db", namespace="shop", instance="pay-db-0")
    d2 = decide(early, [incident2], T0 + 35, cfg())
    assert d2.incident_id == "i1"


def test_many_entities_of_one_namespace_starting_together_are_one_incident():
    """Six pods of one namespace becoming anomalous within a minute are one cause (co-onset): the next pod joins and
    the incidents the first pods opened fold in; four pods of a namespace, or pods of different namespaces, are not."""
    c = CorrelationConfig(enabled=True, text_similarity=False)
    pods = [feat(f"M{i}", T0 + i, namespace="shop", pod=f"p{i}") for i in range(6)]
    views = [inc(f"i{i}", p) for i, p in enumerate(pods)]
    nxt = feat("M9", T0 + 20, namespace="shop", pod="p9")
    d = decide(nxt, views, T0 + 20, c)
    assert d.incident_id is not None and any(r.detail.startswith("co-onset: 7 entities with namespace=shop")
                                             for r in d.reasons)
    assert sorted(d.absorb) == sorted(v.id for v in views if v.id != d.incident_id)
    assert decide(nxt, views[:3], T0 + 20, c).incident_id is None  # 4 entities: not enough for a namespace
    other = feat("M9", T0 + 20, namespace="billing", pod="q9")
    assert decide(other, views, T0 + 20, c).incident_id is None
