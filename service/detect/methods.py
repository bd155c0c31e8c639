"""The pure scorers. Each takes the history of a series (values before the new points) and the new points, and
returns per new point a deviation `dev` (observed - expected), the `expected` value and a `scale` (what one
robust standard deviation is there), so `|dev| / scale` is a z-like raw deviation. Only the past is used: the
same numbers come out whether a series is scored at once (CSV) or one step at a time (online).

numpy does the windows (sliding_window_view, median/MAD over a whole batch at once); scikit-learn does the
Isolation Forest. The recursive EMA is a short loop: it has to clip outliers before they enter its state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_TO_SD = 1.4826
EPS = 1e-9


@dataclass
class Scored:
    dev: np.ndarray
    expected: np.ndarray
    scale: np.ndarray
    floor: np.ndarray | None = None

    @property
    def z(self) -> np.ndarray:
        return np.abs(self.dev) / self.scale


def _windows(full: np.ndarray, start: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, robust sd and range of full[max(0, j-w):j] for every j in start..len(full)-1 (j >= 1)."""
    n = len(full)
    k = n - start
    med = np.empty(k)
    sd = np.empty(k)
    rng = np.empty(k)
    first_full = max(start, w)
    for j in range(start, min(first_full, n)):  # the short windows at the very start of a series
        win = full[max(0, j - w):j] if j > 0 else full[:1]
        m = np.median(win)
        med[j - start] = m
        sd[j - start] = MAD_TO_SD * np.median(np.abs(win - m))
        rng[j - start] = win.max() - win.min()
    if first_full < n:
        win = sliding_window_view(full[first_full - w:n - 1], w)
        m = np.median(win, axis=1)
        med[first_full - start:] = m
        sd[first_full - start:] = MAD_TO_SD * np.median(np.abs(win - m[:, None]), axis=1)
        rng[first_full - start:] = win.max(axis=1) - win.min(axis=1)
    return med, sd, rng


def scale_floor(med: np.ndarray, rng: np.ndarray) -> np.ndarray:
    """The smallest scale a deviation is measured in: flat and quantised series have a MAD of 0."""
    return np.maximum(np.maximum(0.02 * rng, 1e-4 * np.abs(med)), EPS)


def robust_z(full: np.ndarray, start: int, w: int) -> Scored:
    """Median and MAD of the previous `w` points."""
    med, sd, rng = _windows(full, start, w)
    floor = scale_floor(med, rng)
    return Scored(full[start:] - med, med, np.maximum(sd, floor), floor)


def level_shift(full: np.ndarray, start: int, k: int, z: Scored, past_med: np.ndarray,
                past_scale: np.ndarray) -> Scored:
    """Mean of the last `k` points against the baseline before them, in units of its sd / sqrt(k): a sustained
    shift of d sd scores d*sqrt(k), a single spike only d/sqrt(k). `past_med`/`past_scale` are the robust-z
    baselines of the k-1 points before `start` (nan where unknown)."""
    n = len(full)
    med = np.concatenate([past_med, z.expected])
    scale = np.concatenate([past_scale, z.scale])
    csum = np.concatenate([[0.0], np.cumsum(full[max(0, start - k + 1):n])])
    off = max(0, start - k + 1)
    dev = np.full(n - start, np.nan)
    exp = np.full(n - start, np.nan)
    sc = np.full(n - start, np.nan)
    for_idx = np.arange(start, n)
    lo = for_idx - k + 1
    ok = lo >= off
    j = for_idx[ok]
    means = (csum[j + 1 - off] - csum[lo[ok] - off]) / k
    base_i = (lo[ok] - (start - len(past_med)))  # index into med/scale of the first point of the short run
    valid = base_i >= 0
    bm = np.full(len(j), np.nan)
    bs = np.full(len(j), np.nan)
    bm[valid] = med[base_i[valid]]
    bs[valid] = scale[base_i[valid]]
    dev[ok] = means - bm
    exp[ok] = bm
    sc[ok] = bs / np.sqrt(k)
    return Scored(dev, exp, sc)


