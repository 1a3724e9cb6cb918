"""Panel members' own keys: enrolment with proof of possession, the interrupted signature
(the server prepares, a key it never holds signs), revocation and the CRL. A key generated
here in Python plays the browser's part (WebCrypto's raw r||s signatures)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from app.accounts.models import Role
from app.pdf import PdfAttachment, render_pdf
from app.records import member_keys, signing
from tests.factories.member_keys import BrowserKey
from tests.factories.member_keys import enrol as _enrol
from tests.factories.member_keys import totp_code as _code

HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>T</title></head>
<body><h1>Record</h1><p>Body text.</p></body></html>"""


@pytest.fixture
def small_pdf(app):
    return render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", "{}")]
    )


def test_interrupted_signature_with_a_held_key_validates(app, make_user, small_pdf):
    from app.extensions import db

    member = make_user(Role.EXPERT)
    browser = BrowserKey()
    row, _ = member_keys.issue_held_certificate(member, browser.key.public_key())
    db.session.commit()
    signed = signing.sign_pdf(small_pdf, signer="platform", field_name="platform", reason="R")
    prepared = member_keys.prepare_signature(
        signed, row, signer_name=member.full_name, field_name="member-1", reason="Countersigned"
    )
    out = member_keys.finish_signature(prepared, row, browser.sign(prepared.signed_attrs))
    statuses = signing.validate_pdf(out)
    assert [s.field_name for s in statuses] == ["platform", "member-1"]
    assert all(s.ok for s in statuses), statuses
    assert statuses[1].serial == row.serial
    assert signing.signatures_ok(out, expected=2)
    report = signing.pdfsig_report(out, signing.trust_roots_pem())
    assert report.signature_count == 2 and report.all_valid, report.text


# --- enrolment and countersigning through the operations ------------------------------------

import base64  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.conftest import run_queued_jobs  # noqa: E402
from tests.factories.records import build_finalised  # noqa: E402


@pytest.fixture
def record(app, make_tender, make_user, make_company):
    from app.extensions import db
    from app.records import operations

    built = build_finalised(make_tender, make_user, make_company, experts=3)
    record = operations.request_record(built.staff, built.tender)
    db.session.commit()
    run_queued_jobs()
    db.session.refresh(record)
    record.built = built
    return record


def _countersign(member, record, browser: BrowserKey, sign=None):
    from app.extensions import db
    from app.records import operations

    pending = operations.prepare_countersignature(member, record, _code(member))
    db.session.commit()
    value = (sign or browser.sign)(pending.signed_attrs)
    signature = operations.finish_countersignature(member, record, pending.id, value)
    db.session.commit()
    return signature


