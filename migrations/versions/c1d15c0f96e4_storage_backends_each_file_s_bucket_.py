"""Storage backends: each stored file records its bucket, so it is read and deleted where it was written;
tenants' own buckets (TenantStorageConfig, secrets AES-GCM at rest).

Revision ID: c1d15c0f96e4
Revises: f21f29d3a0a6
Create Date: 2026-11-30 21:32:48.326825

"""
import sqlalchemy as sa
from alembic import op

revision = 'c1d15c0f96e4'
down_revision = 'f21f29d3a0a6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'tenant_storage_configs',
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('provider', sa.String(length=8), nullable=False),
        sa.Column('endpoint', sa.String(length=255), nullable=False),
        sa.Column('region', sa.String(length=64), nullable=False),
        sa.Column('bucket', sa.String(length=63), nullable=False),
        sa.Column('access_key_id_encrypted', sa.LargeBinary(), nullable=False),
        sa.Column('access_key_id_last4', sa.String(length=4), nullable=False),
        sa.Column('secret_encrypted', sa.LargeBinary(), nullable=False),
        sa.Column('custom_domain', sa.String(length=255), nullable=True),
        sa.Column('path_prefix', sa.String(length=200), nullable=False),
        sa.Column('is_verified', sa.Boolean(), nullable=False),
        sa.Column('last_verified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("provider IN ('oss', 's3')", name=op.f('ck_tenant_storage_configs_provider_known')),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_storage_configs_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tenant_storage_configs')),
        sa.UniqueConstraint('tenant_id', name=op.f('uq_tenant_storage_configs_tenant_id')),
    )
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bucket', sa.String(length=63), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_column('bucket')
    op.drop_table('tenant_storage_configs')
