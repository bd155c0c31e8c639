"""Local receivers: `console` writes each notification as one JSON line to a file (or stdout), and
`Recording` keeps them in memory (replay, tests). Both print the same record as `tocsin replay`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from service.core.clock import to_rfc3339
from service.core.errors import ConfigError
from service.core.models import Notification

from routing.receivers.base import Delivered


def notification_record(n: Notification) -> dict[str, Any]:
    """The one-line JSON form of a notification (tocsin replay's output format)."""
    return {
        "receiver": n.receiver,
        "integration": n.integration,
        "group_key": n.group_key,
        "status": n.status,
        "timestamp": to_rfc3339(n.timestamp),
        "reason": n.reason,
        "group_labels": n.group_labels,
        "alerts": [
            {"labels": a.labels, "annotations": a.annotations, "fingerprint": a.fingerprint,
             "status": "resolved" if a.resolved_at(n.timestamp) else "firing",
             "startsAt": to_rfc3339(a.starts_at),
             "endsAt": to_rfc3339(a.ends_at if a.resolved_at(n.timestamp) else None)}
            for a in n.alerts
        ],
        "incident": n.incident,
    }


class ConsoleReceiver:
    def __init__(self, integration: str, path: str | None = None, send_resolved: bool = True):
        self.integration = integration
        self.path = path
        self.send_resolved = send_resolved

    @classmethod
    def from_config(cls, c: dict[str, Any], integration: str) -> "ConsoleReceiver":
        path = c.get("_path", integration)
        for k in c:
            if k not in {"path", "send_resolved", "_path", "kind"}:
                raise ConfigError(f"{path}.{k}", "unknown key")
        return cls(integration, c.get("path"), bool(c.get("send_resolved", True)))

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        line = json.dumps(notification_record(n), sort_keys=True)
        if self.path in (None, "-", "stdout"):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            p = Path(self.path)
            p.parent.mkdir(parents=True, exist_ok=True)
            with p.open("a") as f:
                f.write(line + "\n")
        return Delivered()

    async def close(self) -> None:
        return None


class Recording:
    """Keeps what would have been sent, in order."""

    def __init__(self, integration: str, sink: list[Notification], send_resolved: bool = True):
        self.integration = integration
        self.sink = sink
        self.send_resolved = send_resolved

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        self.sink.append(n)
        return Delivered()

    async def close(self) -> None:
        return None
