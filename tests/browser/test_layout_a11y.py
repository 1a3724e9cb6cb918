"""In a real browser, on the demo seed (`make run`'s data, every stage of the lifecycle):
the key pages of every role, in English, Korean and Simplified Chinese, on a phone (390 px)
and a desktop (1280 px), fit the window without scrolling the page sideways, and axe-core
(node_modules/axe-core, injected through the DevTools protocol so the page's strict CSP
stays on) finds no critical, serious or moderate violation. Run with `-s` to see axe's
counts per page."""

from __future__ import annotations

import json
import time

import pyotp
import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD
from tests.factories.axe import KEY_PAGES_FAILING, run_axe

WIDTHS = (390, 1280)
LANGUAGES = ("en", "ko", "zh_Hans")


def key_pages(role: str, ids: dict) -> list[str]:
    """The pages each role lives on."""
    if role == "anonymous":
        return [
            "/",
            "/tenders/",
            f"/tenders/{ids['open']}",
            f"/tenders/{ids['fail']}",
            f"/results/tenders/{ids['award']}",
            f"/results/tenders/{ids['fail']}",
            f"/opening/tenders/{ids['fail']}",
            "/accounts/login",
            "/accounts/signup",
        ]
    return {
        "bidder": [
            "/start",
            "/bidder/",
            "/bids/",
            f"/bids/tenders/{ids['open']}",
            f"/bids/tenders/{ids['goods']}",  # the browser sealing form (bid or none yet)
            f"/bids/tenders/{ids['closed']}",
            f"/tenders/{ids['open']}",
            "/bidder/profile",
        ],
        "staff": [
            "/start",
            "/centre/tenders/",
            f"/centre/tenders/{ids['open']}",
            f"/centre/tenders/{ids['eval']}",
            f"/centre/tenders/{ids['fail']}",
            "/centre/companies/",
            "/panels/pool",
            f"/evaluations/tenders/{ids['eval']}",
            f"/opening/tenders/{ids['closed']}",
            f"/panels/tenders/{ids['eval']}",
            f"/results/tenders/{ids['cand']}/manage",
        ],
        "custodian": ["/start", "/custody/", f"/opening/tenders/{ids['closed']}"],
        "expert": ["/start", "/panels/invitations", "/scoring/", f"/scoring/tenders/{ids['eval']}"],
        "supervisor": ["/start", "/supervision/", "/supervision/audit"],
        "admin": ["/start", "/admin/users", "/admin/centres", "/centre/tenders/"],
    }[role]


_SIGNED_IN: dict[str, dict] = {}


def sign_in(browser, server: str, email: str, secret: str | None, app=None) -> dict:
    """The browser state of a signed-in session, one per account and test run (a TOTP code
    is accepted once: another test of the run may have used this account's latest step, so
    the account forgets it first, as it would 30 s later)."""
    if email not in _SIGNED_IN:
        if app is not None and secret:
            from sqlalchemy import update

            from app.accounts.models import User
            from app.extensions import db

            with app.app_context():
                db.session.execute(update(User).where(User.email == email).values(totp_last_step=0))
                db.session.commit()
                db.session.remove()
        _SIGNED_IN[email] = _sign_in(browser, server, email, secret)
    return _SIGNED_IN[email]


def _sign_in(browser, server: str, email: str, secret: str | None) -> dict:
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.goto(server + "/accounts/login")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").last.click()
    if secret:
        page.locator("#code").fill(pyotp.TOTP(secret).at(time.time() - 30))
        page.locator("main form button[type=submit]").last.click()
    page.wait_for_load_state()
    assert "/accounts/" not in page.url, f"{email} did not sign in: {page.url}"
    state = context.storage_state()
    context.close()
    return state


