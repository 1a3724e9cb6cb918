"""Keyboard only, on the demo seed: signing in (with a TOTP code), sealing and submitting a
bid in the browser, and scoring a sheet. Every field is reached with Tab (never clicked or
focused by script) and every form is sent with Enter."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import expect
from sqlalchemy import select

from app.accounts.models import User
from app.extensions import db
from tests.factories import PASSWORD
from tests.factories.axe import BLOCKING, run_axe

MAX_TABS = 150


def tab_to(page, selector: str) -> None:
    """Press Tab until the element matching `selector` has the focus."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


def keyboard_sign_in(page, server: str, email: str, secret: str | None) -> None:
    page.goto(server + "/accounts/login")
    # The first key stop skips the navigation.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('skip-link')")
    page.keyboard.press("Enter")
    tab_to(page, "#email")
    page.keyboard.type(email)
    tab_to(page, "#password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    if secret:
        page.wait_for_url(re.compile(r".*/accounts/two-factor(#.*)?$"))
        tab_to(page, "#code")
        page.keyboard.type(pyotp.TOTP(secret).now())
        page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/start(#.*)?$"))  # the skip link's #content may stay


def test_sign_in_seal_a_bid_and_score_with_the_keyboard_only(demo_app, demo_server, demo, browser):
    # A bidder signs in and seals a bid for the open goods tender it registered for.
    context = browser.new_context(locale="en-GB", viewport={"width": 390, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    keyboard_sign_in(page, demo_server, demo["people"]["bidder"], None)
    expect(page.locator("h1")).to_have_text("Start page")
    tender_id = demo["ids"]["goods"]
    bid_link = f"#start-to-bid a[href='/bids/tenders/{tender_id}']"
    tab_to(page, bid_link)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/bids/tenders/{tender_id}")
    # Sent empty: each required field says what is missing next to it, and the page with
    # its errors still passes axe.
    tab_to(page, "#seal-submit")
    page.keyboard.press("Enter")
    expect(page.locator("small.field-error").first).to_be_visible()
    first_error = page.locator("small.field-error").first.get_attribute("id")
    described = page.evaluate("document.activeElement.getAttribute('aria-describedby')")
    assert first_error in (described or "").split()
    blocking = [v for v in run_axe(page) if v["impact"] in BLOCKING]
    assert blocking == [], blocking
    page.goto(page.url)  # a fresh form; the focus starts at the top again
    fields = page.request.get(f"{demo_server}/api/v1/tenders/{tender_id}/commercial-fields").json()[
        "fields"
    ]
    for field in fields:
        tab_to(page, f"#commercial-{field['key']}")
        kind = field["type"]
        if kind == "choice":
            for _ in field["choices"]:
                page.keyboard.press("ArrowDown")
        elif kind == "date":
            page.keyboard.type("15012027")  # dd/mm/yyyy in en-GB
        elif kind == "money":
            page.keyboard.type("654321.00")
        elif kind == "integer":
            page.keyboard.type(str(int(field.get("min", 1)) + 1))
        elif kind == "decimal":
            page.keyboard.type(str(field.get("min", "1.5")))
        else:
            page.keyboard.type("Keyboard desk")
    tab_to(page, "#seal-submit")
    page.keyboard.press("Enter")
    expect(page.locator("#seal-receipt")).to_be_visible(timeout=60_000)
    expect(page.locator("#bid-received")).to_contain_text("Your bid no. 1 for this tender")
    # The receipt link has the focus: the next step is one key away.
    assert page.evaluate("document.activeElement.id") == "seal-receipt-download"
    # Coming back later: the form is still locked; replacing the bid is a deliberate key.
    page.reload()
    expect(page.locator("#seal-receipt")).to_be_visible()
    expect(page.locator("#seal-submit")).to_be_hidden()
    tab_to(page, "#seal-replace")
    page.keyboard.press("Enter")
    expect(page.locator("#seal-submit")).to_be_visible()
    expect(page.locator("#seal-commercial [data-field]").first).to_be_enabled()
    context.close()

    # An expert of the panel signs in with a TOTP code and scores every bid of the sheet.
    with demo_app.app_context():
        expert = db.session.scalar(select(User).where(User.email == demo["people"]["expert"]))
        secret = expert.totp_secret
        db.session.remove()
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    keyboard_sign_in(page, demo_server, demo["people"]["expert"], secret)
    tender_id = demo["ids"]["eval"]
    sheet = f"/scoring/tenders/{tender_id}"
    tab_to(page, f"#start-sheets a[href='{sheet}']")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{sheet}")
    codes = page.locator("table th[scope=row] a").all_inner_texts()
    assert codes
    for code in codes:
        page.goto(demo_server + sheet)
        tab_to(page, f"a[href='{sheet}/bids/{code}']")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**{sheet}/bids/{code}")
        inputs = page.evaluate(
            "Array.from(document.querySelectorAll('main form input[id^=score_]')).map(i => i.id)"
        )
        assert inputs
        for input_id in inputs:
            tab_to(page, f"#{input_id}")
            page.keyboard.type("1")
        tab_to(page, "main form [type=submit]")
        page.keyboard.press("Enter")
        page.wait_for_load_state()
        expect(page.locator(".notice.error")).to_have_count(0)
    page.goto(demo_server + sheet)
    tab_to(page, f"form[action='{sheet}/lock'] [type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    expect(page.locator("main")).to_contain_text("locked")
    context.close()
