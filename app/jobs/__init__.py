"""The queue seam: background work is a named job with plain arguments, never an anonymous callable.

Services say what should happen (`enqueue("generation.execute", generation_id=…)`); the registry says
which function does it; the runner decides where it runs. The database stays the source of truth: a
job only says "look at this row now", so its arguments are ids, and it re-reads what it needs.
"""
from __future__ import annotations

from app.jobs.registry import JOBS, resolve
from app.jobs.runner import enqueue, init_app

__all__ = ["JOBS", "enqueue", "init_app", "resolve"]
