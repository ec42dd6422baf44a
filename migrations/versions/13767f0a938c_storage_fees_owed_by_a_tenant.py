"""Storage fees a tenant could not pay: taken from its next recharge, and until then it starts nothing.

Revision ID: 13767f0a938c
Revises: d2290ca3d3c9
Create Date: 2026-11-30 21:29:09.321610

"""
import sqlalchemy as sa
from alembic import op

revision = '13767f0a938c'
down_revision = 'd2290ca3d3c9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_fees_owed', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.create_check_constraint('storage_fees_owed_non_negative', 'storage_fees_owed >= 0')


def downgrade():
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_constraint('storage_fees_owed_non_negative', type_='check')
        batch_op.drop_column('storage_fees_owed')
