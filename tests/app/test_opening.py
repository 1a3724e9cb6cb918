"""The opening ceremony: k-of-n custodians, opening every sealed envelope against its
receipt, faults (revoked / withdrawn), min_bids, the job's idempotency, the live stream,
bidders' confirmations and objections, and no bid content anywhere before the opening."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.bids import operations as bid_ops
from app.bids.receipts import platform_signing_key
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.extensions import db, redis_client
from app.opening import jobs
from app.opening import operations as ops
from app.opening.models import LineStatus, OpeningLine, OpeningSession, OpeningStatus, ShareUnlock
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument, TenderStatus
from bidding import keys
from bidding.opening_record import verify_opening_record
from tests.conftest import run_queued_jobs
from tests.factories import CUSTODIAN_PASSPHRASE
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc
from tests.factories.opening import custodians, past_opening, staff_of, start, unlock


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def seal_for(tender, bidder, price, **extra) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    key = X25519PublicKey.from_public_bytes(public_key(tender))
    return lib_seal(key, tid(tender), uscc(bidder), price=price, **extra)


@pytest.fixture(autouse=True)
def request_context(app):
    # Refusals carry lazily translated messages: give them a request to translate in.
    with app.test_request_context():
        yield


@pytest.fixture
def tender(make_tender):
    return make_tender()  # real key ceremony: 2 custodians, k = 2


@pytest.fixture
def bidders(make_user, tender):
    return [registered_bidder(make_user, tender) for _ in range(4)]


def text_columns_contain(needle: str) -> list[str]:
    hits = []
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, sa.String):  # Text is a String too
                continue
            found = db.session.scalar(
                select(func.count()).select_from(table).where(column.contains(needle))
            )
            if found:
                hits.append(f"{table.name}.{column.name}")
    return hits


def blobs_contain(needle: bytes) -> list[str]:
    root = blob_store().root
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def redis_contains(needle: str) -> bool:
    client = redis_client.client
    for key in client.scan_iter("*"):
        try:
            value = client.dump(key) or b""
        except Exception:
            value = b""
        if needle.encode() in key or needle.encode() in value:
            return True
    return False


# --- the ceremony ---------------------------------------------------------------------------


def test_before_the_opening_time_the_ceremony_is_refused(tender, bidders):
    for bidder, price in zip(bidders[:3], ["10", "20", "30"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    with pytest.raises(Conflict) as refused:
        ops.start_opening(staff_of(tender), tender)
    assert refused.value.code == "before_opening"
    db.session.rollback()
    assert ops.session_of(tender) is None
    assert db.session.get(Tender, tender.id).status == TenderStatus.PUBLISHED


def test_k_minus_one_custodians_open_nothing_and_k_open_everything(tender, bidders, client):
    canary = "CANARY-" + secrets.token_hex(8)
    prices = ["1000.50", "999.99", "1200.00"]
    bids = []
    for bidder, price in zip(bidders[:3], prices, strict=True):
        bids.append(
            submit(tender, bidder, seal_for(tender, bidder, price, delivery_days=30, note=canary))
        )
    past_opening(tender)
    session = start(tender)
    assert session.status == OpeningStatus.UNLOCKING
    assert db.session.get(Tender, tender.id).status == TenderStatus.CLOSED
    assert bid_ops.sealing_record_of(tender) is not None

    first, second = custodians(tender)
    assert unlock(tender, first) is False
    # k - 1: nothing opened, and the page names who is missing (to staff and custodians).
    assert count(OpeningLine, OpeningLine.tender_id == tender.id) == 0
    state = ops.custodian_state(tender)
    assert [u.id for u in state.missing] == [second.id]
    assert db.session.get(Tender, tender.id).status == TenderStatus.CLOSED
    # Nothing of the bids in clear anywhere before the opening; the waiting share is
    # ciphertext that the database alone cannot open.
    assert text_columns_contain(canary) == []
    assert blobs_contain(canary.encode()) == []
    assert not redis_contains(canary)
    waiting = db.session.scalar(select(ShareUnlock).where(ShareUnlock.tender_id == tender.id))
    assert waiting.sealed_share and " " not in waiting.sealed_share
    with pytest.raises(Conflict):
        ops.unlock_share(first, tender, CUSTODIAN_PASSPHRASE)
    db.session.rollback()

    assert unlock(tender, second) is True
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    assert tender.status == TenderStatus.OPENED
    lines = ops.lines_of(tender)
    assert [(line.bid_id, line.status, line.price) for line in lines] == [
        (bid.id, LineStatus.OPENED, price) for bid, price in zip(bids, prices, strict=True)
    ]
    assert ops.commercial_fields(lines[0]) == {
        "delivery_days": 30,
        "note": canary,
        "price": "1000.50",
    }
    assert [line.envelope_sha256 for line in lines] == [bid.envelope_sha256 for bid in bids]
    # The shares waited only until the opening.
    assert db.session.scalars(select(ShareUnlock.sealed_share)).all() == [None, None]
    record = ops.record_of(tender)
    signed = blob_store().path_for(record.sha256).read_bytes()
    sealing = blob_store().path_for(bid_ops.sealing_record_of(tender).sha256).read_bytes()
    # Signed by the platform, naming the sealing record whose envelopes it opened.
    data = verify_opening_record(signed, platform_signing_key().public_key(), sealing)
    assert [line["commercial"]["price"] for line in data["lines"]] == prices
    assert data["sealing_record_sha256"] == bid_ops.sealing_record_of(tender).sha256
    # After the opening the canary is in the opening line (and the published record).
    assert text_columns_contain(canary) == ["opening_line.commercial"]
    assert "tender.opened" in db.session.scalars(select(AuditEvent.action)).all()
    assert verify_chain() is None
    page = client.get(f"/opening/tenders/{tender.id}")
    assert page.status_code == 200 and "999.99" in page.get_data(as_text=True)


def test_wrong_passphrase_keeps_the_share_locked(tender, bidders):
    for bidder, price in zip(bidders[:3], ["1", "2", "3"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    start(tender)
    with pytest.raises(OperationError) as refused:
        ops.unlock_share(custodians(tender)[0], tender, "not the passphrase at all")
    assert refused.value.code == "wrong_passphrase"
    db.session.commit()
    assert count(ShareUnlock) == 0
    assert "key_share.unlock_failed" in db.session.scalars(select(AuditEvent.action)).all()


def test_tampered_blob_is_withdrawn_and_a_wrong_key_envelope_revoked(tender, bidders):
    good = submit(tender, bidders[0], seal_for(tender, bidders[0], "500.00"))
    # Sealed to another key: the envelope passes inspection but the bidder's fault at opening.
    stranger = keys.generate_tender_key().public_key()
    wrong = submit(tender, bidders[1], lib_seal(stranger, tid(tender), uscc(bidders[1])))
    tampered = submit(tender, bidders[2], seal_for(tender, bidders[2], "700.00"))
    other = submit(tender, bidders[3], seal_for(tender, bidders[3], "800.00"))
    path = blob_store().path_for(tampered.envelope_sha256)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        unlock(tender, custodian)
    lines = {line.bid_id: line for line in ops.lines_of(tender)}
    assert lines[good.id].status == LineStatus.OPENED and lines[good.id].price == "500.00"
    assert lines[other.id].status == LineStatus.OPENED and lines[other.id].price == "800.00"
    assert lines[wrong.id].status == LineStatus.REVOKED and lines[wrong.id].price is None
    assert lines[tampered.id].status == LineStatus.WITHDRAWN
    assert "differs" in lines[tampered.id].reason
    incidents = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "opening.incident")
    ).all()
    assert [event.object_id for event in incidents] == [str(tampered.id)]
    assert db.session.get(Tender, tender.id).status == TenderStatus.OPENED


def test_too_few_bids_fail_the_tender_without_opening(tender, bidders):
    for bidder, price in zip(bidders[:2], ["1", "2"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    session = start(tender)
    assert session.status == OpeningStatus.FAILED
    assert "2 bid(s)" in session.reason and "3" in session.reason
    assert db.session.get(Tender, tender.id).status == TenderStatus.FAILED
    assert count(OpeningLine) == 0
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "tender.failed"))
    assert event is not None
    with pytest.raises(Conflict):
        ops.unlock_share(custodians(tender)[0], tender, CUSTODIAN_PASSPHRASE)


def test_the_job_rerun_completes_exactly_once(tender, bidders, monkeypatch):
    for bidder, price in zip(bidders[:3], ["10", "20", "30"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    start(tender)
    first, second = custodians(tender)
    unlock(tender, first)
    # The worker dies after opening two envelopes: nothing is written.
    assert ops.unlock_share(second, tender, CUSTODIAN_PASSPHRASE) is True
    db.session.commit()
    calls = {"n": 0}
    real = ops._open_one

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "_open_one", dying)
    with pytest.raises(RuntimeError):
        jobs.open_tender_bids(tender.id)
    db.session.rollback()
    assert count(OpeningLine) == 0
    assert count(TenderDocument, TenderDocument.kind == ops.OPENING_RECORD_KIND) == 0
    assert db.session.get(Tender, tender.id).status == TenderStatus.CLOSED
    assert db.session.get(OpeningSession, tender.id).status == OpeningStatus.OPENING
    monkeypatch.setattr(ops, "_open_one", real)
    pubsub = redis_client.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(ops.opening_channel(tender.id))
    assert jobs.open_tender_bids(tender.id) == "opened"
    assert jobs.open_tender_bids(tender.id) == "done"
    progress = []
    for _ in range(50):  # the first call only swallows the subscription confirmation
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            progress.append(json.loads(message["data"]))
    pubsub.close()
    assert [(m["event"], m.get("done")) for m in progress] == [
        ("progress", 1),
        ("progress", 2),
        ("progress", 3),
        ("line", None),
        ("line", None),
        ("line", None),
        ("record", None),
        ("opened", 3),
    ]
    assert count(OpeningLine) == 3
    assert count(TenderDocument, TenderDocument.kind == ops.OPENING_RECORD_KIND) == 1
    opened = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "tender.opened")
    ).all()
    assert len(opened) == 1


# --- the live view --------------------------------------------------------------------------


def test_event_stream_sends_state_and_progress(app, client, tender, bidders):
    for bidder, price in zip(bidders[:3], ["10", "20", "30"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    start(tender)
    previous = app.config["EVENT_STREAM_SECONDS"]
    app.config["EVENT_STREAM_SECONDS"] = 5
    try:
        response = client.get(f"/opening/tenders/{tender.id}/events", buffered=False)
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        chunks = iter(response.response)
        first = next(chunks)
        first = first.decode() if isinstance(first, bytes) else first
        assert "event: state" in first and '"total": 3' in first
        channel = ops.opening_channel(tender.id)
        redis_client.client.publish(
            channel, json.dumps({"event": "progress", "done": 1, "total": 3})
        )
        redis_client.client.publish(channel, json.dumps({"event": "opened", "done": 3, "total": 3}))
        rest = "".join(c.decode() if isinstance(c, bytes) else c for c in chunks)
        assert "event: progress" in rest and '"done": 1' in rest
        assert "event: opened" in rest
        response.close()
    finally:
        app.config["EVENT_STREAM_SECONDS"] = previous
    page = client.get(f"/opening/tenders/{tender.id}")
    body = page.get_data(as_text=True)
    assert "<progress" in body and "opening_live.js" in body and "<script>" not in body


# --- bidders' answers -----------------------------------------------------------------------


def test_bidders_confirm_or_object_within_the_window(app, tender, bidders):
    for bidder, price in zip(bidders[:3], ["10", "20", "30"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        unlock(tender, custodian)
    line = ops.confirm_line(bidders[0], tender)
    db.session.commit()
    assert line.confirmed_at is not None
    with pytest.raises(Conflict):
        ops.object_to_line(bidders[0], tender, "changed my mind")
    db.session.rollback()
    line = ops.object_to_line(bidders[1], tender, "Our price was 19, not 20.")
    db.session.commit()
    assert line.objection.startswith("Our price")
    with pytest.raises(OperationError) as no_line:
        ops.confirm_line(bidders[3], tender)
    assert no_line.value.status == 404
    db.session.rollback()
    session = db.session.get(OpeningSession, tender.id)
    session.completed_at = utcnow() - timedelta(minutes=31)
    db.session.commit()
    with pytest.raises(Conflict) as late:
        ops.confirm_line(bidders[2], tender)
    assert late.value.code == "window_closed"
    db.session.rollback()
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "opening.line_confirmed" in actions and "opening.line_objected" in actions


def test_the_ceremony_through_the_web(app, tender, bidders, auth, client):
    from tests.conftest import AuthActions

    for bidder, price in zip(bidders[:3], ["10", "20", "30"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    auth.login(staff_of(tender))
    response = client.post(f"/opening/tenders/{tender.id}/start", data={})
    assert response.status_code == 302
    assert db.session.get(OpeningSession, tender.id).status == OpeningStatus.UNLOCKING
    first, second = custodians(tender)
    for custodian in (first, second):
        other = app.test_client()
        AuthActions(other).login(custodian)
        page = other.get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
        assert 'name="passphrase"' in page
        if custodian is first:
            assert second.full_name in page
        response = other.post(
            f"/opening/tenders/{tender.id}/unlock", data={"passphrase": CUSTODIAN_PASSPHRASE}
        )
        assert response.status_code == 302
    run_queued_jobs()
    db.session.expire_all()
    assert db.session.get(Tender, tender.id).status == TenderStatus.OPENED
    record = app.test_client().get(f"/opening/tenders/{tender.id}/record.json")
    assert record.status_code == 200
    lines = record.json["record"]["lines"]
    assert [line["commercial"]["price"] for line in lines] == ["10", "20", "30"]
    bidder_client = app.test_client()
    AuthActions(bidder_client).login(bidders[0])
    response = bidder_client.post(f"/opening/tenders/{tender.id}/confirm", data={})
    assert response.status_code == 302
    assert ops.line_of_company(bidders[0], tender).confirmed_at is not None


def test_shares_unusable_at_opening_are_reset_for_a_new_unlock(app, tender, bidders):
    for bidder, price in zip(bidders[:3], ["10", "20", "30"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        ops.unlock_share(custodian, tender, CUSTODIAN_PASSPHRASE)
        db.session.commit()
    secret = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another-secret-key-of-at-least-32-chars"
    try:
        assert jobs.open_tender_bids(tender.id) == "shares_reset"
    finally:
        app.config["SECRET_KEY"] = secret
    assert count(ShareUnlock) == 0 and count(OpeningLine) == 0
    assert db.session.get(OpeningSession, tender.id).status == OpeningStatus.UNLOCKING
    for custodian in custodians(tender):
        unlock(tender, custodian)
    assert db.session.get(Tender, tender.id).status == TenderStatus.OPENED


def test_the_opening_page_tells_each_person_their_next_step(app, tender, bidders):
    from tests.conftest import AuthActions

    clients: dict = {}

    def page_as(user) -> str:
        """The page as `user` sees it, signed in once per person (a TOTP code works once)."""
        key = None if user is None else user.id
        if key not in clients:
            clients[key] = app.test_client()
            if user is not None:
                AuthActions(clients[key]).login(user)
        return clients[key].get(f"/opening/tenders/{tender.id}").get_data(as_text=True)

    for bidder, price in zip(bidders[:3], ["10", "20", "30"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    staff = staff_of(tender)
    first, second = custodians(tender)
    assert "You start the opening ceremony here at the opening time" in page_as(staff)
    assert "staff start the ceremony; then unlock your" in page_as(first)
    assert "follow it on this page" in page_as(bidders[0])
    assert 'id="next-step"' not in page_as(None)  # the public only watches
    past_opening(tender)
    assert "It is past the opening time: start the opening ceremony below." in page_as(staff)
    start(tender)
    assert "Unlock your key share below with your passphrase" in page_as(first)
    unlock(tender, first)
    db.session.commit()
    assert "Your key share is unlocked" in page_as(first)
    assert "Unlock your key share below" in page_as(second)


def test_the_opening_lines_show_fields_by_their_labels_and_values_formatted(app, tender, bidders):
    """Other fields by the template's labels (Korean where the built-in template has them),
    choices by their labels, numbers and money by locale: not `delivery_days: 30`."""
    from flask_babel import refresh

    from app.i18n import LANGUAGE_COOKIE
    from tests.factories.evaluations import use_goods_template

    use_goods_template(tender)
    form = {"delivery_days": 1500, "warranty_months": 24, "bid_validity_days": 90}
    for bidder, price in zip(bidders[:3], ["1234567.50", "1300000", "1400000"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price, origin="imported", **form))
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        unlock(tender, custodian)
    assert db.session.get(Tender, tender.id).status == TenderStatus.OPENED

    def fields_cell(language: str) -> str:
        client = app.test_client()
        client.set_cookie(LANGUAGE_COOKIE, language)
        # The autouse request context's app context (and flask-babel's cached locale in
        # it) is shared with the client's requests: forget the previous page's language.
        refresh()
        page = client.get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
        row = page.split('<tr data-bid="')[1]
        return row.split('<td class="opening-fields">')[1].split("</td>")[0]

    english = fields_cell("en")
    assert "delivery_days" not in english and "origin" not in english
    assert "Delivery period (calendar days after signature of the contract): 1,500" in english
    assert "Origin of the main goods: Imported" in english
    assert english.index("Delivery period") < english.index("Warranty period")
    korean = fields_cell("ko")
    assert "납품 기간 (계약 체결 후 역일): 1,500" in korean
    assert "주요 물품의 원산지: 수입" in korean
    assert "Imported" not in korean and "delivery_days" not in korean
