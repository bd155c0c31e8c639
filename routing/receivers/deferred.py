"""Read a receiver's `*_file` secrets when sending, for receivers whose builders read them (Slack, PagerDuty).

Alertmanager reads `api_url_file`, `routing_key_file` ... at every send: a file that does not exist on the
machine that checks the configuration is not a configuration error, and a rotated file takes effect without a
reload. `with_secret_files(d, placeholders, build, ...)` validates the rest of the config at load by building
once with placeholder secrets, then returns a receiver that reads the files on each send, rebuilds the real
receiver when their contents change, and fails that delivery (naming the path) when a file cannot be read.
"""
from __future__ import annotations

from typing import Any, Callable

from routing.receivers.base import NotifyError

# The file settings of each kind, with a placeholder value that passes the builder's format checks.
SECRET_FILES: dict[str, dict[str, tuple[str, str]]] = {
    "slack": {"api_url_file": ("api_url", "https://placeholder.invalid/"),
              "bot_token_file": ("bot_token", "xoxb-placeholder"),
              "signing_secret_file": ("signing_secret", "placeholder")},
    "pagerduty": {"routing_key_file": ("routing_key", "placeholder"),
                  "service_key_file": ("service_key", "placeholder")},
}


def _read(path: str, key: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.read().strip()
    except OSError as e:
        raise NotifyError(f"cannot read {key} {path}: {e.strerror or e}", False, label="secretFileUnreadable") from None
    if not value:
        raise NotifyError(f"{key} {path} is empty", False, label="secretFileUnreadable")
    return value


class SecretFilesReceiver:
    """Delegates to the receiver built from the current contents of its secret files (see module docstring)."""

    def __init__(self, d: dict[str, Any], files: dict[str, tuple[str, str]], build: Callable[[dict[str, Any]], Any],
                 template: Any):
        self._d = d
        self._files = {k: v for k, v in files.items() if d.get(k)}
        self._build = build
        self._inner: Any = None
        self._sig: tuple[str, ...] | None = None
        self.integration = template.integration
        self.send_resolved = template.send_resolved
        self._template = template
        self._retired: list[Any] = []  # receivers built from older file contents, closed on the next send

    def _current(self) -> Any:
        values = {k: _read(str(self._d[k]), k) for k in self._files}
        sig = tuple(values[k] for k in sorted(values))
        if self._inner is None or sig != self._sig:
            d = {k: v for k, v in self._d.items() if k not in self._files}
            for k, value in values.items():
                d[self._files[k][0]] = value
            old, self._inner, self._sig = self._inner, self._build(d), sig
            if old is not None:
                self._retired.append(old)
        return self._inner

    async def send(self, n: Any, state: dict[str, Any] | None = None) -> Any:
        from service.core.errors import ConfigError

        try:
            inner = self._current()
        except ConfigError as e:  # the file's content is not a valid value (e.g. not a URL)
            raise NotifyError(f"{e.path}: {e.message}", False) from None
        while self._retired:
            await self._retired.pop().close()
        return await inner.send(n, state)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            inner = self._current()  # e.g. a Slack button's chat.update needs the real token
        except Exception:
            inner = self._inner if self._inner is not None else self._template
        return getattr(inner, name)

    async def close(self) -> None:
        for r in [self._inner, self._template, *self._retired]:
            if r is not None:
                await r.close()
        self._retired.clear()


def with_secret_files(kind: str, d: dict[str, Any], build: Callable[[dict[str, Any]], Any]) -> Any:
    """`build(d)`, unless `d` names secret files: then a SecretFilesReceiver (validated with placeholders)."""
    files = {k: v for k, v in SECRET_FILES.get(kind, {}).items() if d.get(k)}
    if not files:
        return build(d)
    placeholder = {k: v for k, v in d.items() if k not in files}
    for k, (key, value) in files.items():
        if d.get(key) is None:
            placeholder[key] = value
        else:
            placeholder[k] = d[k]  # both set: let the builder report the conflict
    template = build(placeholder)
    return SecretFilesReceiver(d, files, build, template)
