"""Red flags end to end: envelopes uploaded (keyed hashes of address and browser), the real
opening (PDF metadata read before stripping), the screening job run by the opening's
signal, the supervisors' pages and API, review with audit, scope, and invisibility to
everyone else."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.accounts import operations as account_ops
from app.accounts.models import Role
from app.audit import AuditEvent
from app.bids import operations as bid_ops
from app.bids.models import Bid
from app.core.keyed_hash import keyed_hash
from app.extensions import db
from app.opening.models import (
    EvaluatedBid,
    LineStatus,
    OpeningLine,
    OpeningSession,
    OpeningStatus,
    TechnicalSource,
)
from app.results.models import NoticeKind, ResultNotice
from app.supervision import flag_jobs, flags
from app.supervision.flag_models import FlagRun, FlagStatus, RedFlag
from app.tenders.models import Lot, Tender, TenderRegistration
from tests.conftest import run_queued_jobs
from tests.factories.bids import registered_bidder
from tests.factories.evaluations import record_bond, seal_bid, text_pdf, use_goods_template
from tests.factories.opening import custodians, open_for_real, past_opening, start, unlock

COLLUDING_TEXT = [
    "Method statement for the supply of water meters.",
    "We deliver 2,000 meters in four batches of 500, each tested at the factory.",
    "Installation crews of three people fit 60 meters a day under the bureau's supervision.",
    "Spare parts are kept in stock for ten years; calibration certificates come with each.",
]


def _open(make_tender, make_user, entries, centre=None):
    """A goods tender opened for real. `entries`: (price, technical PDF, address, agent)."""
    tender = use_goods_template(make_tender(centre=centre) if centre else make_tender())
    bidders = []
    for price, technical, address, agent in entries:
        bidder = registered_bidder(make_user, tender)
        body = seal_bid(tender, bidder, price, technical)
        bid_ops.submit_envelope(bidder, tender, io.BytesIO(body), ip=address, user_agent=agent)
        db.session.commit()
        record_bond(tender, bidder)
        bidders.append(bidder)
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        unlock(tender, custodian)
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Tender, tender.id), bidders


def _rules(tender) -> set[str]:
    return set(db.session.scalars(select(RedFlag.rule).where(RedFlag.tender_id == tender.id)))


@pytest.fixture
def colluding(make_tender, make_user):
    shared = text_pdf(COLLUDING_TEXT, author="Zhang Wei")
    independent = text_pdf(
        [
            "Our proposal: precast housings from our own plant in Ningbo,",
            "remote reading by radio, a pilot district first, then the city in 14 weeks.",
            "Two crews, one engineer on call, warranty of five years on every meter.",
        ]
    )
    return _open(
        make_tender,
        make_user,
        [
            ("1013.17", shared, "203.0.113.7", "Mozilla/5.0 (X11) Firefox/128.0"),
            ("1113.17", shared, "203.0.113.7", "Mozilla/5.0 (X11) Firefox/128.0"),
            ("1213.17", independent, "198.51.100.20", "Mozilla/5.0 (Windows) Edge/120"),
        ],
    )


def test_colluding_group_is_flagged_after_opening(colluding):
    tender, bidders = colluding
    rules = _rules(tender)
    assert {
        "equal_price_spacing",
        "identical_technical_files",
        "same_pdf_author",
        "same_submission_device",
    } <= rules
    assert "same_submission_address" not in rules  # the same device already says it
    device = db.session.scalar(
        select(RedFlag).where(
            RedFlag.tender_id == tender.id, RedFlag.rule == "same_submission_device"
        )
    )
    names = [f"{b.company.name} (#{b.company_id})" for b in bidders[:2]]
    assert device.evidence["bids"] == ", ".join(sorted(names))
    assert device.status == FlagStatus.OPEN and device.centre_id == tender.centre_id
    assert Decimal(device.score) == Decimal("0.9")
    # The tender itself is untouched by its flags.
    assert tender.status == "opened"


def test_metadata_is_read_before_stripping_and_kept_apart(colluding):
    tender, _ = colluding
    sources = db.session.scalars(
        select(TechnicalSource).where(TechnicalSource.tender_id == tender.id)
    ).all()
    assert sorted(s.author for s in sources) == ["", "Zhang Wei", "Zhang Wei"]
    assert all(len(s.text_sketch) > 20 for s in sources)
    # The technical parts the panel reads carry no author: stripped as before.
    from app.tenders.documents import blob_store

    for evaluated in db.session.scalars(
        select(EvaluatedBid).where(EvaluatedBid.tender_id == tender.id)
    ):
        with blob_store().open(evaluated.technical_sha256) as stream:
            assert b"Zhang Wei" not in stream.read()


def test_uploads_record_keyed_hashes_not_comparable_without_the_secret(colluding, app):
    tender, _ = colluding
    bids = db.session.scalars(select(Bid).where(Bid.tender_id == tender.id).order_by(Bid.id))
    first, second, third = list(bids)
    assert first.address_hmac == second.address_hmac != third.address_hmac
    assert first.address_hmac == keyed_hash("address", "203.0.113.7")
    assert "203.0.113.7" not in first.address_hmac and len(first.address_hmac) == 64
    # Another instance secret gives other hashes: they cannot be matched elsewhere.
    original = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another-instance-secret-of-enough-length-0123456789"
    try:
        assert keyed_hash("address", "203.0.113.7") != first.address_hmac
    finally:
        app.config["SECRET_KEY"] = original
    assert keyed_hash("address", None) is None


def test_ordinary_competitive_tender_raises_nothing(make_tender, make_user):
    proposals = [
        ["Supply plan A: meters from our Hangzhou plant, delivery in 30 days."],
        ["Plan B. Imported ultrasonic meters, installation by a partner firm, 45 days."],
        ["C: refurbished stock tested to class 2, two crews, training for bureau staff."],
        ["Proposal D with a pilot of 200 meters, then full rollout; remote reading option."],
    ]
    tender, _ = _open(
        make_tender,
        make_user,
        [
            ("812345.67", text_pdf(proposals[0]), "192.0.2.1", "UA-1"),
            ("905432.10", text_pdf(proposals[1]), "192.0.2.2", "UA-2"),
            ("1003210.55", text_pdf(proposals[2]), "192.0.2.3", "UA-3"),
            ("951876.40", text_pdf(proposals[3]), "192.0.2.4", "UA-4"),
        ],
    )
    assert _rules(tender) == set()


def test_nothing_is_flagged_before_the_opening(make_tender, make_user):
    tender = use_goods_template(make_tender())
    shared = text_pdf(COLLUDING_TEXT, author="Zhang Wei")
    for price in ("1000.00", "1000.00", "1000.00"):
        bidder = registered_bidder(make_user, tender)
        body = seal_bid(tender, bidder, price, shared)
        bid_ops.submit_envelope(bidder, tender, io.BytesIO(body), ip="203.0.113.7", user_agent="UA")
        db.session.commit()
    # Even asked directly, the screening finds nothing to read before the opening.
    assert flags.screen_tender(tender.id) == 0
    db.session.commit()
    assert _rules(tender) == set()
    assert db.session.scalar(select(func.count(TechnicalSource.id))) == 0


def test_rerun_keeps_the_review(colluding, make_user):
    tender, _ = colluding
    supervisor = make_user(Role.SUPERVISOR)
    flag = db.session.scalar(
        select(RedFlag).where(RedFlag.tender_id == tender.id, RedFlag.rule == "same_pdf_author")
    )
    flags.review_flag(supervisor, flag, FlagStatus.ACKNOWLEDGED, "looking into it")
    db.session.commit()
    count = db.session.scalar(select(func.count(RedFlag.id)))
    flag_jobs.screen_opened_tender(tender.id)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(RedFlag.id))) == count
    assert db.session.get(RedFlag, flag.id).status == FlagStatus.ACKNOWLEDGED


# --- supervisors' pages and API ---------------------------------------------------------------


def _flag(tender, rule="equal_price_spacing") -> RedFlag:
    return db.session.scalar(
        select(RedFlag).where(RedFlag.tender_id == tender.id, RedFlag.rule == rule)
    )


def test_supervisor_lists_reviews_and_every_action_is_audited(colluding, make_user, client, auth):
    tender, _ = colluding
    supervisor = make_user(Role.SUPERVISOR)
    auth.login(supervisor)
    page = client.get("/supervision/flags/?kind=source")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Identical technical files</a>" in text and "Equally spaced prices</a>" not in text
    flag = _flag(tender)
    shown = client.get(f"/supervision/flags/{flag.id}").get_data(as_text=True)
    assert "100.00" in shown and tender.reference in shown

    def review(action, reason=""):
        return client.post(
            f"/supervision/flags/{flag.id}/review", data={"action": action, "reason": reason}
        )

    assert review("acknowledged").status_code == 302
    refused = review("dismissed")  # no reason
    assert refused.status_code == 303
    db.session.expire_all()
    assert db.session.get(RedFlag, flag.id).status == FlagStatus.ACKNOWLEDGED
    assert review("dismissed", "Prices follow the published unit rates.").status_code == 302
    assert review("escalated").status_code == 303  # dismissed is final
    assert review("reopened").status_code == 400
    db.session.expire_all()
    flag = db.session.get(RedFlag, flag.id)
    assert flag.status == FlagStatus.DISMISSED and flag.reviewed_by_id == supervisor.id
    actions = db.session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.object_type == "red_flag", AuditEvent.object_id == str(flag.id))
        .order_by(AuditEvent.seq)
    ).all()
    assert actions == ["flag.acknowledged", "flag.dismissed"]
    assert db.session.get(Tender, tender.id).status == "opened"


def test_supervisors_see_only_their_centre_hierarchy(
    make_tender, make_user, make_centre, client, auth
):
    city = make_centre(level="city")
    county = make_centre(level="county", parent=city)
    other = make_centre(level="city")
    shared = text_pdf(COLLUDING_TEXT)
    tender, _ = _open(
        make_tender,
        make_user,
        [(p, shared, "203.0.113.9", "UA") for p in ("1000.50", "1100.50", "1200.50")],
        centre=county,
    )
    flag = _flag(tender)
    assert flag.centre_id == county.id
    city_supervisor = make_user(Role.SUPERVISOR, centre_id=city.id)
    outsider = make_user(Role.SUPERVISOR, centre_id=other.id)
    assert flags.visible_flag(city_supervisor, flag.id).id == flag.id
    auth.login(outsider)
    assert client.get(f"/supervision/flags/{flag.id}").status_code == 404
    listing = client.get("/supervision/flags/").get_data(as_text=True)
    assert "Equally spaced prices</a>" not in listing
    assert (
        client.post(
            f"/supervision/flags/{flag.id}/review", data={"action": "acknowledged"}
        ).status_code
        == 404
    )


def test_api_lists_filters_and_reviews(colluding, make_user, client):
    tender, bidders = colluding
    supervisor = make_user(Role.SUPERVISOR)
    token = account_ops.create_api_token(supervisor, "flags")
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    listing = client.get(f"/api/v1/supervision/flags?tender={tender.id}", headers=headers)
    assert listing.status_code == 200
    body = listing.get_json()
    assert body["total"] >= 4
    assert {f["rule"] for f in body["flags"]} >= {"equal_price_spacing", "same_pdf_author"}
    scores = [Decimal(f["score"]) for f in body["flags"]]
    assert scores == sorted(scores, reverse=True)
    flag = _flag(tender, "same_pdf_author")
    one = client.get(f"/api/v1/supervision/flags/{flag.id}", headers=headers).get_json()
    assert one["rule"] == "same_pdf_author" and one["status"] == "open"
    assert one["link"].endswith(f"/supervision/flags/{flag.id}")
    assert one["tender_link"].endswith(f"/tenders/{tender.id}")
    assert one["evidence"]["bids"] and "message" not in one["evidence"]
    bad = client.post(
        f"/api/v1/supervision/flags/{flag.id}/review", json={"action": "dismissed"}, headers=headers
    )
    assert bad.status_code == 400 and bad.get_json()["error"] == "reason_required"
    done = client.post(
        f"/api/v1/supervision/flags/{flag.id}/review",
        json={"action": "escalated", "reason": "Refer to the competition authority."},
        headers=headers,
    )
    assert done.status_code == 200 and done.get_json()["status"] == "escalated"
    assert client.get("/api/v1/supervision/flags?status=bogus", headers=headers).status_code == 422
    # Bidders (even the flagged ones), experts and the public never reach a flag.
    for role_user in (bidders[0], make_user(Role.EXPERT)):
        other = {"Authorization": f"Bearer {account_ops.create_api_token(role_user, 'x')}"}
        db.session.commit()
        assert client.get("/api/v1/supervision/flags", headers=other).status_code == 403
        assert client.get(f"/api/v1/supervision/flags/{flag.id}", headers=other).status_code == 403
    assert client.get("/api/v1/supervision/flags").status_code == 401


def test_bidder_pages_never_show_flags(colluding, client, auth):
    tender, bidders = colluding
    auth.login(bidders[0])
    for path in (f"/tenders/{tender.id}", "/bidder/", f"/supervision/flags/{_flag(tender).id}"):
        response = client.get(path)
        text = response.get_data(as_text=True)
        assert "Equally spaced prices" not in text and "same_submission" not in text
        assert "Zhang Wei" not in text
    assert client.get("/supervision/flags/").status_code == 403


# --- history: market signals and the nightly run ---------------------------------------------


def _history(make_tender, make_company, centre, outcomes):
    """Opened tenders built directly (no envelopes): (bidders, winner) per tender."""
    for companies, winner in outcomes:
        tender = make_tender(centre=centre, status="awarded", keyed=False)
        tender.procuring_entity = "Water Bureau"
        db.session.add(
            OpeningSession(
                tender_id=tender.id,
                started_by_id=tender.created_by_id,
                status=OpeningStatus.COMPLETED,
                wrap_salt="00",
                completed_at=datetime.now(UTC),
            )
        )
        db.session.flush()
        for n, company in enumerate(companies):
            bid = Bid(
                tender_id=tender.id,
                company_id=company.id,
                submitted_by_id=tender.created_by_id,
                envelope_sha256=f"{n}" * 64,
                size=1,
                received_at=datetime.now(UTC),
                receipt="{}",
            )
            db.session.add(bid)
            db.session.flush()
            db.session.add(
                OpeningLine(
                    tender_id=tender.id,
                    bid_id=bid.id,
                    company_id=company.id,
                    status=LineStatus.OPENED,
                    price=f"{1000 + 137 * n}.{n}3",
                    envelope_sha256=bid.envelope_sha256,
                )
            )
        db.session.add(
            ResultNotice(
                tender_id=tender.id,
                kind=NoticeKind.AWARD,
                content={"round": 1, "winner": {"company_id": winner.id}},
            )
        )
    db.session.commit()


def test_nightly_run_raises_market_flags_once_a_day(app, make_tender, make_company, make_centre):
    centre = make_centre()
    w, x, y, z = (make_company() for _ in range(4))
    lonely = make_company()
    _history(
        make_tender,
        make_company,
        centre,
        [([w, x, y], w), ([w, x], w), ([w, x, z], w), ([lonely], lonely), ([lonely], lonely)],
    )
    morning = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert flag_jobs.nightly(morning - timedelta(hours=2)) is False  # before the hour
    assert flag_jobs.nightly(morning) is True  # queued (inline with the in-process stand-in)
    assert flag_jobs.nightly(morning + timedelta(hours=5)) is False  # once a day
    db.session.commit()
    run_queued_jobs()
    db.session.expire_all()
    run = db.session.scalar(select(FlagRun))
    assert run.finished_at is not None and run.raised >= 2
    market = {
        (f.rule, f.evidence.get("company", f.evidence.get("subject")))
        for f in db.session.scalars(select(RedFlag).where(RedFlag.kind == "market"))
    }
    assert ("cover_bidding", f"{x.name} (#{x.id})") in market
    assert ("single_bid_share", centre.name) in market
    assert all(f.centre_id == centre.id for f in db.session.scalars(select(RedFlag)))


def test_cli_screens_a_tender_and_history(app, colluding):
    tender, _ = colluding
    runner = app.test_cli_runner()
    result = runner.invoke(args=["flags", "screen", str(tender.id)])
    assert result.exit_code == 0 and "flag(s) raised" in result.output
    assert runner.invoke(args=["flags", "screen", "999999"]).exit_code == 1
    result = runner.invoke(args=["flags", "market"])
    assert result.exit_code == 0 and "market flag(s) raised" in result.output


def test_thresholds_are_configurable(app, colluding):
    tender, _ = colluding
    app.config["SUPERVISION_FLAG_THRESHOLDS"] = {"screens": {"spacing_tolerance": "0"}}
    try:
        flags.screen_tender(tender.id)
        db.session.commit()
        assert "equal_price_spacing" in _rules(tender)  # exact spacing still within 0
        app.config["SUPERVISION_FLAG_THRESHOLDS"] = {"screens": {"no_such": "1"}}
        with pytest.raises(ValueError):
            flags.screen_tender(tender.id)
        db.session.rollback()
    finally:
        app.config["SUPERVISION_FLAG_THRESHOLDS"] = {}


def test_nightly_expert_signals_from_panels_and_scores(app, make_tender, make_user, make_centre):
    from app.evaluations.models import ScoreSheet, TechnicalScore
    from app.evaluations.scoring_file import technical_criteria
    from app.panels.models import MemberStatus, PanelMember

    centre = make_centre()
    regular, others = make_user(Role.EXPERT), [make_user(Role.EXPERT) for _ in range(2)]
    tenders = []
    for _ in range(4):
        tender = make_tender(centre=centre, status="evaluating", keyed=False)
        tender.procuring_entity = "Roads Office"
        tenders.append(tender)
    db.session.flush()
    for n, tender in enumerate(tenders):
        panel = [regular, others[n % 2]]
        for position, expert in enumerate(panel, start=1):
            db.session.add(
                PanelMember(
                    tender_id=tender.id,
                    user_id=expert.id,
                    status=MemberStatus.ACCEPTED,
                    position=position,
                )
            )
    # One scored tender: the regular expert marks every bid at the maximum, the two others
    # in the middle; on each bid the panel's median is the middle mark.
    scored = use_goods_template(tenders[0])
    criterion = technical_criteria(scored)[0]
    key, maximum = criterion["key"], criterion["max_points"]
    sheets = {}
    for expert in (regular, *others):
        sheets[expert.id] = ScoreSheet(
            tender_id=scored.id, user_id=expert.id, locked_at=datetime.now(UTC)
        )
        db.session.add(sheets[expert.id])
    db.session.flush()
    for n in range(5):
        bid = Bid(
            tender_id=scored.id,
            company_id=make_user(Role.BIDDER).company_id,
            submitted_by_id=scored.created_by_id,
            envelope_sha256=f"{n}" * 64,
            size=1,
            received_at=datetime.now(UTC),
            receipt="{}",
        )
        db.session.add(bid)
        db.session.flush()
        evaluated = EvaluatedBid(tender_id=scored.id, bid_id=bid.id, code=f"T-{n}AB")
        db.session.add(evaluated)
        db.session.flush()
        for expert, mark in (
            (regular, maximum),
            (others[0], maximum / 2),
            (others[1], maximum / 2),
        ):
            db.session.add(
                TechnicalScore(
                    sheet_id=sheets[expert.id].id,
                    evaluated_bid_id=evaluated.id,
                    criterion=key,
                    score=str(mark),
                )
            )
    db.session.commit()
    raised = flags.screen_market([centre.id])
    db.session.commit()
    found = {
        (f.rule, f.evidence.get("expert"))
        for f in db.session.scalars(select(RedFlag).where(RedFlag.centre_id == centre.id))
    }
    label = f"{regular.full_name} (#{regular.id})"
    assert ("expert_repeated_entity", label) in found
    assert ("expert_score_deviation", label) in found
    # The median keeps the two others clear of the regular expert's deviation.
    assert not any(expert != label for _, expert in found if expert)
    assert raised == len(found)


# --- a tender divided into lots: each lot is a competition ----------------------------------


def test_each_lot_is_screened_as_its_own_competition(make_tender, make_user, client, auth):
    """Lot 1 holds a colluding pair (equally spaced prices with the independent third, one
    technical file, one device); lot 2 an ordinary competition, where the independent
    company of lot 1 bids again with the same proposal from the same device. Screened per
    lot: lot 1's flags name lot 1; lot 2 raises nothing (screened as one competition, the
    spacing would vanish among lot 2's prices, and the company's own two bids would look
    like one source). The supervisors' pages show the lot."""
    tender = use_goods_template(make_tender())
    tender.lots.append(Lot(number=2, title="Lot 2", ceiling_price=Decimal("2000000.00")))
    db.session.commit()
    shared = text_pdf(COLLUDING_TEXT, author="Zhang Wei")
    own = text_pdf(["Our own plan: meters from our plant in Ningbo, delivered in 14 weeks."])
    entries = [  # company, lot, price, technical, address, agent
        ("A", "1", "1013.17", shared, "203.0.113.7", "Mozilla/5.0 (X11) Firefox/128.0"),
        ("B", "1", "1113.17", shared, "203.0.113.7", "Mozilla/5.0 (X11) Firefox/128.0"),
        ("C", "1", "1213.17", own, "198.51.100.20", "Mozilla/5.0 (Windows) Edge/120"),
        ("C", "2", "812345.67", own, "198.51.100.20", "Mozilla/5.0 (Windows) Edge/120"),
        (
            "D",
            "2",
            "905432.10",
            text_pdf(["Plan D: imported ultrasonic meters."]),
            "192.0.2.4",
            "UA-4",
        ),
        (
            "E",
            "2",
            "1003210.55",
            text_pdf(["E: refurbished stock, two crews."]),
            "192.0.2.5",
            "UA-5",
        ),
    ]
    companies = {}
    for name in "ABCDE":
        user = make_user(Role.BIDDER)
        registration = TenderRegistration(
            tender_id=tender.id, company_id=user.company_id, registered_by_id=user.id
        )
        registration.lots = list(tender.lots)
        db.session.add(registration)
        db.session.commit()
        companies[name] = user
    for name, lot, price, technical, address, agent in entries:
        user = companies[name]
        body = seal_bid(tender, user, price, technical, lot=lot)
        bid_ops.submit_envelope(user, tender, io.BytesIO(body), ip=address, user_agent=agent)
        db.session.commit()
    for user in companies.values():
        record_bond(tender, user)
    tender = open_for_real(tender)
    assert tender.status == "opened"

    raised = db.session.scalars(select(RedFlag).where(RedFlag.tender_id == tender.id)).all()
    assert {flag.competition for flag in raised} == {"1"}
    assert {
        "equal_price_spacing",
        "identical_technical_files",
        "same_pdf_author",
        "same_submission_device",
    } <= {flag.rule for flag in raised}
    assert all(flag.subject.startswith(f"tender:{tender.id}:lot:1:") for flag in raised)
    company_c = f"{companies['C'].company.name} (#{companies['C'].company_id})"
    device = next(f for f in raised if f.rule == "same_submission_device")
    assert company_c not in device.evidence["bids"]

    # A rerun updates the same rows; the API and pages name the lot.
    count = len(raised)
    flag_jobs.screen_opened_tender(tender.id)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(RedFlag.id))) == count
    supervisor = make_user(Role.SUPERVISOR)
    auth.login(supervisor)
    listing = client.get(f"/supervision/flags/?tender={tender.id}").get_data(as_text=True)
    assert listing.count('data-flag-lot="1"') == count
    shown = client.get(f"/supervision/flags/{device.id}").get_data(as_text=True)
    assert 'data-flag-lot="1"' in shown and "Lot 1" in shown
    assert flags.flag_json(device)["competition"] == "1"


