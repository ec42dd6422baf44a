"""`flask admins`, `flask tenants` and `flask keys`: platform admins and their tokens, tenants, API keys."""
from __future__ import annotations

import json

import click

from app.cli.common import CLI, fail
from app.core.errors import DomainError
from app.identity import admins, api_keys, tenants
from app.schemas import dump
from app.schemas.identity import ApiKeyOut, TenantOut
from app.storage import purge


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
        fail(error)
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
            fail(DomainError(f"Admin {username!r} is inactive."))
        token, raw = admins.issue_token(admin, CLI, name=name)
    except DomainError as error:
        fail(error)
    click.echo(raw)
    click.echo(f"Token id {token.id}: shown once; revoke with `flask admins revoke-token {token.id}`.", err=True)


@admins_cli.command("tokens", help="List an admin's tokens (never the tokens themselves).")
@click.argument("username")
def admins_tokens(username):
    try:
        admin = admins.find_by_username(username)
    except DomainError as error:
        fail(error)
    for token in admins.list_tokens(admin):
        state = "revoked" if token.revoked_at else "active"
        click.echo(f"{token.id}  {token.prefix}…  {token.name:<16} {state}")


@admins_cli.command("revoke-token")
@click.argument("token_id")
def admins_revoke_token(token_id):
    try:
        token = admins.revoke_token(token_id, CLI)
    except DomainError as error:
        fail(error)
    click.echo(f"Revoked {token.prefix}…")


@admins_cli.command("deactivate")
@click.argument("username")
def admins_deactivate(username):
    try:
        admin = admins.set_active(admins.find_by_username(username).id, CLI, False)
    except DomainError as error:
        fail(error)
    click.echo(f"Deactivated {admin.username}; their sessions and tokens no longer work.")


@admins_cli.command("unlock", help="End an admin's dashboard sign-in lockout. An address's failures are shared by "
                                    "every account tried from it, so they are cleared only with --ip.")
@click.argument("username")
@click.option("--ip", help="Also clear the failures counted against this client address.")
def admins_unlock(username, ip):
    try:
        admin = admins.unlock(username, CLI, ip=ip)
    except DomainError as error:
        fail(error)
    click.echo(f"Unlocked {admin.username}" + (f" and address {ip.strip()}." if ip else "."))


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
@click.option("--json", "as_json", is_flag=True, help="Print the tenant and key as JSON.")
def tenants_create(name, seats, contact_email, admin_username, admin_password, no_device_binding, as_json):
    try:
        created = tenants.create_tenant(CLI, name=name, max_seats=seats, contact_email=contact_email,
                                        require_device=not no_device_binding, admin_username=admin_username,
                                        admin_password=admin_password)
    except DomainError as error:
        fail(error)
    payload = {"tenant": dump(TenantOut, created.tenant),
               "api_key": {**dump(ApiKeyOut, created.api_key), "key": created.api_key_plaintext}}
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"Tenant {created.tenant.name} ({created.tenant.id})")
        click.echo(f"API key (shown once): {created.api_key_plaintext}")


@tenants_cli.command("purge", help="Remove a deactivated tenant's objects from the platform's storage (never from "
                                   "its own bucket); run it again to retry what could not be removed.")
@click.argument("tenant_id")
def tenants_purge(tenant_id):
    try:
        purged = purge.purge_tenant(tenant_id, CLI)
    except DomainError as error:
        fail(error)
    click.echo(f"Unmetered {purged.objects} object(s) ({purged.size_bytes} bytes); removed {purged.removed} "
               "from storage.")


@click.group("keys", help="API key housekeeping.")
def keys_cli():
    pass


@keys_cli.command("flush-usage", help="Write this process's buffered key use counts now. Servers flush their "
                                      "own every KEY_USAGE_FLUSH_SECONDS; this is for shells and tests.")
def keys_flush_usage():
    click.echo(f"Flushed {api_keys.flush_key_usage(force=True)} key(s).")
