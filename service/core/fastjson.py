"""`json` with a faster `loads`: orjson (C) for what it reads, the standard library for the rest.

For every document the standard library's `dumps` writes, orjson's `loads` gives the same values (dicts with
keys in document order, ints as ints, floats as the same doubles); what orjson refuses (NaN and Infinity, integers
beyond 64 bits, lone surrogates, a keyword argument such as `object_hook`) goes to `json.loads`, which also gives
the errors for what neither reads. `dumps` is the standard library's: its bytes are unchanged.
"""
from __future__ import annotations

import json as _json
from json import JSONDecodeError, dump, dumps, load  # noqa: F401  (the stdlib's, re-exported)
from typing import Any

import orjson


def loads(s: str | bytes | bytearray, **kw: Any) -> Any:
    if not kw:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            pass
    return _json.loads(s, **kw)
