"""`flask templates validate` prints every error with its path; `sync-builtins` installs
the shipped templates as versioned rows."""

from __future__ import annotations

from sqlalchemy import func, select

from app import tender_templates
from app.extensions import db
from app.tenders.models import TenderTemplate


def test_validate_accepts_every_builtin(runner, tmp_path):
    paths = []
    for key in tender_templates.BUILTIN_KEYS:
        path = tmp_path / f"{key}.yaml"
        path.write_text(tender_templates.builtin_template(key), encoding="utf-8")
        paths.append(str(path))
    result = runner.invoke(args=["templates", "validate", *paths])
    assert result.exit_code == 0, result.output
    assert result.output.count(": valid") == len(paths)


def test_validate_names_the_path_of_each_error(runner, tmp_path):
    text = tender_templates.builtin_template("works").replace('k: "', 'k: "x', 1)
    broken = tmp_path / "broken.yaml"
    broken.write_text(text, encoding="utf-8")
    result = runner.invoke(args=["templates", "validate", str(broken)])
    assert result.exit_code == 1
    assert "price.params.k" in result.output


def test_sync_builtins_is_idempotent(runner, app):
    assert runner.invoke(args=["templates", "sync-builtins"]).exit_code == 0
    assert runner.invoke(args=["templates", "sync-builtins"]).exit_code == 0
    count = db.session.scalar(
        select(func.count(TenderTemplate.id)).where(TenderTemplate.centre_id.is_(None))
    )
    assert count == len(tender_templates.BUILTIN_KEYS)
