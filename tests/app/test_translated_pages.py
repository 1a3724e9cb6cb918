"""Every page of the permission walk, rendered in Korean and in Chinese for every role that
may see it, shows no English words outside a short allow-list.

Visible text (and the accessible names people read: title, aria-label, placeholder, alt) is
extracted with an HTML parser; scripts, styles and code (hashes, fingerprints, commands) are
left out. An English word is an ASCII word of 3+ letters that is not on the allow-list
(proper nouns, standards, file formats) and not part of data the world's users typed in
(titles, names, e-mail addresses: read from the database)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import String, Text, select

from app.extensions import db
from app.i18n import LANGUAGE_COOKIE
from tests.app.expectations import ROLES, merged
from tests.factories.walk import build_world, clients_by_role, url_args

EXPECTED = merged()

# Proper nouns, standards, formats and units that stay as they are in every language.
ALLOWED = {
    # the product, standards, formats and tools named in sentences
    "fairbid", "api", "json", "pdf", "html", "csv", "zip", "svg", "sha", "hmac", "hpke",
    "totp", "pades", "ocds", "rss", "atom", "ccc", "iso", "utc", "uscc", "openapi", "pem",
    "yaml", "markdown", "word", "excel", "python",
    # the Cardinal red-flag indicators (a methodology's name)
    "cardinal",
    # the language picker names English in English
    "english",
}  # fmt: skip
WORD = re.compile(r"(?<![A-Za-z0-9_@./-])[A-Za-z]{3,}(?!\.?[A-Za-z0-9_@/-])")
# Commands quoted in translated sentences ("made by python -m bidding seal").
COMMAND = re.compile(r"python -m [a-z_.]+(?: [a-z-]+)?")
SKIPPED_TAGS = {"script", "style", "code", "pre", "kbd", "samp", "svg", "template", "textarea"}
READ_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")
# Columns that hold what people typed in (shown as typed, in their own language).
DATA_COLUMNS = {
    "title", "name", "full_name", "description", "question", "answer", "alias", "email",
    "filename", "legal_representative", "contact_name", "procuring_entity", "reference",
    "code", "number", "issuer",
}  # fmt: skip


class VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIPPED_TAGS:
            self._skipping += 1
        values = dict(attrs)
        for name in READ_ATTRIBUTES:
            if values.get(name) and not self._skipping:
                self.parts.append(values[name])
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"])

    def handle_endtag(self, tag):
        if tag in SKIPPED_TAGS and self._skipping:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


def english_words(text: str, allowed: set[str]) -> set[str]:
    return {w for w in WORD.findall(COMMAND.sub(" ", text)) if w.lower() not in allowed}


def typed_in_words() -> set[str]:
    """Every word stored in a column people type into: the pages show these as typed."""
    words: set[str] = set()
    for table in db.metadata.sorted_tables:
        columns = [
            c for c in table.columns if c.name in DATA_COLUMNS and isinstance(c.type, String | Text)
        ]
        for column in columns:
            for value in db.session.scalars(select(column).where(column.is_not(None))):
                words.update(w.lower() for w in re.findall(r"[A-Za-z]+", str(value)))
    return words


@pytest.fixture
def world(app, make_centre, make_company, make_user, make_tender):
    return build_world(make_centre, make_company, make_user, make_tender)


def page_paths(app, world):
    """(endpoint, path) of every GET page of the walk (no API, no files, no sign-out)."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.rule.startswith("/api/"):
            continue
        if rule.endpoint in ("static", "accounts.logout", "main.set_language"):
            continue
        yield rule.endpoint, rule.build(url_args(rule, world), append_unknown=False)[1]


@pytest.mark.parametrize("language", ["ko", "zh_Hans"])
def test_every_page_is_translated(app, world, language):
    clients, _tokens = clients_by_role(app, world)
    allowed = ALLOWED | typed_in_words()
    found: dict[str, set[str]] = {}
    pages = 0
    for endpoint, path in page_paths(app, world):
        for role in ROLES:
            if role not in EXPECTED[endpoint]:
                continue
            client = clients[role]
            client.set_cookie(LANGUAGE_COOKIE, language)
            response = client.get(path)
            if response.status_code != 200 or response.mimetype != "text/html":
                response.close()  # streams (live events) are not read
                continue
            body = response.get_data(as_text=True)
            response.close()
            pages += 1
            words = english_words(visible_text(body), allowed)
            if words:
                found.setdefault(f"{path} as {role}", set()).update(words)
    assert pages > 40, f"only {pages} pages rendered"
    report = "\n".join(f"{page}: {' '.join(sorted(words))}" for page, words in found.items())
    assert found == {}, f"English words on {len(found)} {language} pages:\n{report}"


def test_the_extraction_finds_english_and_skips_code():
    html = (
        "<p>입찰 <b>pending</b> 580 Bytes</p><code>sha256 deadbeef</code>"
        '<input type="submit" value="Save"><span title="Download">↓</span>'
        "<script>var opened = 1;</script>"
    )
    assert english_words(visible_text(html), ALLOWED) == {"pending", "Bytes", "Save", "Download"}