def overflow(page) -> dict | None:
    """The page's width past the window, and the widest element sticking out, if any."""
    return page.evaluate(
        """() => {
          const root = document.documentElement;
          if (root.scrollWidth <= window.innerWidth) return null;
          let worst = null;
          for (const el of document.body.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.right > window.innerWidth + 1 && (!worst || r.right > worst.right)) {
              const box = el.closest('.table-wrap, pre');
              if (box && box !== el) continue;  // scrolls inside its own box
              worst = {right: Math.round(r.right), tag: el.tagName.toLowerCase(),
                       cls: String(el.className || ''),
                       text: (el.textContent || '').slice(0, 40)};
            }
          }
          return {scrollWidth: root.scrollWidth, innerWidth: window.innerWidth, worst};
        }"""
    )


def nav_on_one_line(page) -> bool:
    """The visible navigation bar's items share one row: every item overlaps every other
    vertically (a wrapped item starts below another's bottom)."""
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('header nav > ul'))
              .filter(ul => ul.offsetParent !== null)
              .flatMap(ul => Array.from(ul.children))
              .map(li => { const r = li.getBoundingClientRect(); return [r.top, r.bottom]; })"""
    )
    return bool(boxes) and all(a[0] < b[1] - 1 for a in boxes for b in boxes)


ROLES = ["anonymous", "bidder", "staff", "custodian", "expert", "supervisor", "admin"]


@pytest.mark.parametrize("role", ROLES)
def test_key_pages_fit_the_window_and_pass_axe(role, demo, demo_app, demo_server, browser):
    state = None
    if role != "anonymous":
        email, secret = demo["people"][role], demo["secrets"].get(role)
        state = sign_in(browser, demo_server, email, secret, demo_app)
    problems: list[str] = []
    counts: dict[str, dict] = {}
    for language in LANGUAGES:
        for width in WIDTHS:
            context = browser.new_context(
                viewport={"width": width, "height": 900}, storage_state=state, locale="en-GB"
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{demo_server}/language/{language}?next=/")
            if width >= 1280 and not nav_on_one_line(page):
                items = page.locator("header nav .nav-wide > li").all_inner_texts()
                problems.append(f"{role} {language} {width}px: the navigation bar wraps {items}")
            for path in key_pages(role, demo["ids"]):
                response = page.goto(demo_server + path)
                where = f"{role} {language} {width}px {path}"
                if response is None or response.status >= 400:
                    problems.append(f"{where}: HTTP {response and response.status}")
                    continue
                wide = overflow(page)
                if wide:
                    problems.append(f"{where}: page scrolls sideways {json.dumps(wide)}")
                violations = run_axe(page)
                entry = counts.setdefault(path, {})
                failing = sum(v["nodes"] for v in violations if v["impact"] in KEY_PAGES_FAILING)
                entry[f"{language}/{width}"] = f"{sum(v['nodes'] for v in violations)}/{failing}"
                for violation in violations:
                    if violation["impact"] in KEY_PAGES_FAILING:
                        problems.append(f"{where}: axe {json.dumps(violation)}")
            context.close()
    print(f"\naxe violations, nodes all/critical+serious+moderate, for {role}:")
    for path, per in counts.items():
        print(f"  {path}: {json.dumps(per)}")
    assert not problems, "\n".join(problems)


def test_staff_stage_links_all_exist_and_staff_follow_the_scoring(
    demo, demo_app, demo_server, browser
):
    """Every stage page a staff tender page links to answers (the ranking link used to
    answer 404 on 5 of 8 demo tenders), and staff see the experts' scoring progress."""
    email, secret = demo["people"]["staff"], demo["secrets"]["staff"]
    state = sign_in(browser, demo_server, email, secret, demo_app)
    context = browser.new_context(storage_state=state, locale="en-GB")
    page = context.new_page()
    checked = 0
    for key, tender_id in demo["ids"].items():
        page.goto(f"{demo_server}/centre/tenders/{tender_id}")
        expect(page.locator("#next-action")).to_be_visible()
        for href in page.locator("#stage-links a").evaluate_all("els => els.map(a => a.href)"):
            response = page.request.get(href)
            assert response.status == 200, (key, href, response.status)
            checked += 1
    assert checked >= 10
    page.goto(f"{demo_server}/evaluations/tenders/{demo['ids']['eval']}")
    rows = page.locator("#scoring-progress tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 3
    context.close()
