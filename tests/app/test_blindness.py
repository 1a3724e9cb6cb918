"""Blind technical scoring keeps the bidders' identities from the experts.

A tender whose bidders have distinctive names, credit codes, aliases and prices goes through
the real flow (sealed, opened, evaluation started, review confirmed). Signed in as panel
members, a crawler follows every link, form action and document of the scoring pages, and
reads every scoring API answer, in every state an expert meets before unblinding (drafts,
locked, every sheet locked with outliers, a sheet reopened): no identity appears in any
body, page title, URL or header. Then the codes are shown not to follow the submission
order."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

from app.accounts.models import Role
from app.accounts.operations import create_api_token
from app.bids.models import Bid
from app.companies.models import CompanyAlias
from app.core.types import utcnow
from app.evaluations import operations, queries, scoring_file
from app.extensions import db
from app.opening.models import AnonymityDecision
from app.opening.parts import identities_of, masked_excerpt, record_evaluated_bid, scan_pages
from app.tenders.models import Lot, TenderRegistration
from evaluation.anonymity import Identity
from tests.conftest import AuthActions
from tests.factories.bids import submit
from tests.factories.evaluations import (
    opened_tender,
    record_bond,
    seal_bid,
    seat_panel,
    text_pdf,
    use_goods_template,
)
from tests.factories.opening import open_for_real, staff_of
from tests.factories.scoring import confirm_review, fill_sheet, lock

# Prices nobody would type by chance, each checked in several spellings.
PRICES = ["487613.27", "503391.58", "512277.91"]
NAMES = ["Quillfeather Turbines", "Vexmoor Hydraulics", "Brackenholt Ironworks"]
ALIASES = ["QFT Zentral", "Vexmoor Old Mill", "Brackenholt & Söhne"]


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action", "data") and value:
                self.urls.append(value)
        self._in_title = tag == "title" and not self.title

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def price_spellings(price: str) -> list[str]:
    whole, cents = price.split(".")
    grouped = f"{int(whole):,}"
    return [
        price,
        whole,
        grouped,
        grouped.replace(",", " "),
        grouped.replace(",", "\u00a0"),
        grouped.replace(",", "."),
        f"{whole},{cents}",
    ]


@pytest.fixture
def blind(reviewing):
    """The tender in stage SCORING, its bidders made distinctive before anything is
    sealed (their technical PDFs carry the alias as /Author metadata, which the opening
    strips), and the forbidden strings."""
    tender, experts, forbidden, _opened = reviewing
    confirm_review(tender, experts[0])
    return tender, experts, forbidden


@pytest.fixture
def reviewing(make_tender, make_user):
    """The same tender in stage REVIEW (the evaluation started, nothing decided)."""
    technicals = [
        text_pdf(["Technical proposal", f"Proposal {n}: on time, in full."], author=alias)
        for n, alias in enumerate(ALIASES, start=1)
    ]
    opened = opened_tender(make_tender, make_user, PRICES, technicals=technicals)
    tender = opened.tender
    for bidder, name, alias in zip(opened.bidders, NAMES, ALIASES, strict=True):
        bidder.company.name = name + " Co., Ltd."
        bidder.full_name = f"{name} Agent"
        bidder.email = f"agent@{name.split()[0].lower()}.example"
        db.session.add(CompanyAlias(company_id=bidder.company_id, alias=alias))
    db.session.commit()
    experts = seat_panel(make_user, tender, 3)
    operations.start_evaluation(staff_of(tender), tender, chair=experts[0])
    db.session.commit()
    forbidden = set()
    for bidder, bid, price in zip(opened.bidders, opened.bids, PRICES, strict=True):
        company = bidder.company
        forbidden |= {
            company.name,
            company.name.split()[0],
            company.registration_number,
            bidder.email,
            bidder.full_name,
            bid.envelope_sha256,
            *price_spellings(price),
        }
    forbidden |= set(ALIASES) | set(NAMES)
    return tender, experts, forbidden, opened


class Crawler:
    """Fetches every same-site URL reachable from the start pages inside the scoring area,
    checking each response against the forbidden strings."""

    ALLOWED_PREFIXES = ("/scoring/", "/api/v1/tenders/")

    def __init__(self, client, tender, forbidden):
        self.client, self.tender, self.forbidden = client, tender, forbidden
        self.seen: set[str] = set()
        self.pages = 0

    def check_text(self, where: str, text: str) -> None:
        lowered = text.casefold()
        for needle in self.forbidden:
            assert needle.casefold() not in lowered, f"{needle!r} in {where}"
        # HTML escaping must not hide a name either.
        unescaped = lowered.replace("&amp;", "&").replace("&#39;", "'").replace("&quot;", '"')
        for needle in self.forbidden:
            assert needle.casefold() not in unescaped, f"{needle!r} (escaped) in {where}"

    def check_url(self, url: str) -> None:
        self.check_text(f"URL {url}", url)
        # The only number a scoring URL carries is the tender's id (codes aside).
        path = urlsplit(url).path.removeprefix("/api/v1/")
        path = re.sub(r"T-[0-9A-Z]{3}", "", path)
        numbers = {int(n) for n in re.findall(r"\d+", path)} - {self.tender.id}
        assert not numbers, f"unexpected ids {numbers} in {url}"

    def check_headers(self, url: str, response) -> None:
        for name, value in response.headers.items():
            self.check_text(f"header {name} of {url}", value)

    def check_json(self, url: str, value, path: str = "") -> None:
        """No identity anywhere, and integers only where the format puts them."""
        if isinstance(value, dict):
            for key, item in value.items():
                assert key not in {"bid_id", "bidder_id", "company", "price", "bidder"}, (
                    f"{key} in {url}"
                )
                self.check_json(url, item, f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                self.check_json(url, item, f"{path}[]")
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            allowed = {
                ".status",
                ".tender.id",
                ".seat",
                ".filled",
                ".total",
                ".reopened_count",
                ".members[].seat",
                ".members[].filled",
                ".members[].total",
                ".members[].reopened_count",
            }
            assert path in allowed, f"integer {value} at {path} in {url}"
            if path == ".tender.id":
                assert value == self.tender.id

    def get(self, url: str, headers=None):
        self.check_url(url)
        response = self.client.get(url, headers=headers or {})
        self.pages += 1
        # 405: a form's action, POST only (its URL and answer are still checked).
        assert response.status_code in (200, 302, 303, 403, 404, 405, 409), (
            url,
            response.status_code,
        )
        self.check_headers(url, response)
        location = response.headers.get("Location")
        if location:
            self.check_url(location)
        return response

    def crawl(self, start: list[str], headers=None) -> None:
        queue = list(start)
        while queue:
            url = urldefrag(queue.pop(0))[0]
            if url in self.seen:
                continue
            self.seen.add(url)
            response = self.get(url, headers)
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith("application/pdf"):
                disposition = response.headers["Content-Disposition"]
                assert re.fullmatch(r'inline; filename="T-[0-9A-Z]{3}\.pdf"', disposition)
                # The /Author the bidder left in is gone from the stripped part.
                for alias in ALIASES:
                    assert alias.encode() not in response.data
                continue
            text = response.get_data(as_text=True)
            self.check_text(url, text)
            if content_type.startswith("application/json"):
                body = response.get_json()
                self.check_json(url, body)
                for bid in body.get("bids", []) if isinstance(body, dict) else []:
                    if bid.get("document_url"):
                        queue.append(bid["document_url"])
                continue
            links = Links()
            links.feed(text)
            self.check_text(f"title of {url}", links.title)
            for found in links.urls:
                target = urljoin(url, found)
                parts = urlsplit(target)
                if parts.netloc not in ("", "localhost"):
                    continue
                self.check_url(parts.path)
                if parts.path.startswith(self.ALLOWED_PREFIXES) and parts.path not in self.seen:
                    queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))

    def post(self, url: str, **kwargs):
        self.check_url(url)
        response = self.client.post(url, **kwargs)
        self.check_headers(url, response)
        if response.headers.get("Location"):
            self.check_url(response.headers["Location"])
        if response.is_json:
            self.check_text(url, response.get_data(as_text=True))
            self.check_json(url, response.get_json())
        else:
            self.check_text(url, response.get_data(as_text=True))
        return response


class Sessions:
    """One signed-in client and API token per expert (a TOTP code is accepted once)."""

    def __init__(self, app, tender, forbidden):
        self.app, self.tender, self.forbidden = app, tender, forbidden
        self.clients: dict[int, tuple] = {}

    def crawl(self, user) -> Crawler:
        if user.id not in self.clients:
            client = self.app.test_client()
            AuthActions(client).login(user)
            token = create_api_token(user, "crawl")
            db.session.commit()
            self.clients[user.id] = (client, {"Authorization": f"Bearer {token}"})
        client, api = self.clients[user.id]
        crawler = Crawler(client, self.tender, self.forbidden)
        crawler.api = api
        tender_id = self.tender.id
        crawler.crawl(["/scoring/", f"/scoring/tenders/{tender_id}", "/panels/invitations"])
        base = f"/api/v1/tenders/{tender_id}/scoring"
        crawler.crawl([f"{base}/sheet", f"{base}/progress", f"{base}/results"], headers=api)
        return crawler


def test_experts_never_meet_an_identity(app, blind):
    tender, experts, forbidden = blind
    chair, second, third = experts
    codes = [b.code for b in queries.evaluated_bids(tender)]
    criteria = scoring_file.criteria_of(tender)

    sessions = Sessions(app, tender, forbidden)
    crawl_as = sessions.crawl
    # 1. Empty sheets.
    for user in experts:
        crawler = crawl_as(user)
        assert crawler.pages >= 2 + 2 * len(codes)
    # 2. Drafts and refusals through the pages and the API, each answer checked.
    crawler = crawl_as(second)
    form = {f"score_{c.key}": "1" for c in criteria} | {"score_training": "5"}  # no reason
    refused = crawler.post(f"/scoring/tenders/{tender.id}/bids/{codes[0]}", data=form)
    assert refused.status_code == 400
    answer = crawler.client.put(
        f"/api/v1/tenders/{tender.id}/scoring/sheet",
        headers=crawler.api,
        json={"scores": [{"code": codes[1], "criterion": "training", "score": "9"}]},
    )
    assert answer.status_code == 400
    crawler.check_text("PUT sheet", answer.get_data(as_text=True))
    crawler.check_json("PUT sheet", answer.get_json())
    form["reason_training"] = "Complete plan."
    assert (
        crawler.post(f"/scoring/tenders/{tender.id}/bids/{codes[0]}", data=form).status_code == 302
    )
    # 3. Every sheet locked; seat 3 an outlier on one bid, so flags show.
    fill_sheet(second, tender)
    lock(second, tender)
    fill_sheet(chair, tender)
    lock(chair, tender)
    fill_sheet(third, tender, {(codes[2], "specification_compliance"): "25"})
    lock(third, tender)
    assert queries.open_outliers(tender)
    for user in experts:
        crawl_as(user)
    # 4. The outlier's reason, a reopened sheet, locked again: still nothing.
    crawler = crawl_as(third)
    crawler.post(
        f"/scoring/tenders/{tender.id}/outliers",
        data={"code": codes[2], "criterion": "specification_compliance", "reason": "Best."},
    )
    chair_crawler = crawl_as(chair)
    chair_crawler.post(
        f"/scoring/tenders/{tender.id}/reopen", data={"seat": 2, "reason": "Typing error."}
    )
    crawl_as(second)
    crawl_as(chair)
    lock(second, tender)
    crawl_as(chair)

    # The identities do appear once the chair unblinds (the check above can fail).
    operations.unblind(chair, tender)
    db.session.commit()
    client = sessions.clients[second.id][0]
    text = client.get(f"/scoring/tenders/{tender.id}/results").get_data(as_text=True)
    assert all(name in text for name in NAMES)
    assert any(code in text for code in codes)


def test_codes_do_not_follow_the_submission_order(make_tender, make_user):
    """Codes drawn for 20 tenders of 5 bids each, in submission order: if the codes kept
    that order, every tender would list its bids by code in submission order."""
    bidders = [make_user(Role.BIDDER) for _ in range(5)]
    in_order, first_positions, all_codes = 0, set(), []
    for _ in range(20):
        tender = make_tender(keyed=False)
        bids = []
        for bidder in bidders:
            bid = Bid(
                tender_id=tender.id,
                company_id=bidder.company_id,
                submitted_by_id=bidder.id,
                envelope_sha256="c" * 64,
                size=1,
                received_at=utcnow(),
                receipt="{}",
            )
            db.session.add(bid)
            db.session.flush()
            bids.append(bid)
        taken: set[str] = set()
        rows = [record_evaluated_bid(tender.id, bid.id, None, taken) for bid in bids]
        db.session.flush()
        codes = [row.code for row in rows]
        assert len(set(codes)) == 5 and all(re.fullmatch(r"T-[0-9A-Z]{3}", c) for c in codes)
        by_code = [row.bid_id for row in queries.evaluated_bids(tender)]
        in_order += by_code == [b.id for b in bids]
        first_positions.add(by_code.index(bids[0].id))
        all_codes += codes
    db.session.rollback()
    # Random codes: a tender keeps submission order with probability 1/120.
    assert in_order <= 2
    assert len(first_positions) >= 3
    assert len(set(all_codes)) >= 90  # 100 codes from 32**3: hardly any repeats


def crawl_for_joins(client, tender, forbidden) -> int:
    """Follows the evaluation and scoring pages of the tender as `client`: no page shows
    both an identity and a technical code. The number of pages read."""
    codes = [b.code for b in queries.evaluated_bids(tender)]
    queue, seen, pages = (
        [f"/evaluations/tenders/{tender.id}", f"/scoring/tenders/{tender.id}"],
        set(),
        0,
    )
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        if response.status_code != 200 or not response.mimetype.startswith("text/html"):
            continue
        pages += 1
        text = response.get_data(as_text=True).replace("&amp;", "&")
        named = [n for n in forbidden if n.casefold() in text.casefold()]
        coded = [c for c in codes if c in text]
        assert not (named and coded), f"{url} shows {named[:2]} and {coded[:2]}"
        links = Links()
        links.feed(text)
        for found in links.urls:
            path = urlsplit(urljoin(url, found)).path
            if path.startswith((f"/evaluations/tenders/{tender.id}", "/scoring/")):
                queue.append(path)
    return pages


def test_no_page_of_the_panel_links_a_code_to_an_identity(app, blind):
    """The review pages name the bidders (compliance is not blind) and the anonymity page
    names codes: no page the panel reaches in stage SCORING shows both."""
    tender, experts, forbidden = blind
    client = app.test_client()
    AuthActions(client).login(experts[0])  # the chair sees the most
    assert crawl_for_joins(client, tender, forbidden) >= 3


# What changes from one request to the next: the form token and the server time.
VOLATILE = re.compile(r'name="csrf_token" value="[^"]*"|Server time:.*?</time>', re.S)


class IdentityPages:
    """The review page and its API answer (keyed by company and opening sequence), as the
    chair and the centre's staff read them."""

    def __init__(self, app, tender, users):
        self.tender = tender
        self.sessions = []
        for user in users:
            client = app.test_client()
            AuthActions(client).login(user)
            token = create_api_token(user, "review")
            db.session.commit()
            self.sessions.append((client, {"Authorization": f"Bearer {token}"}))

    def read(self) -> list:
        out = []
        for client, api in self.sessions:
            page = client.get(f"/evaluations/tenders/{self.tender.id}")
            assert page.status_code == 200
            out.append(VOLATILE.sub("", page.get_data(as_text=True)))
            answer = client.get(f"/api/v1/tenders/{self.tender.id}/evaluation/review", headers=api)
            assert answer.status_code == 200
            out.append(answer.get_json())
        return out


