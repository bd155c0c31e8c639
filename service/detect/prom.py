"""A small Prometheus HTTP API client (aiohttp): `query_range`, aligned to the step, parsed into numpy arrays.

Each series of a result is one detector input; its id is the query name plus its sorted labels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp
import numpy as np


class PrometheusError(RuntimeError):
    pass


@dataclass
class Series:
    labels: dict[str, str]
    times: np.ndarray
    values: np.ndarray  # nan where the grid has no sample


def series_id(query_name: str, labels: dict[str, str]) -> str:
    return query_name + "{" + ",".join(f"{k}={labels[k]!r}" for k in sorted(labels)) + "}"


async def query_range(session: aiohttp.ClientSession, base: str, query: str, start: float, end: float,
                      step: float, timeout: float = 30.0) -> list[Series]:
    """Every series of `query` on the grid start, start+step, .., end (missing samples are nan)."""
    url = base.rstrip("/") + "/api/v1/query_range"
    params = {"query": query, "start": repr(start), "end": repr(end), "step": repr(step)}
    try:
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            body = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise PrometheusError(f"{url}: {type(e).__name__}: {e}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        msg = body.get("error") if isinstance(body, dict) else str(body)[:200]
        raise PrometheusError(f"{url}: {msg}")
    data = body.get("data") or {}
    if data.get("resultType") != "matrix":
        raise PrometheusError(f"{url}: expected a matrix, got {data.get('resultType')!r}")
    n = int(round((end - start) / step)) + 1
    grid = start + step * np.arange(n)
    out = []
    for s in data.get("result") or []:
        vals = np.full(n, np.nan)
        for t, v in s.get("values") or []:
            i = int(round((float(t) - start) / step))
            if 0 <= i < n:
                try:
                    f = float(v)
                except ValueError:
                    continue
                vals[i] = f if math.isfinite(f) else np.nan
        out.append(Series({k: str(v) for k, v in (s.get("metric") or {}).items()}, grid.copy(), vals))
    return out
