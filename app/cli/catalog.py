"""`flask catalog`: the model catalog."""
from __future__ import annotations

import click

from app.catalog import service as catalog
from app.cli.common import CLI


@click.group("catalog", help="The model catalog.")
def catalog_cli():
    pass


@catalog_cli.command("seed", help="Add the gateway's models that are missing, with starting prices (idempotent).")
def catalog_seed():
    added = catalog.seed_catalog(CLI)
    click.echo(f"Added {len(added)} model(s)." + (f" {', '.join(added)}" if added else ""))
