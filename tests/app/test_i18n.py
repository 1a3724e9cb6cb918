"""English, Korean and Simplified Chinese: chosen by Accept-Language, then by the picker;
dates, numbers and money formatted for the locale."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from flask_babel import force_locale

from app.i18n import money, number


@pytest.mark.parametrize(
    ("header", "lang", "text"),
    [
        ("en-GB,en;q=0.9", "en", "Sign in"),
        ("ko-KR,ko;q=0.9", "ko", "로그인"),
        ("zh-CN,zh;q=0.9", "zh-Hans", "登录"),
        ("zh", "zh-Hans", "登录"),
        ("fr-FR", "en", "Sign in"),
    ],
)
def test_first_visit_follows_accept_language(client, header, lang, text):
    page = client.get("/accounts/login", headers={"Accept-Language": header})
    html = page.data.decode()
    assert f'<html lang="{lang}">' in html
    assert text in html


def test_picker_choice_is_remembered_over_the_browser(client):
    response = client.get("/language/ko?next=/accounts/login")
    assert response.status_code == 302 and response.headers["Location"] == "/accounts/login"
    assert "fairbid_lang=ko" in response.headers["Set-Cookie"]
    page = client.get("/accounts/login", headers={"Accept-Language": "zh-CN"}).data.decode()
    assert '<html lang="ko">' in page and "로그인" in page


def test_error_pages_are_translated(client):
    client.get("/language/zh_Hans")
    page = client.get("/no/such/page").data.decode()
    assert "404 · 页面不存在" in page
    assert "此地址下没有任何内容。" in page


@pytest.mark.parametrize(
    ("locale", "expected_money", "expected_number"),
    [
        ("en", "CN¥1,234,567.50", "1,234,567.5"),
        ("ko", "CN¥1,234,567.50", "1,234,567.5"),
        ("zh_Hans", "¥1,234,567.50", "1,234,567.5"),
    ],
)
def test_money_and_numbers_by_locale(app, locale, expected_money, expected_number):
    with app.test_request_context(), force_locale(locale):
        assert money(Decimal("1234567.50")) == expected_money
        assert number(Decimal("1234567.5")) == expected_number


def test_dates_by_locale_in_the_centre_time_zone(app):
    from flask_babel import format_datetime

    moment = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)  # 09:30 in Asia/Shanghai
    with app.test_request_context():
        with force_locale("en"):
            assert "9:30" in format_datetime(moment, "medium")
        with force_locale("ko"):
            assert "2026. 11. 27." in format_datetime(moment, "medium")
        with force_locale("zh_Hans"):
            assert "2026年11月27日" in format_datetime(moment, "medium")


@pytest.mark.parametrize(
    ("locale", "medium", "long"),
    [
        ("en", "2 Dec 2026 00:52", "2 Dec 2026 00:52:07 (UTC+8)"),
        ("ko", "2026. 12. 2. 00:52", "2026. 12. 2. 00:52:07 (UTC+8)"),
        ("zh_Hans", "2026年12月2日 00:52", "2026年12月2日 00:52:07 (UTC+8)"),
    ],
)
def test_one_moment_style_per_language_in_the_centre_zone(app, locale, medium, long):
    from flask import render_template_string

    moment = datetime(2026, 12, 1, 16, 52, 7, tzinfo=UTC)  # 00:52:07 in Asia/Shanghai
    with app.test_request_context(), force_locale(locale):
        for form in ("short", "medium"):
            assert render_template_string("{{ m|datetimeformat(f) }}", m=moment, f=form) == medium
        for form in ("long", "full", "precise"):
            assert render_template_string("{{ m|datetimeformat(f) }}", m=moment, f=form) == long
        # A naive moment is UTC, as stored.
        naive = moment.replace(tzinfo=None)
        assert render_template_string("{{ m|datetimeformat }}", m=naive) == medium


@pytest.mark.parametrize(
    ("locale", "small", "large"),
    [
        ("en", "580 bytes", "1.2 MB"),
        ("ko", "580바이트", "1.2메가바이트"),
        ("zh_Hans", "580字节", "1.2兆字节"),
    ],
)
def test_sizes_in_the_viewers_language(app, locale, small, large):
    from flask import render_template_string

    with app.test_request_context(), force_locale(locale):
        assert render_template_string("{{ 580|filesizeformat }}", m=None) == small
        assert render_template_string("{{ file_size(1234567) }}") == large


def test_labels_translate_stored_codes_and_keep_unknown_ones(app):
    from flask import render_template_string

    page = (
        "{{ 'opened'|label('tender_status') }}|{{ 'pending'|label('company_status') }}|"
        "{{ 'county'|label('centre_level') }}|{{ 'sealing_record'|label('document_kind') }}|"
        "{{ 'imported'|label('choice') }}|{{ 'member-2'|label('member') }}|"
        "{{ 'tender.published'|label('audit_action') }}|{{ 'expert'|label('role') }}|"
        "{{ 'no_such_code'|label('tender_status') }}|{{ none|label('role') }}"
    )
    with app.test_request_context():
        with force_locale("zh_Hans"):
            assert render_template_string(page) == (
                "已开标|待审核|县级|封存记录|进口|委员 2|招标已发布|评标专家|no_such_code|"
            )
        with force_locale("en"):
            assert render_template_string(page).startswith("Bids opened|Awaiting approval|County")


@pytest.mark.parametrize(
    ("value", "shown"), [("87.3333333333333333333333333", "87.33"), (90, "90.00")]
)
def test_scores_to_their_precision(app, value, shown):
    from flask import render_template_string

    with app.test_request_context(), force_locale("en"):
        assert render_template_string("{{ v|score }}", v=value) == shown


def test_a_stored_english_reason_is_read_back_translated(app):
    from flask import render_template_string

    stored = "2 bid(s) received by the deadline; at least 3 are needed"
    with app.test_request_context(), force_locale("ko"):
        shown = render_template_string("{{ r|label('opening_reason') }}", r=stored)
    assert shown == "마감까지 접수된 입찰서 2건, 최소 3건이 필요합니다"
    with app.test_request_context(), force_locale("ko"):
        other = render_template_string("{{ r|label('opening_reason') }}", r="something else")
    assert other == "something else"


@pytest.mark.parametrize("locale", ["en", "ko", "zh_Hans"])
def test_page_formatter_writes_what_centre_time_writes(app, locale):
    """The list page's formatter (patterns looked up once) matches `centre_time` exactly."""
    from types import SimpleNamespace

    from app.core.formatting import centre_time, centre_time_formatter

    moments = [
        datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 0, 59, 59),  # naive: UTC
        datetime(2026, 12, 31, 23, 0, tzinfo=UTC),  # another day in the centre's zone
        None,
    ]
    centres = [None, SimpleNamespace(timezone="Europe/Berlin"), SimpleNamespace(timezone="")]
    with app.test_request_context(), force_locale(locale):
        formatter = centre_time_formatter()
        for moment in moments:
            for centre in centres:
                for form in ("short", "medium", "long", "full"):
                    assert formatter(moment, centre, form) == centre_time(moment, centre, form)
        assert formatter(moments[0], None) == centre_time(moments[0], None)


@pytest.mark.parametrize("locale", ["en", "ko", "zh_Hans"])
def test_page_gettext_renders_what_flask_babel_renders(app, locale):
    """The list page's per-render `gettext`/`ngettext` (translations resolved once) write
    what flask-babel's callables write: translated, autoescaped, %-formatted, plurals."""
    from flask import render_template_string

    from app.i18n import page_gettext

    source = (
        '{{ _("Sign in") }}|{{ _("Page %(page)s of %(pages)s", page="<b>", pages=2) }}|'
        '{{ ngettext("%(num)d tender found.", "%(num)d tenders found.", 1) }}|'
        '{{ ngettext("%(num)d tender found.", "%(num)d tenders found.", 7) }}|'
        '{{ _("100%% <sure>") }}'
    )
    with app.test_request_context(), force_locale(locale):
        expected = render_template_string(source)
        assert render_template_string(source, **page_gettext()) == expected
    assert "&lt;b&gt;" in expected and "7" in expected
    assert ("Sign in" in expected) == (locale == "en")
