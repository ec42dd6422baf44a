"""long-running generations: leases, Midjourney tasks, model routes, thumbnails

Revision ID: d2290ca3d3c9
Revises: c5bda462d245
Create Date: 2026-11-30 20:35:27.518438

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd2290ca3d3c9'
down_revision = 'c5bda462d245'
branch_labels = None
depends_on = None


models = sa.table("ai_models", sa.column("model_id", sa.String()), sa.column("kind", sa.String()),
                   sa.column("route", sa.String()))
ROUTES = {"image": "/images/generations", "video": "/videos/generations", "audio": "/audio/speech",
          "chat": "/chat/completions", "midjourney": "/midjourney/imagine"}
SORA = ("sora-image", "sora-2", "sora-video-landscape-10s")


def upgrade():
    # Every model names its gateway route: by kind, and the chat-shaped one for Sora's models.
    with op.batch_alter_table('ai_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route', sa.String(length=60), nullable=True))
    for kind, route in ROUTES.items():
        op.execute(models.update().where(models.c.kind == kind).values(route=route))
    op.execute(models.update().where(models.c.model_id.in_(SORA)).values(route="/sora/chat/completions"))
    with op.batch_alter_table('ai_models', schema=None) as batch_op:
        batch_op.alter_column('route', nullable=False)

    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('upstream_task_id', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('progress', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('parent_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_generations_lease_until'), ['lease_until'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_generations_parent_id_generations'), 'generations', ['parent_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.alter_column('progress', server_default=None)
    op.execute("UPDATE generations SET progress = 100 WHERE status = 'COMPLETED'")

    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant', sa.String(length=16), nullable=False, server_default='result'))
        batch_op.drop_constraint('status_known', type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('PENDING', 'STORED', 'DELETING', 'DELETED')")
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.alter_column('variant', server_default=None)


def downgrade():
    op.execute("DELETE FROM stored_files WHERE status IN ('DELETING', 'DELETED')")
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_constraint('status_known', type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('PENDING', 'STORED')")
        batch_op.drop_column('variant')

    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_generations_parent_id_generations'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_generations_lease_until'))
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('parent_id')
        batch_op.drop_column('progress')
        batch_op.drop_column('upstream_task_id')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('started_at')

    with op.batch_alter_table('ai_models', schema=None) as batch_op:
        batch_op.drop_column('route')
