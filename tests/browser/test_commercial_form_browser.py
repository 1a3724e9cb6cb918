"""In a real browser: the sealing form refuses, before sealing, the commercial values the
opening would record as malformed (bidding/commercial.py): an amount longer than the
scoring file takes, Unicode digits, a price of 0, a direction-override character. Nothing
is sealed or sent; the page links the field specification the command line checks."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.test_bid_submission_browser import _fill, _offer, _published_tender
from tests.factories import PASSWORD


def test_the_form_refuses_what_the_opening_would_call_malformed(live_app, live_server, browser):
    made = _published_tender(live_app)
    tender_id, fields = made["tender_id"], made["fields"]
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(made["bidder_email"])
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.goto(f"{live_server}/bids/tenders/{tender_id}")
    requests: list[str] = []
    page.on("request", lambda r: "/uploads" in r.url and requests.append(r.url))
    typed, _ = _offer(fields, "812345.60", "Model X-1 desk")
    text_field = next((f["key"] for f in fields if f["type"] == "text"), None)
    cases = [
        ({"price": "1" + "0" * 30}, "a number of at most 24 characters"),
        ({"price": "\u0668\u0661\u0662.\u0666\u0660"}, "at most two decimals"),
        ({"price": "0.00"}, "must be greater than 0"),
    ]
    if text_field:
        cases.append(({text_field: "desk \u202e evil"}, "direction-override"))
    for change, message in cases:
        _fill(page, fields, {**typed, **change})
        page.locator("#seal-submit").click()
        expect(page.locator("#seal-errors")).to_contain_text(message)
        expect(page.locator("#seal-progress")).to_have_attribute("value", "0")
    assert requests == []
    # The specification the command line takes is linked from the form.
    link = page.locator("#commercial-fields-spec")
    href = link.get_attribute("href")
    assert href == f"/api/v1/tenders/{tender_id}/commercial-fields"
    spec = page.request.get(live_server + href).json()
    assert spec["format"] == "fairbid-commercial-fields/1"
    assert [f["key"] for f in spec["fields"]] == [f["key"] for f in fields]
    context.close()
