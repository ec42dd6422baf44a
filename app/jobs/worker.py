"""The worker: one Huey consumer per queue, each with its own threads, in one process (`flask worker`).

Ctrl-C or TERM stops it at once: a job that is running is abandoned, not waited for (a video may
wait twenty minutes on the gateway); the reconcile sweep finishes or fails what it left, by the
database's record of it.
"""
from __future__ import annotations

import logging
import signal
import threading

from huey.consumer import Consumer

from app.jobs.queue import Queues

log = logging.getLogger(__name__)
HEALTH_CHECK_SECONDS = 10


def run(queues: Queues, *, threads: dict[str, int]) -> None:
    consumers = [Consumer(huey, workers=threads[queue], worker_type="thread", periodic=queue == "short")
                 for queue, huey in queues.hueys.items()]
    stop = threading.Event()
    for consumer in consumers:
        consumer.start()
    # After the consumers' own start(): one handler for both, and no graceful wait.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.info("worker running: %s", ", ".join(f"{queue} × {count}" for queue, count in threads.items()))
    while not stop.wait(HEALTH_CHECK_SECONDS):
        for consumer in consumers:
            consumer.check_worker_health()
    log.info("worker stopping; running jobs are left to the reconcile sweep")
    for consumer in consumers:
        consumer.stop(graceful=False)
