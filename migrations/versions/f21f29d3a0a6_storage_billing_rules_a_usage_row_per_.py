"""Storage billing: the rules, a usage row per tenant and day, the unbilled traffic and the fee carry.

Revision ID: f21f29d3a0a6
Revises: 13767f0a938c
Create Date: 2026-11-30 21:35:18.869473

"""
import sqlalchemy as sa
from alembic import op

revision = 'f21f29d3a0a6'
down_revision = '13767f0a938c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'storage_billing_rules',
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('tier1_price', sa.BigInteger(), nullable=False),
        sa.Column('tier1_limit_gib', sa.BigInteger(), nullable=False),
        sa.Column('tier2_price', sa.BigInteger(), nullable=False),
        sa.Column('tier2_limit_gib', sa.BigInteger(), nullable=False),
        sa.Column('tier3_price', sa.BigInteger(), nullable=False),
        sa.Column('traffic_price', sa.BigInteger(), nullable=False),
        sa.Column('is_active', sa.Boolean(), nullable=False),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('tier1_limit_gib > 0 AND tier2_limit_gib > tier1_limit_gib',
                           name=op.f('ck_storage_billing_rules_tiers_ascending')),
        sa.CheckConstraint('tier1_price >= 0 AND tier2_price >= 0 AND tier3_price >= 0 AND traffic_price >= 0',
                           name=op.f('ck_storage_billing_rules_prices_non_negative')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_billing_rules')),
    )
    # At most one active rule: a partial unique index, so activating a second one fails instead of billing twice.
    with op.batch_alter_table('storage_billing_rules', schema=None) as batch_op:
        batch_op.create_index('uq_storage_billing_rules_one_active', ['is_active'], unique=True,
                              postgresql_where=sa.text('is_active'), sqlite_where=sa.text('is_active'))

    op.create_table(
        'tenant_storage_usage',
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('oss_mode', sa.String(length=16), nullable=False),
        sa.Column('storage_bytes', sa.BigInteger(), nullable=False),
        sa.Column('upload_bytes', sa.BigInteger(), nullable=False),
        sa.Column('download_bytes', sa.BigInteger(), nullable=False),
        sa.Column('file_count', sa.BigInteger(), nullable=False),
        sa.Column('storage_credits', sa.BigInteger(), nullable=False),
        sa.Column('traffic_credits', sa.BigInteger(), nullable=False),
        sa.Column('rule_id', sa.Uuid(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.CheckConstraint('storage_bytes >= 0 AND upload_bytes >= 0 AND download_bytes >= 0 AND file_count >= 0',
                           name=op.f('ck_tenant_storage_usage_counts_non_negative')),
        sa.CheckConstraint('storage_credits >= 0 AND traffic_credits >= 0',
                           name=op.f('ck_tenant_storage_usage_credits_non_negative')),
        sa.ForeignKeyConstraint(['rule_id'], ['storage_billing_rules.id'],
                                name=op.f('fk_tenant_storage_usage_rule_id_storage_billing_rules'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_storage_usage_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tenant_storage_usage')),
        sa.UniqueConstraint('tenant_id', 'day', name='uq_tenant_storage_usage_tenant_day'),
    )
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_download_unbilled_bytes', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('storage_fee_carry_millicredits', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.create_check_constraint('storage_download_unbilled_non_negative',
                                         'storage_download_unbilled_bytes >= 0')
        batch_op.create_check_constraint('storage_fee_carry_below_a_credit',
                                         'storage_fee_carry_millicredits >= 0 AND storage_fee_carry_millicredits < 1000')


def downgrade():
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_constraint('storage_fee_carry_below_a_credit', type_='check')
        batch_op.drop_constraint('storage_download_unbilled_non_negative', type_='check')
        batch_op.drop_column('storage_fee_carry_millicredits')
        batch_op.drop_column('storage_download_unbilled_bytes')
    op.drop_table('tenant_storage_usage')
    with op.batch_alter_table('storage_billing_rules', schema=None) as batch_op:
        batch_op.drop_index('uq_storage_billing_rules_one_active', postgresql_where=sa.text('is_active'),
                            sqlite_where=sa.text('is_active'))
    op.drop_table('storage_billing_rules')
