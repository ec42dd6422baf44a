"""The job queue: Huey. Its embedded default keeps the queue in a SQLite file beside the database
(instance/jobs.db), so `make run` needs no server; with REDIS_URL it uses Redis, and any number of
worker processes on any hosts share it. JOBS_QUEUE=immediate runs each job at once, in the process
that enqueues it (the test suite does, unless a test starts a real worker).

A job is one generic Huey task per queue, `waule.run(name, arguments)`, which runs the registered
function in an app context of its own (its own database session) in whichever process consumes it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab

from app.extensions import db
from app.jobs.registry import JOBS, QUEUES, SCHEDULE, resolve

log = logging.getLogger(__name__)


@dataclass
class Queues:
    hueys: dict[str, Huey]
    tasks: dict[str, object]  # queue -> the Huey task that runs a named job there


def _huey(config: dict, queue: str) -> Huey:
    name = f"{config['JOBS_PREFIX']}-{queue}"
    kind = config["JOBS_QUEUE"]
    if kind == "immediate":
        return MemoryHuey(name, immediate=True, results=False)
    if kind == "redis":
        return RedisHuey(name, url=config["REDIS_URL"], results=False)
    # WAL and a busy timeout: the web processes enqueue while the worker dequeues, from one file.
    return SqliteHuey(name, filename=config["JOBS_SQLITE_PATH"], results=False, journal_mode="wal", timeout=30)


def run_job(app: Flask, name: str, arguments: dict) -> None:
    """Run one named job in its own app context; a failure is logged, never raised into the queue
    (jobs are idempotent and the sweeps finish what a failed one left)."""
    with app.app_context():
        try:
            resolve(name)(**arguments)
        except Exception:
            log.exception("job %s failed", name)
        finally:
            db.session.remove()


def init_app(app: Flask) -> None:
    hueys = {queue: _huey(app.config, queue) for queue in QUEUES}
    tasks = {}
    for queue, huey in hueys.items():
        tasks[queue] = huey.task(name="waule.run")(lambda name, arguments: run_job(app, name, arguments))
    short = hueys["short"]
    for name, fields in SCHEDULE.items():
        short.periodic_task(crontab(**fields), name=name)(lambda name=name: run_job(app, name, {}))
    app.extensions["waule.jobs"] = Queues(hueys, tasks)


def queues() -> Queues:
    return current_app.extensions["waule.jobs"]


def pending_counts() -> dict[str, int | None]:
    """How many jobs wait on each queue, or None for a queue that cannot be read right now (Redis down):
    a page showing it must still render."""
    counts: dict[str, int | None] = {}
    for queue, huey in queues().hueys.items():
        try:
            counts[queue] = huey.pending_count()
        except Exception:  # the storage's own errors (redis, sqlite3): nothing a caller could act on
            log.warning("could not count the jobs waiting on the %s queue", queue, exc_info=True)
            counts[queue] = None
    return counts


def enqueue(name: str, **arguments) -> None:
    """Ask for `name` to run with these (JSON-plain) arguments. The caller has committed the rows the
    job will read: the database, not the queue, is the source of truth."""
    queues().tasks[_job(name).queue](name, arguments)


def enqueue_in(seconds: float, name: str, **arguments) -> None:
    """As enqueue, to run no sooner than `seconds` from now (the worker holds it until then; with
    JOBS_QUEUE=immediate it never runs, so what it does must also be reached by a periodic sweep)."""
    queues().tasks[_job(name).queue].schedule(args=(name, arguments), delay=seconds)


def _job(name: str):
    job = JOBS.get(name)
    if job is None:
        raise LookupError(f"no job named {name!r}")
    return job
