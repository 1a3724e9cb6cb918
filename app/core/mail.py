"""Transactional e-mail, rendered in the recipient's language and sent after commit."""

from __future__ import annotations

from flask import render_template
from flask_babel import force_locale
from flask_mailman import EmailMessage

from app.core.transaction import after_commit
from app.extensions import db


def send_after_commit(to: str, subject, template: str, locale: str | None = None, **context):
    """Queue an e-mail that goes out only if the current transaction commits."""

    def send() -> None:
        with force_locale(locale or "en"):
            body = render_template(f"email/{template}.txt", **context)
            EmailMessage(subject=str(subject), body=body, to=[to]).send()

    send.__name__ = f"send_{template}"
    # Rendering inside the request keeps url_for(_external=True) correct.
    after_commit(db.session(), send)
