"""Transactional e-mail, rendered in the recipient's language now, sent by a job after
the commit."""

from __future__ import annotations

from flask import render_template
from flask_babel import force_locale

from app.tasks import enqueue_after_commit, send_email


def send_after_commit(to: str, subject, template: str, locale: str | None = None, **context):
    """Render the message in the recipient's language now (inside the request, so links are
    absolute and correct) and hand it to the queue once the transaction commits."""
    with force_locale(locale or "en"):
        body = render_template(f"email/{template}.txt", **context)
        subject = str(subject)
    enqueue_after_commit(send_email, to, subject, body)