def test_member_enrols_and_countersigns_with_a_key_the_server_never_holds(app, record):
    from app.audit import AuditEvent
    from app.extensions import db
    from app.records import operations
    from app.records.models import SigningCertificate

    member = record.built.experts[0]
    # an older server-held certificate (the path kept for older records)
    legacy = signing.member_certificate(member)
    db.session.commit()
    browser = BrowserKey()
    certificate, _ = _enrol(member, browser)
    assert certificate.sealed_key == "" and certificate.user_id == member.id
    issued = member_keys.certificate_of(certificate)
    assert issued.public_key().public_numbers() == browser.key.public_key().public_numbers()
    usage = issued.extensions.get_extension_for_class(signing.x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert f"account-{member.id}" in certificate.subject
    assert (certificate.not_after - certificate.issued_at).days <= member_keys.MEMBER_HELD_CERT_DAYS
    db.session.refresh(legacy)
    assert legacy.revoked_at is not None  # the server can no longer sign in their name

    signature = _countersign(member, record, browser)
    assert signature.certificate_id == certificate.id and signature.field_name == "member-1"
    pdf = operations.record_pdf(record)
    statuses = signing.validate_pdf(pdf)
    assert [s.field_name for s in statuses] == ["platform", "member-1"]
    assert all(s.ok for s in statuses) and statuses[1].serial == certificate.serial
    assert signing.signatures_ok(pdf, expected=2)
    report = signing.pdfsig_report(pdf, signing.trust_roots_pem())
    assert report.signature_count == 2 and report.all_valid, report.text
    events = db.session.scalars(
        db.select(AuditEvent)
        .where(AuditEvent.action == "record.countersigned")
        .order_by(AuditEvent.seq)  # a table's rows come in no set order without it
    ).all()
    data = json.loads(events[-1].data) if isinstance(events[-1].data, str) else events[-1].data
    assert data["member_held_key"] is True and data["certificate"] == certificate.serial
    # the older path refuses a member who holds their own key
    from app.core.errors import Conflict

    other = record.built.experts[1]
    _enrol(other, BrowserKey())
    with app.test_request_context(), pytest.raises(Conflict) as refused:
        operations.countersign(other, record, _code(other))
    assert refused.value.code == "held_key_enrolled"
    db.session.rollback()
    assert (
        db.session.scalar(
            db.select(db.func.count(SigningCertificate.id)).where(
                SigningCertificate.user_id == other.id, SigningCertificate.sealed_key != ""
            )
        )
        == 0
    )


def test_replayed_enrolment_nonce_is_refused(app, make_user):
    from app.core.errors import Conflict, OperationError
    from app.extensions import db
    from app.records import operations
    from app.records.models import SigningCertificate

    member = make_user(Role.EXPERT)
    browser = BrowserKey()
    first, nonce = _enrol(member, browser)
    # the same request again (a recorded one replayed), or with another key
    for key in (browser, BrowserKey()):
        proof = key.sign(member_keys.enrolment_message(member.id, nonce, key.spki))
        with app.test_request_context(), pytest.raises(Conflict) as refused:
            operations.enrol_signing_key(member, _code(member), key.spki, nonce, proof)
        assert refused.value.code == "nonce_used"
        db.session.rollback()
    # another member's nonce, and one never issued
    stranger = make_user(Role.EXPERT)
    theirs = operations.issue_enrolment_nonce(stranger).nonce
    db.session.commit()
    for value in (theirs, "not-a-nonce"):
        proof = browser.sign(member_keys.enrolment_message(member.id, value, browser.spki))
        with app.test_request_context(), pytest.raises(OperationError) as refused:
            operations.enrol_signing_key(member, _code(member), browser.spki, value, proof)
        assert refused.value.code == "bad_nonce"
        db.session.rollback()
    rows = db.session.scalars(
        db.select(SigningCertificate).where(SigningCertificate.user_id == member.id)
    ).all()
    assert [r.id for r in rows] == [first.id] and rows[0].revoked_at is None


def test_enrolment_without_proof_of_possession_is_refused(app, make_user):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from app.core.errors import OperationError
    from app.extensions import db
    from app.records import operations
    from app.records.models import KeyEnrolmentNonce, SigningCertificate

    member = make_user(Role.EXPERT)
    browser, thief = BrowserKey(), BrowserKey()
    nonce = operations.issue_enrolment_nonce(member).nonce
    db.session.commit()
    message = member_keys.enrolment_message(member.id, nonce, browser.spki)
    ed_spki = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cases = [
        ("bad_proof", browser.spki, thief.sign(message)),  # signed by another key
        ("bad_proof", browser.spki, browser.sign(message + b"x")),  # another message
        ("bad_proof", browser.spki, browser.sign(message)[:63]),  # not r||s
        ("bad_public_key", ed_spki, browser.sign(message)),  # not P-256
        ("bad_public_key", b"\x30\x03junk", browser.sign(message)),
    ]
    for code, spki, proof in cases:
        with app.test_request_context(), pytest.raises(OperationError) as refused:
            operations.enrol_signing_key(member, _code(member), spki, nonce, proof)
        assert refused.value.code == code
        db.session.rollback()
    assert (
        db.session.scalar(
            db.select(db.func.count(SigningCertificate.id)).where(
                SigningCertificate.user_id == member.id
            )
        )
        == 0
    )
    assert (
        db.session.scalar(
            db.select(KeyEnrolmentNonce.used_at).where(KeyEnrolmentNonce.nonce == nonce)
        )
        is None
    )
    # a wrong authenticator code: refused too (the attempt is audited)
    from app.accounts.operations import SignInFailed

    with app.test_request_context(), pytest.raises(SignInFailed):
        operations.enrol_signing_key(member, "000000", browser.spki, nonce, browser.sign(message))


def test_signatures_by_other_keys_or_of_other_data_are_refused(app, record):
    from app.core.errors import Conflict, OperationError
    from app.extensions import db
    from app.records import operations

    member = record.built.experts[1]
    document_id = record.document_id
    # not enrolled: nothing to sign with
    with app.test_request_context(), pytest.raises(Conflict) as refused:
        operations.prepare_countersignature(member, record, _code(member))
    assert refused.value.code == "no_signing_key"
    db.session.rollback()
    browser, stranger = BrowserKey(), BrowserKey()
    _enrol(member, browser)
    pending = operations.prepare_countersignature(member, record, _code(member))
    db.session.commit()
    other_attrs = bytes(pending.signed_attrs).replace(b"\x04\x20", b"\x04\x20\x00", 1)[:-1]
    for value in (
        stranger.sign(pending.signed_attrs),  # a key that is not enrolled
        browser.sign(other_attrs),  # the enrolled key, but another digest
        browser.sign(b"the record's digest, said differently"),
        bytes(64),
    ):
        with app.test_request_context(), pytest.raises(OperationError) as refused:
            operations.finish_countersignature(member, record, pending.id, value)
        assert refused.value.code == "bad_signature"
        db.session.rollback()
    db.session.refresh(record)
    assert record.document_id == document_id
    assert len(operations.signatures_of(record)) == 1
    # the right value finishes it once; the request cannot be used again
    operations.finish_countersignature(
        member, record, pending.id, browser.sign(pending.signed_attrs)
    )
    db.session.commit()
    with app.test_request_context(), pytest.raises(Conflict):
        operations.finish_countersignature(
            member, record, pending.id, browser.sign(pending.signed_attrs)
        )
    db.session.rollback()
    assert signing.signatures_ok(operations.record_pdf(record), expected=2)


def test_lost_key_is_revoked_and_the_crl_catches_later_signatures(app, record, tmp_path):
    from cryptography import x509

    from app.core.errors import Conflict
    from app.extensions import db
    from app.records import operations

    member = record.built.experts[0]
    lost = BrowserKey()
    old, _ = _enrol(member, lost)
    _countersign(member, record, lost)
    signed_before = operations.record_pdf(record)
    # A request prepared with the old key, finished only after the new enrolment.
    second = record.built.experts[1]
    second_key = BrowserKey()
    _enrol(second, second_key)
    pending = operations.prepare_countersignature(second, record, _code(second))
    db.session.commit()

    new, _ = _enrol(member, BrowserKey())  # the member lost the key: enrols again
    db.session.refresh(old)
    assert old.revoked_at is not None and new.revoked_at is None
    assert member_keys.held_certificate(member).id == new.id
    crl = x509.load_der_x509_crl(signing.revocation_list_der())
    ca = signing.platform_ca()
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(old.serial, 16)) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(new.serial, 16)) is None
    # the signature made before the revocation still holds
    assert signing.signatures_ok(signed_before, expected=2)

    # the server refuses the old key's pending request once it is revoked...
    _enrol(second, BrowserKey())
    with app.test_request_context(), pytest.raises(Conflict) as refused:
        operations.finish_countersignature(
            second, record, pending.id, second_key.sign(pending.signed_attrs)
        )
    assert refused.value.code == "certificate_revoked"
    db.session.rollback()

    # ...and a thief with the lost key who signs the record offline later is caught: the
    # prepared signature is dated two hours on (the thief's clock), after the revocation.
    # (the platform's clock, which the signer reads: `app.records.signing.utcnow`)
    later = signing.utcnow() + dt.timedelta(hours=2)
    base = signing.sign_pdf(render_pdf(HTML), signer="platform", field_name="platform", reason="R")
    patch = pytest.MonkeyPatch()
    patch.setattr(signing, "utcnow", lambda: later)
    try:
        prepared = member_keys.prepare_signature(
            base, old, signer_name="Thief", field_name="member-1", reason="Forged"
        )
    finally:
        patch.undo()
    forged = member_keys.finish_signature(prepared, old, lost.sign(prepared.signed_attrs))
    statuses = signing.validate_pdf(forged)
    assert statuses[0].ok and statuses[1].intact and statuses[1].valid
    assert statuses[1].revoked and not statuses[1].ok
    assert not signing.signatures_ok(forged)

    # the offline verifier: with the published CRL it fails; the honest record passes
    root = Path(__file__).resolve().parents[2]
    trust, crl_file = tmp_path / "ca.pem", tmp_path / "signing-ca.crl"
    trust.write_bytes(signing.trust_roots_pem())
    crl_file.write_bytes(signing.revocation_list_der())

    def verify(pdf: bytes, *extra: str) -> subprocess.CompletedProcess:
        path = tmp_path / "record.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            [sys.executable, "-m", "evaluation", "verify", str(path), "--trust", str(trust),
             *extra],
            cwd=root, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    caught = verify(forged, "--crl", str(crl_file))
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert f"made after its certificate (serial {old.serial}) was revoked" in caught.stdout
    honest = verify(signed_before, "--crl", str(crl_file))
    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert "revoked before it (--crl)" in honest.stdout
    # the CRL as PEM reads too; a damaged one is reported
    crl_file.write_bytes(signing.revocation_list_pem())
    assert verify(forged, "--crl", str(crl_file)).returncode == 1
    crl_file.write_bytes(b"not a CRL")
    damaged = verify(signed_before, "--crl", str(crl_file))
    assert damaged.returncode == 1 and "the CRL file cannot be read" in damaged.stdout


