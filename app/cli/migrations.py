"""`flask db …`: Flask-Migrate's commands, bound to the app only when one of them (or a migration) runs.

Importing Flask-Migrate imports Alembic and its autogenerate machinery, about 11 MiB that no web
process or job worker needs (a worker copying a 1 GiB video into a bucket must stay under 150 MB, see
bench/storage_memory.py). So create_app registers this stand-in group, and `bind(app)` sets Flask-Migrate
up the first time a `db` command is looked up; code that migrates directly (tests, benchmarks) calls
`bind(app)` before `flask_migrate.upgrade()`.
"""
from __future__ import annotations

import os

import click
from flask import Flask, g
from flask.cli import ScriptInfo, with_appcontext

from app.extensions import db

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "migrations")


def bind(app: Flask) -> None:
    """Set Flask-Migrate up on `app` (once): app.extensions['migrate'] and the real `db` group."""
    if "migrate" in app.extensions:
        return
    from flask_migrate import Migrate
    Migrate(app, db, directory=MIGRATIONS, render_as_batch=True, compare_type=True)


class _Migrations(click.Group):
    """Stands in for Flask-Migrate's `db` group until one of its commands is asked for."""

    def _commands(self, ctx: click.Context) -> click.Group:
        bind(ctx.ensure_object(ScriptInfo).load_app())
        from flask_migrate.cli import db as commands
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._commands(ctx).list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._commands(ctx).get_command(ctx, name)


@click.group("db", cls=_Migrations)
@click.option("-d", "--directory", default=None, help='Migration script directory (default is "migrations")')
@click.option("-x", "--x-arg", multiple=True, help="Additional arguments consumed by custom env.py scripts")
@with_appcontext
def migrations_cli(directory, x_arg):
    """Database migrations (Flask-Migrate, Alembic)."""
    g.directory, g.x_arg = directory, x_arg  # what Flask-Migrate's own group sets for its commands
