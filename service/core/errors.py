"""Errors that carry the path of the offending field, so every message can say where and why."""
from __future__ import annotations


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
