"""Whole pages for signed-out visitors, kept in the cache (issue 18: rendering the layout
was two thirds of a cached announcement list's time).

For a visitor who is not signed in and has no message waiting, the layout depends only on
the language, the address (the language links carry it) and Redis being up; its one
moving part is the footer's server time. The page is rendered once with a fixed moment in
the footer, that `<time>` element is replaced by a mark, and each request puts the current
time back in: the same bytes as a fresh render (both are the template's own formatting).
Anyone signed in, or with a flash message in the session, gets the layout rendered afresh.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, render_template, request, session
from flask_babel import get_locale
from flask_login.config import COOKIE_NAME
from markupsafe import escape

from app.core.formatting import moment_text
from app.core.types import utcnow

MARK = "<!--fairbid:server-time-->"
# Never a real server time: the footer rendered with it is found and replaced by MARK.
_FIXED_MOMENT = datetime(2000, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
_texts: dict[tuple[str, str, datetime], str] = {}


def anonymous_visitor() -> bool:
    """Nobody signed in (no session user, no remember-me cookie) and no flash message."""
    remember = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME)
    return (
        "_user_id" not in session and "_flashes" not in session and remember not in request.cookies
    )


def server_time(moment: datetime) -> str:
    """The footer's `<time>` element as base.html writes it (text memoised per second)."""
    zone = current_app.config["BABEL_DEFAULT_TIMEZONE"]
    key = (str(get_locale()), zone, moment.replace(microsecond=0))
    text = _texts.get(key)
    if text is None:
        if len(_texts) > 256:
            _texts.clear()
        text = _texts[key] = str(escape(moment_text(moment, "medium")))
    return f'<time datetime="{escape(moment.isoformat())}">{text}</time>'


def render_marked(template: str, **context) -> str | None:
    """The page with MARK in place of the footer's server time; None if the layout does not
    show it exactly once (then the page is not cached)."""
    page = render_template(template, now_utc=lambda: _FIXED_MOMENT, **context)
    element = server_time(_FIXED_MOMENT)
    if page.count(element) != 1:
        return None
    return page.replace(element, MARK)


def fill(marked: str) -> str:
    """A marked page with the current server time."""
    return marked.replace(MARK, server_time(utcnow()), 1)
