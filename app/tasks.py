"""Background jobs. The embedded default is an in-process thread pool: enough for async image
requests on one host. Each job runs in its own app context (its own database session)."""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from flask import current_app

from app.extensions import db

log = logging.getLogger(__name__)


def init_app(app) -> None:
    app.extensions["waule.jobs"] = ThreadPoolExecutor(max_workers=app.config.get("JOB_THREADS", 4),
                                                      thread_name_prefix="waule-job")


def submit(function, *args) -> Future:
    app = current_app._get_current_object()

    def run():
        with app.app_context():
            try:
                function(*args)
            except Exception:
                log.exception("background job %s failed", getattr(function, "__name__", function))
            finally:
                db.session.remove()

    return app.extensions["waule.jobs"].submit(run)
