"""`flask storage`: stored objects."""
from __future__ import annotations

import click

from app.storage import service as storage
from app.storage import uploads


@click.group("storage", help="Stored objects.")
def storage_cli():
    pass


@storage_cli.command("sweep", help="Delete objects recorded but never confirmed (their generation failed or "
                                   "its process died).")
def storage_sweep():
    click.echo(f"Swept {storage.sweep()} object(s): never confirmed, or deleted and not yet removed.")


@storage_cli.command("expire-uploads", help="Delete uploads never completed within 24 hours.")
def storage_expire_uploads():
    click.echo(f"Deleted {uploads.expire_uploads()} upload(s) never completed.")
