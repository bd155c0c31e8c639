"""Severity and confidence: levels, and a factor with an explanation for each input."""
from __future__ import annotations

from service.incidents.correlation import CorrelationConfig
from service.incidents.scoring import confidence, severity

T0 = 1_800_000_000.0


def m(alertname: str, t: float = T0, status: str = "firing", score: float | None = None, ends_at=None,
      changes=(), info=None, **labels: str) -> dict:
    return {"fingerprint": alertname + str(t), "labels": {"alertname": alertname, **labels}, "annotations": {},
            "status": status, "starts_at": t, "ends_at": ends_at, "score": score,
            "state_changes": list(changes), "detector_info": info or {}}


CFG = CorrelationConfig(enabled=True, service_criticality={"payments": "critical", "batch": "low"})


def factors(fs: list[dict]) -> dict:
    return {f["factor"]: f for f in fs}


def test_wide_user_facing_critical_service_is_critical():
    """Errors across three services including a critical one, with a high score, rate critical."""
    ms = [m("HighErrorRate", service="payments", score=0.97), m("HighLatency", service="checkout"),
          m("HighLatency", service="frontend")]
    level, fs = severity(ms, CFG, T0 + 60)
    assert level == "critical"
    f = factors(fs)
    assert f["declared_criticality"]["contribution"] == 1.5 and f["user_facing"]["contribution"] == 1.5
    assert all(x["explanation"] for x in fs)


def test_single_resource_blip_on_low_service_is_info():
    """A lone CPU alert on a low-criticality service with a modest score rates info."""
    level, fs = severity([m("HighCPU", service="batch", score=0.55)], CFG, T0 + 60)
    assert level == "info"
    assert factors(fs)["user_facing"]["contribution"] < 0


def test_declared_severity_label_counts_and_duration_adds():
    """The alert's own severity label sets the base and a long incident rates higher."""
    ms = [m("CertExpiringSoon", severity="warning", service="x")]
    assert severity(ms, CFG, T0 + 60)[0] == "warning"
    assert severity(ms, CFG, T0 + 3 * 3600)[0] == "error"


def test_persistent_corroborated_incident_is_confident():
    """Several metrics firing for ten minutes with high detector confidence give high confidence."""
    info = {"confidence": "high", "agreeing_detectors": ["z", "ema", "iforest"],
            "individual_scores": {"z": 0.9, "ema": 0.8, "iforest": 0.7}}
    ms = [m("A", info=info, service="s"), m("B", T0 + 20, service="s"), m("C", T0 + 40, service="s")]
    c, fs, flapping = confidence(ms, CFG, T0 + 900)
    assert c >= 0.9 and not flapping
    assert {"detector_confidence", "detector_agreement", "corroboration", "persistence"} <= set(factors(fs))


def test_a_blip_of_a_series_that_fires_every_day_has_low_confidence():
    """One sample of a series that fires 20 times a day is a blip with low confidence (below the default hold
    of 0.4); the same blip of a series that never fired, or one that persisted, or that has a large deviation
    and company, is more credible. Each factor is shown with its contribution."""
    noisy = {"episodes": 40, "span": 2 * 86400, "cadence": 60}
    blip = dict(m("A", status="resolved", ends_at=T0 + 60), history=noisy)
    c, fs, _ = confidence([blip], CFG, T0 + 90)
    f = factors(fs)
    assert c < 0.35 and f["novelty"]["contribution"] < 0 and f["persistence"]["contribution"] == 0
    new = dict(blip, history={"episodes": 0, "span": 2 * 86400, "cadence": 60})
    persisted = dict(blip, ends_at=T0 + 600)
    big = [dict(blip, score=40.0), dict(m("B", status="resolved", ends_at=T0 + 60), history=noisy)]
    for other in ([new], [persisted], big):
        assert confidence(other, CFG, T0 + 90)[0] > c


