"""`flask demo seed`: the demo data `make run` starts with."""
from __future__ import annotations

import os
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app

from app.billing import accounts as billing
from app.cli.common import CLI, fail
from app.core.crypto import random_token
from app.core.errors import DomainError, NotFound
from app.extensions import db
from app.identity import admins, api_keys, tenants, users
from app.identity.models import Tenant


@click.group("demo", help="The demo data `make run` starts with.")
def demo_cli():
    pass


DEMO_TENANT = "Demo Tenant"


DEMO_CREDITS = 10_000


@demo_cli.command("seed", help="Create the demo admin, tenant, keys and members once; later runs do nothing.")
def demo_seed():
    path = Path(current_app.instance_path) / "demo-credentials.txt"
    # The demo tenant marks a finished seed. An operator's own admins do not: they must not stop the demo,
    # and a seed that failed half-way (its admin made, its tenant not) must finish on the next run.
    if db.session.scalar(sa.select(Tenant.id).where(Tenant.name == DEMO_TENANT)):
        where = f"in {path}" if path.exists() else "printed when it was seeded"
        click.echo(f"Demo data already present; its credentials were {where}.")
        return
    password = {name: random_token(16) for name in ("admin", "tenant_admin", "alice", "bob")}
    try:
        admin_line = f"  platform admin   admin / {password['admin']}"
        try:
            admins.find_by_username("admin")
            admin_line = "  platform admin   admin (already existed; password unchanged)"
        except NotFound:
            admins.create_admin(CLI, username="admin", password=password["admin"])
        created = tenants.create_tenant(CLI, name=DEMO_TENANT, contact_email="demo@example.com", max_seats=5,
                                        admin_username="demo-admin", admin_password=password["tenant_admin"])
        _test_key, test_raw = api_keys.create_key(created.tenant.id, CLI, name="test", mode="test")
        for member in ("alice", "bob"):
            users.create_user(created.tenant.id, CLI, username=member, password=password[member],
                              nickname=member.title())
        billing.recharge(created.tenant.id, DEMO_CREDITS, CLI, description="Demo credits")
    except DomainError as error:
        fail(error)
    lines = [
        "Waule Server demo credentials (generated once; keep this file private)",
        "",
        "Dashboard          http://127.0.0.1:5000/admin",
        admin_line,
        "",
        f"Tenant             {DEMO_TENANT} ({created.tenant.id}), {DEMO_CREDITS:,} credits",
        f"  live API key     {created.api_key_plaintext}",
        f"  test API key     {test_raw}",
        f"  tenant admin     demo-admin / {password['tenant_admin']}",
        f"  member           alice / {password['alice']}",
        f"  member           bob / {password['bob']}",
        "",
        "Members log in with POST /api/v1/auth/login {api_key, username, password, device_id}.",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created owner-only from the start: writing first and chmod-ing after leaves a readable moment.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as credentials:
        credentials.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # an older file keeps its mode through O_TRUNC
    click.echo("\n".join(lines))
    click.echo(f"\n(Also written to {path}.)")
