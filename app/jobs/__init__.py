"""The queue seam: background work is a named job with plain arguments, never an anonymous callable.

Services say what should happen (`enqueue("generation.execute", generation_id=…)`); the registry says
which function does it and on which queue; Huey carries it to a worker (`flask worker`). The database
stays the source of truth: a job only says "look at this row now", so its arguments are ids and it
re-reads what it needs.
"""
from __future__ import annotations

from app.jobs.queue import enqueue, enqueue_in, init_app, pending_counts, queues
from app.jobs.registry import JOBS, SCHEDULE, resolve

__all__ = ["JOBS", "SCHEDULE", "enqueue", "enqueue_in", "init_app", "pending_counts", "queues", "resolve"]
