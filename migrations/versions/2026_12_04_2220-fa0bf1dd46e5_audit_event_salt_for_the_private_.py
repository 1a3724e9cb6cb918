"""audit event salt for the private payload hash

Hash version 2 now covers an event's public payload and its private payload (IP address and
a per-event random salt) by separate hashes, so the public audit export carries no IP
address (see bidding/audit_export.py). The salt is stored here and never published.
Version-1 events have none. (Version 2 is unreleased: version-2 events written by a
development database before this revision do not verify under the new definition.)

Revision ID: fa0bf1dd46e5
Revises: 0b1e1919d546
Create Date: 2026-12-04 22:20:34.982967+00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fa0bf1dd46e5'
down_revision = '0b1e1919d546'
branch_labels = None
depends_on = None


SQLITE_TRIGGERS = {
    operation: (
        f"CREATE TRIGGER audit_event_no_{operation.lower()} BEFORE {operation} "
        "ON audit_event BEGIN "
        f"SELECT RAISE(ABORT, 'audit_event is append-only: {operation} refused'); END"
    )
    for operation in ("UPDATE", "DELETE")
}


def upgrade():
    # Plain ADD COLUMN (no batch copy: the table keeps its append-only triggers).
    op.add_column("audit_event", sa.Column("salt", sa.String(length=32), nullable=True))


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        # SQLite drops a column by copying the table, which loses its triggers: restore them.
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
        with op.batch_alter_table("audit_event", recreate="always") as batch_op:
            batch_op.drop_column("salt")
        for statement in SQLITE_TRIGGERS.values():
            op.execute(statement)
    else:
        op.drop_column("audit_event", "salt")
