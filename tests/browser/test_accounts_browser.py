"""In a real browser: a company signs up, confirms its e-mail, signs in, reads Korean;
demo staff sign in with their second factor in all three languages."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import expect

from app.centres.models import TradingCentre
from app.extensions import db
from tests.factories import PASSWORD, valid_uscc


def test_bidder_signs_up_confirms_signs_in_and_switches_to_korean(
    live_app, live_server, page, outbox
):
    with live_app.app_context():
        centre = TradingCentre(code="BRW", name="Browser City Centre", level="city")
        db.session.add(centre)
        db.session.commit()

    page.goto(live_server + "/")
    page.get_by_role("button", name="Register a company").first.click()
    page.get_by_label("Company name").fill("Playwright Paving Co., Ltd.")
    page.get_by_label("Unified social credit code").fill(valid_uscc(880001))
    page.get_by_label("Legal representative").fill("Chen Yi")
    page.get_by_label("Your name").fill("Chen Er")
    page.get_by_label("Phone").fill("+86 571 5555 0101")
    page.get_by_label("Trading centre").select_option(label="Browser City Centre (BRW)")
    page.get_by_label("E-mail").fill("chen@paving.example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()

    assert len(outbox) == 1 and outbox[0].to == ["chen@paving.example"]
    link = re.search(r"https?://\S+", outbox[0].body).group(0)
    page.goto(link)
    expect(page.get_by_text("Your e-mail address is confirmed")).to_be_visible()

    page.get_by_label("E-mail").fill("chen@paving.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Signed in: the start page; the profile is in the account menu under the name.
    expect(page.get_by_role("heading", name="Start page")).to_be_visible()
    page.locator("header .nav-wide summary", has_text="Chen Er").click()
    page.get_by_role("link", name="Profile").click()
    expect(page.locator("#company-status")).to_contain_text("Waiting for the trading centre")

    page.locator("header .nav-wide summary", has_text="English").click()
    page.get_by_role("link", name="한국어").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.get_by_role("heading", name="내 계정")).to_be_visible()
    page.locator("header .nav-wide summary", has_text="Chen Er").click()
    expect(page.get_by_role("button", name="로그아웃")).to_be_visible()


def _demo_credentials(live_app) -> dict[str, tuple[str, str | None]]:
    """Seed the `make run` demo and read back what it printed: e-mail -> (password, TOTP)."""
    from pathlib import Path

    from app.demo import seed

    with live_app.app_context():
        seed(echo=lambda text: None)
    text = (Path(live_app.instance_path) / "demo-credentials.txt").read_text()
    found = re.findall(
        r"(\S+@demo\.fairbid\.example)\s+password (\S+)(?:\s+TOTP secret (\S+))?", text
    )
    return {email: (password, totp or None) for email, password, totp in found}


def test_demo_accounts_sign_in_in_three_languages(live_app, live_server, browser):
    credentials = _demo_credentials(live_app)
    cases = [
        ("en-GB", "staff@demo.fairbid.example", "Sign in", "Verify", "Company registrations"),
        ("ko-KR", "supervisor@demo.fairbid.example", "로그인", "확인", "업체 등록 신청"),
        ("zh-CN", "admin@demo.fairbid.example", "登录", "验证", None),
    ]
    for locale, email, sign_in, verify, heading in cases:
        password, secret = credentials[email]
        context = browser.new_context(locale=locale)
        page = context.new_page()
        page.goto(live_server + "/accounts/login")
        page.locator("#email").fill(email)
        page.locator("#password").fill(password)
        page.get_by_role("button", name=sign_in).click()
        page.locator("#code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name=verify).click()
        page.goto(live_server + "/centre/companies/?status=all")
        if heading:
            expect(page.locator("h1")).to_have_text(heading)
        expect(page.get_by_text("Xinhua Supplies Co., Ltd.")).to_be_visible()
        lang = locale.split("-")[0].replace("zh", "zh-Hans")
        assert page.locator("html").get_attribute("lang") == lang
        context.close()
    # A demo bidder has no second factor.
    password, _ = credentials["bidder1@demo.fairbid.example"]
    page = browser.new_page()
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill("bidder1@demo.fairbid.example")
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/accounts/profile")
    expect(page.locator("#company-status")).to_have_text("Approved")
    page.close()
