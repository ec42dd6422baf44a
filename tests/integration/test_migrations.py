"""The migrations we ship build exactly the schema the models describe (`flask db check` clean)."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db


def test_migrated_schema_matches_the_models(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_flask_db_check_reports_no_drift(runner):
    result = runner.invoke(args=["db", "check"])  # exits non-zero when models and migrations differ
    assert result.exit_code == 0, result.output
