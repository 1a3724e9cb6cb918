"""Whole pages for signed-out visitors, kept in the cache (issue 18: rendering the layout
was two thirds of a cached announcement list's time).

For a visitor who is not signed in and has no message waiting, the layout depends only on
the language, the address (the language links carry it) and Redis being up; its one
moving part is the footer's server time. The page is rendered once with a fixed moment in
the footer, that `<time>` element is replaced by a mark, and each request puts the current
time back in: the same bytes as a fresh render (both are the template's own formatting).
Anyone signed in, or with a flash message in the session, gets the layout rendered afresh.

`SignedOutPages` serves those stored pages before Flask's request machinery runs (issue 18:
a cached hit still cost ~410 µs of CPU in Flask's context, hooks, locale selection and
headers, against 38 µs for a bare endpoint). It answers only requests that Flask itself has
already answered with a stored whole page *for the same request signature*: the method,
address (path, query, host, scheme, X-Forwarded-Proto, script root) and the two inputs of
the locale (language cookie, Accept-Language), with no session or remember-me cookie and no
body. From that Flask answer it keeps the status, the headers (security headers, CSP,
Vary, cache state), the page's Redis key and the locale; it then fetches the page with one
MGET (generation and page, as the view does), puts the server time in, and answers with
those headers and the new Content-Length. Everything Flask decides from the request is a
function of that signature, so the answer is the one Flask would give; what Flask decides
from the app's state is checked each time: Redis known to be up (`redis_known_available`,
no round trip; when unknown, Flask asks), no rate limit applying to the endpoint, the page
stored under the current generation. Anything else (a miss, a Redis error, a header set
Flask never answered) goes to Flask. The layer runs inside the trusted-host check and
ProxyFix (installed before them in the app factory), so a refused host never reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel import Locale
from flask import Flask, current_app, render_template, request, session
from flask_babel import get_locale
from flask_login.config import COOKIE_NAME
from markupsafe import escape
from werkzeug.http import parse_cookie

from app.core.cache import GENERATION_KEY, current_generation, current_value
from app.core.formatting import format_moment
from app.core.request_hooks import NO_LIMIT_APPLIES
from app.core.types import utcnow
from app.i18n import LANGUAGE_COOKIE
from app.web import redis_known_available

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

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
    return _server_time(moment, get_locale(), current_app.config["BABEL_DEFAULT_TIMEZONE"])


def _server_time(moment: datetime, locale: Locale, zone: str) -> str:
    key = (str(locale), zone, moment.replace(microsecond=0))
    text = _texts.get(key)
    if text is None:
        if len(_texts) > 256:
            _texts.clear()
        text = str(escape(format_moment(moment, "medium", ZoneInfo(zone), locale)))
        _texts[key] = text
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


# --- serving them before Flask -------------------------------------------------------------

# Set by the view on the request's environ when it answered with a stored whole page.
SERVED = "fairbid.whole_page"
_SIGNATURES = 1024  # remembered request signatures per process (then forgotten, relearnt)


def note_whole_page_served(key: str, locale: str) -> None:
    """Tell `SignedOutPages` that this request was answered with the whole page stored under
    `key` (Redis) in `locale`."""
    request.environ[SERVED] = (key, locale, request.endpoint)


@dataclass(frozen=True)
class _Answer:
    """What Flask answered to one request signature with a stored whole page."""

    status: str
    headers: tuple[tuple[str, str], ...]
    key: str
    locale: Locale
    endpoint: str


class SignedOutPages:
    """The WSGI layer of the module's docstring."""

    def __init__(self, wsgi_app: WSGIApplication, app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.answers: dict[tuple, _Answer] = {}
        # The last page read per key, as (generation, value) read and the bytes around MARK:
        # the same value read again is not decoded and searched again.
        self.split: dict[str, tuple[bytes | None, bytes, bytes, bytes]] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        signature = self._signature(environ)
        if signature is None:
            return self.wsgi_app(environ, start_response)
        answer = self.answers.get(signature)
        if answer is not None:
            try:
                body = self._page(answer)
            except Exception:  # never an error page from here: Flask answers instead
                log.debug("signed-out page layer: falling through", exc_info=True)
                body = None
            if body is not None:
                length = str(len(body))
                start_response(
                    answer.status,
                    [
                        (name, length if name == "Content-Length" else text)
                        for name, text in answer.headers
                    ],
                )
                return [] if signature[0] == "HEAD" else [body]
        return self._learn(signature, environ, start_response)

    def _signature(self, environ: WSGIEnvironment) -> tuple | None:
        """Everything Flask's answer depends on, for a request this layer may serve."""
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return None
        if environ.get("CONTENT_LENGTH") not in (None, "", "0"):
            return None  # a body: Flask parses and checks it
        if "HTTP_TRANSFER_ENCODING" in environ:
            return None
        language = None
        header = environ.get("HTTP_COOKIE")
        if header:
            config = self.app.config
            cookies = parse_cookie(header)
            if config["SESSION_COOKIE_NAME"] in cookies:
                return None
            if config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME) in cookies:
                return None
            language = cookies.get(LANGUAGE_COOKIE)
        return (
            method,
            environ.get("PATH_INFO"),
            environ.get("QUERY_STRING", ""),
            environ.get("SCRIPT_NAME", ""),
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
            environ.get("wsgi.url_scheme"),
            environ.get("HTTP_X_FORWARDED_PROTO"),
            language,
            environ.get("HTTP_ACCEPT_LANGUAGE"),
        )

    def _page(self, answer: _Answer) -> bytes | None:
        """The stored page with the current server time, or None (then Flask answers)."""
        app = self.app
        if not redis_known_available(app):
            return None
        no_limit_applies: Callable[[str], bool] | None = app.extensions.get(NO_LIMIT_APPLIES)
        if no_limit_applies is None or not no_limit_applies(answer.endpoint):
            return None
        generation, value = app.extensions["fairbid_redis"].mget(GENERATION_KEY, answer.key)
        split = self.split.get(answer.key)
        if split is None or split[0] != generation or split[1] != value:
            marked = current_value(current_generation(generation), value)
            if marked is None or MARK not in marked:
                return None
            head, _mark, tail = marked.partition(MARK)
            split = (generation, value, head.encode("utf-8"), tail.encode("utf-8"))
            self.split[answer.key] = split
        element = _server_time(utcnow(), answer.locale, app.config["BABEL_DEFAULT_TIMEZONE"])
        return b"".join((split[2], element.encode("utf-8"), split[3]))

    def _learn(
        self, signature: tuple, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Flask answers; if it answered with a stored whole page, remember how."""
        seen: list = []

        def capture(status, headers, exc_info=None):
            seen[:] = [status, headers]
            return start_response(status, headers, exc_info)

        result = self.wsgi_app(environ, capture)
        served = environ.get(SERVED)
        if served is None or not seen or not seen[0].startswith("200 "):
            return result
        status, headers = seen
        names = {name.lower() for name, _value in headers}
        if "set-cookie" in names or "content-length" not in names:
            return result  # something per request (or a stream): not replayed
        key, locale, endpoint = served
        if len(self.answers) >= _SIGNATURES:
            self.answers.clear()
            self.split.clear()
        self.answers[signature] = _Answer(
            status, tuple(headers), key, Locale.parse(locale), endpoint
        )
        return result


def install(app: Flask) -> None:
    """Put the layer right around Flask (call before the trusted-host check and ProxyFix
    wrap the app, so they run first)."""
    app.wsgi_app = SignedOutPages(app.wsgi_app, app)
