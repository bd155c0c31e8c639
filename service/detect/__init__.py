"""Tocsin's own anomaly detectors.

- `params`: the settings of a detector and the `tocsin.detect` configuration section (pydantic, validated at load).
- `methods`: the pure scorers (robust z, EMA bands, seasonal baseline, level shift, Isolation Forest); each turns a
  window of history plus new points into raw deviations with an expected value and a scale.
- `discipline`: per-series calibration to 0..1, hysteresis, minimum evidence, refractory period: when an alert opens
  and closes.
- `core`: `SeriesDetector` (one series, any method, state serialisable) and `EntityDetector` (Isolation Forest over
  several metrics of one entity): the one code path both the CSV mode and the online runner use.
- `csvmode`: `tocsin detect --csv`; `prom`: Prometheus HTTP API client; `store`: Redis keys and state snapshots;
  `runner`: the online loop (backfill, one evaluation per step, detector events into the pipeline).
"""