def seasonal(full: np.ndarray, start: int, period: int, days: int, past_res: np.ndarray, w: int,
                  floor: np.ndarray) -> Scored:
    """Median of the same time of day over the previous `days` days (one point either side, for jitter); the scale
    is the robust sd of the previous `w` seasonal residuals. nan/inf where less than one day of history exists."""
    n = len(full)
    idx = np.arange(start, n)
    lags = np.stack([idx - d * period + o for d in range(1, days + 1) for o in (-1, 0, 1)], axis=1)
    vals = np.where(lags >= 0, full[np.clip(lags, 0, n - 1)], np.nan)
    have = lags[:, 1] >= 0
    base = np.full(len(idx), np.nan)
    complete = lags.min(axis=1) >= 0
    if complete.any():
        base[complete] = np.median(vals[complete], axis=1)
    part = have & ~complete
    if part.any():
        base[part] = np.nanmedian(vals[part], axis=1)
    res = full[start:] - base
    absr = np.abs(np.concatenate([past_res, res]))
    p = len(past_res)
    scale = np.full(len(idx), np.inf)
    # positions i whose window absr[p+i-w : p+i] is all known
    known = ~np.isnan(absr)
    cnt = np.concatenate([[0], np.cumsum(known)])
    for i in range(len(idx)):
        a, b = max(0, p + i - w), p + i
        c = cnt[b] - cnt[a]
        if c == w:
            break
        if c >= 16:
            win = absr[a:b]
            scale[i] = MAD_TO_SD * np.median(win[~np.isnan(win)])
    else:
        i = len(idx)
    if i < len(idx):
        win = sliding_window_view(absr[p + i - w:p + len(idx) - 1], w)
        scale[i:] = MAD_TO_SD * np.median(win, axis=1)
    scale = np.maximum(scale, floor)
    return Scored(res, base, scale)


def ema_bands(x: np.ndarray, state: list[float] | None, span: int, floor: np.ndarray,
              clip: float = 4.0) -> tuple[Scored, list[float]]:
    """Exponential moving mean and mean absolute deviation; a point beyond `clip` deviations enters the state
    clipped, so one outlier does not drag the band (a lasting shift still moves it, at the clipped pace)."""
    a = 2.0 / (span + 1.0)
    m, d, cnt = (state if state else [float("nan"), 0.0, 0.0])
    dev = np.empty(len(x))
    exp = np.empty(len(x))
    sc = np.empty(len(x))
    for i, v in enumerate(x.tolist()):
        if m != m:  # first point
            m, d = v, 0.0
        s = max(1.2533 * d, float(floor[i]))  # mean abs deviation -> sd for a normal
        exp[i] = m
        sc[i] = s if cnt >= 8 else np.inf
        e = v - m
        dev[i] = e
        c = max(-clip * s, min(clip * s, e))
        m += a * c
        d += a * (abs(c) - d)
        cnt += 1
    return Scored(dev, exp, sc), [m, d, cnt]


def iforest_scores(train: np.ndarray, test: np.ndarray, trees: int, seed: int = 0) -> np.ndarray:
    """Isolation Forest anomaly scores of `test` (rows = points, columns = features), trained on `train`, as robust
    z of the training scores (0 = typical, larger = more isolated)."""
    from sklearn.ensemble import IsolationForest

    f = IsolationForest(n_estimators=trees, max_samples=min(256, len(train)), random_state=seed)
    f.fit(train)
    tr = -f.score_samples(train)
    te = -f.score_samples(test)
    med = np.median(tr)
    sd = max(MAD_TO_SD * np.median(np.abs(tr - med)), 1e-6)
    return (te - med) / sd


