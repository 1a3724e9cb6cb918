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
