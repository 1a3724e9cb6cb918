"""The announcement list's layout for signed-out visitors, rendered once per language and
kept per worker as a shell around the list (issue 18: the layout was a fifth of a page
whose search missed the cache; 24 `url_for` and ~20 `_()` per render).

For a signed-out visitor with no message waiting (`app.core.page_cache.anonymous_visitor`,
which the view checks first), the layout depends on the language, the script root, whether
Redis is up, the templates, and the address (the language links send the reader back to
it) and the server time. The shell is rendered through `page_cache.render_marked` (the
server time as its mark) with the list replaced by FRAGMENT_MARK and the address by
ADDRESS_MARK; a request puts its own address back into the language links, encoded as
`url_for` encodes it and escaped as the template escapes it, and its list in between: the
bytes `render_marked` gives for that request (tests/app/test_portal.py compares them).
The template sees a stand-in request with nothing but the address: reading anything else
of the request raises, so the layout cannot come to depend on something the key misses
(the layout is then rendered per request, and the test that checks a shell is made fails).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app, request, url_for
from flask_babel import get_locale
from markupsafe import Markup, escape

from app.core import page_cache

log = logging.getLogger(__name__)
TEMPLATE = "portal/tenders.html"
FRAGMENT_MARK = "<!--fairbid:list-->"
# Letters and hyphens only: `url_for` writes it into the links' query as it is.
ADDRESS_MARK = "fairbid-address-mark"
LINK_ENDPOINT = "main.set_language"
_MAX_SHELLS = 64


class _MarkedRequest:
    """The request as the shell's template may see it: its address, as a mark."""

    full_path = ADDRESS_MARK

    def __getattr__(self, name: str):
        # Not AttributeError: Jinja would render that as empty, silently.
        raise LookupError(f"the list's layout shell cannot depend on request.{name}")


@dataclass(frozen=True)
class Shell:
    head: str
    tail: str
    link_prefix: str  # a language link up to the address, as url_for writes it


def marked_page(fragment: str, redis_ok: bool, context: dict) -> str | None:
    """`page_cache.render_marked(TEMPLATE, fragment=fragment, ...)` for a signed-out
    visitor, from the shell; None when the layout cannot be shelled (then render it)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    environment = app.jinja_env
    key = (
        environment.get_template(TEMPLATE),
        environment.get_template("base.html"),
        str(get_locale()),
        request.script_root,
        redis_ok,
    )
    shells = app.extensions.setdefault("fairbid_portal_shells", {})
    if key in shells:
        shell = shells[key]
    else:
        shell = _render_shell(redis_ok, context)
        if len(shells) >= _MAX_SHELLS:
            shells.clear()
        shells[key] = shell
    if shell is None:
        return None
    link = url_for(LINK_ENDPOINT, code="en", next=request.full_path)
    if not link.startswith(shell.link_prefix):
        return None
    address = "next=" + str(escape(link[len(shell.link_prefix) :]))
    marked = "next=" + ADDRESS_MARK
    return shell.head.replace(marked, address) + fragment + shell.tail.replace(marked, address)


def _render_shell(redis_ok: bool, context: dict) -> Shell | None:
    try:
        page = page_cache.render_marked(
            TEMPLATE,
            fragment=Markup(FRAGMENT_MARK),  # noqa: S704 (a constant)
            request=_MarkedRequest(),
            redis_ok=redis_ok,
            **context,
        )
    except LookupError:
        # The layout reads more of the request than the address: rendered every time
        # (tests/app/test_portal.py fails, so this is found before it costs anything).
        log.warning("The list's layout reads the request beyond its address: not shelled")
        return None
    link = url_for(LINK_ENDPOINT, code="en", next=ADDRESS_MARK)
    if page is None or page.count(FRAGMENT_MARK) != 1 or not link.endswith(ADDRESS_MARK):
        return None
    # The mark only where a language link carries the address.
    if page.count(ADDRESS_MARK) != page.count("next=" + ADDRESS_MARK):
        return None
    head, tail = page.split(FRAGMENT_MARK)
    return Shell(head, tail, link[: -len(ADDRESS_MARK)])
