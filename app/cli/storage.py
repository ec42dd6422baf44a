"""`flask storage`: stored objects."""
from __future__ import annotations

import click

from app.storage import service as storage


@click.group("storage", help="Stored objects.")
def storage_cli():
    pass


@storage_cli.command("sweep", help="Delete objects recorded but never confirmed (their generation failed or "
                                   "its process died).")
def storage_sweep():
    click.echo(f"Swept {storage.sweep()} object(s): never confirmed, or deleted and not yet removed.")
