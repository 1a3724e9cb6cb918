"""The user guide (docs/guide/): one page per role in English, Korean and Chinese, with the
screenshots `make guide` takes from the demo. Served read-only to everyone, in the viewer's
language (English when a page is not translated)."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, abort, render_template, send_from_directory
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from markdown_it import MarkdownIt
from markupsafe import Markup
from werkzeug.wrappers import Response

import config

bp = Blueprint("guide", __name__, url_prefix="/guide")
GUIDE_DIR = config.BASE_DIR / "docs" / "guide"
# The guide's pages, in the order of a tender's life.
PAGES = {
    "bidder": _l("Bidders"),
    "staff": _l("Trading-centre staff"),
    "custodian": _l("Key custodians"),
    "expert": _l("Evaluation experts"),
    "supervisor": _l("Supervisors"),
    "admin": _l("Administrators"),
}
_IMAGE = re.compile(r"^[a-z]+-[a-z]+-(en|ko|zh)\.png$")
_PAGE_LINK = re.compile(r'href="([a-z]+)\.(en|ko|zh)\.md"')


def guide_language() -> str:
    return {"ko": "ko", "zh": "zh"}.get(get_locale().language, "en")


def page_source(page: str, language: str) -> Path:
    translated = GUIDE_DIR / f"{page}.{language}.md"
    return translated if translated.is_file() else GUIDE_DIR / f"{page}.en.md"


def render_page(path: Path) -> Markup:
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(path.read_text())
    # Links between guide pages (written for reading on the repository) stay in the app.
    return Markup(_PAGE_LINK.sub(r'href="\1"', html))  # noqa: S704 (our docs, raw HTML off)


@bp.route("/")
def index() -> str:
    return render_template("main/guide.html", pages=PAGES, body=None, current=None)


@bp.route("/<page>")
def page(page: str) -> str:
    if page not in PAGES:
        abort(404)
    body = render_page(page_source(page, guide_language()))
    return render_template("main/guide.html", pages=PAGES, body=body, current=page)


@bp.route("/img/<name>")
def image(name: str) -> Response:
    if not _IMAGE.match(name) or not (GUIDE_DIR / "img" / name).is_file():
        abort(404)
    return send_from_directory(GUIDE_DIR / "img", name, max_age=3600)
