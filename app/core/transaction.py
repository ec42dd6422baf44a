"""The unit of work, and the one way code commits: `with atomic():` (or `@atomic()` on a service
function) is one database transaction. It commits when the outermost block ends and rolls back when
an exception leaves it; blocks nested inside it join the outer transaction. `on_commit` runs
something once that transaction has committed (enqueueing a job that reads what it wrote)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager

from app.extensions import db

log = logging.getLogger(__name__)


@contextmanager
def atomic(*, keep=()):
    """`keep`: objects this block wrote whole, which stay loaded after the commit (reading them back
    would cost a query just to answer with what was written). Everything else expires as usual."""
    session = db.session()
    depth = session.info.get("atomic_depth", 0)
    session.info["atomic_depth"] = depth + 1
    if depth == 0:
        session.info["on_commit"] = []  # what a transaction rolled back outside atomic() left is void
    try:
        yield
        if depth == 0:
            _commit(session, keep)
    except BaseException:
        if depth == 0:
            session.info["on_commit"] = []
            session.rollback()
        raise
    finally:
        session.info["atomic_depth"] = depth
    if depth == 0:
        _run_on_commit(session)


def on_commit(callback: Callable[[], None]) -> None:
    """Run `callback` after the outermost atomic() block commits, never if it rolls back; at once
    outside a transaction. A callback that fails is logged: the commit has happened, so it must not
    undo or hide it (whatever it did must also be reached another way, such as a periodic sweep)."""
    session = db.session()
    if session.info.get("atomic_depth", 0) == 0:
        _run(callback)
    else:
        session.info.setdefault("on_commit", []).append(callback)


def _run_on_commit(session) -> None:
    callbacks, session.info["on_commit"] = session.info.get("on_commit", []), []
    for callback in callbacks:
        _run(callback)


def _run(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("an after-commit step failed; its periodic sweep will catch up")


def _commit(session, keep) -> None:
    if not keep:
        session.commit()
        return
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True
    kept = {id(obj) for obj in keep}
    for instance in list(session.identity_map.values()):
        if id(instance) not in kept:
            session.expire(instance)


def in_atomic() -> bool:
    """Whether an atomic() block is open: work that must commit on its own refuses to run inside one."""
    return db.session().info.get("atomic_depth", 0) > 0
