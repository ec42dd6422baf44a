"""idempotency keys remember a result, not an HTTP answer

Services return domain results; the key row keeps what a replay needs to answer as the first
request did (a generation's id; a recharge's entry and the figures after it).

Revision ID: 64ad5f69a2c4
Revises: 8f468fa5f634
Create Date: 2026-11-30 19:43:42.104850

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '64ad5f69a2c4'
down_revision = '8f468fa5f634'
branch_labels = None
depends_on = None


keys = sa.table("idempotency_keys", sa.column("id", sa.Uuid()), sa.column("response_body", sa.JSON()),
                sa.column("result", sa.JSON()))


def _result(body: dict) -> dict:
    if isinstance(body.get("entry"), dict):  # a recharge's answer
        return {"entry_id": body["entry"]["id"], "balance": body["balance"], "held": body["held"]}
    return body  # a generation's: {"generation_id": …}


def upgrade():
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True))
    connection = op.get_bind()
    for key_id, body in connection.execute(sa.select(keys.c.id, keys.c.response_body)
                                           .where(keys.c.response_body.is_not(None))).all():
        connection.execute(keys.update().where(keys.c.id == key_id).values(result=_result(body)))
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_column('response_status')
        batch_op.drop_column('response_body')


def downgrade():
    # Keys live 24 hours: a downgrade forgets the finished ones rather than rebuilding old answers.
    op.execute(sa.text("DELETE FROM idempotency_keys WHERE status = 'COMPLETED'"))
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('response_body', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('response_status', sa.INTEGER(), nullable=True))
        batch_op.drop_column('result')
