"""Incidents: the pipeline stage that turns alerts into incidents.

- `correlation`: which incident an alert joins (pure decision, its configuration and evidence);
- `scoring`: severity and confidence with their factors (pure);
- `rootcause`: ranked root-cause candidates with their evidence (pure);
- `cooccurrence`: what was learned from history (which alert keys and which entities fail together), in Redis;
- `store`: the Redis-backed incident store (atomic assignment, lifecycle, human actions, snapshots).
"""
from typing import Any

__all__ = ["IncidentConflict", "IncidentNotFound", "IncidentStore"]


def __getattr__(name: str) -> Any:
    """The store (and Redis, structlog, numpy behind it) loads when first asked for, so that importing the pure
    parts (e.g. the correlation config, which `tocsin check-config` validates) stays cheap."""
    if name in __all__:
        from service.incidents import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