def _swap_questions(first, second) -> None:
    """Moves the anonymity question of one evaluated bid to the other (and back)."""
    first_state = (first.anonymity_hits, first.anonymity_decision, first.anonymity_reason)
    second_state = (second.anonymity_hits, second.anonymity_decision, second.anonymity_reason)
    first.anonymity_hits, first.anonymity_decision, first.anonymity_reason = second_state
    second.anonymity_hits, second.anonymity_decision, second.anonymity_reason = first_state
    db.session.commit()


def _anonymity_statuses(review: dict) -> dict[int, str]:
    return {
        bid["bid_id"]: next(
            c["status"] for c in bid["checks"] if c["check"] == "technical_part_anonymous"
        )
        for bid in review["bids"]
    }


def test_identity_pages_say_nothing_of_one_bids_technical_part(app, reviewing):
    """The anonymity page names technical codes; the review names companies. Whichever bid
    a pending or accepted question is about, the review page and API answer are the same
    (only the number of open questions shows), so a panel member cannot join a code to a
    company through them; the anonymity page masks the identity with a fixed token."""
    tender, experts, forbidden, opened = reviewing
    chair = experts[0]
    rows = {row.bid_id: row for row in queries.evaluated_bids(tender)}
    asked, rejected, clean = (rows[bid.id] for bid in opened.bids)
    for row, bidder in ((asked, opened.bidders[0]), (rejected, opened.bidders[1])):
        company = bidder.company
        text = f"Prepared by {company.name} for the city."
        row.anonymity_hits = scan_pages([text], identities_of(company))
        assert row.anonymity_hits
        row.anonymity_decision = AnonymityDecision.PENDING
    db.session.commit()
    pages = IdentityPages(app, tender, [chair, staff_of(tender)])
    chair_client = pages.sessions[0][0]

    def same_whichever_bid() -> list:
        before = pages.read()
        _swap_questions(asked, clean)
        after = pages.read()
        _swap_questions(asked, clean)
        for seen, moved in zip(before, after, strict=True):
            assert seen == moved, "the review tells which bid the question is about"
        return before

    # 1. Two questions open (stage REVIEW).
    shown = same_whichever_bid()
    assert "Anonymity questions: 2 open." in shown[0]
    assert shown[1]["open_questions"]["anonymity"] == 2
    assert set(_anonymity_statuses(shown[1]).values()) == {"blind"}
    assert crawl_for_joins(chair_client, tender, forbidden) >= 2
    anonymity = chair_client.get(f"/evaluations/tenders/{tender.id}/anonymity")
    text = anonymity.get_data(as_text=True)
    assert asked.code in text and "[name removed]" in text and "█" not in text
    for needle in forbidden:
        assert needle.casefold() not in text.replace("&amp;", "&").casefold(), needle
    api_answer = chair_client.get(
        f"/api/v1/tenders/{tender.id}/evaluation/anonymity", headers=pages.sessions[0][1]
    ).get_json()
    excerpts = [h["excerpt"] for q in api_answer["questions"] for h in q["hits"]]
    assert excerpts and all("[name removed]" in e for e in excerpts)

    # 2. One accepted, one rejected: only the rejection shows, on its (non-compliant) bid,
    # whose technical part is not scored.
    operations.decide_anonymity(chair, tender, asked.code, True, "Harmless.")
    operations.decide_anonymity(chair, tender, rejected.code, False, "Signed by the company.")
    db.session.commit()
    shown = same_whichever_bid()
    assert "Anonymity questions: 0 open." in shown[0]
    review = shown[1]
    assert _anonymity_statuses(review) == {
        opened.bids[0].id: "blind",
        opened.bids[1].id: "failed",
        opened.bids[2].id: "blind",
    }
    assert next(b for b in review["bids"] if b["bid_id"] == opened.bids[1].id)["compliant"] is False
    assert crawl_for_joins(chair_client, tender, forbidden) >= 2

    # 3. Review confirmed: blind scoring, the same.
    confirm_review(tender, chair)
    same_whichever_bid()
    assert crawl_for_joins(chair_client, tender, forbidden) >= 3

    # 4. Unblinded: each bid's check reads as decided (the check above can fail).
    for expert in experts:
        fill_sheet(expert, tender)
        lock(expert, tender)
    operations.unblind(chair, tender)
    db.session.commit()
    assert set(_anonymity_statuses(pages.read()[1]).values()) == {"passed", "failed"}


