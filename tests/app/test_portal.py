"""The public portal: announcement search (cached in Redis), tender pages, document
downloads and Atom feeds (OCDS open data: tests/app/test_ocds.py)."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from time import monotonic
from zoneinfo import ZoneInfo

import flask_babel
import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.core import cache
from app.extensions import db, redis_client
from app.tenders.documents import blob_store
from app.tenders.models import (
    Addendum,
    DocumentDownload,
    Enquiry,
    Lot,
    Tender,
    TenderDocument,
    TenderRegistration,
)

ATOM = "{http://www.w3.org/2005/Atom}"
COUNTDOWN_JS = Path(__file__).resolve().parents[2] / "app" / "static" / "js" / "countdown.js"


def html(response) -> str:
    return response.get_data(as_text=True)


def clone_tenders(template: Tender, count: int, **changes) -> list[Tender]:
    """Cheap extra public tenders shaped like `template` (make_tender signs up users)."""
    columns = [c.key for c in Tender.__table__.columns if c.key not in ("id", "reference")]
    made = []
    for n in range(count):
        values = {key: getattr(template, key) for key in columns}
        values.update(reference=f"{template.reference}-{n}", title=f"Clone {n}", **changes)
        tender = Tender(**values)
        db.session.add(tender)
        made.append(tender)
    db.session.commit()
    return made


def test_list_shows_published_tenders_and_never_drafts(client, make_tender):
    public = make_tender(title="Bridge repair materials")
    draft = make_tender(status="draft", title="Secret draft road")
    cancelled = make_tender(status="cancelled", title="Cancelled school roof")
    page = client.get("/tenders/")
    assert page.status_code == 200
    text = html(page)
    assert "Bridge repair materials" in text and public.reference in text
    assert "Cancelled school roof" in text and cancelled.reference in text
    assert "Secret draft road" not in text and draft.reference not in text
    assert client.get(f"/tenders/{draft.id}").status_code == 404
    assert client.get(f"/api/v1/ocds/tenders/{draft.id}").status_code == 404
    assert client.get("/tenders/999999").status_code == 404


def test_search_by_text_centre_category_status_and_dates(client, make_tender, make_centre):
    north, south = make_centre(code="NORTH"), make_centre(code="SOUTH")
    pumps = make_tender(centre=north, title="Water pumps", reference="N-2025-001")
    road = make_tender(centre=south, title="Road works", reference="S-2025-7", category="works")
    sale = make_tender(centre=south, title="Land-use right", category="asset_sale")
    closed = make_tender(centre=north, title="Cleaning services", category="services")
    closed.status = "closed"
    old = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 on 10 March in Shanghai
    road.published_at = old
    db.session.commit()

    def titles(query: str) -> set[str]:
        response = client.get("/tenders/?" + query)
        assert response.status_code == 200, html(response)
        rows = re.findall(r'<a href="/tenders/\d+">([^<]+)</a>', html(response))
        return set(rows)

    assert titles("q=pumps") == {"Water pumps"}
    assert titles("q=PUMPS") == {"Water pumps"}
    assert titles("q=S-2025") == {"Road works"}
    assert titles("q=100%25") == set()  # "%" is a literal, not a wildcard
    assert titles("centre=north") == {"Water pumps", "Cleaning services"}
    assert titles("category=asset_sale") == {"Land-use right"}
    assert titles("status=closed") == {"Cleaning services"}
    assert titles("centre=SOUTH&from=2025-03-10&to=2025-03-10") == {"Road works"}
    assert titles("centre=SOUTH&to=2025-03-09") == set()
    assert titles("centre=SOUTH&from=2025-03-11") == {"Land-use right"}
    assert pumps.id and sale.id


def test_pagination_is_newest_first_with_stable_urls(client, make_tender, make_centre):
    centre = make_centre(code="PAGES")
    first = make_tender(centre=centre, title="Oldest")
    first.published_at = datetime(2025, 1, 1, tzinfo=UTC)
    clones = clone_tenders(first, 24)
    for n, tender in enumerate(clones):
        tender.published_at = datetime(2025, 1, 2, tzinfo=UTC) + timedelta(hours=n)
    db.session.commit()

    page1 = html(client.get("/tenders/?centre=PAGES"))
    assert "25 tenders found." in page1
    rows = re.findall(r'<a href="/tenders/\d+">([^<]+)</a>', page1)
    assert len(rows) == 20 and rows[0] == "Clone 23" and rows[1] == "Clone 22"
    assert 'href="/tenders/?centre=PAGES&amp;page=2"' in page1
    page2 = html(client.get("/tenders/?page=2&centre=PAGES"))
    rows2 = re.findall(r'<a href="/tenders/\d+">([^<]+)</a>', page2)
    assert len(rows2) == 5 and rows2[-1] == "Oldest" and not set(rows) & set(rows2)
    assert 'href="/tenders/?centre=PAGES"' in page2  # previous page: page 1 has no number
    beyond = html(client.get("/tenders/?centre=PAGES&page=9"))
    assert "No tender matches this search." in beyond


def test_a_page_and_its_total_are_one_statement(app, client, make_tender, make_centre):
    """A page with rows carries the total in the same statement (an uncorrelated count
    subquery); only a page past the end counts in a statement of its own. Totals stay right
    at exact multiples of the page size."""
    from sqlalchemy import event

    centre = make_centre(code="TOTALS")
    clone_tenders(make_tender(centre=centre, title="Total tender"), 24)  # 25 in all
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for address, total, rows, counted in (
            ("/tenders/?centre=TOTALS", 25, 20, False),  # full page
            ("/tenders/?centre=TOTALS&page=2", 25, 5, False),  # the last, not full
            ("/tenders/?centre=TOTALS&page=3", 25, 0, True),  # past the end
            ("/tenders/?centre=TOTALS&q=nothing+like+this", 0, 0, False),  # first, empty
            ("/tenders/?centre=TOTALS&q=Clone+1", 11, 11, False),  # Clone 1, 10-19
        ):
            statements.clear()
            page = html(client.get(address))
            found = re.search(r'<p id="result-count">([^<]*)</p>', page).group(1)
            assert found == (f"{total} tenders found." if total != 1 else "1 tender found.")
            assert len(re.findall(r'<a href="/tenders/\d+">', page)) == rows, address
            counts = [sql for sql in statements if sql.lstrip().lower().startswith("select count")]
            assert bool(counts) == counted, address
            listed = [sql for sql in statements if "ORDER BY tender.published_at DESC" in sql]
            assert len(listed) == 1 and "(SELECT count(*)" in listed[0], address
        # 20 exactly: the full first page counts, the empty second one too.
        for tender in db.session.scalars(
            select(Tender).where(Tender.centre_id == centre.id).limit(5)
        ):
            tender.centre_id = make_centre(code=f"ELSEWHERE-{tender.id}").id
        db.session.commit()
        # (New searches: the ones above are cached, and a direct change bumps nothing.)
        again = "/tenders/?centre=TOTALS&from=2000-01-01"
        assert "20 tenders found." in html(client.get(again))
        assert "20 tenders found." in html(client.get(again + "&page=2"))
    finally:
        event.remove(engine, "before_cursor_execute", seen)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page=abc", "The page number must be a whole number"),
        ("page=0", "between 1 and 10000"),
        ("page=99999999999", "between 1 and 10000"),
        ("page=99999999999999999999", "too large"),  # beyond 64 bits: the global check
        ("category=ships", "Unknown category"),
        ("status=draft", "Unknown status"),
        ("from=2025-13-01", "write a date as YYYY-MM-DD"),
        ("to=01/04/2025", "write a date as YYYY-MM-DD"),
        ("from=2025-05-01&to=2025-04-01", "after its end"),
        ("centre=NOWHERE", "no trading centre with the code"),
        ("centre=%3Cscript%3E", "no trading centre with the code"),
        ("q=" + "x" * 201, "at most 200 characters"),
    ],
)
def test_bad_search_parameters_are_400_with_a_message(client, query, message):
    response = client.get("/tenders/?" + query)
    assert response.status_code == 400
    assert message in html(response)
    assert "<script>" not in html(response)


def test_list_is_cached_and_invalidated_by_a_publication(client, make_tender):
    tender = make_tender(title="Original title")
    first = client.get("/tenders/")
    assert first.headers["X-Portal-Cache"] == "miss"
    second = client.get("/tenders/")
    assert second.headers["X-Portal-Cache"] == "hit"
    assert "Original title" in html(second)
    # Unknown parameters are normalised away: the same cached page.
    assert client.get("/tenders/?utm_source=x&page=1").headers["X-Portal-Cache"] == "hit"

    tender.title = "Changed title"
    db.session.commit()  # no publication: the cached fragment still stands
    assert "Original title" in html(client.get("/tenders/"))

    cache.invalidate_after_commit()
    db.session.commit()
    third = client.get("/tenders/")
    assert third.headers["X-Portal-Cache"] == "miss"
    assert "Changed title" in html(third) and "Original title" not in html(third)


def test_cached_fragment_holds_nothing_of_the_signed_in_user(
    app, client, auth, make_tender, make_user
):
    make_tender(title="Shared announcement")
    bidder = make_user(Role.BIDDER, full_name="Zhang Wei Bidder")
    auth.login(bidder)
    signed_in = html(client.get("/tenders/"))
    assert "Zhang Wei Bidder" in signed_in  # the layout's navigation, rendered per request
    keys = [k for k in redis_client.client.keys("fairbid:portal:*") if b"generation" not in k]
    assert keys
    for key in keys:
        value = redis_client.client.get(key).decode()
        assert "Zhang Wei Bidder" not in value and "Sign out" not in value
        assert "csrf_token" not in value
    anonymous = app.test_client().get("/tenders/")
    assert anonymous.headers["X-Portal-Cache"] == "hit"
    text = html(anonymous)
    assert "Shared announcement" in text
    assert "Zhang Wei Bidder" not in text and "Sign in" in text


def test_cache_is_per_language(client, make_tender):
    make_tender(category="works")
    english = client.get("/tenders/", headers={"Accept-Language": "en"})
    # The test keeps one app context across requests; a server starts each one afresh.
    flask_babel.refresh()
    korean = client.get("/tenders/", headers={"Accept-Language": "ko"})
    assert korean.headers["X-Portal-Cache"] == "miss"
    assert '<html lang="ko">' in html(korean) and '<html lang="en">' in html(english)


@pytest.fixture
def redis_down(app):
    """Point the app at a port where no Redis listens (an outage); no retries, to keep the
    test fast (the portal asks `redis_available` before the cache either way)."""
    from app import web
    from tests.factories import unreachable_redis

    original = app.extensions["fairbid_redis"]
    app.extensions["fairbid_redis"] = unreachable_redis()
    web._redis_state.update(checked=0.0, ok=True)
    yield
    app.extensions["fairbid_redis"] = original
    web._redis_state.update(checked=0.0, ok=True)


def test_list_and_feeds_work_with_redis_down(client, redis_down, make_tender):
    tender = make_tender(title="Still listed")
    for _ in range(2):
        response = client.get("/tenders/")
        assert "Live updates and queues are temporarily unavailable" in html(response)
        assert response.status_code == 200
        assert response.headers["X-Portal-Cache"] == "miss"
        assert "Still listed" in html(response)
    assert client.get(f"/feeds/centre/{tender.centre.code}.atom").status_code == 200
    assert client.get(f"/tenders/{tender.id}").status_code == 200


@pytest.fixture
def rich_tender(make_tender, make_company, make_user):
    """A tender with an answered and an open question, an addendum and two lots."""
    asker = make_company(name="Asking Secret Co. Ltd.")
    tender = make_tender(title="Hospital beds", reference="HB-1")
    staff = db.session.get(Tender, tender.id).created_by_id
    deadline_before = tender.submission_deadline
    tender.submission_deadline = deadline_before + timedelta(days=3)
    db.session.add_all(
        [
            Enquiry(
                tender_id=tender.id,
                company_id=asker.id,
                question="Are electric beds acceptable?",
                answer="Yes, with a manual fallback.",
                answered_at=datetime.now(UTC),
                answered_by_id=staff,
            ),
            Enquiry(tender_id=tender.id, company_id=asker.id, question="Unanswered so far?"),
            Addendum(
                tender_id=tender.id,
                number=1,
                title="Longer warranty",
                body="The warranty is now 36 months.",
                published_by_id=staff,
                deadline_before=deadline_before,
                deadline_after=tender.submission_deadline,
            ),
            Lot(tender_id=tender.id, number=2, title="Mattresses", budget=Decimal("50000.00")),
        ]
    )
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Tender, tender.id)


def test_tender_page_shows_schedule_countdown_answers_and_addenda(client, rich_tender):
    page = client.get(f"/tenders/{rich_tender.id}")
    assert page.status_code == 200
    text = html(page)
    assert "Hospital beds" in text and "HB-1" in text
    # Schedule in the centre's time zone, with the server clock as the authority.
    assert "Asia/Shanghai" in text
    shanghai = rich_tender.submission_deadline.astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"{shanghai.day} {shanghai:%b} {shanghai.year} {shanghai:%H:%M:%S} (UTC+8)" in text
    assert "clock is the only one that counts" in text
    # The countdown: data attributes read by the script, no inline script.
    deadline = re.search(r'data-deadline="([^"]+)"', text).group(1)
    assert datetime.fromisoformat(deadline) == rich_tender.submission_deadline.replace(
        microsecond=0
    )
    server_now = datetime.fromisoformat(re.search(r'data-server-now="([^"]+)"', text).group(1))
    assert abs((server_now - datetime.now(UTC)).total_seconds()) < 60
    assert '<script src="/static/js/countdown.js" defer></script>' in text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    # Answers are public; the asker's company never is; open questions stay unpublished.
    assert "Are electric beds acceptable?" in text and "Yes, with a manual fallback." in text
    assert "Asking Secret Co. Ltd." not in text and "Unanswered so far?" not in text
    # Addenda history and the lots table (two lots).
    assert "Longer warranty" in text and "36 months" in text
    assert "The bid deadline moved from" in text
    assert 'id="lots"' in text and "Mattresses" in text


def test_one_lot_tender_shows_no_lot_table_and_cancellation_is_explained(client, make_tender):
    tender = make_tender(title="Single lot")
    text = html(client.get(f"/tenders/{tender.id}"))
    assert 'id="lots"' not in text and 'id="countdown"' in text
    tender.status = "cancelled"
    tender.cancelled_at = datetime.now(UTC)
    tender.cancel_reason = "The budget was withdrawn by the owner."
    db.session.commit()
    text = html(client.get(f"/tenders/{tender.id}"))
    assert "This tender was cancelled." in text
    assert "The budget was withdrawn by the owner." in text
    assert 'id="countdown"' not in text


@pytest.fixture
def stored_document(make_tender):
    tender = make_tender(title="Desks")
    data = b"%PDF-1.7 tender document for desks\n" * 100
    stored = blob_store().put_bytes(data, max_size=10_000)
    document = TenderDocument(
        tender_id=tender.id,
        kind="tender_pdf",
        title="Tender document",
        filename="desks.pdf",
        content_type="application/pdf",
        size=stored.size,
        sha256=stored.sha256,
    )
    db.session.add(document)
    db.session.commit()
    return tender, document, data


def downloads(document) -> list[DocumentDownload]:
    return list(
        db.session.scalars(
            select(DocumentDownload).where(DocumentDownload.document_id == document.id)
        )
    )


def test_registered_bidder_downloads_a_document_and_it_is_recorded(
    client, auth, make_user, stored_document
):
    import base64
    import hashlib

    tender, document, data = stored_document
    bidder = make_user(Role.BIDDER)
    db.session.add(
        TenderRegistration(
            tender_id=tender.id, company_id=bidder.company_id, registered_by_id=bidder.id
        )
    )
    db.session.commit()
    page = html(client.get(f"/tenders/{tender.id}"))
    assert document.sha256 in page and "desks.pdf" in page
    assert f"/tenders/{tender.id}/documents/{document.id}" in page

    auth.login(bidder)
    assert "Your company is registered for this tender." in html(
        client.get(f"/tenders/{tender.id}")
    )
    response = client.get(f"/tenders/{tender.id}/documents/{document.id}")
    body = response.get_data()
    response.close()  # the streamed blob's file
    assert response.status_code == 200
    assert body == data
    assert hashlib.sha256(body).hexdigest() == document.sha256
    assert response.headers["Content-Type"] == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Repr-Digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
    )
    [record] = downloads(document)
    assert record.company_id == bidder.company_id and record.user_id == bidder.id


def test_download_refused_for_an_unregistered_bidder_and_anonymous(
    client, auth, make_user, stored_document
):
    tender, document, _data = stored_document
    url = f"/tenders/{tender.id}/documents/{document.id}"
    anonymous = client.get(url)
    assert anonymous.status_code == 302
    assert "/accounts/login?next=" in anonymous.headers["Location"]
    auth.login(make_user(Role.BIDDER))
    refused = client.get(url)
    assert refused.status_code == 403
    assert "Register your company for this tender to download its documents." in html(refused)
    assert downloads(document) == []
    auth.logout()
    auth.login(make_user(Role.EXPERT))
    expert = client.get(url)
    assert expert.status_code == 403
    assert "Only companies registered for this tender" in html(expert)
    other = client.get(f"/tenders/{tender.id}/documents/{document.id + 999}")
    assert other.status_code == 404


def test_missing_blob_is_a_clear_404_and_records_nothing(client, auth, make_user, make_tender):
    tender = make_tender()
    document = TenderDocument(
        tender_id=tender.id,
        kind="attachment",
        title="Drawing",
        filename="d.pdf",
        content_type="application/pdf",
        size=3,
        sha256="b" * 64,
    )
    db.session.add(document)
    db.session.commit()
    auth.login(make_user(Role.STAFF, centre=tender.centre))
    response = client.get(f"/tenders/{tender.id}/documents/{document.id}")
    assert response.status_code == 404
    assert "not available" in html(response)
    assert downloads(document) == []


def parse_feed(response) -> ET.Element:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(response.data)  # noqa: S314 (our own feed, in a test)
    assert root.tag == f"{ATOM}feed"
    return root


def entry_titles(root: ET.Element) -> list[str]:
    return [e.findtext(f"{ATOM}title") for e in root.findall(f"{ATOM}entry")]


def test_atom_feeds_per_centre_and_per_category(client, make_tender, make_centre):
    east, west = make_centre(code="EAST", name="East City"), make_centre(code="WEST")
    older = make_tender(centre=east, title="Old goods", reference="E-1")
    older.published_at = datetime(2025, 1, 1, tzinfo=UTC)
    db.session.commit()
    make_tender(centre=east, title="New works", reference="E-2", category="works")
    make_tender(centre=east, title="Draft goods", reference="E-3", status="draft")
    make_tender(centre=west, title="West goods", reference="W-1")

    east_feed = parse_feed(client.get("/feeds/centre/EAST.atom"))
    assert entry_titles(east_feed) == ["[E-2] New works", "[E-1] Old goods"]
    assert "East City" in east_feed.findtext(f"{ATOM}title")
    entry = east_feed.find(f"{ATOM}entry")
    link = entry.find(f"{ATOM}link").get("href")
    assert re.fullmatch(r"http://localhost/tenders/\d+", link)
    assert entry.findtext(f"{ATOM}id") == link
    assert "E-2" in entry.findtext(f"{ATOM}summary")
    assert entry.find(f"{ATOM}category").get("term") == "works"

    goods = parse_feed(client.get("/feeds/category/goods.atom"))
    titles = entry_titles(goods)
    assert "[W-1] West goods" in titles and "[E-1] Old goods" in titles
    assert "[E-2] New works" not in titles and "[E-3] Draft goods" not in titles

    assert client.get("/feeds/centre/NOWHERE.atom").status_code == 404
    assert client.get("/feeds/category/ships.atom").status_code == 404


def test_feed_cache_is_keyed_on_the_host(client, make_tender):
    tender = make_tender()
    url = f"/feeds/centre/{tender.centre.code}.atom"
    # An unknown host is refused outright (issue 12, item 3); a served one is cached apart.
    assert client.get(url, headers={"Host": "evil.example"}).status_code == 400
    client.get(url, headers={"Host": "127.0.0.1"})
    honest = client.get(url).get_data(as_text=True)
    assert "evil.example" not in honest and "127.0.0.1" not in honest


def test_downloads_count_stays_zero_for_page_views(client, stored_document):
    tender, _document, _data = stored_document
    client.get(f"/tenders/{tender.id}")
    client.get("/tenders/")
    assert db.session.scalar(select(func.count()).select_from(DocumentDownload)) == 0


def test_countdown_script_corrects_for_the_viewers_clock():
    """Node.js is always there: `make` needs it for the front-end packages."""
    script = f"""
    const c = require({json.dumps(str(COUNTDOWN_JS))});
    // The viewer's clock is 90 s fast: the server said 12:00:00 when it read 12:01:30.
    const server = Date.parse("2025-04-01T12:00:00Z");
    const offset = c.clockOffset(server, server + 90000);
    const deadline = Date.parse("2025-04-03T13:30:15Z");
    const viewerNow = Date.parse("2025-04-01T12:01:30Z");
    const left = c.remaining(deadline, viewerNow + offset);
    const closed = c.remaining(deadline, deadline + 1);
    console.log(JSON.stringify({{offset, left, closed: closed.total,
      text: c.formatRemaining(left, "en")}}));
    """
    result = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    out = json.loads(result.stdout)
    assert out["offset"] == -90000
    assert (out["left"]["days"], out["left"]["hours"], out["left"]["minutes"]) == (2, 1, 30)
    assert out["left"]["seconds"] == 15
    assert out["closed"] == 0
    assert out["text"] == "2 days 01:30:15"


def test_bidder_registers_and_asks_from_the_tender_page(client, auth, make_user, make_tender):
    tender = make_tender()
    bidder = make_user(Role.BIDDER)
    auth.login(bidder)
    page = html(client.get(f"/tenders/{tender.id}"))
    assert f'action="/bidder/tenders/{tender.id}/register"' in page
    assert "/enquiries" not in page
    response = client.post(f"/bidder/tenders/{tender.id}/register", data={})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/tenders/{tender.id}"
    page = html(client.get(f"/tenders/{tender.id}"))
    assert "Your company is registered for this tender." in page
    assert f'action="/bidder/tenders/{tender.id}/enquiries"' in page
    assert "/register" not in page


def test_tender_page_publishes_the_sealing_script_hash(client, make_tender):
    from app.bids import sealing_script

    tender = make_tender()
    page = client.get(f"/tenders/{tender.id}").data.decode()
    assert sealing_script.integrity() in page
    assert 'id="sealing-integrity"' in page


# --- the live tender page (static/js/tender_live.js) ------------------------------------------


def _live_world(app, make_tender, make_user):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc

    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    submit(tender, bidder, lib_seal(key, tid(tender), uscc(bidder), price="900.00"))
    deadline = datetime.now(UTC) + timedelta(minutes=5)
    tender.submission_deadline = deadline
    tender.opening_at = deadline + timedelta(hours=1)
    db.session.commit()
    return tender, deadline


def _status_flow(app, client, tender, deadline):
    from app.clock.service import tick

    page = html(client.get(f"/tenders/{tender.id}"))
    assert f'data-status-url="/tenders/{tender.id}/status.json"' in page
    assert '<script src="/static/js/tender_live.js" defer></script>' in page
    assert '<section id="sealing-record" hidden>' in page

    state = client.get(f"/tenders/{tender.id}/status.json")
    assert state.status_code == 200 and state.json["status"] == "published"
    assert state.json["label"] == "Open for bids" and state.json["bidding_open"] is True
    assert state.json["sealing"] is None and state.json["final"] is False
    assert (
        "max-age" in state.headers["Cache-Control"] and "Accept-Language" in state.headers["Vary"]
    )

    tick(deadline + timedelta(seconds=1))
    state = client.get(f"/tenders/{tender.id}/status.json").json
    assert state["label"] == "Bidding closed" and state["bidding_open"] is False
    assert state["sealing"] is None and state["final"] is False  # the seal is still to come

    tick(deadline + timedelta(seconds=app.config["SEALING_GRACE_SECONDS"] + 1))
    state = client.get(f"/tenders/{tender.id}/status.json").json
    root = db.session.scalar(select(AuditEvent.data).where(AuditEvent.action == "tender.sealed"))
    assert state["sealing"]["root"] == json.loads(root)["root"]
    assert state["sealing"]["url"] == f"/api/v1/tenders/{tender.id}/sealing-record"
    assert state["final"] is True  # the script stops polling
    # Korean readers get the Korean label (one app context across requests here: refresh).
    flask_babel.refresh()
    korean = client.get(f"/tenders/{tender.id}/status.json", headers={"Accept-Language": "ko"})
    assert korean.json["label"] != "Bidding closed" and korean.json["sealing"]["root"]
    flask_babel.refresh()
    # Sealed: the page shows the record itself and no longer loads the script.
    page = html(client.get(f"/tenders/{tender.id}"))
    assert "tender_live.js" not in page and state["sealing"]["root"] in page


def test_the_status_json_follows_the_clock(app, client, make_tender, make_user):
    tender, deadline = _live_world(app, make_tender, make_user)
    _status_flow(app, client, tender, deadline)


def test_the_status_json_works_with_redis_down(app, client, redis_down, make_tender, make_user):
    tender, deadline = _live_world(app, make_tender, make_user)
    _status_flow(app, client, tender, deadline)


def test_the_status_json_of_a_draft_or_unknown_tender_is_a_404(client, make_tender):
    draft = make_tender(status="draft")
    assert client.get(f"/tenders/{draft.id}/status.json").status_code == 404
    assert client.get("/tenders/999999/status.json").status_code == 404


def test_a_status_poll_is_one_query_before_sealing(app, client, make_tender):
    """What every open page asks every few seconds stays cheap: one row by primary key."""
    from sqlalchemy import event

    url = f"/tenders/{make_tender().id}/status.json"
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200 and response.json["final"] is False
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, [s.split("FROM")[-1][:150] for s in selects]
    assert "WHERE tender.id = ?" in selects[0] or "WHERE tender.id = %(" in selects[0]


SERVER_TIME = re.compile(r'<time datetime="[^"]+">[^<]*</time>(?= · <a href="/guide)')


def test_signed_out_visitors_get_the_whole_page_from_the_cache(app, client, make_tender):
    make_tender(title="Whole page announcement")
    first = client.get("/tenders/")
    keys = set(redis_client.client.keys("fairbid:portal:page:*"))
    assert len(keys) == 2  # the fragment, and the signed-out visitor's whole page
    second = client.get("/tenders/")
    assert second.headers["X-Portal-Cache"] == "hit"
    # Byte for byte the page rendered afresh, but for the footer's server time.
    assert SERVER_TIME.sub("", html(second)) == SERVER_TIME.sub("", html(first))
    assert "Whole page announcement" in html(second) and "Sign in" in html(second)
    # The server time is the request's own, not the moment the page was rendered with.
    footer = SERVER_TIME.search(html(second)).group(0)
    assert "2000-01-02" not in footer and str(datetime.now(UTC).year) in footer
    assert "fairbid:server-time" not in html(second)
    # The security headers and the cookie-dependent caching apply to the cached page.
    assert "Content-Security-Policy" in second.headers
    assert "Cookie" in second.headers.get("Vary", "")


def test_whole_page_cache_is_never_served_to_a_signed_in_user_or_a_pending_message(
    app, client, auth, make_tender, make_user
):
    make_tender(title="Shared announcement")
    anonymous = app.test_client()
    anonymous.get("/tenders/")
    assert anonymous.get("/tenders/").headers["X-Portal-Cache"] == "hit"
    bidder = make_user(Role.BIDDER, full_name="Li Na Bidder")
    auth.login(bidder)
    signed_in = html(client.get("/tenders/"))
    assert "Li Na Bidder" in signed_in and "Sign out" in signed_in
    # A flash message waiting for a signed-out visitor is shown, not a cached page.
    visitor = app.test_client()
    assert visitor.get("/start").status_code == 302  # "Sign in to continue." flashed
    listed = html(visitor.get("/tenders/"))
    assert "Sign in to continue." in listed
    for key in redis_client.client.keys("fairbid:portal:page:*"):
        value = redis_client.client.get(key).decode()
        assert "Li Na Bidder" not in value and "csrf_token" not in value
        assert "Sign in to continue." not in value


def test_only_the_canonical_address_is_cached_whole(client, make_tender):
    make_tender()
    for n in range(3):
        client.get(f"/tenders/?utm_source={n}")
    assert len(redis_client.client.keys("fairbid:portal:page:*")) == 1  # the fragment only


# --- the row cache (app.portal.rows): rendered rows of the list, per worker, by content -----

ROW = re.compile(r"<tr>\s*<td>[^<]*</td>\s*<td><a href=\"/tenders/\d+\">.*?</tr>", re.S)


def row_cache(app):
    from app.portal.rows import RowCache

    rows = app.extensions.get("fairbid_portal_rows")
    assert isinstance(rows, RowCache)
    return rows


def missed_page(client, lang: str, day: str) -> str:
    """The list for a search no one made yet (a new date range): the page cache misses."""
    flask_babel.refresh()
    response = client.get(f"/tenders/?to={day}", headers={"Accept-Language": lang})
    assert response.headers["X-Portal-Cache"] == "miss"
    return html(response)


@pytest.mark.parametrize("lang", ["en", "ko", "zh-Hans"])
def test_rows_from_the_row_cache_are_the_bytes_of_a_fresh_render(app, client, make_tender, lang):
    make_tender(title="Pumps & <valves>", category="works")
    make_tender(title="School roof", status="closed", category="asset_sale")
    app.test_client().get("/tenders/")  # the row cache made
    row_cache(app).clear()
    cold = missed_page(client, lang, "2100-01-01")
    held = len(row_cache(app))
    assert held == 2
    warm = missed_page(client, lang, "2100-01-02")  # same rows, new search: rows cached
    assert len(row_cache(app)) == held
    cold_rows, warm_rows = ROW.findall(cold), ROW.findall(warm)
    assert len(cold_rows) == 2 and cold_rows == warm_rows
    assert "Pumps &amp; &lt;valves&gt;" in warm_rows[0] + warm_rows[1]
    # The whole page, but for the search's own dates and the footer's server time.
    strip = re.compile(r"2100-01-0\d")
    assert strip.sub("", SERVER_TIME.sub("", cold)) == strip.sub("", SERVER_TIME.sub("", warm))
    # And the same bytes as with no row cache at all.
    app.config["PORTAL_ROW_CACHE_SIZE"] = 0
    app.extensions.pop("fairbid_portal_rows")
    try:
        fresh = missed_page(client, lang, "2100-01-03")
        assert ROW.findall(fresh) == warm_rows
        assert len(row_cache(app)) == 0
    finally:
        app.config["PORTAL_ROW_CACHE_SIZE"] = 4096
        app.extensions.pop("fairbid_portal_rows")


def test_a_changed_tender_gets_a_new_row_never_the_cached_one(app, client, make_tender):
    tender = make_tender(title="Original row title")
    other = make_tender(title="Untouched row")
    assert "Original row title" in missed_page(client, "en", "2100-02-01")
    before = ROW.findall(missed_page(client, "en", "2100-02-02"))
    for n, change in enumerate(
        (
            {"title": "Changed row title"},
            {"status": "closed"},
            {"submission_deadline": tender.submission_deadline + timedelta(days=3)},
            {"reference": "CHANGED-REF-1"},
            {"category": "services"},
        )
    ):
        for field, value in change.items():
            setattr(tender, field, value)
        db.session.commit()
        day = f"2100-03-{n + 10:02d}"
        before_changed = [row for row in before if f'/tenders/{tender.id}"' in row]
        page = missed_page(client, "en", day)
        rows = ROW.findall(page)
        changed = [row for row in rows if f'/tenders/{tender.id}"' in row]
        assert changed and changed != before_changed, change
        assert [row for row in rows if f'/tenders/{other.id}"' in row] == [
            row for row in before if f'/tenders/{other.id}"' in row
        ]
        before = rows
    text = " ".join(before)
    assert "Changed row title" in text and "Original row title" not in text
    assert "CHANGED-REF-1" in text and "Bidding closed" in text and "Services" in text
    # A renamed centre too: the row shows its name.
    tender.centre.name = "Renamed Centre For Rows"
    db.session.commit()
    assert "Renamed Centre For Rows" in missed_page(client, "en", "2100-04-01")


def test_row_cache_keeps_languages_apart(app, client, make_tender):
    make_tender(title="Language row", category="works")
    app.test_client().get("/tenders/")  # the row cache made
    row_cache(app).clear()
    english = ROW.findall(missed_page(client, "en", "2100-05-01"))
    korean = ROW.findall(missed_page(client, "ko", "2100-05-02"))
    chinese = ROW.findall(missed_page(client, "zh-Hans", "2100-05-03"))
    assert len(row_cache(app)) == 3
    assert "Works" in english[0] and "Works" not in korean[0] and "Works" not in chinese[0]
    assert len({english[0], korean[0], chinese[0]}) == 3
    assert ROW.findall(missed_page(client, "en", "2100-05-04")) == english


def test_row_cache_is_a_bounded_lru():
    from app.portal.rows import RowCache

    rendered = []

    def render(key):
        rendered.append(key)
        return f"<tr>{key}</tr>"

    rows = RowCache(3)
    assert rows.rows([1, 2, 3], render) == ["<tr>1</tr>", "<tr>2</tr>", "<tr>3</tr>"]
    rows.rows([1], render)  # 1 used again: 2 is now the oldest
    rows.rows([4, 5], render)
    assert len(rows) == 3 and rendered == [1, 2, 3, 4, 5]
    rows.rows([1, 4, 5], render)
    assert rendered == [1, 2, 3, 4, 5]  # kept
    rows.rows([2, 3], render)
    assert rendered[-2:] == [2, 3] and len(rows) == 3  # evicted, rendered again
    assert RowCache(0).rows([1], render) == ["<tr>1</tr>"] and len(RowCache(0)) == 0


def test_listed_rows_know_every_zone_a_row_is_written_in():
    """The row cache keys a row by the platform's zone: centres have none of their own yet.
    When TradingCentre gets a time zone, ListedTender and the row key must carry it."""
    from app.centres.models import TradingCentre

    assert not hasattr(TradingCentre, "timezone")


def test_search_form_lists_the_centres_all_centres_lists(app, client, make_centre):
    from app.centres.operations import all_centres
    from app.portal.queries import centre_choices

    make_centre(code="ZULU-9"), make_centre(code="ALPHA-1")
    with app.test_request_context():
        choices = centre_choices()
        assert list(choices) == [(centre.code, centre.name) for centre in all_centres()]
    page = html(client.get("/tenders/?centre=ALPHA-1"))
    assert '<option value="ALPHA-1" selected>' in page and '<option value="ZULU-9" >' in page


def test_the_search_form_shows_a_new_centre_and_survives_a_redis_flush(app, client, make_centre):
    """The form's centres are read once per cache generation and worker: a centre created
    through the service bumps the generation, so the next missed list shows it; a Redis
    flush starts a new random generation, so nothing kept under an old one comes back."""
    from app.centres.operations import create_centre
    from app.core.cache import GENERATION_KEY
    from app.extensions import redis_client

    make_centre(code="FORM-A")
    assert '<option value="FORM-A" >' in html(client.get("/tenders/?q=first"))
    started = int(redis_client.client.get(GENERATION_KEY))
    assert started > 1  # at random, not 0 or 1
    create_centre(None, code="FORM-B", name="Form B", level="city", parent_id=None)
    db.session.commit()
    assert int(redis_client.client.get(GENERATION_KEY)) == started + 1
    assert '<option value="FORM-B" >' in html(client.get("/tenders/?q=second"))
    # A centre written behind the service's back, then Redis emptied: a new generation.
    make_centre(code="FORM-C")
    assert '<option value="FORM-C" >' not in html(client.get("/tenders/?q=third"))
    redis_client.client.flushdb()
    assert '<option value="FORM-C" >' in html(client.get("/tenders/?q=fourth"))
    assert int(redis_client.client.get(GENERATION_KEY)) not in (0, 1, started, started + 1)


# --- the list's shared parts (app.portal.views._shared_part): form choices, head, feeds ------

FORM_CHOICES = re.compile(r'<label for="search-centre">.*?<label for="search-from">', re.S)
FEED_LINKS = re.compile(r"<p><small>[^<]*<a .*\Z", re.S)


def parts_cache(app):
    from app.portal.rows import RowCache

    parts = app.extensions.get("fairbid_portal_parts")
    assert isinstance(parts, RowCache)
    return parts


@pytest.mark.parametrize("lang", ["en", "ko", "zh-Hans"])
def test_shared_parts_from_the_cache_are_the_bytes_of_a_fresh_render(
    app, client, make_tender, make_centre, lang
):
    centre = make_centre(code="PARTS-1", name='Parts <&> "Centre"')
    make_tender(title="Part tender", centre=centre, category="works")
    addresses = [
        "/tenders/?to={day}",
        "/tenders/?to={day}&centre=PARTS-1&category=works&status=published",
        "/tenders/?to={day}&q=%3Cb%3E%22%26%27&category=goods",
    ]

    def pages(month: int) -> list[str]:
        found = []
        for n, address in enumerate(addresses):
            flask_babel.refresh()
            address = address.format(day=f"2100-{month:02d}-{n + 10:02d}")
            response = client.get(address, headers={"Accept-Language": lang})
            assert response.headers["X-Portal-Cache"] == "miss"
            # The page but for the search's own date and the footer's server time.
            found.append(re.sub(r"2100-\d\d-\d\d", "", SERVER_TIME.sub("", html(response))))
        return found

    app.test_client().get("/tenders/")  # the caches made
    parts_cache(app).clear()
    cold = pages(6)
    held = len(parts_cache(app))
    assert held == 3 + 2 + 1  # the choices per search, the feeds per centre, one head
    warm = pages(7)
    assert len(parts_cache(app)) == held and warm == cold
    assert "Parts &lt;&amp;&gt; &#34;Centre&#34; (PARTS-1)</option>" in warm[1]
    assert '<option value="PARTS-1" selected>' in warm[1]
    assert '<option value="works" selected>' in warm[1]
    assert '<option value="published" selected>' in warm[1]
    assert '<option value="goods" selected>' in warm[2] and " selected>" not in warm[0]
    feeds = FEED_LINKS.search(warm[1]).group(0)
    assert '<a href="/feeds/centre/PARTS-1.atom" type="application/atom+xml">Parts &lt;' in feeds


def test_shared_parts_show_a_renamed_or_new_centre_and_keep_languages_apart(
    app, client, make_tender, make_centre, monkeypatch
):
    centre = make_centre(code="PARTS-2", name="Before Rename")
    make_tender(title="Part tender two", centre=centre)
    page = missed_page(client, "en", "2100-08-01")
    assert "Before Rename (PARTS-2)" in FORM_CHOICES.search(page).group(0)
    centre.name = "After Rename"
    make_centre(code="PARTS-3", name="Brand New Centre")
    db.session.commit()
    # Written in the database, not through the service (which bumps the cache generation):
    # the form's centres, read once per generation and worker, show them when the cached
    # pages would, after PORTAL_CACHE_SECONDS.
    page = missed_page(client, "en", "2100-08-06")
    assert "Before Rename (PARTS-2)" in FORM_CHOICES.search(page).group(0)
    later = monotonic() + app.config["PORTAL_CACHE_SECONDS"]
    monkeypatch.setattr("app.portal.queries.monotonic", lambda: later)
    page = missed_page(client, "en", "2100-08-02")
    choices = FORM_CHOICES.search(page).group(0)
    assert "After Rename (PARTS-2)" in choices and "Before Rename" not in choices
    assert "Brand New Centre (PARTS-3)" in choices
    response = client.get("/tenders/?to=2100-08-03&centre=PARTS-2")
    feeds = FEED_LINKS.search(html(response)).group(0)
    assert "After Rename" in feeds and "Before Rename" not in feeds
    english = FORM_CHOICES.search(missed_page(client, "en", "2100-08-04")).group(0)
    korean = FORM_CHOICES.search(missed_page(client, "ko", "2100-08-05")).group(0)
    assert "Trading centre" in english and "Trading centre" not in korean


# --- the signed-out layout shell (app.portal.layout) ------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ko", "zh-Hans"])
def test_signed_out_layout_shell_gives_the_bytes_of_a_render(
    app, client, make_tender, monkeypatch, lang
):
    from app.core.cache import GENERATION_KEY
    from app.portal import layout

    make_tender(title="Shell & <layout>")
    addresses = [
        "/tenders/",
        "/tenders/?q=%3Cb%3E%27x%22",
        "/tenders/?q=a%26b+c&category=works",
        "/tenders/?from=2000-01-01&to=2100-01-09",
        "/tenders/?page=2",
    ]
    app.extensions.pop("fairbid_portal_shells", None)

    def pages() -> list[str]:
        found = []
        for address in addresses:
            redis_client.client.incr(GENERATION_KEY)  # a miss: the layout is made
            flask_babel.refresh()
            response = client.get(address, headers={"Accept-Language": lang})
            assert response.headers["X-Portal-Cache"] == "miss"
            found.append(SERVER_TIME.sub("", html(response)))
        return found

    shelled = pages()
    shells = list(app.extensions["fairbid_portal_shells"].values())
    assert len(shells) == 1 and shells[0] is not None  # one language, one shell, made
    assert "fairbid-address-mark" not in "".join(shelled) and "fairbid:list" not in shelled[0]
    monkeypatch.setattr(layout, "marked_page", lambda *args: None)
    rendered = pages()
    assert shelled == rendered
    assert "next=/tenders/?q%3D%253Cb%253E%2527x%2522" in rendered[1]


def test_layout_shell_refuses_to_depend_on_the_rest_of_the_request():
    from app.portal.layout import ADDRESS_MARK, _MarkedRequest

    stand_in = _MarkedRequest()
    assert stand_in.full_path == ADDRESS_MARK
    with pytest.raises(LookupError):
        _ = stand_in.path


def test_a_layout_reading_more_of_the_request_is_rendered_not_shelled(
    app, client, make_tender, monkeypatch
):
    from app.portal import layout

    class Stricter(layout._MarkedRequest):
        @property
        def full_path(self):
            raise LookupError("as if the layout read request.path")

    make_tender(title="Never shelled")
    app.extensions.pop("fairbid_portal_shells", None)
    monkeypatch.setattr(layout, "_MarkedRequest", Stricter)
    response = client.get("/tenders/?q=never")
    assert response.status_code == 200 and response.headers["X-Portal-Cache"] == "miss"
    assert "Never shelled" in html(response) and "next=/tenders/?q%3Dnever" in html(response)
    assert list(app.extensions["fairbid_portal_shells"].values()) == [None]
