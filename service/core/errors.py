"""Errors that carry the path of the offending field, so every message can say where and why."""
from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """A configuration problem at `path` (e.g. "route.routes[2].group_wait")."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class ConfigErrors(Exception):
    """Several configuration problems, reported together."""

    def __init__(self, errors: list[ConfigError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class BadField(ValueError):
    """A model-level check that names the field it is about (see pydantic_errors)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def pydantic_errors(e: ValidationError, base: str) -> list[ConfigError]:
    """A pydantic validation error as ConfigErrors, each at its path under `base`."""
    out = []
    for err in e.errors():
        loc = base
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else f".{part}"
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, BadField):
            loc += f".{cause.field}"
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not an Alertmanager or Tocsin setting)"
        elif isinstance(cause, ValueError):
            msg = str(cause)
        else:
            msg = err["msg"]
        out.append(ConfigError(loc, msg))
    return out
