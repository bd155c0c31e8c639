"""NAB's standard-profile score, written from the published rules (Lavin & Ahmad 2015, "Evaluating Real-time
Anomaly Detection Algorithms: the Numenta Anomaly Benchmark"), not from NAB's code.

Rules as published:
- A row is a detection when its anomaly_score >= the threshold. Rows in the probationary period (the first 15% of
  a file, at most 750 rows) are not scored.
- Inside a labelled window only the first detection counts, weighted by the scaled sigmoid
  sigma(y) = 2 / (1 + exp(5 y)) - 1 of its relative position y in the window (-1 at the window's start, 0 at its
  end): A_TP * sigma(y). A window without a detection counts -A_FN.
- Every detection outside the windows counts A_FP * sigma(y), y being its distance past the end of the previous
  window relative to that window's length (so a false positive just after a window costs less); before any
  window it counts -A_FP.
- Standard profile: A_TP = 1, A_FP = 0.11, A_FN = 1. The threshold is the one that maximises the corpus' total.
- Normalised score = 100 * (raw - null) / (perfect - null): null detects nothing (-A_FN per window), perfect
  detects every window at its first row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

A_TP, A_FP, A_FN = 1.0, 0.11, 1.0


def sigma(y: np.ndarray | float) -> np.ndarray | float:
    return 2.0 / (1.0 + np.exp(np.minimum(5.0 * np.asarray(y, float), 700.0))) - 1.0


@dataclass
class FileData:
    scores: np.ndarray          # anomaly_score per row
    windows: list[tuple[int, int]]  # inclusive row ranges

    def __post_init__(self) -> None:
        n = len(self.scores)
        self.probation = min(int(math.floor(0.15 * n)), 750)
        # per row: window index (or -1), relative position (in window) / weight (outside)
        self.win = np.full(n, -1)
        self.fp_weight = np.full(n, -A_FP)
        prev = None
        order = sorted(self.windows)
        wi = 0
        for i in range(n):
            while wi < len(order) and i > order[wi][1]:
                prev = order[wi]
                wi += 1
            if wi < len(order) and order[wi][0] <= i <= order[wi][1]:
                self.win[i] = wi
            elif prev is not None:
                length = prev[1] - prev[0] + 1
                self.fp_weight[i] = A_FP * float(sigma((i - prev[1]) / length))
        self.order = order
        self.tp_weight = np.zeros(n)
        for wi, (s, e) in enumerate(order):
            length = e - s + 1
            idx = np.arange(s, e + 1)
            self.tp_weight[s:e + 1] = A_TP * sigma(-(e - idx + 1) / length)

    def raw(self, thr: float) -> float:
        det = self.scores >= thr
        det[:self.probation] = False
        total = float(self.fp_weight[det & (self.win < 0)].sum())
        for wi in range(len(self.order)):
            hits = np.flatnonzero(det & (self.win == wi))
            total += float(self.tp_weight[hits[0]]) if len(hits) else -A_FN
        return total

    def null(self) -> float:
        return -A_FN * len(self.order)

    def perfect(self) -> float:
        return float(sum(self.tp_weight[s] for s, _ in self.order))


def nab_score(files: list[FileData], thresholds: np.ndarray | None = None) -> tuple[float, float]:
    """(normalised score, best threshold) over the corpus."""
    if thresholds is None:
        allv = np.concatenate([f.scores for f in files])
        thresholds = np.unique(np.concatenate([np.linspace(0.0, 1.0, 201), np.quantile(allv, np.linspace(0.5, 1, 200)),
                                               [np.inf]]))  # inf: no detection at all (the null detector)
    null = sum(f.null() for f in files)
    perfect = sum(f.perfect() for f in files)
    best, best_t = -math.inf, 1.0
    for t in thresholds:
        if t <= 0:
            continue
        r = sum(f.raw(float(t)) for f in files)
        if r > best:
            best, best_t = r, float(t)
    return 100.0 * (best - null) / (perfect - null), best_t
