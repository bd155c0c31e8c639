"""The contract every receiver integration fulfils, and the one place HTTP outcomes are classified.

A receiver's `send(notification)` either returns a `Delivered` (with anything the receiver wants
remembered for idempotent re-delivery, e.g. a Slack message ts) or raises `NotifyError`. Whether to
retry is decided by `NotifyError.retryable`, which comes from `classify()`; the outbox does the
retrying with bounded backoff. Secrets (webhook URLs, tokens, routing keys) never appear in errors:
use `redact()`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.core.errors import ConfigError
from service.core.models import Notification


class NotifyError(Exception):
    """A failed delivery. `reason` is the text for logs (no secrets); `label` a short, bounded reason for the
    `tocsin_notifications_failed_total{reason}` metric (Alertmanager's failure reasons, plus Tocsin's)."""

    def __init__(self, reason: str, retryable: bool, retry_after: float | None = None, status: int | None = None,
                 label: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self._label = label

    @property
    def label(self) -> str:
        if self._label:
            return self._label
        s = self.status
        if s == 429:
            return "rateLimited"
        if s is not None and 400 <= s < 500:
            return "clientError"
        if s is not None and 500 <= s < 600:
            return "serverError"
        if s is None and self.retryable:
            return "networkError"
        return "other"


def classify(status: int) -> tuple[bool, str]:
    """(retryable, reason) for an HTTP status, as Alertmanager's Retrier.Check does."""
    if 200 <= status < 300:
        return False, "ok"
    if status == 429:
        return True, "rate limited"
    if status == 408:
        return True, "timeout"
    if 500 <= status < 600:
        return True, "server error"
    return False, "client error"


def error_for_status(status: int, body: str = "", retry_after: str | None = None) -> NotifyError:
    retryable, reason = classify(status)
    ra: float | None = None
    if retry_after:
        try:
            ra = float(retry_after)
        except ValueError:
            ra = None
    snippet = redact(body[:200]) if body else ""
    return NotifyError(f"{reason}: HTTP {status}" + (f": {snippet}" if snippet else ""), retryable, ra, status)


_SECRETISH = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|hooks\.slack\.com/services/[A-Za-z0-9/]+|(?i:(?:token|key|secret|password)=)[^&\s]+)"
)


def redact(text: str) -> str:
    """Strip anything that looks like a secret from text bound for logs or errors."""
    return _SECRETISH.sub("<redacted>", text)


def redact_url(url: str) -> str:
    """Keep scheme, host and port of a URL; drop path and query, which often carry secrets."""
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]+)", url)
    return (m.group(1) + "/<redacted>") if m else "<redacted>"


@dataclass
class Delivered:
    """A successful delivery, with state to remember per (integration, group/incident) for later edits."""

    state: dict[str, Any] = field(default_factory=dict)


class Receiver(Protocol):
    integration: str  # "webhook/0", "slack/0", ...
    send_resolved: bool

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        """Deliver `n`. `state` is what an earlier delivery for the same group/incident returned."""
        ...

    async def close(self) -> None: ...


def read_secret_file(d: dict[str, Any], key: str, path: str) -> str | None:
    """The stripped content of the file named by `d[key]` (a `*_file` setting), or None if unset."""
    p = d.get(key)
    if p is None:
        return None
    if not isinstance(p, str) or not p:
        raise ConfigError(f"{path}.{key}", "must be a file path")
    try:
        with open(p, encoding="utf-8") as fh:
            value = fh.read().strip()
    except OSError as e:
        raise ConfigError(f"{path}.{key}", f"cannot read file: {e.strerror}") from None
    if not value:
        raise ConfigError(f"{path}.{key}", "file is empty")
    return value
