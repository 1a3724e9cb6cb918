"""Sealed-bid submission: envelopes made by the CLI accepted through the API, the web form
and resumable chunks; receipts that verify offline; refusals that keep nothing; the
deadline by the server clock; replacement and withdrawal; no write to shared rows while
accepting; no plaintext anywhere; the audit event after the commit; the sealing record."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask import g, request_started
from sqlalchemy import event, func, select

from app.accounts.models import Role
from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.bids import operations
from app.bids.jobs import seal_tender
from app.bids.models import Bid, BidStatus, UploadSession
from app.bids.receipts import PlatformKeyMissing, platform_key_path, platform_signing_key
from app.companies.models import CompanyStatus
from app.core.types import utcnow
from app.custody.models import TenderKey
from app.extensions import db, redis_client
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument
from bidding import envelope as envelopes
from bidding import keys
from bidding.receipts import verify_receipt
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, registered_bidder, tid, uscc

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


# --- fixtures and helpers ---------------------------------------------------------------


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def tender_private_key():
    return keys.generate_tender_key()


@pytest.fixture
def tender(make_tender, tender_private_key):
    # Our own key pair (the private half is needed to open): no key ceremony.
    tender = make_tender(keyed=False)
    public = tender_private_key.public_key()
    db.session.add(
        TenderKey(
            tender_id=tender.id,
            public_key=keys._public_raw(public).hex(),
            public_key_pem=keys.public_key_to_pem(public).decode(),
            fingerprint=keys.key_fingerprint(public),
            threshold=2,
        )
    )
    db.session.commit()
    return tender


@pytest.fixture
def tender_key_pem(tmp_path, tender_private_key) -> Path:
    path = tmp_path / "tender.pub.pem"
    path.write_bytes(keys.public_key_to_pem(tender_private_key.public_key()))
    return path


@pytest.fixture
def bidder(make_user, tender):
    return registered_bidder(make_user, tender)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bidding", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_seal(tmp_path, pem, tender_id, bidder_id, commercial, technical=b"%PDF-1.7 proposal"):
    n = secrets.token_hex(4)
    bid_json = tmp_path / f"bid-{n}.json"
    bid_json.write_text(json.dumps(commercial))
    proposal = tmp_path / f"proposal-{n}.pdf"
    proposal.write_bytes(technical)
    out = tmp_path / f"bid-{n}.env"
    result = run_cli(
        "seal",
        "--tender-key",
        str(pem),
        "--tender",
        tender_id,
        "--bidder",
        bidder_id,
        "--commercial",
        str(bid_json),
        "--technical",
        str(proposal),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def api_submit(client, tender, user, body: bytes, headers=None):
    return client.post(
        f"/api/v1/tenders/{tender.id}/bids",
        data=body,
        headers={**(headers or token_for(user)), "Content-Type": "application/octet-stream"},
    )


def blob_files() -> set[Path]:
    root = blob_store().root
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def platform_pem(client, tmp_path) -> Path:
    response = client.get("/api/v1/platform/receipt-key.pem")
    assert response.status_code == 200
    path = tmp_path / "receipt-key.pem"
    path.write_bytes(response.data)
    return path


# --- submission through the API, the web form and resumable chunks -------------------------


def test_cli_envelope_accepted_by_the_api_with_a_verifiable_receipt(
    client, tender, bidder, tender_key_pem, tmp_path
):
    data = cli_seal(tmp_path, tender_key_pem, tid(tender), uscc(bidder), {"price": "990.00"})
    response = api_submit(client, tender, bidder, data)
    assert response.status_code == 201, response.json
    receipt = response.json["receipt"]
    bid = db.session.scalar(select(Bid))
    assert receipt["receipt"] == {
        "bidder": uscc(bidder),
        "envelope_sha256": bid.envelope_sha256,
        "received_at": receipt["receipt"]["received_at"],
        "sequence": bid.id,
        "size": len(data),
        "tender": tid(tender),
    }
    assert bid.status == BidStatus.SUBMITTED and bid.size == len(data)
    with blob_store().open(bid.envelope_sha256) as stored:
        assert stored.read() == data

    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_bytes(
        client.get(f"/api/v1/bids/{bid.id}/receipt", headers=token_for(bidder)).data
    )
    envelope_file = tmp_path / "bid.env"
    envelope_file.write_bytes(data)
    result = run_cli(
        "verify-receipt",
        str(receipt_file),
        "--platform-key",
        str(platform_pem(client, tmp_path)),
        "--envelope",
        str(envelope_file),
    )
    assert result.returncode == 0, result.stderr
    assert f"sequence {bid.id}" in result.stdout

    mine = client.get(f"/api/v1/tenders/{tender.id}/bids/mine", headers=token_for(bidder)).json
    assert [b["sequence"] for b in mine["bids"]] == [bid.id]
    assert mine["bids"][0]["receipt"] == receipt


def test_cli_envelope_accepted_by_the_web_form(
    client, auth, tender, bidder, tender_key_pem, tmp_path
):
    data = cli_seal(tmp_path, tender_key_pem, tid(tender), uscc(bidder), {"price": "12.50"})
    auth.login(bidder)
    page = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    # What a command-line user needs, and the live server-time countdown.
    assert tid(tender) in page and uscc(bidder) in page
    assert f"/api/v1/tenders/{tender.id}/public-key" in page
    assert "data-deadline=" in page and "data-server-now=" in page
    assert "js/upload.js" in page and "<progress" in page

    response = client.post(
        f"/bids/tenders/{tender.id}/envelope",
        data={"envelope": (io.BytesIO(data), "bid.env")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    bid = db.session.scalar(select(Bid))
    page = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    assert bid.envelope_sha256 in page and 'data-bid-status="submitted"' in page
    document = client.get(f"/bids/{bid.id}/receipt")
    assert document.headers["Content-Disposition"].startswith("attachment")
    receipt = verify_receipt(document.data, platform_signing_key().public_key())
    assert (receipt.sequence, receipt.envelope_sha256) == (bid.id, bid.envelope_sha256)


def test_resumable_upload_survives_an_interruption(
    client, auth, tender, bidder, make_user, tender_key_pem, tmp_path
):
    technical = os.urandom(int(2.5 * MIB))
    data = cli_seal(tmp_path, tender_key_pem, tid(tender), uscc(bidder), {"price": "7"}, technical)
    size = len(data)
    auth.login(bidder)
    started = client.post(f"/bids/tenders/{tender.id}/uploads", json={"size": size})
    assert started.status_code == 201, started.json
    url, session_id = started.json["url"], started.json["id"]
    part = blob_store().root / "tmp" / f"upload-session-{session_id}.part"
    assert part.exists() and count(UploadSession) == 1

    def put(first, last, body=None, **kwargs):
        body = data[first : last + 1] if body is None else body
        return client.put(
            url,
            data=body,
            headers={"Content-Range": f"bytes {first}-{last}/{size}"},
            content_type="application/octet-stream",
            **kwargs,
        )

    assert put(0, MIB - 1).json["offset"] == MIB
    # The connection drops half-way through the second chunk: nothing of it is kept.
    half = data[MIB : MIB + MIB // 2]
    dropped = client.put(
        url,
        input_stream=io.BytesIO(half),
        headers={"Content-Range": f"bytes {MIB}-{2 * MIB - 1}/{size}", "Content-Length": str(MIB)},
        content_type="application/octet-stream",
    )
    assert dropped.status_code == 400 and dropped.json["error"] == "incomplete_chunk"
    status = client.head(url)
    assert status.headers["Upload-Offset"] == str(MIB)
    assert client.get(url).json["offset"] == MIB
    # A chunk at the wrong offset gets the offset to resume from.
    wrong = put(2 * MIB, size - 1)
    assert wrong.status_code == 409 and wrong.json["offset"] == MIB
    assert count(Bid) == 0

    assert put(MIB, 2 * MIB - 1).json["offset"] == 2 * MIB
    last = put(2 * MIB, size - 1)
    assert last.status_code == 200, last.json
    assert last.json["complete"] is True
    bid = db.session.scalar(select(Bid))
    assert last.json["receipt"]["receipt"]["sequence"] == bid.id
    assert bid.envelope_sha256 == __import__("hashlib").sha256(data).hexdigest()
    assert db.session.get(UploadSession, session_id).completed_bid_id == bid.id
    assert not part.exists()
    assert client.get(url).json["complete"] is True
    # Once complete, a resent last chunk learns where things stand instead of a second bid.
    assert put(2 * MIB, size - 1).status_code == 409 and count(Bid) == 1

    # Another company's bidder cannot see or touch the session.
    other = registered_bidder(make_user, tender)
    auth.logout()
    auth.login(other)
    assert client.get(url).status_code == 404
    assert put(0, MIB - 1).status_code == 404


def test_resumable_upload_through_the_api(client, tender, bidder, tender_private_key):
    data = lib_seal(
        tender_private_key.public_key(), tid(tender), uscc(bidder), technical=b"x" * 3000
    )
    headers = token_for(bidder)
    started = client.post(
        f"/api/v1/tenders/{tender.id}/uploads", json={"size": len(data)}, headers=headers
    )
    assert started.status_code == 201, started.json
    url = started.json["url"]
    assert url.startswith("/api/v1/")
    first = client.put(
        url, data=data[:1000], headers={**headers, "Content-Range": f"bytes 0-999/{len(data)}"}
    )
    assert first.json["offset"] == 1000
    done = client.put(
        url,
        data=data[1000:],
        headers={**headers, "Content-Range": f"bytes 1000-{len(data) - 1}/{len(data)}"},
    )
    assert done.status_code == 200 and done.json["complete"]
    assert done.json["receipt"]["receipt"]["size"] == len(data)


# --- refusals --------------------------------------------------------------------------------


def test_bad_envelopes_are_refused_clearly_and_leave_nothing(
    app, client, tender, bidder, make_tender, tender_private_key, monkeypatch
):
    public = tender_private_key.public_key()
    good = lib_seal(public, tid(tender), uscc(bidder))
    other_tender = make_tender()
    cases = {
        "wrong_tender": lib_seal(public, tid(other_tender), uscc(bidder)),
        "wrong_bidder": lib_seal(public, tid(tender), "91330100MA00000000"),
        "truncated": good[:-10],
        "trailing": good + b"\x00",
        "garbage": os.urandom(5000),
        "empty": b"",
    }
    before = blob_files()
    messages = {}
    for name, body in cases.items():
        response = api_submit(client, tender, bidder, body)
        assert response.status_code == 400, (name, response.json)
        messages[name] = (response.json["error"], response.json["message"])
    assert messages["wrong_tender"][0] == "wrong_tender"
    assert tid(tender) in messages["wrong_tender"][1]
    assert messages["wrong_bidder"][0] == "wrong_bidder"
    assert uscc(bidder) in messages["wrong_bidder"][1]
    for name in ("truncated", "trailing", "garbage", "empty"):
        assert messages[name][0] == "malformed_envelope", name
    assert "truncated" in messages["truncated"][1]
    assert "trailing data" in messages["trailing"][1]

    monkeypatch.setitem(app.config, "MAX_ENVELOPE_SIZE", len(good) - 1)
    response = api_submit(client, tender, bidder, good)
    assert response.status_code == 413 and response.json["error"] == "too_large"
    started = client.post(
        f"/api/v1/tenders/{tender.id}/uploads", json={"size": len(good)}, headers=token_for(bidder)
    )
    assert started.status_code == 413

    assert count(Bid) == 0
    assert count(AuditEvent, AuditEvent.action == operations.RECEIVED) == 0
    assert blob_files() == before


def test_web_form_refusal_is_shown_on_the_page(client, auth, tender, bidder, tender_private_key):
    auth.login(bidder)
    data = lib_seal(tender_private_key.public_key(), tid(tender), "91330100MA00000000")
    response = client.post(
        f"/bids/tenders/{tender.id}/envelope",
        data={"envelope": (io.BytesIO(data), "bid.env")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "names another bidder" in response.get_data(as_text=True)
    assert count(Bid) == 0


def test_unregistered_or_unapproved_companies_are_refused(
    client, tender, make_user, make_company, tender_private_key
):
    unregistered = make_user(Role.BIDDER)
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(unregistered))
    response = api_submit(client, tender, unregistered, data)
    assert response.status_code == 403 and response.json["error"] == "not_registered"

    pending = registered_bidder(
        make_user, tender, company=make_company(status=CompanyStatus.PENDING)
    )
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(pending))
    response = api_submit(client, tender, pending, data)
    assert response.status_code == 403 and response.json["error"] == "company_not_approved"

    staff = make_user(Role.STAFF, centre=tender.centre)
    assert api_submit(client, tender, staff, data).status_code == 403
    assert count(Bid) == 0


def test_after_the_deadline_the_server_time_is_stated(
    client, auth, tender, bidder, tender_private_key
):
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    headers = token_for(bidder)
    started = client.post(
        f"/api/v1/tenders/{tender.id}/uploads", json={"size": len(data)}, headers=headers
    )
    tender.submission_deadline = utcnow() - timedelta(seconds=1)
    db.session.commit()

    response = api_submit(client, tender, bidder, data, headers)
    assert response.status_code == 409 and response.json["error"] == "deadline_passed"
    message = response.json["message"]
    assert re.search(r"server time is \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", message), message
    assert "Asia/Shanghai" in message
    chunk = client.put(
        started.json["url"],
        data=data,
        headers={**headers, "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"},
    )
    assert chunk.status_code == 409 and "UTC" in chunk.json["message"]
    assert count(Bid) == 0

    auth.login(bidder)
    page = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    assert 'id="closed"' in page and "envelope-upload" not in page


def test_the_deadline_is_checked_again_when_the_last_byte_arrives(
    client, tender, bidder, tender_private_key, monkeypatch
):
    """The upload starts in time; its last byte is stored after the deadline: refused."""
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    deadline = tender.submission_deadline
    moments = iter([deadline - timedelta(seconds=5)])
    monkeypatch.setattr(
        operations, "utcnow", lambda: next(moments, deadline + timedelta(microseconds=1))
    )
    before = blob_files()
    response = api_submit(client, tender, bidder, data)
    assert response.status_code == 409 and response.json["error"] == "deadline_passed"
    assert "UTC" in response.json["message"]
    assert count(Bid) == 0 and blob_files() == before


def test_an_envelope_checked_after_the_grace_period_is_refused(
    app, client, tender, bidder, tender_private_key, monkeypatch
):
    """Received in time, but its checks ended after the sealing record may have been made."""
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    deadline = tender.submission_deadline
    grace = timedelta(seconds=app.config["SEALING_GRACE_SECONDS"])
    moments = iter([deadline - timedelta(seconds=5), deadline - timedelta(seconds=1)])
    monkeypatch.setattr(operations, "utcnow", lambda: next(moments, deadline + grace))
    response = api_submit(client, tender, bidder, data)
    assert response.status_code == 409 and response.json["error"] == "deadline_passed"
    assert count(Bid) == 0


# --- replacement and withdrawal ------------------------------------------------------------


def test_replace_then_withdraw_before_the_deadline(
    client, auth, tender, bidder, tender_private_key
):
    public = tender_private_key.public_key()
    headers = token_for(bidder)
    first = api_submit(
        client, tender, bidder, lib_seal(public, tid(tender), uscc(bidder), "100"), headers
    )
    second = api_submit(
        client, tender, bidder, lib_seal(public, tid(tender), uscc(bidder), "90"), headers
    )
    assert first.status_code == second.status_code == 201
    first_id, second_id = first.json["bid"]["id"], second.json["bid"]["id"]
    # The receipt sequence is the bid id, from the database sequence.
    assert second_id > first_id
    assert second.json["receipt"]["receipt"]["sequence"] == second_id
    old, new = db.session.get(Bid, first_id), db.session.get(Bid, second_id)
    assert (old.status, new.status) == (BidStatus.SUPERSEDED, BidStatus.SUBMITTED)
    assert new.supersedes_id == old.id
    # The replaced envelope is kept.
    assert blob_store().exists(old.envelope_sha256)

    refused = client.post(f"/api/v1/bids/{first_id}/withdraw", headers=headers)
    assert refused.status_code == 409 and refused.json["error"] == "not_current"

    auth.login(bidder)
    response = client.post(f"/bids/{second_id}/withdraw")
    assert response.status_code == 302
    db.session.expire_all()
    withdrawn = db.session.get(Bid, second_id)
    assert withdrawn.status == BidStatus.WITHDRAWN and withdrawn.withdrawn_at is not None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "bid.withdrawn"))
    assert json.loads(event.data)["sequence"] == second_id

    third = api_submit(
        client, tender, bidder, lib_seal(public, tid(tender), uscc(bidder), "95"), headers
    )
    assert third.status_code == 201 and third.json["bid"]["supersedes"] is None
    tender.submission_deadline = utcnow() - timedelta(seconds=1)
    db.session.commit()
    late = client.post(f"/api/v1/bids/{third.json['bid']['id']}/withdraw", headers=headers)
    assert late.status_code == 409 and late.json["error"] == "deadline_passed"
    assert db.session.get(Bid, third.json["bid"]["id"]).status == BidStatus.SUBMITTED


def test_other_companies_bids_do_not_exist_for_a_bidder(
    client, auth, tender, bidder, make_user, tender_private_key
):
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    bid_id = api_submit(client, tender, bidder, data).json["bid"]["id"]
    other = registered_bidder(make_user, tender)
    assert client.get(f"/api/v1/bids/{bid_id}/receipt", headers=token_for(other)).status_code == 404
    assert (
        client.post(f"/api/v1/bids/{bid_id}/withdraw", headers=token_for(other)).status_code == 404
    )
    auth.login(other)
    assert client.get(f"/bids/{bid_id}/receipt").status_code == 404
    assert client.post(f"/bids/{bid_id}/withdraw").status_code == 404
    mine = client.get(f"/api/v1/tenders/{tender.id}/bids/mine", headers=token_for(other)).json
    assert mine == {"bids": []}


# --- no shared row written, no global lock, audit after the commit ------------------------------


def test_acceptance_writes_only_its_own_rows_and_audits_after_commit(
    app, tender, bidder, tender_private_key
):
    public = tender_private_key.public_key()
    operations.submit_envelope(
        bidder, tender, io.BytesIO(lib_seal(public, tid(tender), uscc(bidder)))
    )
    db.session.commit()
    tender_row = db.session.execute(select(Tender.__table__).where(Tender.id == tender.id)).one()

    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        bid = operations.submit_envelope(
            bidder, tender, io.BytesIO(lib_seal(public, tid(tender), uscc(bidder), "80"))
        )
        accepting = list(statements)
        assert count(AuditEvent, AuditEvent.action == operations.RECEIVED) == 1  # the first bid's
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    for statement in accepting:
        upper = statement.upper()
        assert "AUDIT_EVENT" not in upper and "ADVISORY" not in upper, statement
        if upper.startswith("UPDATE"):
            # The new bid's receipt, and the company's own previous bid.
            assert re.match(r'UPDATE "?BID"? ', upper), statement
        if "FOR UPDATE" in upper:
            assert re.search(r'FROM "?TENDER_REGISTRATION"?', upper), statement
    for statement in statements:
        assert not re.match(r'UPDATE "?TENDER"? ', statement.upper()), statement
    db.session.expire_all()
    assert (
        db.session.execute(select(Tender.__table__).where(Tender.id == tender.id)).one()
        == tender_row
    )

    # The follow-up transaction appended the event: sequence, hash, size, never content.
    event_row = db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.action == operations.RECEIVED, AuditEvent.object_id == str(bid.id)
        )
    )
    data = json.loads(event_row.data)
    assert (data["sequence"], data["sha256"], data["size"]) == (
        bid.id,
        bid.envelope_sha256,
        bid.size,
    )
    assert verify_chain() is None
    # Idempotent: running it again appends nothing.
    operations.record_bid_received(bid.id)
    assert count(AuditEvent, AuditEvent.action == operations.RECEIVED) == 2


def test_reconciliation_appends_a_missing_audit_event(
    runner, tender, bidder, tender_private_key, monkeypatch, caplog
):
    def crash(bid_id, *event):
        raise RuntimeError("worker died between the two transactions")

    monkeypatch.setattr(operations, "record_bid_received", crash)
    bid = operations.submit_envelope(
        bidder,
        tender,
        io.BytesIO(lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))),
    )
    db.session.commit()
    assert db.session.get(Bid, bid.id) is not None
    assert count(AuditEvent, AuditEvent.action == operations.RECEIVED) == 0
    assert "after-commit callback" in caplog.text

    result = runner.invoke(args=["bids", "reconcile-audit"])
    assert result.exit_code == 0, result.output
    assert "appended 1" in result.output and f"bid {bid.id}" in result.output
    assert (
        count(
            AuditEvent,
            AuditEvent.action == operations.RECEIVED,
            AuditEvent.object_id == str(bid.id),
        )
        == 1
    )
    assert "appended 0" in runner.invoke(args=["bids", "reconcile-audit"]).output
    assert verify_chain() is None


# --- no plaintext anywhere before the opening -------------------------------------------------


def _redis_dump() -> bytes:
    client = redis_client.client
    out = []
    for key in client.keys("*"):
        out.append(key)
        kind = client.type(key).decode()
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            out.extend(b"%s=%s" % item for item in client.hgetall(key).items())
        elif kind == "list":
            out.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            out.extend(client.smembers(key))
        elif kind == "zset":
            out.extend(client.zrange(key, 0, -1))
    return b"\n".join(out)


def _database_dump() -> str:
    lines = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            lines.append(" ".join(str(value) for value in row))
    return "\n".join(lines)


def test_a_canary_in_a_sealed_bid_appears_nowhere_before_the_opening(
    app, client, auth, tender, bidder, tender_key_pem, tender_private_key, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    canary = "CANARY-" + secrets.token_hex(12)
    commercial = {"price": "123456.78", "note": canary}
    by_cli = cli_seal(
        tmp_path, tender_key_pem, tid(tender), uscc(bidder), commercial, canary.encode() * 100
    )
    assert api_submit(client, tender, bidder, by_cli).status_code == 201
    by_lib = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder), note=canary)
    auth.login(bidder)
    started = client.post(f"/bids/tenders/{tender.id}/uploads", json={"size": len(by_lib)})
    done = client.put(
        started.json["url"],
        data=by_lib,
        headers={"Content-Range": f"bytes 0-{len(by_lib) - 1}/{len(by_lib)}"},
    )
    assert done.json["complete"], done.json
    client.get(f"/bids/tenders/{tender.id}")

    def absent():
        assert canary not in _database_dump()
        for path in Path(app.instance_path).rglob("*"):
            if path.is_file():
                assert canary.encode() not in path.read_bytes(), path
        assert canary not in caplog.text
        assert canary.encode() not in _redis_dump()

    absent()
    # After the deadline, sealed: still nowhere.
    tender.submission_deadline = utcnow() - timedelta(hours=1)
    db.session.commit()
    seal_tender(tender.id)
    absent()
    # The envelopes do hold it, for the tender key's holders only.
    opened = envelopes.open_envelope(io.BytesIO(by_cli), tender_private_key, tmp_path / "opened")
    assert canary in opened.files["commercial"].read_text()


# --- the sealing record --------------------------------------------------------------------


def test_sealing_record_includes_every_current_envelope(
    client, runner, tender, bidder, make_user, tender_private_key, tmp_path
):
    public = tender_private_key.public_key()
    other = registered_bidder(make_user, tender)
    superseded = api_submit(
        client, tender, bidder, lib_seal(public, tid(tender), uscc(bidder), "1")
    )
    current = api_submit(client, tender, bidder, lib_seal(public, tid(tender), uscc(bidder), "2"))
    theirs = api_submit(client, tender, other, lib_seal(public, tid(tender), uscc(other), "3"))
    assert client.get(f"/api/v1/tenders/{tender.id}/sealing-record").status_code == 404

    too_early = runner.invoke(args=["bids", "seal-tender", str(tender.id)])
    assert too_early.exit_code != 0 and "after its bid deadline" in too_early.output
    tender.submission_deadline = utcnow() - timedelta(hours=1)
    db.session.commit()
    states = db.session.execute(select(Bid.id, Bid.status, Bid.receipt).order_by(Bid.id)).all()

    result = runner.invoke(args=["bids", "seal-tender", str(tender.id)])
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["bids", "seal-tender", str(tender.id)])
    assert again.output == result.output  # idempotent: one record
    assert count(TenderDocument, TenderDocument.kind == "sealing_record") == 1
    db.session.expire_all()
    assert (
        db.session.execute(select(Bid.id, Bid.status, Bid.receipt).order_by(Bid.id)).all() == states
    )

    response = client.get(f"/api/v1/tenders/{tender.id}/sealing-record")
    assert response.status_code == 200
    record = json.loads(response.data)
    hashes = [current.json["bid"]["envelope_sha256"], theirs.json["bid"]["envelope_sha256"]]
    assert record["record"]["leaves"] == hashes and record["record"]["tender"] == tid(tender)
    record_file = tmp_path / "sealing-record.json"
    record_file.write_bytes(response.data)
    key_file = platform_pem(client, tmp_path)

    for answer, included in ((current, True), (theirs, True), (superseded, False)):
        receipt_file = tmp_path / f"receipt-{answer.json['bid']['id']}.json"
        receipt_file.write_text(json.dumps(answer.json["receipt"]))
        result = run_cli(
            "verify-inclusion", str(receipt_file), str(record_file), "--platform-key", str(key_file)
        )
        assert (result.returncode == 0) == included, result.stderr
    event_row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "tender.sealed"))
    assert json.loads(event_row.data)["root"] == record["record"]["root"]


# --- the platform receipt key --------------------------------------------------------------


def test_platform_key_is_generated_private_and_published(app, client):
    key = platform_signing_key()
    path = platform_key_path()
    assert path.is_relative_to(Path(app.instance_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    published = keys.load_public_key_pem(
        client.get("/api/v1/platform/receipt-key.pem").data, kind=type(key.public_key())
    )
    assert keys.key_fingerprint(published) == keys.key_fingerprint(key.public_key())


def test_production_needs_a_configured_platform_key(app, monkeypatch, tmp_path):
    from app.bids import receipts

    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    monkeypatch.setitem(app.config, "PLATFORM_KEY_DIR", str(tmp_path / "keys"))
    with pytest.raises(PlatformKeyMissing):
        receipts.platform_signing_key()
    assert not (tmp_path / "keys").exists()

    key = keys.generate_platform_key()
    mounted = tmp_path / "mounted.pem"
    mounted.write_bytes(keys.private_key_to_pem(key))
    monkeypatch.setitem(app.config, "FAIRBID_PLATFORM_KEY", str(mounted))
    assert keys.key_fingerprint(
        receipts.platform_signing_key().public_key()
    ) == keys.key_fingerprint(key.public_key())


# --- CSRF on the page's own requests -----------------------------------------------------------


def _forget_csrf_check(sender, **extra):
    g.pop("csrf_valid", None)


@pytest.fixture
def fresh_csrf_check(app):
    """Tests share one app context, so `g` would carry CSRFProtect's "already checked" mark
    from a request with the token into the next; a server never does."""
    request_started.connect(_forget_csrf_check, app)
    yield
    request_started.disconnect(_forget_csrf_check, app)


def test_page_uploads_need_the_csrf_token(
    fresh_csrf_check, app, client, auth, tender, bidder, tender_private_key, monkeypatch
):
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    auth.login(bidder)
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    page = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    token = re.search(r'data-csrf-token="([^"]+)"', page).group(1)

    assert (
        client.post(f"/bids/tenders/{tender.id}/uploads", json={"size": len(data)}).status_code
        == 400
    )
    started = client.post(
        f"/bids/tenders/{tender.id}/uploads",
        json={"size": len(data)},
        headers={"X-CSRFToken": token},
    )
    assert started.status_code == 201
    content_range = {"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"}
    assert client.put(started.json["url"], data=data, headers=content_range).status_code == 400
    done = client.put(
        started.json["url"], data=data, headers={**content_range, "X-CSRFToken": token}
    )
    assert done.status_code == 200 and done.json["complete"]

    # The plain form: its token is checked by the form itself.
    form = {"envelope": (io.BytesIO(data), "bid.env")}
    refused = client.post(
        f"/bids/tenders/{tender.id}/envelope", data=form, content_type="multipart/form-data"
    )
    assert refused.status_code == 400 and count(Bid) == 1
    form = {"envelope": (io.BytesIO(data), "bid.env"), "csrf_token": token}
    accepted = client.post(
        f"/bids/tenders/{tender.id}/envelope", data=form, content_type="multipart/form-data"
    )
    assert accepted.status_code == 302 and count(Bid) == 2


def test_the_received_event_publishes_no_address_or_its_hashes(
    client, auth, tender, bidder, tender_key_pem, tmp_path
):
    """The uploader's address is the event's private payload; its keyed hashes (for the
    supervisors' same-source screen) are in no audit event's public payload."""
    from app.audit.chain import public_event
    from app.audit.models import chain_dict
    from bidding.audit_export import cj

    address, agent = "198.51.100.23", "Fairbid-Test-Agent/1.0"
    data = cli_seal(tmp_path, tender_key_pem, tid(tender), uscc(bidder), {"price": "12.50"})
    client.environ_base.update(REMOTE_ADDR=address, HTTP_USER_AGENT=agent)
    auth.login(bidder)
    response = client.post(
        f"/bids/tenders/{tender.id}/envelope",
        data={"envelope": (io.BytesIO(data), "bid.env")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    bid = db.session.scalar(select(Bid))
    assert bid.ip == address and bid.address_hmac and bid.agent_hmac
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == operations.RECEIVED))
    assert event.ip == address and event.salt
    published = cj(public_event(chain_dict(event)))
    for private in (address, agent, bid.address_hmac, bid.agent_hmac, event.salt):
        assert private.encode() not in published
    assert bid.envelope_sha256.encode() in published
    assert verify_chain() is None


class _WatchedStream(io.BytesIO):
    """An envelope body that notes, at its first read, whether the request still had a
    database transaction (hence a pooled connection) open."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.in_transaction_at_first_read: bool | None = None

    def read(self, size=-1):
        if self.in_transaction_at_first_read is None:
            self.in_transaction_at_first_read = db.session().in_transaction()
        return super().read(size)


def test_no_connection_is_held_while_the_envelope_streams(tender, bidder, tender_private_key):
    stream = _WatchedStream(lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder)))
    bid = operations.submit_envelope(bidder, tender, stream)
    assert stream.in_transaction_at_first_read is False
    db.session.commit()
    assert db.session.get(Bid, bid.id).status == BidStatus.SUBMITTED
    assert count(AuditEvent, AuditEvent.action == operations.RECEIVED) == 1
    assert verify_chain() is None


