"""`flask webhooks`: outgoing webhook deliveries."""
from __future__ import annotations

import click

from app.webhooks import deliveries


@click.group("webhooks", help="Outgoing webhook deliveries.")
def webhooks_cli():
    pass


@webhooks_cli.command("retry", help="Enqueue every webhook delivery that is due (the worker does this every "
                                    "minute).")
def webhooks_retry():
    click.echo(f"Enqueued {deliveries.retry_due()} due webhook delivery(ies).")
