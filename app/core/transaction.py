"""The unit of work, and the one way code commits: `with atomic():` (or `@atomic()` on a service
function) is one database transaction. It commits when the outermost block ends and rolls back when
an exception leaves it; blocks nested inside it join the outer transaction."""
from __future__ import annotations

from contextlib import contextmanager

from app.extensions import db


@contextmanager
def atomic(*, keep=()):
    """`keep`: objects this block wrote whole, which stay loaded after the commit (reading them back
    would cost a query just to answer with what was written). Everything else expires as usual."""
    session = db.session()
    depth = session.info.get("atomic_depth", 0)
    session.info["atomic_depth"] = depth + 1
    try:
        yield
        if depth == 0:
            _commit(session, keep)
    except BaseException:
        if depth == 0:
            session.rollback()
        raise
    finally:
        session.info["atomic_depth"] = depth


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