def range_excess(x: np.ndarray, lo: float, hi: float, tol: float) -> tuple[np.ndarray, float, float]:
    """How far each new point lies beyond every value the series had before it (the range [lo, hi] of its past),
    in units of `tol` times that range: 1 = `tol` of the range beyond it (HTM's NAB detector calls this a spatial
    anomaly, at 5%); 0 inside the range. Returns the excesses and the range after the new points."""
    prev_hi = np.maximum.accumulate(np.concatenate([[hi], x]))
    prev_lo = np.minimum.accumulate(np.concatenate([[lo], x]))
    a, b = prev_lo[:-1], prev_hi[:-1]
    with np.errstate(invalid="ignore", over="ignore"):
        width = np.maximum(b - a, EPS * np.maximum(np.abs(a), np.abs(b)))
        out = np.maximum(x - b, a - x) / (tol * np.maximum(width, EPS))
    out = np.nan_to_num(np.maximum(out, 0.0), nan=0.0, posinf=0.0)
    return out, float(prev_lo[-1]), float(prev_hi[-1])


def shapes(seg: np.ndarray, m: int, block: int = 1) -> np.ndarray:
    """Every window of `m` blocks of `block` points in `seg`, one row per start position. A block is represented
    by its point farthest from the block's mean (its maximum or its minimum), so a one-point spike survives the
    coarser scale; with `block` 1 the rows are the raw windows of `m` points."""
    if block == 1:
        return sliding_window_view(seg, m)
    b = sliding_window_view(seg, block)
    mu, hi, lo = b.mean(axis=1), b.max(axis=1), b.min(axis=1)
    ext = np.where(hi - mu >= mu - lo, hi, lo)
    starts = len(seg) - m * block + 1
    return np.stack([ext[j * block:j * block + starts] for j in range(m)], axis=1)


def knn_novelty(full: np.ndarray, start: int, g0: int, m: int, history: int, refit: int, least: int,
                cache: list | None = None, block: int = 1, phase: int = 0) -> tuple[Scored, list | None]:
    """How new the shape of the last `m` blocks of `block` points is (see `shapes`): the distance from the window
    ending at each new point to its nearest neighbour among the windows of the previous `history` points, in units
    of the largest such distance inside that history (1 = as far out as the most unusual window the series had; a
    level, a spike or a rhythm it never had scores above it). The history is indexed every `refit` points (a k-d
    tree, scipy's cKDTree) and excludes the windows overlapping the new ones, so the numbers do not depend on how
    the series is cut into batches; it needs `least` windows of history. `full[start]` is the series' point number
    `g0`; `cache` is the last index ([refit point, tree, centre, scale, line]), rebuilt from `full` when missing.
    The re-indexing happens at the points `phase` before each multiple of `refit` (many series online need not
    all re-index at the same step)."""
    from scipy.spatial import cKDTree

    n = len(full)
    k = n - start
    span = m * block  # points one window covers
    dev = np.zeros(k)
    off = g0 - start  # global number of full[0]
    first = off + span - 1  # the first point that ends a whole window
    g = np.arange(g0, g0 + k)
    r = ((g + phase) // refit) * refit - phase
    for ri in np.unique(r).tolist():
        sel = np.flatnonzero((r == ri) & (g >= first))
        hi = ri - 2 * span + 1 - off  # windows starting before hi end before the refit point's own window
        lo = max(0, hi - history)
        if hi - lo < least or not len(sel):
            continue
        if cache is None or cache[0] != ri:
            tr = shapes(full[lo:hi + span - 1], m, block)
            c = float(np.median(tr))
            s = max(MAD_TO_SD * float(np.median(np.abs(tr - c))), 0.02 * float(tr.max() - tr.min()), EPS)
            tree = cKDTree((tr - c) / s)
            d2, _ = tree.query((tr - c) / s, k=2)
            cache = [ri, tree, c, s, max(float(d2[:, 1].max()), EPS)]
        _, tree, c, s, line = cache
        ends = start + sel  # positions in full of the new points (consecutive)
        q = shapes(full[ends[0] - span + 1:ends[-1] + 1], m, block)
        d, _ = tree.query((q - c) / s, k=1)
        dev[sel] = d / line
    return Scored(dev, np.full(k, np.nan), np.ones(k)), cache
