"""`flask secrets`: secrets for the .env file."""
from __future__ import annotations

import click

from config import generate_secrets


@click.group("secrets", help="Secrets for the .env file.")
def secrets_cli():
    pass


@secrets_cli.command("generate", help="Print a fresh set of secrets as .env lines.")
def secrets_generate():
    for name, value in generate_secrets().items():
        click.echo(f"{name}={value}")
