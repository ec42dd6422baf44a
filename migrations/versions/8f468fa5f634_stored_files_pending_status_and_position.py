"""stored files: pending status and position; results JSON no longer carries storage keys

Revision ID: 8f468fa5f634
Revises: c951e18837bb
Create Date: 2026-11-30 19:30:35.925295

"""
import uuid

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8f468fa5f634'
down_revision = 'c951e18837bb'
branch_labels = None
depends_on = None

generations = sa.table("generations", sa.column("id", sa.Uuid()), sa.column("results", sa.JSON()))
stored_files = sa.table("stored_files", sa.column("id", sa.Uuid()), sa.column("position", sa.Integer()))


def upgrade():
    # Every object written so far was written in its generation's settle: STORED.
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default='STORED'))
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_stored_files_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_check_constraint('status_known', "status IN ('PENDING', 'STORED')")
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.alter_column('status', server_default=None)
        batch_op.alter_column('position', server_default=None)

    # Positions from each generation's results; the results keep no storage keys (StoredFile has them).
    connection = op.get_bind()
    for generation_id, results in connection.execute(sa.select(generations.c.id, generations.c.results)):
        if not results:
            continue
        for index, result in enumerate(results):
            if result.get("file_id"):
                connection.execute(stored_files.update().where(stored_files.c.id == uuid.UUID(result["file_id"]))
                                   .values(position=index))
        if any("storage_key" in result for result in results):
            kept = [{k: v for k, v in result.items() if k != "storage_key"} for result in results]
            connection.execute(generations.update().where(generations.c.id == generation_id).values(results=kept))


def downgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_constraint('status_known', type_='check')
        batch_op.drop_index('ix_stored_files_status_created')
        batch_op.drop_column('position')
        batch_op.drop_column('status')