def test_the_connection_stays_while_the_request_has_unwritten_changes(
    tender, bidder, tender_private_key
):
    # Something of the request's own not flushed yet: nothing is committed early.
    bidder.full_name = "Renamed Before The Upload"
    stream = _WatchedStream(lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder)))
    operations.submit_envelope(bidder, tender, stream)
    assert stream.in_transaction_at_first_read is True
    db.session.rollback()
    assert count(Bid) == 0


def test_events_appended_together_chain_in_order(tender, bidder, tender_private_key):
    from app.audit import EventSpec, append_events

    events = append_events(
        [
            EventSpec("test.batch", object_type="tender", object_id=tender.id, data={"n": n})
            for n in range(3)
        ]
    )
    db.session.commit()
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 3))
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert verify_chain() is None


# --- the body as the server gives it, the bid in one INSERT -----------------------------------


def test_a_body_ending_before_its_length_is_an_interrupted_upload(
    client, tender, bidder, tender_private_key
):
    body = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    before = blob_files()
    response = client.post(
        f"/api/v1/tenders/{tender.id}/bids",
        input_stream=io.BytesIO(body[:-100]),
        headers={**token_for(bidder), "Content-Type": "application/octet-stream"},
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )
    assert response.status_code == 400 and response.json["error"] == "incomplete"
    assert count(Bid) == 0
    assert blob_files() == before


