"""What every command group shares: the actor commands act as, and how a refused command ends."""
from __future__ import annotations

import re
import sys
from datetime import timedelta

import click

from app.core.errors import DomainError
from app.identity.audit import Actor

CLI = Actor(kind="system", name="cli")


def fail(error: DomainError):
    click.echo(f"Error: {error.message}", err=True)
    sys.exit(1)


class Duration(click.ParamType):
    """A whole number of seconds, minutes or hours: `90s`, `10m`, `2h`."""

    name = "duration"
    _FORMAT = re.compile(r"(\d{1,7})([smh])")
    _UNITS = {"s": "seconds", "m": "minutes", "h": "hours"}

    def convert(self, value, param, ctx):
        if isinstance(value, timedelta):
            return value
        match = self._FORMAT.fullmatch(str(value).strip())
        if match is None or int(match.group(1)) == 0:
            self.fail(f"{value!r} is not a duration: use a positive whole number with s, m or h, e.g. 10m.",
                      param, ctx)
        return timedelta(**{self._UNITS[match.group(2)]: int(match.group(1))})
