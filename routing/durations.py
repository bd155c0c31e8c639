"""Prometheus duration strings, as `model.ParseDuration` in prometheus/common reads them.

A duration is a sequence of `<int><unit>` parts in the fixed order y, w, d, h, m, s, ms, each unit at
most once ("1h30m", "1d", "500ms"). A bare "0" is allowed. Years are 365 days and weeks 7 days.
Fractions ("1.5h"), signs, spaces and out-of-order units are rejected, as Alertmanager rejects them.
"""
from __future__ import annotations

import re

from service.core.errors import ConfigError

_DURATION_RE = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
# Milliseconds per unit, in the order of the groups above.
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
# Go's time.Duration is int64 nanoseconds: about 292 years.
_MAX_MS = (2**63 - 1) // 1_000_000


def parse_duration(value: str | int | float, path: str, *, numbers_as_seconds: bool = False) -> float:
    """Seconds in the Prometheus duration `value`; ConfigError(path, ...) if it is not one.

    A YAML number is not a duration for Alertmanager (only `0` is): `group_wait: 30` is an error,
    unless `numbers_as_seconds` is set (for Tocsin's own keys), in which case a non-negative number
    is taken as seconds.
    """
    if isinstance(value, bool):
        raise ConfigError(path, f"not a valid duration: {value!r} (write e.g. '30s')")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        if numbers_as_seconds and value > 0 and value == value and value != float("inf"):
            return float(value)
        raise ConfigError(path, f"not a valid duration: {value!r} has no unit (write e.g. '{value}s')")
    if not isinstance(value, str):
        raise ConfigError(path, f"not a valid duration: expected a string like '5m', got {type(value).__name__}")
    if value == "0":
        return 0.0
    if value == "":
        raise ConfigError(path, "empty duration string")
    m = _DURATION_RE.fullmatch(value)
    if m is None:
        raise ConfigError(path, f"not a valid duration string: {value!r} (e.g. '30s', '5m', '1h30m', '1d')")
    total_ms = 0
    for group, mult in zip(m.groups(), _UNIT_MS):
        if group is None:
            continue
        n = int(group)
        if n > _MAX_MS // mult:
            raise ConfigError(path, f"duration out of range: {value!r}")
        total_ms += n * mult
        if total_ms > _MAX_MS:
            raise ConfigError(path, f"duration out of range: {value!r}")
    return total_ms / 1000.0


def format_duration(seconds: float) -> str:
    """The Prometheus spelling of `seconds` (model.Duration.String): "1h30m", "0s", "1d", "500ms"."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    out = []
    for unit, mult in zip(("y", "w", "d", "h", "m", "s", "ms"), _UNIT_MS):
        n, ms = divmod(ms, mult)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
