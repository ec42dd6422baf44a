"""`flask storage`: stored objects, the meter of each tenant's bytes, and the daily storage bill."""
from __future__ import annotations

import sys

import click

from app.cli.common import fail
from app.core.db import utcnow
from app.core.errors import DomainError
from app.storage import billing, metering
from app.storage import service as storage
from app.storage import uploads


@click.group("storage", help="Stored objects, the storage meter and storage billing.")
def storage_cli():
    pass


@storage_cli.command("sweep", help="Delete objects recorded but never confirmed (their generation failed or "
                                   "its process died).")
def storage_sweep():
    click.echo(f"Swept {storage.sweep()} object(s): never confirmed, or deleted and not yet removed.")


@storage_cli.command("bill", help="Bill a day's storage and traffic (default: yesterday, UTC) to every tenant not "
                                  "billed for it yet; billing a day again charges nothing. The worker runs it "
                                  "every hour.")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day to bill, YYYY-MM-DD (it must be over).")
def storage_bill(day):
    try:
        run = billing.bill(day.date() if day else None, now=utcnow())
    except DomainError as error:
        fail(error)
    rule = f"rule {run.rule.name!r}" if run.rule else "no active rule: nothing charged"
    click.echo(f"{run.day}: billed {run.billed} tenant(s) ({rule}), {run.already} already billed; "
               f"{run.credits} credit(s) charged, {run.owed} of them owed.")


@storage_cli.command("verify", help="Recompute every tenant's storage meter from its stored objects; exit 1 on "
                                    "any drift.")
@click.option("--deep", is_flag=True, help="Also list each backend's objects and compare them with the records.")
def storage_verify(deep):
    problems = metering.verify(deep=deep)
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problem(s) found.", err=True)
        sys.exit(1)
    click.echo("Storage verified: every meter matches its objects" + (" and every object its backend." if deep
                                                                       else "."))


@storage_cli.command("expire-uploads", help="Delete uploads never completed within 24 hours.")
def storage_expire_uploads():
    click.echo(f"Deleted {uploads.expire_uploads()} upload(s) never completed.")
