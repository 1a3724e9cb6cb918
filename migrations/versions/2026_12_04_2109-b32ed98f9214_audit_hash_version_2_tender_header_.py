"""audit hash version 2, tender header, signed checkpoints

Existing events keep hash version 1 (their hash covers their whole content and stays
verifiable); new events are written as version 2 (header + payload hash, see
bidding/audit_export.py). `tender_id` is backfilled for old events about a tender or a bid
(it is not part of a version-1 hash): the append-only triggers are suspended for that one
UPDATE and restored.

Revision ID: b32ed98f9214
Revises: d1eedf3c548e
Create Date: 2026-12-04 21:09:08.907935+00:00

"""
from alembic import op
import sqlalchemy as sa

import app.core.types


# revision identifiers, used by Alembic.
revision = 'b32ed98f9214'
down_revision = 'd1eedf3c548e'
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


def _backfill(dialect):
    if dialect == "postgresql":
        digits = "object_id ~ '^[0-9]+$'"
        op.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
    else:
        digits = "object_id GLOB '[0-9]*' AND object_id NOT GLOB '*[^0-9]*'"
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
    op.execute(
        f"UPDATE audit_event SET tender_id = CAST(object_id AS INTEGER) "
        f"WHERE object_type = 'tender' AND {digits}"
    )
    op.execute(
        "UPDATE audit_event SET tender_id = (SELECT bid.tender_id FROM bid "
        "WHERE bid.id = CAST(audit_event.object_id AS INTEGER)) "
        f"WHERE object_type = 'bid' AND {digits}"
    )
    if dialect == "postgresql":
        op.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
    else:
        op.execute(SQLITE_TRIGGERS["UPDATE"])


def upgrade():
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("made_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_checkpoint_seq")),
    )
    op.create_index(
        op.f("ix_audit_checkpoint_made_at"), "audit_checkpoint", ["made_at"], unique=False
    )
    # Plain ADD COLUMN (no batch copy: the table keeps its append-only triggers).
    op.add_column(
        "audit_event", sa.Column("version", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column("audit_event", sa.Column("tender_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_audit_event_tender_id"), "audit_event", ["tender_id"], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        _backfill(dialect)


def downgrade():
    dialect = op.get_bind().dialect.name
    op.drop_index(op.f("ix_audit_event_tender_id"), table_name="audit_event")
    if dialect == "sqlite":
        # SQLite drops a column by copying the table, which loses its triggers: restore them.
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
        with op.batch_alter_table("audit_event", recreate="always") as batch_op:
            batch_op.drop_column("tender_id")
            batch_op.drop_column("version")
        for statement in SQLITE_TRIGGERS.values():
            op.execute(statement)
    else:
        op.drop_column("audit_event", "tender_id")
        op.drop_column("audit_event", "version")
    op.drop_index(op.f("ix_audit_checkpoint_made_at"), table_name="audit_checkpoint")
    op.drop_table("audit_checkpoint")