def test_the_mask_does_not_keep_the_shape_of_the_name():
    """Two names of different lengths, words and punctuation leave the same excerpt."""
    excerpts = set()
    for name in ("Li Co., Ltd.", "Brackenholt & Söhne-Ironworks (Group) Co., Ltd."):
        hits = scan_pages([f"Prepared by {name} for the city."], [Identity("name", name)])
        assert len(hits) == 1
        excerpts.add(masked_excerpt(hits[0]))
    assert excerpts == {"Prepared by [name removed] for the city."}


# --- the same crawl over a tender divided into lots -----------------------------------------

# company index -> lot -> price: every company bids for every lot, each price distinctive.
LOT_PRICES = {
    0: {"1": "487613.27", "2": "143872.61", "3": "263419.83"},
    1: {"1": "503391.58", "2": "151948.37", "3": "271836.19"},
    2: {"1": "512277.91", "2": "158317.46", "3": "279104.72"},
}


@pytest.fixture
def blind_lots(make_tender, make_user):
    """A goods tender of three lots, three distinctive companies each bidding for every lot
    (technical PDFs carrying their alias as /Author), opened for real, the review confirmed:
    stage SCORING, every lot scored blind by code."""
    tender = use_goods_template(make_tender())
    db.session.add_all(
        [
            Lot(tender_id=tender.id, number=2, title="Lot 2", ceiling_price=Decimal("200000.00")),
            Lot(tender_id=tender.id, number=3, title="Lot 3", ceiling_price=Decimal("300000.00")),
        ]
    )
    db.session.commit()
    db.session.refresh(tender)
    bidders = []
    for name, alias in zip(NAMES, ALIASES, strict=True):
        user = make_user(Role.BIDDER)
        user.company.name = name + " Co., Ltd."
        user.full_name = f"{name} Agent"
        user.email = f"agent@{name.split()[0].lower()}.example"
        db.session.add(CompanyAlias(company_id=user.company_id, alias=alias))
        registration = TenderRegistration(
            tender_id=tender.id, company_id=user.company_id, registered_by_id=user.id
        )
        registration.lots = list(tender.lots)
        db.session.add(registration)
        db.session.commit()
        bidders.append(user)
    bids = []
    for index, user in enumerate(bidders):
        for lot, price in LOT_PRICES[index].items():
            technical = text_pdf(
                ["Technical proposal", f"Lot {lot}: on time, in full."], author=ALIASES[index]
            )
            bids.append(submit(tender, user, seal_bid(tender, user, price, technical, lot=lot)))
        record_bond(tender, user)
    tender = open_for_real(tender)
    experts = seat_panel(make_user, tender, 3)
    operations.start_evaluation(staff_of(tender), tender, chair=experts[0])
    db.session.commit()
    confirm_review(tender, experts[0])
    forbidden = set(ALIASES) | set(NAMES)
    for bidder in bidders:
        company = db.session.get(type(bidder.company), bidder.company_id)
        forbidden |= {
            company.name,
            company.name.split()[0],
            company.registration_number,
            bidder.email,
            bidder.full_name,
        }
    for bid in bids:
        forbidden.add(db.session.get(Bid, bid.id).envelope_sha256)
    for prices in LOT_PRICES.values():
        for price in prices.values():
            forbidden |= set(price_spellings(price))
    return tender, experts, forbidden, bidders


