"""Alert intake: reading and validating what the doors receive.

`load_body` reads a request body as JSON: orjson on the fast path; on its failure the stdlib (which also reads
the NaN/Infinity detectors write), with two guards: an item of a top-level array nested deeper than
`MAX_DEPTH` levels, or holding a lone UTF-16 surrogate (valid JSON text, but no Unicode string), becomes an
`Invalid` item that the parsers report with its path while the batch's valid items are stored. A body that is
not JSON at all is rejected whole (`BodyError`), as Alertmanager rejects a batch it cannot decode.

`parse_postable` turns what Prometheus POSTs to /api/v2/alerts into `Alert`s with Alertmanager's defaults and
validation, collecting one error per bad item with its path. Every accepted time is bounded to what RFC 3339
and Alertmanager's API can express (years 0001-9999, service.clock.MAX_TIME). The alert store, which keeps them
in Redis, is service/store/alerts.py.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from service.core.clock import clamp_time, in_range, parse_rfc3339
from service.core.models import LABEL_NAME, Alert



@dataclass
class ItemError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class BodyError(ValueError):
    """The body cannot be read as JSON (the whole request is rejected with 400)."""


@dataclass
class Invalid:
    """An item of a batch that could not be read; `path` is relative to the item ("" or ".labels.x")."""

    path: str
    message: str


MAX_DEPTH = 512  # nesting levels of one item on the stdlib path (Prometheus sends 3)
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def _element_spans(text: str) -> list[tuple[int, int, int]] | None:
    """(start, end, depth) of each element of a top-level JSON array, or None when the body is no array."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        return None
    spans: list[tuple[int, int, int]] = []
    depth, begin, deepest = 0, start + 1, 0
    for m in _TOKENS.finditer(text, start):
        tok = m.group()
        if tok in "[{":
            depth += 1
            deepest = max(deepest, depth - 1)
        elif tok in "]}":
            depth -= 1
            if depth == 0:
                spans.append((begin, m.start(), deepest))
                if text[m.end():].strip():
                    raise BodyError(f"body is not valid JSON: extra data at byte {m.end()}")
                return spans if text[begin:m.start()].strip() or len(spans) > 1 else []
        elif tok == "," and depth == 1:
            spans.append((begin, m.start(), deepest))
            begin, deepest = m.end(), 0
    raise BodyError("body is not valid JSON: unterminated array")


def _max_depth(text: str) -> int:
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif tok in "]}":
            depth -= 1
    return deepest


def surrogate_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding a lone surrogate in a decoded JSON value, else None."""
    stack = [(value, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return p
        elif isinstance(v, dict):
            for k, x in v.items():
                if _SURROGATE.search(k):
                    return p or "body"
                stack.append((x, f"{p}.{k}"))
        elif isinstance(v, list):
            stack.extend((x, f"{p}[{i}]") for i, x in enumerate(v))
    return None


def _stdlib(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise BodyError(f"body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise BodyError(f"body is not valid JSON: {e}") from None


def load_body(raw: bytes) -> Any:
    """The decoded body (see the module docstring); BodyError when it cannot be read at all."""
    try:
        return orjson.loads(raw)  # the fast path: no surrogates, at most 1024 levels
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BodyError(f"body is not UTF-8: {e}") from None
    spans = _element_spans(text)
    if spans is None:
        if _max_depth(text) > MAX_DEPTH:
            raise BodyError(f"body is nested deeper than {MAX_DEPTH} levels")
        body = _stdlib(text)
        bad = surrogate_path(body, "")
        if bad is not None:
            raise BodyError(f"{bad.lstrip('.') or 'body'}: contains a lone UTF-16 surrogate (not Unicode text)")
        return body
    deep = {i for i, (_, _, d) in enumerate(spans) if d > MAX_DEPTH}
    if deep:  # parse the others: the too-deep items become null placeholders, reported below
        text = "[" + ",".join("null" if i in deep else text[a:b] for i, (a, b, _) in enumerate(spans)) + "]"
    body = _stdlib(text)
    if not isinstance(body, list):
        return body
    for i, item in enumerate(body):
        if i in deep:
            body[i] = Invalid("", f"nested deeper than {MAX_DEPTH} levels")
        elif (bad := surrogate_path(item, "")) is not None:
            body[i] = Invalid(bad, "contains a lone UTF-16 surrogate (not Unicode text)")
    return body


def _time(item: dict[str, Any], key: str, path: str, errors: list[ItemError]) -> float | None:
    v = item.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        errors.append(ItemError(f"{path}.{key}", "must be an RFC 3339 timestamp string"))
        return None
    try:
        t = parse_rfc3339(v)
    except ValueError as e:
        errors.append(ItemError(f"{path}.{key}", f"not an RFC 3339 timestamp: {e}"))
        return None
    if t is not None and not in_range(t):
        errors.append(ItemError(f"{path}.{key}", "outside the times RFC 3339 can express (years 0001-9999 UTC)"))
        return None
    return t


def _string_map(item: dict[str, Any], key: str, path: str, errors: list[ItemError], names: bool) -> dict[str, str]:
    v = item.get(key) or {}
    if not isinstance(v, dict):
        errors.append(ItemError(f"{path}.{key}", "must be an object of string values"))
        return {}
    out: dict[str, str] = {}
    for k, val in v.items():
        if not isinstance(val, str):
            errors.append(ItemError(f"{path}.{key}.{k}", "value must be a string"))
            continue
        if names and not LABEL_NAME.match(k):
            errors.append(ItemError(f"{path}.{key}.{k}", "invalid label name"))
            continue
        if names and val == "":
            continue  # Alertmanager drops labels with empty values
        out[k] = val
    return out


def parse_postable(
    items: Any, now: float, resolve_timeout: float, source: str = "prometheus", base: str = ""
) -> tuple[list[Alert], list[ItemError]]:
    """Alertmanager's postAlertsHandler: defaults, then validation; valid items are kept even if others fail."""
    if not isinstance(items, list):
        return [], [ItemError(base or "body", "must be a JSON array of alerts")]
    alerts: list[Alert] = []
    errors: list[ItemError] = []
    for i, item in enumerate(items):
        path = f"{base}[{i}]"
        if isinstance(item, Invalid):
            errors.append(ItemError(path + item.path, item.message))
            continue
        if not isinstance(item, dict):
            errors.append(ItemError(path, "must be an object"))
            continue
        errs: list[ItemError] = []
        labels = _string_map(item, "labels", path, errs, names=True)
        annotations = _string_map(item, "annotations", path, errs, names=False)
        starts = _time(item, "startsAt", path, errs)
        ends = _time(item, "endsAt", path, errs)
        gen = item.get("generatorURL") or ""
        if not isinstance(gen, str):
            errs.append(ItemError(f"{path}.generatorURL", "must be a string"))
        if errs:
            errors.extend(errs)
            continue
        if starts is None:
            starts = ends if ends is not None else now
        timeout = False
        if ends is None:
            timeout = True
            ends = clamp_time(now + resolve_timeout)
        if not labels:
            errors.append(ItemError(f"{path}.labels", "at least one label pair required"))
            continue
        if ends < starts:
            errors.append(ItemError(f"{path}.endsAt", "start time must be before end time"))
            continue
        alerts.append(Alert(labels=labels, annotations=annotations, starts_at=starts, ends_at=ends,
                            generator_url=gen, updated_at=now, timeout=timeout, source=source))
    return alerts, errors
