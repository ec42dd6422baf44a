"""generations link their idempotency key; holds find their generation

Whoever ends a generation (its worker, or the sweep that fails it after a crash) finishes or frees
its Idempotency-Key through the link, so a retry after a crash runs again instead of answering 409.
The index on hold_id lets an expiring hold find its generation. Generations started before this
revision have no link; their keys still expire after 24 hours.

Revision ID: 76ece12a223a
Revises: f2528cac38f4
Create Date: 2026-11-30 20:04:39.313284

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '76ece12a223a'
down_revision = 'f2528cac38f4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key_id', sa.Uuid(), nullable=True))
        batch_op.create_index('ix_generations_hold_id', ['hold_id'], unique=False)
        batch_op.create_foreign_key('fk_generations_idempotency_key_id_idempotency_keys', 'idempotency_keys',
                                    ['idempotency_key_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_constraint('fk_generations_idempotency_key_id_idempotency_keys', type_='foreignkey')
        batch_op.drop_index('ix_generations_hold_id')
        batch_op.drop_column('idempotency_key_id')
