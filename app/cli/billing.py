"""`flask ledger`, `flask holds`, `flask credits` and `flask idempotency`: the credits ledger and its housekeeping.
`flask holds expire` is the generation sweep: a hold expires together with its generation."""
from __future__ import annotations

import sys

import click

from app.billing import accounts as billing
from app.billing import idempotency, ledger
from app.cli.common import CLI, Duration, fail
from app.core.errors import DomainError
from app.generation import sweep


@click.group("ledger", help="The credits ledger.")
def ledger_cli():
    pass


@ledger_cli.command("verify", help="Check balance = Σ entries, held = Σ HELD holds, each hold resolved once.")
def ledger_verify():
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


@holds_cli.command("expire", help="Fail generations past their deadline (test-mode too) and expire holds past "
                                   "their expiry with their generations, freeing their Idempotency-Keys: what "
                                   "requests that died left behind. Run it every minute.")
@click.option("--older-than", type=Duration(), default=None,
              help="After a crash: also whatever started longer ago than this (e.g. 10m), whatever its expiry.")
def holds_expire(older_than):
    swept = sweep.sweep(older_than=older_than)
    click.echo(f"Expired {swept.holds} hold(s). Failed {swept.generations} stuck generation(s).")


@click.group("credits", help="Recharge and adjust tenant credits.")
def credits_cli():
    pass


@credits_cli.command("recharge")
@click.argument("tenant_id")
@click.argument("amount", type=int)
@click.option("--description", default=None)
def credits_recharge(tenant_id, amount, description):
    try:
        account = billing.recharge(tenant_id, amount, CLI, description=description).account
    except DomainError as error:
        fail(error)
    click.echo(f"Balance {account.balance}, held {account.held}, available {account.available}.")


@click.group("idempotency", help="Idempotency keys.")
def idempotency_cli():
    pass


@idempotency_cli.command("purge", help="Delete idempotency keys older than 24 hours.")
def idempotency_purge():
    click.echo(f"Purged {idempotency.purge_expired()} key(s).")
