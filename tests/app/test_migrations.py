"""Migrations: one head, upgrade of an empty database matches the models exactly,
downgrade to base works. Runs on the configured database (PostgreSQL in CI)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app.extensions import db


def test_single_head(_app):
    with _app.app_context():
        config = _app.extensions["migrate"].migrate.get_config()
        assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_upgrade_matches_models_and_downgrade_to_base(tmp_path_factory):
    from tests.conftest import build_app, dispose

    app = build_app(tmp_path_factory, "migrations")  # runs `flask db upgrade` on an empty db
    with app.app_context():
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, db.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:
                triggers = (
                    connection.exec_driver_sql(
                        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass "
                        "AND NOT tgisinternal"
                    )
                    .scalars()
                    .all()
                )
            assert set(triggers) == {"audit_event_append_only", "audit_event_no_truncate"}
        downgrade(revision="base")
        tables = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert tables == set()
        upgrade()
        assert "audit_event" in inspect(db.engine).get_table_names()
    dispose(app)