def test_experts_never_meet_an_identity_in_a_tender_of_lots(app, blind_lots):
    """Every lot is scored blind: no company name, alias, credit code, agent, envelope hash
    or price on any scoring page or API answer; the codes tell no company across lots (a
    company's technical parts get unrelated codes, one per lot); no page the panel reaches
    joins a code to a company."""
    tender, experts, forbidden, _bidders = blind_lots
    rows = queries.evaluated_bids(tender)
    assert len(rows) == 9
    # One code per technical part, none shared across lots: the same company's proposals
    # for two lots cannot be linked by their codes.
    codes = [row.code for row in rows]
    assert len(set(codes)) == 9
    by_company: dict[int, set[str]] = {}
    for row in rows:
        company_id = db.session.get(Bid, row.bid_id).company_id
        by_company.setdefault(company_id, set()).add(row.code)
    assert all(len(company_codes) == 3 for company_codes in by_company.values())

    sessions = Sessions(app, tender, forbidden)
    # 1. Empty sheets: every lot's codes reachable, nothing else.
    for user in experts:
        crawler = sessions.crawl(user)
        reached = "".join(crawler.seen)
        assert all(code in reached for code in codes), "the crawl missed a lot's bids"
    chair_client = sessions.clients[experts[0].id][0]
    assert crawl_for_joins(chair_client, tender, forbidden) >= 3
    # 2. Every sheet filled and locked.
    for expert in experts:
        fill_sheet(expert, tender)
        lock(expert, tender)
    for user in experts:
        sessions.crawl(user)
    assert crawl_for_joins(chair_client, tender, forbidden) >= 3

    # The identities do appear once the chair unblinds (the checks above can fail).
    operations.unblind(experts[0], tender)
    db.session.commit()
    client = sessions.clients[experts[1].id][0]
    text = client.get(f"/scoring/tenders/{tender.id}/results").get_data(as_text=True)
    assert all(name in text for name in NAMES)