def test_crl_is_published_next_to_the_ca(app, client, make_user):
    from cryptography import x509

    from app.extensions import db

    member = make_user(Role.EXPERT)
    old, _ = _enrol(member, BrowserKey())
    _enrol(member, BrowserKey())
    db.session.commit()
    response = client.get("/api/v1/platform/signing-ca.crl")
    assert response.status_code == 200
    assert response.mimetype == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.data)
    ca = x509.load_pem_x509_certificates(client.get("/api/v1/platform/signing-ca.pem").data)
    assert any(crl.is_signature_valid(c.public_key()) for c in ca)
    assert crl.get_revoked_certificate_by_serial_number(int(old.serial, 16)) is not None
    assert crl.next_update_utc > crl.last_update_utc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_enrolment_and_countersignature_through_the_api(app, client, record):
    from app.accounts import operations as account_ops
    from app.extensions import db

    member = record.built.experts[2]
    token = account_ops.create_api_token(member, "signing")
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    browser = BrowserKey()
    assert client.get("/api/v1/me/signing-key", headers=headers).status_code == 404
    nonce = client.post("/api/v1/me/signing-key/nonce", headers=headers, json={}).get_json()
    assert nonce["account"] == member.id
    proof = browser.sign(member_keys.enrolment_message(member.id, nonce["nonce"], browser.spki))
    body = {
        "totp_code": _code(member),
        "nonce": nonce["nonce"],
        "public_key": base64.b64encode(browser.spki).decode(),
        "proof": base64.b64encode(proof).decode(),
    }
    db.session.commit()
    bad = client.post("/api/v1/me/signing-key", headers=headers, json=body | {"proof": "%%"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "bad_base64"
    enrolled = client.post("/api/v1/me/signing-key", headers=headers, json=body)
    assert enrolled.status_code == 201, enrolled.get_json()
    serial = enrolled.get_json()["serial"]
    assert client.get("/api/v1/me/signing-key", headers=headers).get_json()["serial"] == serial
    replay = client.post(
        "/api/v1/me/signing-key", headers=headers, json=body | {"totp_code": _code(member)}
    )
    db.session.commit()
    assert replay.status_code == 409 and replay.get_json()["error"] == "nonce_used"

    url = f"/api/v1/tenders/{record.tender_id}/record/countersignature"
    wrong = client.post(url, headers=headers, json={"totp_code": "000000"})
    assert wrong.status_code == 403 and wrong.get_json()["error"] == "bad_totp"
    code = _code(member)
    db.session.commit()
    prepared = client.post(url, headers=headers, json={"totp_code": code})
    assert prepared.status_code == 201, prepared.get_json()
    data = prepared.get_json()
    assert data["certificate"] == serial
    attrs = base64.b64decode(data["signed_attrs"])
    refused = client.post(
        url + "/finish",
        headers=headers,
        json={
            "request": data["request"],
            "signature": base64.b64encode(BrowserKey().sign(attrs)).decode(),
        },
    )
    assert refused.status_code == 400 and refused.get_json()["error"] == "bad_signature"
    done = client.post(
        url + "/finish",
        headers=headers,
        json={
            "request": data["request"],
            "signature": base64.b64encode(browser.sign(attrs)).decode(),
        },
    )
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["field"] == "member-3"
    pdf = client.get(f"/api/v1/tenders/{record.tender_id}/record.pdf", headers=headers)
    assert signing.signatures_ok(pdf.data, expected=2)
    pdf.close()


def test_expired_challenges_and_stale_requests_are_refused(app, record):
    from datetime import timedelta

    from app.core.errors import Conflict
    from app.extensions import db
    from app.records import operations
    from app.records.models import KeyEnrolmentNonce

    first, second = record.built.experts[0], record.built.experts[1]
    browser = BrowserKey()
    nonce = operations.issue_enrolment_nonce(first).nonce
    challenge = db.session.scalar(
        db.select(KeyEnrolmentNonce).where(KeyEnrolmentNonce.nonce == nonce)
    )
    challenge.issued_at -= operations.NONCE_TTL + timedelta(seconds=1)
    db.session.commit()
    proof = browser.sign(member_keys.enrolment_message(first.id, nonce, browser.spki))
    with app.test_request_context(), pytest.raises(Conflict) as refused:
        operations.enrol_signing_key(first, _code(first), browser.spki, nonce, proof)
    assert refused.value.code == "nonce_expired"
    db.session.rollback()
    _enrol(first, browser)
    other_key = BrowserKey()
    _enrol(second, other_key)
    # Both prepare on the same version; the second to finish must sign again.
    mine = operations.prepare_countersignature(first, record, _code(first))
    theirs = operations.prepare_countersignature(second, record, _code(second))
    db.session.commit()
    operations.finish_countersignature(
        second, record, theirs.id, other_key.sign(theirs.signed_attrs)
    )
    db.session.commit()
    with app.test_request_context(), pytest.raises(Conflict) as refused:
        operations.finish_countersignature(first, record, mine.id, browser.sign(mine.signed_attrs))
    assert refused.value.code == "stale_request"
    db.session.rollback()
    # A request left too long expires.
    late = operations.prepare_countersignature(first, record, _code(first))
    late.created_at -= operations.PENDING_TTL + timedelta(seconds=1)
    db.session.commit()
    with app.test_request_context(), pytest.raises(Conflict) as refused:
        operations.finish_countersignature(first, record, late.id, browser.sign(late.signed_attrs))
    assert refused.value.code == "request_expired"
    db.session.rollback()
    # Another member's request is not theirs to finish.
    from app.core.errors import OperationError

    third, third_key = record.built.experts[2], BrowserKey()
    _enrol(third, third_key)
    fresh = operations.prepare_countersignature(first, record, _code(first))
    db.session.commit()
    with app.test_request_context(), pytest.raises(OperationError) as refused:
        operations.finish_countersignature(
            third, record, fresh.id, third_key.sign(fresh.signed_attrs)
        )
    assert refused.value.code == "unknown_request" and refused.value.status == 404
    db.session.rollback()
    operations.finish_countersignature(first, record, fresh.id, browser.sign(fresh.signed_attrs))
    db.session.commit()
    assert signing.signatures_ok(operations.record_pdf(record), expected=3)
