"""Incidents: the pipeline stage that turns alerts into incidents.

- `correlation`: which incident an alert joins (pure decision, its configuration and evidence);
- `scoring`: severity and confidence with their factors (pure);
- `rootcause`: ranked root-cause candidates with their evidence (pure);
- `cooccurrence`: what was learned from history (which alert keys and which entities fail together), in Redis;
- `store`: the Redis-backed incident store (atomic assignment, lifecycle, human actions, snapshots).
"""
from service.incidents.store import IncidentConflict, IncidentNotFound, IncidentStore

__all__ = ["IncidentConflict", "IncidentNotFound", "IncidentStore"]
