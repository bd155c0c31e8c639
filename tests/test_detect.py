"""The detector core: each method on synthetic series with known anomalies, and the alerting discipline
(calibration, hysteresis, minimum evidence, refractory period, warm-up, level shifts becoming normal)."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from service.detect.core import EntityDetector, SeriesDetector, detect_series, period_points
from service.detect.discipline import AlertState, SlidingMax, to_unit
from service.detect.params import DetectorParams
from service.store.detect import pack, unpack

STEP = 300.0  # 5-minute samples


def noise(n: int, seed: int = 1, level: float = 10.0, sd: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(level, sd, n)


def times(n: int) -> np.ndarray:
    return 1.7e9 + STEP * np.arange(n)


def opened(x: np.ndarray, **kw) -> list[int]:
    return np.flatnonzero(detect_series(times(len(x)), x, DetectorParams(**kw)).opened).tolist()


@pytest.mark.parametrize("method", ["zscore", "ema", "shift", "iforest", "ensemble"])
def test_pure_noise_raises_no_alert(method: str) -> None:
    assert opened(noise(5000), method=method) == []


@pytest.mark.parametrize("method", ["zscore", "ema", "ensemble"])
def test_a_spike_opens_one_alert_at_the_spike(method: str) -> None:
    x = noise(3000)
    x[2000] += 15
    assert opened(x, method=method) == [2000]


def test_isolation_forest_needs_a_run_of_isolated_points() -> None:
    x = noise(4000)
    x[3000] += 15
    assert opened(x, method="iforest") == []  # one isolated point is not evidence enough for the forest
    x[3001:3003] += 15
    assert opened(x, method="iforest") == [3002]


def test_isolation_forest_over_an_entity_sees_a_broken_correlation() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    load = rng.normal(0, 1, n)
    req = 100 + 10 * load + rng.normal(0, 2, n)
    cpu = 50 + 5 * load + rng.normal(0, 1, n)
    assert not EntityDetector(["req", "cpu"]).update(times(n), np.stack([req, cpu], 1)).opened.any()
    req[3000:3006] += 25  # +2.5 sd: unremarkable alone
    cpu[3000:3006] -= 12.5  # -2.5 sd while requests are up: the pair is the anomaly
    assert opened(req, method="zscore") == [] and opened(cpu, method="zscore") == []
    b = EntityDetector(["req", "cpu"]).update(times(n), np.stack([req, cpu], 1))
    got = np.flatnonzero(b.opened).tolist()
    assert len(got) == 1 and 3000 <= got[0] <= 3005
    assert b.top[got[0]] in ("req", "cpu")
    assert b.lower[got[0]] < b.expected[got[0]] < b.upper[got[0]]


def test_entity_detector_state_round_trips() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (3000, 3))
    x[2500:2504, 0] += 8
    x[2500:2504, 1] -= 8
    ref = EntityDetector(["a", "b", "c"])
    ref.update(times(2000), x[:2000])
    b = ref.update(times(3000)[2000:], x[2000:])
    d = EntityDetector(["a", "b", "c"])
    d.update(times(2000), x[:2000])
    c = EntityDetector.load(DetectorParams(), unpack(pack(d.dump()))).update(times(3000)[2000:], x[2000:])
    assert np.flatnonzero(c.opened).tolist() == np.flatnonzero(b.opened).tolist()
    assert len(np.flatnonzero(b.opened)) == 1


def test_level_shift_is_one_alert_then_the_new_normal() -> None:
    x = noise(4000)
    x[1500:] += 4  # 4 sd: the single points are unremarkable, the run of them is not
    for method in ("shift", "ensemble"):
        got = opened(x, method=method)
        assert len(got) == 1 and 1500 <= got[0] <= 1520, (method, got)
    assert len(opened(x[:1500], method="shift")) == 0


def daily(n_days: int, seed: int = 2) -> np.ndarray:
    p = period_points(STEP)
    t = np.arange(n_days * p)
    return 50 + 20 * np.sin(2 * np.pi * t / p) + np.random.default_rng(seed).normal(0, 0.5, len(t))


def test_daily_rhythm_alone_raises_nothing() -> None:
    x = daily(10)
    for method in ("seasonal", "ensemble"):
        assert opened(x, method=method) == [], method


def test_seasonal_baseline_sees_a_missing_daily_peak() -> None:
    x = daily(10)
    p = period_points(STEP)
    peak = 7 * p + p // 4  # the sine's maximum on day 8
    x[peak - 30:peak + 30] = 50  # flat where the peak should be: within the day's range
    got = opened(x, method="seasonal")
    assert len(got) == 1 and peak - 30 <= got[0] <= peak + 30
    got = opened(x)  # the ensemble
    assert len(got) == 1 and peak - 30 <= got[0] <= peak + 30
    # the robust z over the last day sees nothing: 50 is the day's median
    assert opened(x, method="zscore") == []


def test_flat_series_is_quiet_and_a_change_alerts_once() -> None:
    x = np.full(3000, 7.0)
    assert opened(x) == []
    x[2000:] = 9.0
    got = opened(x)
    assert len(got) == 1 and got[0] == 2000


def test_warm_up_holds_alerts() -> None:
    x = noise(1000)
    x[100] += 30
    x[600] += 30
    assert opened(x, warmup=150) == [600]


def test_refractory_period_suppresses_a_second_opening() -> None:
    x = noise(3000)
    x[2000] += 20
    x[2050] += 40
    assert opened(x, method="zscore", refractory=144) == [2000]
    assert opened(x, method="zscore", refractory=10) == [2000, 2050]


def test_missing_points_are_not_scored_and_do_not_break_the_baseline() -> None:
    x = noise(3000)
    x[1000:1010] = np.nan
    x[2000] += 15
    b = detect_series(times(3000), x)
    assert np.flatnonzero(b.opened).tolist() == [2000]
    assert (b.score[1000:1010] == 0).all()
    leading = np.concatenate([np.full(50, np.nan), x])
    b2 = detect_series(times(len(leading)), leading)
    assert np.flatnonzero(b2.opened).tolist() == [2050]


def test_scores_are_calibrated_to_0_1() -> None:
    x = noise(3000)
    x[2000] += 15
    b = detect_series(times(3000), x)
    assert ((b.score >= 0) & (b.score < 1)).all()
    assert b.score[2000] > 0.5 > b.score[:2000].max()
    assert to_unit(1.0) == 0.5 and to_unit(0) == 0


def test_each_alert_says_why() -> None:
    x = noise(3000)
    x[2000] += 15
    b = detect_series(times(3000), x)
    i = 2000
    assert abs(b.expected[i] - 10) < 0.5
    assert b.lower[i] < b.expected[i] < b.upper[i] < x[i]
    assert abs(b.deviation[i] - (x[i] - b.expected[i])) < 1e-9
    assert b.top[i] in ("zscore", "ema", "shift", "knn")
    assert set(b.individual) == {"zscore", "ema", "seasonal", "shift", "knn"}


def test_point_by_point_equals_one_batch() -> None:
    x = noise(900)
    x[700] += 15
    x[500:520] = np.nan
    t = times(900)
    whole = detect_series(t, x)
    d = SeriesDetector(DetectorParams())
    first = d.update(t[:600], x[:600])
    parts = [first] + [d.update(t[i:i + 1], x[i:i + 1]) for i in range(600, 900)]
    score = np.concatenate([p.score for p in parts])
    alert = np.concatenate([p.alert for p in parts])
    np.testing.assert_allclose(score, whole.score, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([p.novel for p in parts]), whole.novel, rtol=1e-9, atol=1e-12)
    assert (alert == whole.alert).all()


def test_anomaly_score_is_news_only() -> None:
    """A deviation's anomaly score (`novel`) counts where it first reaches its height: the points after it that
    score no higher (a lasting shift, a repeat within `refractory` points) are 0 there, a clearly larger one counts
    again. What it is taken from (`news`) is the alert's score, or the longer shape's novelty where higher."""
    x = noise(3000)
    x[2000:2010] += 8
    x[2030] += 200
    b = detect_series(times(3000), x)
    assert (b.news >= b.score).all()
    assert b.novel[2000] == b.news[2000] >= b.score[2000] > 0.5
    assert (b.novel[2004:2010] == 0).all() and (b.score[2004:2010] > 0.5).all()
    assert np.count_nonzero(b.novel[2000:2030]) <= 3  # the 3-point shape of the nearest-neighbour novelty
    assert b.novel[2030] == b.news[2030] > 1.1 * b.news[2000:2010].max()
    assert ((b.novel == 0) | (b.novel == b.news)).all()


@pytest.mark.parametrize("method", ["ensemble", "iforest"])
def test_state_survives_a_restart(method: str) -> None:
    p = DetectorParams(method=method)
    x = noise(2500)
    x[2200:2203] += 20
    t = times(2500)
    ref = SeriesDetector(p, period_points(STEP))
    a = ref.update(t[:1800], x[:1800])
    b = ref.update(t[1800:], x[1800:])
    d = SeriesDetector(p, period_points(STEP))
    d.update(t[:1800], x[:1800])
    restored = SeriesDetector.load(p, unpack(pack(d.dump())))
    c = restored.update(t[1800:], x[1800:])
    assert not a.opened.any()
    assert np.flatnonzero(c.opened).tolist() == np.flatnonzero(b.opened).tolist() == \
        [400 if method == "ensemble" else 402]
    if method == "ensemble":
        np.testing.assert_allclose(c.score, b.score, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(c.novel, b.novel, rtol=1e-9, atol=1e-12)


# the alert state machine (pure) ------------------------------------------------------------------------------
def run(scores: list[float], **kw) -> list[tuple[bool, bool]]:
    p = DetectorParams(**{"warmup": 8, "hold": 1, "refractory": 0, **kw})
    st = AlertState(tick=10)
    return [(st.step(s, p), st.open) for s in scores]


def test_hysteresis_opens_above_open_and_closes_below_close() -> None:
    got = run([0.2, 1.2, 0.8, 0.6, 0.55, 0.4, 0.9, 0.2], open=1.0, close=0.5)
    assert [o for o, _ in got] == [False, True, False, False, False, False, False, False]
    assert [a for _, a in got] == [False, True, True, True, True, False, False, False]


def test_minimum_evidence_needs_consecutive_points() -> None:
    got = run([1.5, 0.2, 1.5, 0.2, 1.5, 1.5, 1.5], evidence=3)
    assert [o for o, _ in got] == [False] * 6 + [True]


def test_hold_and_max_open() -> None:
    got = run([2, 0, 0, 0], hold=3)
    assert [a for _, a in got] == [True, True, False, False]
    got = run([2, 2, 2, 2, 2], max_open=2, refractory=100)
    assert [a for _, a in got] == [True, False, False, False, False]


def test_warm_up_and_refractory_in_the_state_machine() -> None:
    p = DetectorParams(warmup=8, hold=1, refractory=3)
    st = AlertState()
    seq = [st.step(s, p) for s in [9] * 9 + [0, 9, 0, 0, 9]]
    assert seq == [False] * 8 + [True, False, False, False, False, True]


def test_sliding_max_forgets_old_values() -> None:
    m = SlidingMax(3)
    for i, v in enumerate([5, 1, 2, 1, 0]):
        m.push(i, v)
    assert m.max(4) == 2
    assert SlidingMax(3, m.dump()).max(5) == 1


def test_params_are_validated() -> None:
    with pytest.raises(ValidationError):
        DetectorParams(open=0.5, close=0.6)
    with pytest.raises(ValidationError):
        DetectorParams(method="magic")


def test_knn_novelty_alerts_on_a_new_shape_not_on_noise() -> None:
    """The nearest-neighbour novelty stays quiet on noise and alerts on a shape the series never had."""
    x = noise(4000, seed=7)
    assert opened(x, method="knn") == []
    x[3000] += 12
    assert opened(x, method="knn") == [3000]


def test_knn_novelty_point_by_point_equals_one_batch() -> None:
    """Once its history is indexed, the novelty scores the same whether the series comes at once or step by step."""
    x = noise(2000, seed=3)
    x[1700] += 12
    t = times(2000)
    whole = detect_series(t, x, DetectorParams(method="knn"))
    d = SeriesDetector(DetectorParams(method="knn"), period_points(STEP))
    parts = [d.update(t[:1500], x[:1500])] + [d.update(t[i:i + 1], x[i:i + 1]) for i in range(1500, 2000)]
    np.testing.assert_allclose(np.concatenate([p.individual["knn"] for p in parts]), whole.individual["knn"],
                               rtol=1e-9, atol=1e-12)
    assert whole.individual["knn"][1700] > 1 > whole.individual["knn"][1500:1700].max()


def test_block_shapes_keep_a_spike_and_raw_windows_stay_raw() -> None:
    """The longer shapes represent each block by its point farthest from the block's mean (a spike survives the
    coarser scale); with blocks of one point the shapes are the raw windows."""
    from numpy.lib.stride_tricks import sliding_window_view

    from service.detect.methods import shapes

    x = np.array([1.0, 2, 3, 4, 50, 6, 7, 8, -40, 10, 11, 12])
    np.testing.assert_array_equal(shapes(x, 3), sliding_window_view(x, 3))
    s = shapes(x, 3, 4)
    assert s.shape == (1, 3)
    assert s[0].tolist() == [4.0, 50.0, -40.0]


def test_longer_shape_novelty_sees_a_new_rhythm_the_3_point_shape_does_not() -> None:
    """A wave that pauses at its crest for 4 hours: every 3-point slice of the pause looks like a crest the series
    had, its hours-long course it never had; it is new to the 4 x 12-point shape and not to the 3-point one."""
    from service.detect.methods import knn_novelty

    n = 6000
    i = np.arange(n, dtype=float)
    i[5064:] -= 48  # from 5016 (a crest) the wave holds for 48 points, then goes on from its crest
    x = np.sin(2 * np.pi * i / 96) + np.random.default_rng(5).normal(0, 0.02, n)
    x[5016:5064] = 1.0 + np.random.default_rng(6).normal(0, 0.02, 48)
    short, _ = knn_novelty(x, 4500, 4500, 3, 4032, 288, 1008)
    long, _ = knn_novelty(x, 4500, 4500, 4, 4032, 288, 1008, block=12)
    p = DetectorParams()
    assert long.dev[500:620].max() > p.margin > long.dev[:500].max()
    assert short.dev[500:620].max() < 1 < long.dev[500:620].max()


def test_range_excess_counts_values_beyond_every_earlier_value() -> None:
    """A value beyond the range of the series' past by 5% of that range scores 1 (HTM's spatial anomaly); values
    inside it score 0, and the range grows with what it sees."""
    from service.detect.methods import range_excess

    s, lo, hi = range_excess(np.array([0.0, 10, 5, 10.5, 11, -2]), 0.0, 10.0, 0.05)
    assert s[:3].tolist() == [0.0, 0.0, 0.0]
    assert s[3] == pytest.approx(1.0)  # 0.5 beyond [0, 10] is 5% of its width
    assert s[4] == pytest.approx(0.5 / (0.05 * 10.5))
    assert s[5] == pytest.approx(2 / (0.05 * 11))
    assert (lo, hi) == (-2.0, 11.0)


def test_a_new_extreme_is_news_but_no_alert_and_the_range_survives_a_restart() -> None:
    """The ensemble's anomaly_score counts a value beyond the series' whole range; a moderate new extreme that the
    calibrated methods do not alert on stays without an alert. The range is saved with the state; a state saved
    before it was kept takes the range of its history."""
    x = noise(3000, seed=11)
    x[2500] = x[:2500].max() + 0.08 * (x[:2500].max() - x[:2500].min())
    b = detect_series(times(3000), x)
    assert b.novel[2500] > b.score[2500] and not b.alert[2500]
    d = SeriesDetector(DetectorParams())
    d.update(times(2000), x[:2000])
    state = unpack(pack(d.dump()))
    assert SeriesDetector.load(DetectorParams(), state).range == [x[:2000].min(), x[:2000].max()]
    del state["range"]
    assert SeriesDetector.load(DetectorParams(), state).range == [d.buf.min(), d.buf.max()]


def test_knn_phase_moves_the_reindexing_and_keeps_batch_equal_to_steps() -> None:
    """Online, series re-index their novelty at different steps (`knn_phase`); a series scores the same whether it
    comes at once or point by point, whatever its phase, and the phase survives a restart."""
    x = noise(2000, seed=3)
    x[1700] += 12
    t = times(2000)
    p = DetectorParams(method="knn")
    whole = SeriesDetector(p, period_points(STEP))
    whole.knn_phase = 100
    w = whole.update(t, x)
    d = SeriesDetector(p, period_points(STEP))
    d.knn_phase = 100
    parts = [d.update(t[:1500], x[:1500])]
    d = SeriesDetector.load(p, unpack(pack(d.dump())))
    assert d.knn_phase == 100
    parts += [d.update(t[i:i + 1], x[i:i + 1]) for i in range(1500, 2000)]
    for f in ("novel", "score"):
        np.testing.assert_allclose(np.concatenate([getattr(b, f) for b in parts]), getattr(w, f), rtol=1e-9,
                                   atol=1e-12)
    assert d._knn[0] % p.knn_refit == p.knn_refit - 100
    assert w.individual["knn"][1700] > 1 > w.individual["knn"][1500:1700].max()
