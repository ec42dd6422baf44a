"""login failure counts in the database, shared by every worker without Redis

Revision ID: f2528cac38f4
Revises: abca4c21a8a8
Create Date: 2026-11-30 20:08:27.850879

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f2528cac38f4'
down_revision = 'abca4c21a8a8'
branch_labels = None
depends_on = None


def upgrade():
    # One row per account (per realm) and per client address; app/identity/throttle.py changes them only with
    # conditional INSERT … ON CONFLICT DO UPDATE … WHERE statements, so no id and no other index.
    op.create_table('login_failure_counts',
    sa.Column('realm', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=128), nullable=False),
    sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.CheckConstraint("kind IN ('account', 'ip')", name=op.f('ck_login_failure_counts_kind_known')),
    sa.CheckConstraint('failures >= 0', name=op.f('ck_login_failure_counts_failures_non_negative')),
    sa.PrimaryKeyConstraint('realm', 'kind', 'subject', name=op.f('pk_login_failure_counts'))
    )


def downgrade():
    op.drop_table('login_failure_counts')