def test_flapping_is_detected_and_weighed_as_the_model_learned():
    """An alert that changed state four times in ten minutes marks the incident flapping (the dispatcher holds a
    flapping incident until it settles); the confidence weighs it as the shipped model learned from the real
    streams, where flapping series were more often real than steady blips: the factor says so."""
    from service.incidents.scoring import ConfidenceModel

    flappy = m("A", changes=[T0 + 60, T0 + 120, T0 + 180, T0 + 240])
    c, fs, flapping = confidence([flappy], CFG, T0 + 300)
    steady, _, _ = confidence([m("A")], CFG, T0 + 300)
    w = ConfidenceModel.load().weights["flapping"]
    assert flapping and factors(fs)["flapping"]["contribution"] == round(w * 1.0, 3)
    assert (c > steady) == (w > 0) and c != steady
    assert not confidence([flappy], CFG, T0 + 3600)[2]  # changes older than the window do not count


def test_feedback_history_moves_confidence():
    """Past incidents marked noise lower confidence; acted-on ones raise it."""
    base, _, _ = confidence([m("A")], CFG, T0 + 300)
    noisy, fs, _ = confidence([m("A")], CFG, T0 + 300, {"A": {"acted": 0, "noise": 5}})
    good, _, _ = confidence([m("A")], CFG, T0 + 300, {"A": {"acted": 5, "noise": 0}})
    assert noisy < base < good
    assert "marked noise" in factors(fs)["feedback_history"]["explanation"]


def test_scorer_on_hand_made_replay_output():
    """The benchmark scorer counts new notifications, noise, recall, purity and root-cause hits on a tiny output."""
    from bench.correlation.scorer import score
    truth = {"incidents": {"i1": {"start": 100.0, "root_cause": {"metric": "db_conn", "entity": "db-0", "service": "db"}}},
             "episodes": [{"service": "db", "instance": "db-0", "name": "db_conn", "start": 100.0, "end": 900.0,
                           "incident": "i1", "noise": ""},
                          {"service": "api", "instance": "api-1", "name": "HighLatency", "start": 130.0, "end": 900.0,
                           "incident": "i1", "noise": ""},
                          {"service": "web", "instance": "web-1", "name": "HighCPU", "start": 500.0, "end": 560.0,
                           "incident": None, "noise": "blip"}]}
    def member(svc, inst, name, t):
        return {"labels": {"service": svc, "instance": inst, "alertname": name}, "starts_at": t}
    snap = {"id": "inc-1", "members": [member("db", "db-0", "db_conn", 100.0), member("api", "api-1", "HighLatency", 130.0)],
            "root_causes": [{"metric": "db_conn", "entity": "db-0", "service": "db"}]}
    notes = [{"receiver": "r", "status": "firing", "timestamp": 130.0, "incident": {**snap, "members": snap["members"][:1]}},
             {"receiver": "r", "status": "firing", "timestamp": 190.0, "incident": snap},  # an update
             {"receiver": "r", "status": "firing", "timestamp": 530.0, "incident": {"id": "inc-2", "root_causes": [],
              "members": [member("web", "web-1", "HighCPU", 500.0)]}}]
    r = score(notes, truth)
    assert (r["new_notifications"], r["noise_notifications"], r["incident_recall"]) == (2, 1, 1.0)
    assert r["notifications_per_incident"] == 1.0 and r["purity"] == 1.0 and r["rootcause_hit1"] == 1.0
    assert r["time_to_notify_median_s"] == 30.0 and r["compression"] == 1.5


def test_confidence_is_the_shipped_models_probability_and_each_factor_its_share():
    """The confidence is sigmoid(bias + sum(weight * x)) of the shipped model; each factor shows its x and
    contribution, so the contributions add up to the log-odds; an installation's offsets change it."""
    import math

    from service.incidents.scoring import ConfidenceModel

    model = ConfidenceModel.load()
    ms = [m("A", score=12.0), m("B", T0 + 30, score=6.0)]
    c, fs, _ = confidence(ms, CFG, T0 + 600)
    assert fs[0]["factor"] == "base_rate" and fs[0]["contribution"] == round(model.bias, 3)
    for f in fs[1:]:
        assert math.isclose(f["contribution"], round(model.weights.get(f["factor"], 0.0) * f["x"], 3), abs_tol=2e-3)
    logit = sum(f["contribution"] for f in fs)
    assert math.isclose(c, min(0.99, max(0.01, 1 / (1 + math.exp(-logit)))), abs_tol=0.01)
    lower, _, _ = confidence(ms, CFG, T0 + 600, model=model.adjusted({"bias": -2.0}))
    assert lower < c
