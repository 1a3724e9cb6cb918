"""The results' job: the result letters of an awarded or failed tender (seconds of
WeasyPrint and signing per letter, so never in a request). It commits its own work, letter
by letter, and a rerun makes only the missing ones."""

from __future__ import annotations

import logging

from flask import current_app

from app.extensions import db
from app.results.letters import make_letters
from app.tasks import enqueue_after_commit, in_app_context

log = logging.getLogger(__name__)


@in_app_context
def generate_result_letters(tender_id: int, locale: str = "en") -> int:
    """RQ job: the result letters of an awarded or failed tender."""
    try:
        made = make_letters(tender_id, locale, after_each=db.session.commit)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("result letters of tender %s failed; the job can be rerun", tender_id)
        raise
    log.info("tender %s: %d result letter(s) made", tender_id, made)
    return made


def enqueue_letters(tender_id: int, locale: str | None = None) -> None:
    """Queue the letters once the transaction that awarded or failed the tender commits."""
    enqueue_after_commit(
        generate_result_letters,
        tender_id,
        locale or current_app.config["BABEL_DEFAULT_LOCALE"],
    )
