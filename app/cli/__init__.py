"""`flask` commands, one group per domain: the same services the API and dashboard use, for operators
and scripts."""
from flask import Flask

from app.cli.billing import credits_cli, holds_cli, idempotency_cli, ledger_cli
from app.cli.catalog import catalog_cli
from app.cli.demo import demo_cli
from app.cli.gateways import gateways_cli
from app.cli.generations import generations_cli
from app.cli.identity import admins_cli, keys_cli, tenants_cli
from app.cli.migrations import migrations_cli
from app.cli.secrets import secrets_cli
from app.cli.storage import storage_cli
from app.cli.webhooks import webhooks_cli
from app.cli.worker import worker_cli


def init_app(app: Flask) -> None:
    for group in (secrets_cli, admins_cli, tenants_cli, keys_cli, demo_cli, catalog_cli, ledger_cli, holds_cli,
                  credits_cli, idempotency_cli, storage_cli, gateways_cli, generations_cli, webhooks_cli,
                  worker_cli, migrations_cli):
        app.cli.add_command(group)