def test_the_body_is_read_up_to_its_length_only(client, tender, bidder, tender_private_key):
    # What follows the body on the connection (a pipelined request) is not the envelope's.
    body = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    response = client.post(
        f"/api/v1/tenders/{tender.id}/bids",
        input_stream=io.BytesIO(body + b"GET / HTTP/1.1\r\n\r\n"),
        headers={**token_for(bidder), "Content-Type": "application/octet-stream"},
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )
    assert response.status_code == 201, response.json
    assert response.json["bid"]["size"] == len(body)


def test_a_chunked_body_is_read_to_its_end_under_the_size_cap(
    app, client, tender, bidder, tender_private_key, monkeypatch
):
    public = tender_private_key.public_key()
    body = lib_seal(public, tid(tender), uscc(bidder))

    def chunked(data: bytes):
        # As gunicorn gives a chunked body: no Content-Length, the input ends with it.
        return client.post(
            f"/api/v1/tenders/{tender.id}/bids",
            input_stream=io.BytesIO(data),
            headers={
                **token_for(bidder),
                "Content-Type": "application/octet-stream",
                "Transfer-Encoding": "chunked",
            },
            environ_overrides={"wsgi.input_terminated": True},
        )

    monkeypatch.setitem(app.config, "MAX_ENVELOPE_SIZE", len(body) - 1)
    refused = chunked(body)
    assert refused.status_code == 413 and refused.json["error"] == "too_large"
    assert count(Bid) == 0
    monkeypatch.setitem(app.config, "MAX_ENVELOPE_SIZE", len(body))
    accepted = chunked(body)
    assert accepted.status_code == 201, accepted.json
    bid = db.session.get(Bid, accepted.json["bid"]["id"])
    assert (bid.size, bid.envelope_sha256) == (len(body), hashlib.sha256(body).hexdigest())


