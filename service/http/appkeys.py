"""Typed aiohttp application keys."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web

ENGINE: web.AppKey[Any] = web.AppKey("engine", object)
SETTINGS: web.AppKey[dict[str, Any]] = web.AppKey("settings", dict)
TOKENS: web.AppKey[list[tuple[bytes, set[str]]]] = web.AppKey("tokens", list)
RELOAD: web.AppKey[Callable[[], Awaitable[tuple[bool, str]]]] = web.AppKey("reload", object)
