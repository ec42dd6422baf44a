"""Where jobs run. The embedded default is a thread pool in the enqueuing process: enough for async
image requests on one host. Each job runs in its own app context (its own database session)."""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from flask import current_app

from app.extensions import db
from app.jobs.registry import resolve

log = logging.getLogger(__name__)


def init_app(app) -> None:
    app.extensions["waule.jobs"] = ThreadPoolExecutor(max_workers=app.config.get("JOB_THREADS", 4),
                                                      thread_name_prefix="waule-job")


def enqueue(name: str, **arguments) -> Future:
    function = resolve(name)  # an unknown name fails here, in the caller, not later in a thread
    app = current_app._get_current_object()

    def run():
        with app.app_context():
            try:
                function(**arguments)
            except Exception:
                log.exception("job %s failed", name)
            finally:
                db.session.remove()

    return app.extensions["waule.jobs"].submit(run)
