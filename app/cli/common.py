"""What every command group shares: the actor commands act as, and how a refused command ends."""
from __future__ import annotations

import sys

import click

from app.core.errors import DomainError
from app.identity.audit import Actor

CLI = Actor(kind="system", name="cli")


def fail(error: DomainError):
    click.echo(f"Error: {error.message}", err=True)
    sys.exit(1)
