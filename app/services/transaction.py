"""The unit of work: one `with atomic():` block is one database transaction."""
from contextlib import contextmanager

from app.extensions import db


@contextmanager
def atomic():
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
