"""Fault drills (marker `drills`, `make drills`): the real PostgreSQL of this machine, real
gunicorn servers and, for the Redis drill, a Redis server started for the test.

The data lives in a PostgreSQL schema of the module's own and is committed for real: a
drill's `app` fixture replaces the rolled-back one of tests/conftest.py, so the factories
(`make_tender`, `make_user`, ...) commit rows a gunicorn server started by the drill sees.
Every drill skips cleanly when DATABASE_URL is not PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.conftest import build_app, dispose, using_postgres


@pytest.fixture(scope="module")
def drill_settings() -> dict:
    """Settings of the module's drill app (a module overrides this fixture)."""
    return {}


@pytest.fixture(scope="module")
def drill_app(tmp_path_factory, request, drill_settings):
    if not using_postgres():
        pytest.skip("fault drills run on PostgreSQL only (set DATABASE_URL=postgresql://...)")
    name = "drill_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    app = build_app(tmp_path_factory, name, **drill_settings)
    yield app
    dispose(app)


@pytest.fixture
def app(drill_app):
    """The drill's app in an app context; what a drill writes is committed."""
    from app.extensions import db

    with drill_app.app_context():
        yield drill_app
        db.session.remove()
