"""Signed checkpoints of the audit chain (made by the clock at milestones and periodically),
the chain's mixed hash versions, a finished tender's public audit export, the verification
bundle's availability and the signed cancellation notice."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit import append_event, chain_head, verify_chain
from app.audit.chain import GENESIS, event_hash
from app.audit.export import MILESTONES, tender_export
from app.audit.models import AuditCheckpoint, AuditEvent, chain_dict
from app.bids.receipts import platform_signing_key
from app.clock.service import tick
from app.core.types import utcnow
from app.extensions import db
from app.tenders.operations import cancel_tender
from bidding.audit_export import cj, private_payload_hash, verify_checkpoint, verify_export
from bidding.errors import AuditExportError
from bidding.notices import verify_notice


@pytest.fixture
def platform_public():
    return platform_signing_key().public_key()


def checkpoints() -> list[AuditCheckpoint]:
    return list(db.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))


def some_event(action: str = "test.something", tender_id: int | None = None) -> None:
    append_event(action, object_type="tender" if tender_id else None, object_id=tender_id)
    db.session.commit()


def test_the_clock_signs_the_head_at_milestones_and_periodically(app, platform_public):
    now = utcnow()
    assert tick(now).checkpoints == []  # nothing logged: nothing to sign
    some_event()
    first = tick(now)
    seq, head = chain_head()
    assert first.checkpoints == [seq]
    [row] = checkpoints()
    assert (row.seq, row.head, row.reason) == (seq, head, "first")
    signed = verify_checkpoint(row.document, platform_public)
    assert (signed.seq, signed.head) == (seq, head)
    # The head did not move: no new checkpoint, however late.
    assert tick(now + timedelta(hours=1)).checkpoints == []
    # It moved, but within the period and without a milestone: none yet.
    some_event()
    assert tick(now + timedelta(minutes=1)).checkpoints == []
    # A tender milestone: at the next tick.
    some_event(MILESTONES[0], tender_id=None)
    assert len(tick(now + timedelta(minutes=2)).checkpoints) == 1
    assert checkpoints()[-1].reason == "milestone"
    # The period passed with the head moved: a periodic one.
    some_event()
    minutes = app.config["AUDIT_CHECKPOINT_MINUTES"]
    assert tick(now + timedelta(minutes=2 + minutes)).checkpoints == [chain_head()[0]]
    assert checkpoints()[-1].reason == "periodic"
    assert verify_chain() is None


def test_the_chain_verifies_across_hash_versions(app):
    """Events written before version 2 keep their whole-content hash; later ones link to
    them; `verify_chain` (the supervision page, `flask audit verify`) accepts both."""
    seq, prev = chain_head()
    row = AuditEvent(
        seq=seq + 1,
        version=1,
        occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
        action="legacy.event",
        data=json.dumps({"old": True}),
        prev_hash=prev,
    )
    row.hash = event_hash(chain_dict(row))
    db.session.add(row)
    db.session.commit()
    some_event("after.upgrade", tender_id=None)
    newest = db.session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert newest.version == 2 and newest.prev_hash == row.hash
    assert verify_chain() is None


def test_a_cancelled_tender_has_a_signed_notice_and_a_verifiable_export(
    app, client, make_tender, make_user, platform_public
):
    tender = make_tender()
    other = make_tender()
    staff = make_user(Role.STAFF, centre=tender.centre)
    some_event("tender.updated", tender_id=other.id)  # another tender's event: a stub
    # Not finished yet: no export, no bundle, no notice.
    for path in ("audit.jsonl", "verification-bundle.zip", "cancellation-notice.json"):
        assert client.get(f"/tenders/{tender.id}/{path}").status_code == 404
    cancel_tender(staff, tender, "The budget was withdrawn.")
    db.session.commit()
    some_event("tender.updated", tender_id=other.id)

    notice = client.get(f"/tenders/{tender.id}/cancellation-notice.json")
    assert notice.status_code == 200
    data = notice.data
    notice.close()
    body = verify_notice(data, platform_public)
    assert body["kind"] == "cancelled" and body["reason"] == "The budget was withdrawn."
    # Its hash is in the chain, anchored by the next checkpoint.
    anchored = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "results.notice_signed")
    )
    assert json.loads(anchored.data)["kind"] == "cancelled"

    # No checkpoint covers the cancellation yet: the export waits for the clock.
    assert client.get(f"/tenders/{tender.id}/audit.jsonl").status_code == 404
    assert tick().checkpoints  # the cancellation is a milestone
    response = client.get(f"/tenders/{tender.id}/audit.jsonl")
    assert response.status_code == 200
    summary = verify_export(response.data, platform_public, expected_tender=tender.id)
    assert summary.events >= 3 and summary.stubs >= 1
    assert b"The budget was withdrawn." in response.data
    with pytest.raises(AuditExportError, match="not 999"):
        verify_export(response.data, platform_public, expected_tender=999)
    # A cancelled tender offers no bundle (awarded or failed ones do).
    assert client.get(f"/tenders/{tender.id}/verification-bundle.zip").status_code == 404
    page = client.get(f"/tenders/{tender.id}").get_data(as_text=True)
    assert "cancellation-notice.json" in page and "audit.jsonl" in page
    # Open data: the cancellation release lists the signed notice and the checkpoint.
    releases = client.get(f"/api/v1/ocds/tenders/{tender.id}").get_json()["releases"]
    urls = [d["url"] for r in releases for d in r["tender"].get("documents", [])]
    assert any(u.endswith(f"/tenders/{tender.id}/cancellation-notice.json") for u in urls)
    assert any("/audit/checkpoints/" in u for u in urls)


def test_checkpoints_are_published(app, client, platform_public):
    some_event()
    tick()
    [row] = checkpoints()
    page = client.get("/audit/checkpoints")
    assert page.status_code == 200 and row.head in page.get_data(as_text=True)
    listed = client.get("/audit/checkpoints.json").get_json()
    assert listed["checkpoints"][0]["seq"] == row.seq and listed["older"] is None
    assert verify_checkpoint(json.dumps(listed["checkpoints"][0]["document"]), platform_public)
    one = client.get(f"/audit/checkpoints/{row.seq}.json")
    assert one.status_code == 200 and verify_checkpoint(one.data, platform_public).seq == row.seq
    assert client.get(f"/audit/checkpoints/{row.seq + 1}.json").status_code == 404
    assert client.get("/audit/checkpoints?before=x").status_code == 400


def test_the_export_starts_at_the_checkpoint_before_the_tender(app, make_tender, platform_public):
    some_event()
    tick()
    start = chain_head()[0]
    tender = make_tender()
    some_event("tender.updated", tender_id=tender.id)
    assert tender_export(tender.id) is None  # not checkpointed yet
    tick(utcnow() + timedelta(hours=1))
    data = tender_export(tender.id)
    summary = verify_export(data, platform_public, expected_tender=tender.id)
    assert summary.from_seq == start and summary.first_checkpoint.seq == start
    assert summary.events >= 1
    assert b'"action":"tender.updated"' in data


def test_a_bundle_zip_is_deterministic_and_safe():
    from app.portal.bundle import bundle_zip

    files = {"a.json": b"{}", "notices/b.json": b"[]"}
    first, second = bundle_zip(files), bundle_zip(dict(reversed(files.items())))
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["a.json", "notices/b.json"]


def test_checkpoint_rows_are_unique_per_head(app):
    some_event()
    tick()
    tick(utcnow() + timedelta(days=1))
    assert db.session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 1
    assert checkpoints()[0].head != GENESIS


def test_the_supervision_page_verifies_a_chain_of_both_versions(app, client, auth, make_user):
    test_the_chain_verifies_across_hash_versions(app)
    supervisor = make_user(Role.SUPERVISOR)
    auth.login(supervisor)
    page = client.post("/supervision/audit/verify").get_data(as_text=True)
    assert 'id="chain-result"' in page and "Every link holds" in page


KNOWN_IP = "203.0.113.77"


def test_the_export_publishes_no_ip_address(
    app, client, auth, make_tender, make_user, platform_public
):
    """A staff member cancels a tender from a known address: the database keeps the address
    (and a random salt), the public export carries neither, only the private payload's hash,
    and still verifies; altering its public payload or its private hash is caught."""
    tender = make_tender()
    staff = make_user(Role.STAFF, centre=tender.centre)
    client.environ_base["REMOTE_ADDR"] = KNOWN_IP
    auth.login(staff)
    response = client.post(
        f"/centre/tenders/{tender.id}/cancel", data={"reason": "The budget was withdrawn."}
    )
    assert response.status_code in (302, 303)
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "tender.cancelled"))
    assert row.ip == KNOWN_IP and len(row.salt) == 32 and row.tender_id == tender.id
    assert tick().checkpoints
    data = client.get(f"/tenders/{tender.id}/audit.jsonl").data
    assert KNOWN_IP.encode() not in data and row.salt.encode() not in data
    lines = [json.loads(line) for line in data.splitlines()]
    [line] = [x for x in lines if x.get("type") == "event" and x["seq"] == row.seq]
    assert "ip" not in line and "salt" not in line
    assert line["payload_private_sha256"] == private_payload_hash(chain_dict(row))
    assert line["data"] == json.loads(row.data) and line["actor_id"] == staff.id
    assert verify_export(data, platform_public, expected_tender=tender.id).events >= 1
    assert verify_chain() is None

    def rewritten(field: str, value: object) -> bytes:
        changed = [dict(x, **{field: value}) if x is line else x for x in lines]
        return b"".join(cj(x) + b"\n" for x in changed)

    for field, value in [("data", {"reason": "forged"}), ("payload_private_sha256", "0" * 64)]:
        with pytest.raises(AuditExportError, match="content does not match its hash"):
            verify_export(rewritten(field, value), platform_public)
    with pytest.raises(AuditExportError, match="malformed event"):
        verify_export(rewritten("ip", KNOWN_IP), platform_public)
