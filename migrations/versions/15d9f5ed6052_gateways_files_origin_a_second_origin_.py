"""gateways: files_origin, a second origin their result files may be downloaded from

The result fetch allowlists origins (scheme, host and port), not whole hosts: a gateway whose vendor
serves files from elsewhere inside the network names that origin here. Existing gateways have none.

Revision ID: 15d9f5ed6052
Revises: 76ece12a223a
Create Date: 2026-11-30 20:05:14.805633

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '15d9f5ed6052'
down_revision = '76ece12a223a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('gateways', schema=None) as batch_op:
        batch_op.add_column(sa.Column('files_origin', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('gateways', schema=None) as batch_op:
        batch_op.drop_column('files_origin')