def test_market_signals_count_each_lot_as_a_competition(make_tender, make_user):
    """Single-bid shares and cover bidding read one competition per lot (its own bidders)."""
    tender = use_goods_template(make_tender())
    tender.lots.append(Lot(number=2, title="Lot 2", ceiling_price=Decimal("2000000.00")))
    db.session.commit()
    bidders = []
    for _ in range(3):
        user = make_user(Role.BIDDER)
        registration = TenderRegistration(
            tender_id=tender.id, company_id=user.company_id, registered_by_id=user.id
        )
        registration.lots = list(tender.lots)
        db.session.add(registration)
        db.session.commit()
        bidders.append(user)
    for n, user in enumerate(bidders):
        bid_ops.submit_envelope(
            user, tender, io.BytesIO(seal_bid(tender, user, f"10{n}5.00", lot="1"))
        )
        bid_ops.submit_envelope(
            user, tender, io.BytesIO(seal_bid(tender, user, f"20{n}5.00", lot="2"))
        )
        db.session.commit()
        record_bond(tender, user)
    tender = open_for_real(tender)
    competitions, counts = flags._competitions(tender.centre_id)
    assert sorted(c.key for c in competitions) == [
        f"{tender.reference} (#{tender.id}) lot 1",
        f"{tender.reference} (#{tender.id}) lot 2",
    ]
    assert all(len(c.bidders) == 3 and c.winner is None for c in competitions)
    assert set(counts.values()) == {3}
