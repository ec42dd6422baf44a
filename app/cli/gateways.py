"""`flask gateways`: the waule-api gateways."""
from __future__ import annotations

import click

from app.gateway import registry


@click.group("gateways", help="The waule-api gateways.")
def gateways_cli():
    pass


@gateways_cli.command("probe", help="GET /health on every active gateway (and the default one); the answers "
                                    "open or close their circuit breakers. The worker runs it every minute.")
def gateways_probe():
    click.echo(f"{registry.probe_gateways()} gateway(s) answered.")