def test_the_bid_and_its_receipt_are_written_together(app, tender, bidder, tender_private_key):
    public = tender_private_key.public_key()
    first = operations.submit_envelope(
        bidder, tender, io.BytesIO(lib_seal(public, tid(tender), uscc(bidder)))
    )
    db.session.commit()
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()).upper())

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        second = operations.submit_envelope(
            bidder, tender, io.BytesIO(lib_seal(public, tid(tender), uscc(bidder), "90"))
        )
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    bid_write = re.compile(r'(INSERT INTO|UPDATE) "?BID"?[ (]')
    writes = [
        match.group(1) + " BID" for match in map(bid_write.match, statements) if match is not None
    ]
    if db.engine.dialect.name == "postgresql":
        # The id comes from the sequence with the registration's lock: one INSERT, and the
        # previous bid marked superseded.
        assert sorted(writes) == ["INSERT INTO BID", "UPDATE BID"], writes
    else:
        # SQLite has no sequence: the INSERT gives the id, the receipt follows.
        assert sorted(writes) == ["INSERT INTO BID", "UPDATE BID", "UPDATE BID"], writes
    db.session.expire_all()
    assert db.session.get(Bid, first.id).status == BidStatus.SUPERSEDED
    receipt = json.loads(db.session.get(Bid, second.id).receipt)
    assert receipt["receipt"]["sequence"] == second.id > first.id
    assert second.supersedes_id == first.id


