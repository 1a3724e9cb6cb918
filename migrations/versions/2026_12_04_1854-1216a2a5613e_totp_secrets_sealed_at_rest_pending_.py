"""TOTP secrets sealed at rest, pending enrolment kept server-side

Revision ID: 1216a2a5613e
Revises: 8e76199cd94a
Create Date: 2026-12-04 18:54:55.996219+00:00

Existing secrets are sealed here with the key the app uses (AES-256-GCM under HKDF-SHA256 of
FAIRBID_TOTP_KEY, or of SECRET_KEY when it is unset, info "fairbid/totp-secret/v1"); the
downgrade opens them again. The format is written out here, not imported from the app, so
this revision keeps working whatever the app's code becomes.
"""
import base64
import hashlib
import os

from alembic import op
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

import app.core.types


# revision identifiers, used by Alembic.
revision = '1216a2a5613e'
down_revision = '8e76199cd94a'
branch_labels = None
depends_on = None

_INFO = b"fairbid/totp-secret/v1"
_AAD = b"fairbid totp secret"

user_account = sa.table(
    "user_account",
    sa.column("id", sa.Integer),
    sa.column("totp_secret", sa.String),
    sa.column("totp_secret_sealed", sa.String),
)


def _key() -> tuple[str, bytes]:
    config = current_app.config
    material = config.get("FAIRBID_TOTP_KEY") or config["SECRET_KEY"]
    ikm = material.encode("utf-8") if isinstance(material, str) else bytes(material)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(ikm)
    return hashlib.sha256(b"key id" + key).hexdigest()[:12], key


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret_sealed', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_sealed', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_at', app.core.types.UTCDateTime(timezone=True), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(
        sa.select(user_account.c.id, user_account.c.totp_secret).where(
            user_account.c.totp_secret.is_not(None)
        )
    ).all()
    if rows:
        key_id, key = _key()
        for user_id, secret in rows:
            nonce = os.urandom(12)
            sealed = AESGCM(key).encrypt(nonce, secret.encode("ascii"), _AAD)
            body = base64.b64encode(nonce + sealed).decode("ascii")
            connection.execute(
                user_account.update()
                .where(user_account.c.id == user_id)
                .values(totp_secret_sealed=f"v1:{key_id}:{body}")
            )

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('totp_secret')


def downgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.VARCHAR(length=64), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(
        sa.select(user_account.c.id, user_account.c.totp_secret_sealed).where(
            user_account.c.totp_secret_sealed.is_not(None)
        )
    ).all()
    if rows:
        key_id, key = _key()
        for user_id, sealed in rows:
            _version, sealed_key_id, body = sealed.split(":", 2)
            if sealed_key_id != key_id:
                raise RuntimeError(
                    f"the TOTP secret of user {user_id} is sealed with another key: run "
                    "`flask users reseal-totp` with the previous key configured first"
                )
            raw = base64.b64decode(body)
            secret = AESGCM(key).decrypt(raw[:12], raw[12:], _AAD).decode("ascii")
            connection.execute(
                user_account.update()
                .where(user_account.c.id == user_id)
                .values(totp_secret=secret)
            )

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('totp_pending_at')
        batch_op.drop_column('totp_pending_sealed')
        batch_op.drop_column('totp_secret_sealed')
