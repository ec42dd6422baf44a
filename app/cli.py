"""`flask` commands: the same services the API and dashboard use, for operators and scripts."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app

from app.billing import accounts as billing
from app.core.crypto import random_token
from app.core.errors import DomainError, NotFound
from app.extensions import db
from app.identity import admins, api_keys, tenants, users
from app.identity.audit import Actor
from app.models import Tenant

CLI = Actor(kind="system", name="cli")


def _fail(error: DomainError):
    click.echo(f"Error: {error.message}", err=True)
    sys.exit(1)


def init_app(app: Flask) -> None:
    for group in (secrets_cli, admins_cli, tenants_cli, demo_cli, keys_cli, ledger_cli, holds_cli, catalog_cli,
                  credits_cli, idempotency_cli, storage_cli):
        app.cli.add_command(group)


@click.group("secrets", help="Secrets for the .env file.")
def secrets_cli():
    pass


@secrets_cli.command("generate", help="Print a fresh set of secrets as .env lines.")
def secrets_generate():
    from config import generate_secrets
    for name, value in generate_secrets().items():
        click.echo(f"{name}={value}")


@click.group("admins", help="Platform admins and their API tokens.")
def admins_cli():
    pass


@admins_cli.command("create")
@click.option("--username", required=True)
@click.option("--password", required=True, help="At least 8 characters.")
def admins_create(username, password):
    try:
        admin = admins.create_admin(CLI, username=username, password=password)
    except DomainError as error:
        _fail(error)
    click.echo(f"Created platform admin {admin.username} ({admin.id}).")


@admins_cli.command("list")
def admins_list():
    for admin in admins.list_admins():
        state = "active" if admin.is_active else "inactive"
        click.echo(f"{admin.id}  {admin.username:<24} {state}")


@admins_cli.command("token", help="Print a personal access token for the JSON admin API.")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def admins_token(username, name):
    try:
        admin = admins.find_by_username(username)
        if not admin.is_active:
            _fail(DomainError(f"Admin {username!r} is inactive."))
        token, raw = admins.issue_token(admin, CLI, name=name)
    except DomainError as error:
        _fail(error)
    click.echo(raw)
    click.echo(f"Token id {token.id}: shown once; revoke with `flask admins revoke-token {token.id}`.", err=True)


@admins_cli.command("tokens", help="List an admin's tokens (never the tokens themselves).")
@click.argument("username")
def admins_tokens(username):
    try:
        admin = admins.find_by_username(username)
    except DomainError as error:
        _fail(error)
    for token in admins.list_tokens(admin):
        state = "revoked" if token.revoked_at else "active"
        click.echo(f"{token.id}  {token.prefix}…  {token.name:<16} {state}")


@admins_cli.command("revoke-token")
@click.argument("token_id")
def admins_revoke_token(token_id):
    try:
        token = admins.revoke_token(token_id, CLI)
    except DomainError as error:
        _fail(error)
    click.echo(f"Revoked {token.prefix}…")


@admins_cli.command("deactivate")
@click.argument("username")
def admins_deactivate(username):
    try:
        admin = admins.set_active(admins.find_by_username(username).id, CLI, False)
    except DomainError as error:
        _fail(error)
    click.echo(f"Deactivated {admin.username}; their sessions and tokens no longer work.")


@click.group("tenants", help="Tenants.")
def tenants_cli():
    pass


@tenants_cli.command("create")
@click.option("--name", required=True)
@click.option("--seats", type=click.IntRange(0, tenants.MAX_SEATS_LIMIT), default=5, show_default=True)
@click.option("--contact-email")
@click.option("--admin-username")
@click.option("--admin-password")
@click.option("--no-device-binding", is_flag=True, help="Let members log in without a device id.")
@click.option("--json", "as_json", is_flag=True, help="Print the tenant, key and secret as JSON.")
def tenants_create(name, seats, contact_email, admin_username, admin_password, no_device_binding, as_json):
    try:
        created = tenants.create_tenant(CLI, name=name, max_seats=seats, contact_email=contact_email,
                                        require_device=not no_device_binding, admin_username=admin_username,
                                        admin_password=admin_password)
    except DomainError as error:
        _fail(error)
    from app.schemas import dump
    from app.schemas.identity import ApiKeyOut, TenantOut
    payload = {"tenant": dump(TenantOut, created.tenant),
               "api_key": {**dump(ApiKeyOut, created.api_key), "key": created.api_key_plaintext},
               "api_secret": created.api_secret}
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"Tenant {created.tenant.name} ({created.tenant.id})")
        click.echo(f"API key (shown once):    {created.api_key_plaintext}")
        click.echo(f"API secret (shown once): {created.api_secret}")


@click.group("keys", help="API key housekeeping.")
def keys_cli():
    pass


@keys_cli.command("flush-usage", help="Write this process's buffered key use counts now. Servers flush their "
                                      "own every KEY_USAGE_FLUSH_SECONDS; this is for shells and tests.")
def keys_flush_usage():
    click.echo(f"Flushed {api_keys.flush_key_usage(force=True)} key(s).")


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
        _fail(error)
    lines = [
        "Waule Server demo credentials (generated once; keep this file private)",
        "",
        "Dashboard          http://127.0.0.1:5000/admin",
        admin_line,
        "",
        f"Tenant             {DEMO_TENANT} ({created.tenant.id}), {DEMO_CREDITS:,} credits",
        f"  live API key     {created.api_key_plaintext}",
        f"  test API key     {test_raw}",
        f"  api secret       {created.api_secret}",
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


@click.group("ledger", help="The credits ledger.")
def ledger_cli():
    pass


@ledger_cli.command("verify", help="Check balance = Σ entries, held = Σ HELD holds, each hold resolved once.")
def ledger_verify():
    from app.billing import ledger
    problems = ledger.verify()
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problem(s) found.", err=True)
        sys.exit(1)
    click.echo("Ledger verified: every tenant balances.")


@click.group("holds", help="Credit holds.")
def holds_cli():
    pass


@holds_cli.command("expire", help="Release holds past their expiry (requests that died).")
def holds_expire():
    from app.billing import accounts as billing
    click.echo(f"Expired {billing.expire_due_holds()} hold(s).")


@click.group("catalog", help="The model catalog.")
def catalog_cli():
    pass


@catalog_cli.command("seed", help="Add the gateway's models that are missing, with starting prices (idempotent).")
def catalog_seed():
    from app.catalog import service as catalog
    added = catalog.seed_catalog(CLI)
    click.echo(f"Added {len(added)} model(s)." + (f" {', '.join(added)}" if added else ""))


@click.group("credits", help="Recharge and adjust tenant credits.")
def credits_cli():
    pass


@credits_cli.command("recharge")
@click.argument("tenant_id")
@click.argument("amount", type=int)
@click.option("--description", default=None)
def credits_recharge(tenant_id, amount, description):
    from app.billing import accounts as billing
    try:
        account = billing.recharge(tenant_id, amount, CLI, description=description).account
    except DomainError as error:
        _fail(error)
    click.echo(f"Balance {account.balance}, held {account.held}, available {account.available}.")


@click.group("idempotency", help="Idempotency keys.")
def idempotency_cli():
    pass


@idempotency_cli.command("purge", help="Delete idempotency keys older than 24 hours.")
def idempotency_purge():
    from app.billing import idempotency
    click.echo(f"Purged {idempotency.purge_expired()} key(s).")


@click.group("storage", help="Stored objects.")
def storage_cli():
    pass


@storage_cli.command("sweep", help="Delete objects recorded but never confirmed (their generation failed or "
                                   "its process died).")
def storage_sweep():
    from app.storage import service as storage
    click.echo(f"Swept {storage.sweep_unconfirmed()} unconfirmed object(s).")
