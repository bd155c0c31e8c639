"""Our NAB standard-profile scorer (bench/detect/nab_score.py) against the published rules, on tiny hand-made
files: the first row of a window is worth A_TP, a miss A_FN, a false positive far from any window A_FP, and the
corpus score is normalised so that detecting nothing is 0 and detecting every window at its first row is 100."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.detect.nab_score import A_FN, A_FP, A_TP, FileData, nab_score, sigma

N = 1000  # probation: the first 150 rows


def file(detect_at: list[int], windows: list[tuple[int, int]], n: int = N) -> FileData:
    s = np.zeros(n)
    s[detect_at] = 1.0
    return FileData(s, windows)


def test_standard_profile_weights() -> None:
    """The standard profile is A_TP = 1, A_FP = -0.11, A_FN = -1, and sigma(-1..0) runs from about 1 to 0."""
    assert (A_TP, A_FP, A_FN) == (1.0, -0.11, -1.0)
    assert math.isclose(float(sigma(0.0)), 0.0, abs_tol=1e-12)
    assert float(sigma(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(sigma(3.5)) == -1.0


def test_null_is_zero_and_perfect_is_hundred() -> None:
    """Nothing detected scores 0; every window at its first row and nothing else scores 100."""
    wins = [(300, 339), (700, 739)]
    assert nab_score([file([], wins)])[0] == pytest.approx(0.0)
    assert nab_score([file([300, 700], wins)])[0] == pytest.approx(100.0)


def test_first_detection_in_a_window_counts_alone() -> None:
    """A detection at the window's first row is worth A_TP; later detections in the same window add nothing; one
    in the middle is worth sigma(-0.5)/sigma(-1)."""
    w = [(300, 339)]
    assert file([300], w).raw(0.5) == pytest.approx(A_TP)
    assert file([300, 310, 320], w).raw(0.5) == pytest.approx(A_TP)
    mid = file([320], w).raw(0.5)
    assert mid == pytest.approx(float(sigma(-20 / 40) / sigma(-1.0)))
    assert file([], w).raw(0.5) == A_FN


def test_false_positives_cost_by_distance_after_a_window() -> None:
    """Before any window a false positive costs |A_FP|; just after a window almost nothing; far after it |A_FP|."""
    w = [(300, 339)]
    base = file([300], w).raw(0.5)
    assert file([300, 200], w).raw(0.5) - base == pytest.approx(A_FP)
    assert file([300, 340], w).raw(0.5) - base == pytest.approx(-A_FP * float(sigma(1 / 39)))
    assert abs(file([300, 340], w).raw(0.5) - base) < 0.01
    assert file([300, 900], w).raw(0.5) - base == pytest.approx(A_FP)


def test_probationary_rows_are_not_scored() -> None:
    """Detections in the first 15% of a file (at most 750 rows) are ignored."""
    w = [(300, 339)]
    assert file([100, 300], w).raw(0.5) == pytest.approx(A_TP)
    assert FileData(np.zeros(10000), []).probation == 750


def test_a_file_without_windows_counts_its_false_positives() -> None:
    """Detections in a file without labelled anomalies lower the corpus score."""
    labelled = file([300], [(300, 339)])
    assert nab_score([labelled])[0] == pytest.approx(100.0)
    noisy = file([200, 400, 600], [])
    score, _ = nab_score([labelled, noisy], np.array([0.5]))
    assert score == pytest.approx(100.0 * (A_TP + 3 * A_FP - A_FN) / (A_TP - A_FN))


def test_exact_sweep_matches_every_threshold_tried() -> None:
    """The event sweep finds the same best threshold and score as trying every distinct score one by one."""
    rng = np.random.default_rng(3)
    files = []
    for k in range(4):
        s = np.round(rng.random(600) ** 3, 3)
        s[rng.integers(100, 600, 5)] += 0.5
        files.append(FileData(s, [(200 + 40 * k, 259 + 40 * k), (450, 499)] if k < 3 else []))
    fast, t_fast = nab_score(files)
    grid = np.unique(np.concatenate([f.scores for f in files] + [[np.inf]]))
    slow, t_slow = nab_score(files, grid)
    assert fast == pytest.approx(slow)
    assert t_fast == pytest.approx(t_slow)
