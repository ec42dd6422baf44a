"""`flask generations`: the queue's work, seen from the database."""
from __future__ import annotations

import click

from app.generation import sweep


@click.group("generations", help="Generations.")
def generations_cli():
    pass


@generations_cli.command("reconcile", help="Enqueue again what was never sent (PENDING), fail sent work whose "
                                           "worker died, resume polling Midjourney tasks. The worker runs it "
                                           "every minute.")
def generations_reconcile():
    done = sweep.reconcile()
    click.echo(f"Requeued {done.requeued}, failed {done.failed} whose worker died, resumed {done.resumed} "
               "Midjourney task(s).")
