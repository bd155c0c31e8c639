"""Aggregation groups, the scheduler, the flush, the outbox, and the engine that wires them."""
