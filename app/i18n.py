"""Languages: English (default), Korean, Simplified Chinese. Dates, numbers and money are
formatted for the viewer's locale; the picker's choice is kept in a cookie."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from flask import Flask, current_app, has_request_context, request
from flask_babel import format_currency, format_decimal, get_locale, get_translations
from jinja2 import pass_context
from markupsafe import Markup

from app.core.formatting import file_size, moment_text
from app.core.labels import label, member_label
from app.core.types import utcnow
from app.extensions import babel

LANGUAGE_COOKIE = "fairbid_lang"
LANGUAGE_NAMES = {"en": "English", "ko": "한국어", "zh_Hans": "简体中文"}
# Accept-Language primary tags and the catalogue each maps to.
_ACCEPT_MAP = {"en": "en", "ko": "ko", "zh": "zh_Hans"}
# Written forms browsers and people use for Simplified Chinese.
_ALIASES = {"zh": "zh_Hans", "zh-hans": "zh_Hans", "zh-cn": "zh_Hans", "zh_cn": "zh_Hans"}


def normalise_language(code: str | None) -> str | None:
    """The supported catalogue a code names, or None."""
    if not code:
        return None
    if code in current_app.config["LANGUAGES"]:
        return code
    return _ALIASES.get(code.lower())


def select_locale() -> str:
    if not has_request_context():
        # A CLI command or a job: messages in the default language (jobs force their own).
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = normalise_language(request.cookies.get(LANGUAGE_COOKIE))
    if chosen:
        return chosen
    # The choice depends on the header's text alone: parsed once per distinct header
    # (browsers send a handful), not on every request (issue 18's per-request floor).
    header = request.headers.get("Accept-Language", "")
    locale = _ACCEPTED.get(header)
    if locale is None:
        if len(_ACCEPTED) >= 512:
            _ACCEPTED.clear()
        locale = _ACCEPTED[header] = _from_accept_language()
    return locale


_ACCEPTED: dict[str, str] = {}


def _from_accept_language() -> str:
    best = request.accept_languages.best_match(list(_ACCEPT_MAP))
    if best is None:
        # "zh-CN" and friends: match on the primary tag.
        for value, _quality in request.accept_languages:
            primary = value.split("-")[0].split("_")[0].lower()
            if primary in _ACCEPT_MAP:
                best = primary
                break
    return _ACCEPT_MAP.get(best or "en", "en")


def money(value: Decimal | int | str | None, currency: str | None = None) -> str:
    if value is None:
        return ""
    return format_currency(Decimal(value), currency or current_app.config["FAIRBID_CURRENCY"])


def number(value) -> str:
    return "" if value is None else format_decimal(value)


def datetime_filter(value, form: str = "medium", rebase: bool = True) -> str:
    return moment_text(value, form or "medium")


def size_filter(value, binary: bool = False) -> str:
    return file_size(None if value is None else int(value))


def score(value, places: int = 2) -> str:
    """A score to its defined precision (two decimals unless the criterion says otherwise)."""
    if value in (None, ""):
        return ""
    quantum = Decimal(1).scaleb(-places)
    return format_decimal(Decimal(str(value)).quantize(quantum), format="#,##0." + "0" * places)


def html_lang() -> str:
    return str(get_locale()).replace("_", "-")


def page_gettext() -> dict[str, Callable]:
    """`gettext` and `ngettext` for one `render_template` call, with the request's
    translations resolved once instead of at each `_()` of the page (flask-babel's
    callables look up the context, the locale and the catalogue per call: a tenth of a
    missed announcement list, issue 18). Same semantics as Jinja's newstyle callables
    (`jinja2.ext`: autoescaped, always %-formatted, `num` set for plurals). Only for a
    render in the request's own language: not under `force_locale`."""
    translations = get_translations()
    singular, plural = translations.ugettext, translations.ungettext

    @pass_context
    def gettext(context, string: str, **variables) -> str:
        text = singular(string)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 (our own catalogues, as Jinja does)
        if not variables and "%" not in text:
            return text  # what `text % {}` gives, without Markup's formatting machinery
        return text % variables

    @pass_context
    def ngettext(context, one: str, many: str, num: int, **variables) -> str:
        variables.setdefault("num", num)
        text = plural(one, many, num)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 (our own catalogues, as Jinja does)
        return text % variables

    return {"gettext": gettext, "ngettext": ngettext}


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["number"] = number
    # One style per language for every moment and size on every page (flask-babel's and
    # Jinja's own filters replaced): app.core.formatting.
    app.jinja_env.filters["datetimeformat"] = datetime_filter
    app.jinja_env.filters["filesizeformat"] = size_filter
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["score"] = score
    app.jinja_env.filters["member_label"] = member_label
    app.jinja_env.globals.update(label=label, file_size=file_size, moment_text=moment_text)
    app.jinja_env.globals.update(LANGUAGE_NAMES=LANGUAGE_NAMES, html_lang=html_lang, now_utc=utcnow)
