"""Structured JSON logs (structlog). Secrets never reach a log line: receivers redact their errors, and the
processor below masks values of keys that name secrets."""
from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

SECRET_KEYS = ("token", "secret", "password", "routing_key", "api_key", "authorization", "api_url", "url_file")


def _mask_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for k in list(event):
        if any(s in k.lower() for s in SECRET_KEYS):
            event[k] = "<redacted>"
    return event


def configure(level: str = "info", stream: Any = None) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