def test_no_connection_is_held_while_a_chunk_streams(tender, bidder, tender_private_key):
    data = lib_seal(tender_private_key.public_key(), tid(tender), uscc(bidder))
    upload = operations.start_upload(bidder, tender, len(data))
    db.session.commit()
    stream = _WatchedStream(data)
    progress = operations.append_chunk(
        bidder, upload, f"bytes 0-{len(data) - 1}/{len(data)}", stream
    )
    assert stream.in_transaction_at_first_read is False
    db.session.commit()
    assert progress.bid is not None
    assert db.session.get(Bid, progress.bid.id).status == BidStatus.SUBMITTED
    assert db.session.get(UploadSession, upload.id).completed_bid_id == progress.bid.id
    assert count(AuditEvent, AuditEvent.action == operations.RECEIVED) == 1
    assert verify_chain() is None


def test_a_racing_chunk_waits_for_the_session_file_lock_without_blocking(tmp_path, monkeypatch):
    # Under gevent a blocking flock would stop the whole worker, the lock's holder with it:
    # the waiter must poll and sleep (a cooperative sleep there) until the holder lets go.
    import fcntl
    import threading

    path = tmp_path / "upload-session.part"
    path.write_bytes(b"")
    naps = []
    with open(path, "rb") as holder, open(path, "rb") as racer:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        safety = threading.Timer(5, fcntl.flock, (holder.fileno(), fcntl.LOCK_UN))
        safety.start()  # a blocking waiter still ends (and the test fails below)

        def nap(seconds):
            naps.append(seconds)
            fcntl.flock(holder.fileno(), fcntl.LOCK_UN)  # the racing writer finishes

        monkeypatch.setattr(operations.time, "sleep", nap)
        operations._lock_session_file(racer.fileno())
        safety.cancel()
    assert naps, "the waiter blocked in flock instead of yielding"
