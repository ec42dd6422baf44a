"""`flask worker`: consume the job queues (videos, Midjourney, async images, sweeps, deliveries)."""
from __future__ import annotations

import logging

import click
from flask import current_app

from app.jobs import queues, worker


@click.command("worker", help="Run the background worker until Ctrl-C or TERM (a running job is left to the "
                              "reconcile sweep, not waited for).")
@click.option("--long-threads", type=click.IntRange(1, 256), default=None,
              help="Threads for gateway calls that wait long (videos, Midjourney). Default WORKER_THREADS_LONG.")
@click.option("--short-threads", type=click.IntRange(1, 256), default=None,
              help="Threads for everything else. Default WORKER_THREADS_SHORT.")
def worker_cli(long_threads, short_threads):
    if current_app.config["JOBS_QUEUE"] == "immediate":
        raise click.UsageError("JOBS_QUEUE=immediate runs jobs where they are enqueued; there is nothing to consume.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configured = current_app.config["WORKER_THREADS"]
    worker.run(queues(), threads={"long": long_threads or configured["long"],
                                  "short": short_threads or configured["short"]})
