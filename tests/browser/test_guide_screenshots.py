"""The user guide's screenshots (docs/guide/img/), taken from the demo seed in a real
browser, in English, Korean and Chinese, so that the guide never shows a page that no longer
exists. `make guide` runs this module; the default test run skips it (marker `guide`,
collected only when FAIRBID_GUIDE=1).

Each shot is named `<role>-<page>-<language>.png` and every guide page (docs/guide/*.md)
links only to shots this module makes: `test_the_guide_links_only_existing_shots` (not a
browser test) checks it on every run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.accounts import security
from app.accounts.models import User
from app.extensions import db
from app.scenario.cast import totp_code
from app.tenders.models import Tender

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
IMAGES = GUIDE / "img"
LANGUAGES = {"en": "en-GB", "ko": "ko-KR", "zh": "zh-CN"}
COOKIE_LANGUAGE = {"en": "en", "ko": "ko", "zh": "zh_Hans"}
PASSWORD = "guide password 2026"
DEMO = "@demo.fairbid.example"

# role -> (account, [(page name, path template)]); {OPEN} etc. are demo tender ids.
SHOTS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "bidder": (
        "bidder1",
        [
            ("start", "/bidder/"),
            ("tender", "/tenders/{OPEN}"),
            ("bid", "/bids/tenders/{OPEN}"),
        ],
    ),
    "staff": (
        "staff",
        [
            ("companies", "/centre/companies/"),
            ("tenders", "/centre/tenders/"),
            ("tender", "/centre/tenders/{EVAL}"),
        ],
    ),
    "custodian": ("custodian1", [("keys", "/custody/"), ("opening", "/opening/tenders/{CLOSED}")]),
    "expert": (
        "expert", [("invitations", "/panels/invitations"), ("sheet", "/scoring/tenders/{EVAL}")]
    ),
    "supervisor": ("supervisor", [("dashboard", "/supervision/"), ("audit", "/supervision/audit")]),
    "admin": ("admin", [("accounts", "/admin/users"), ("centres", "/admin/centres")]),
}  # fmt: skip
REFERENCES = {"OPEN": "HZ-DEMO-OPEN", "CLOSED": "HZ-DEMO-CLOSED", "EVAL": "HZ-DEMO-EVAL"}


def shot_names() -> set[str]:
    return {
        f"{role}-{name}-{language}.png"
        for role, (_account, pages) in SHOTS.items()
        for name, _path in pages
        for language in LANGUAGES
    }


def test_the_guide_links_only_existing_shots():
    """Every image a guide page shows is one this module makes, and every role has a page
    in every language (not a browser test: runs by default)."""
    expected = shot_names()
    for role in SHOTS:
        for language in LANGUAGES:
            page = GUIDE / f"{role}.{language}.md"
            assert page.is_file(), page
            linked = set(re.findall(r"\(img/([^)]+\.png)\)", page.read_text()))
            assert linked, f"{page.name} shows no screenshot"
            assert linked <= expected, linked - expected


guide = pytest.mark.skipif(
    os.environ.get("FAIRBID_GUIDE") != "1", reason="the guide's screenshots: make guide"
)


def _demo_world(live_app) -> dict:
    """Seed the demo once, give its accounts a known password, find the tour's expert."""
    from app.demo import DEMO_EXPERTS, seed
    from app.panels import operations as panels
    from app.panels.models import MemberStatus

    with live_app.app_context():
        if db.session.scalar(select(User.id).where(User.email == "admin" + DEMO)) is None:
            seed(echo=lambda _line: None)
        for user in db.session.scalars(select(User).where(User.email.like("%" + DEMO))):
            user.password_hash = security.hash_password(PASSWORD)
        ids = {
            key: db.session.scalar(select(Tender.id).where(Tender.reference == reference))
            for key, reference in REFERENCES.items()
        }
        evaluating = db.session.get(Tender, ids["EVAL"])
        scorer = next(
            email
            for email in DEMO_EXPERTS
            if getattr(
                panels.member_of(
                    db.session.scalar(select(User).where(User.email == email)), evaluating
                ),
                "status",
                None,
            )
            == MemberStatus.ACCEPTED
        )
        db.session.commit()
    return {"ids": ids, "expert": scorer.split("@")[0]}


def _sign_in(live_app, browser, live_server, account: str):
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(live_server + "/language/en?next=/accounts/login")
    page.locator("#email").fill(account + DEMO)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if page.locator("#code").count():
        with live_app.app_context():
            user = db.session.scalar(select(User).where(User.email == account + DEMO))
            code = totp_code(user)
        page.locator("#code").fill(code)
        page.get_by_role("button", name="Verify").click()
    # Signed in: the account menu (under the person's name) holds "Sign out".
    expect(page.locator("form[action$='/accounts/logout']").first).to_be_attached()
    page.wait_for_load_state("load")
    return context, page


@guide
@pytest.mark.guide
def test_the_guide_screenshots(live_app, live_server, browser):
    world = _demo_world(live_app)
    IMAGES.mkdir(parents=True, exist_ok=True)
    made = set()
    for role, (account, pages) in SHOTS.items():
        account = world["expert"] if account == "expert" else account
        context, page = _sign_in(live_app, browser, live_server, account)
        for language in LANGUAGES:
            for name, path in pages:
                target = path.format(**world["ids"])
                page.goto(f"{live_server}/language/{COOKIE_LANGUAGE[language]}?next={target}")
                assert page.url.endswith(target), page.url
                filename = f"{role}-{name}-{language}.png"
                page.screenshot(path=str(IMAGES / filename))
                made.add(filename)
        context.close()
    assert made == shot_names()
