"""Signed PDF evaluation records: signing, validation with pyHanko and pdfsig."""

from __future__ import annotations

import pytest

from app.accounts.models import Role
from app.pdf import PdfAttachment, render_pdf
from app.records import signing
from tests.conftest import run_queued_jobs

HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>T</title></head>
<body><h1>Record</h1><p>Body text.</p><section style="page-break-before: always">
<h2>Signatures</h2></section></body></html>"""


@pytest.fixture
def small_pdf(app):
    return render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", "{}")]
    )


def test_platform_and_member_signatures_validate(app, make_user, small_pdf):
    from app.extensions import db

    member = make_user(Role.EXPERT)
    signed = signing.sign_pdf(small_pdf, signer="platform", field_name="platform", reason="R")
    assert signed.startswith(small_pdf)  # incremental
    signed = signing.sign_pdf(signed, signer=member, field_name="member-1", reason="Countersigned")
    db.session.commit()
    statuses = signing.validate_pdf(signed)
    assert [s.field_name for s in statuses] == ["platform", "member-1"]
    assert all(s.ok for s in statuses), statuses
    assert signing.signatures_ok(signed, expected=2)
    report = signing.pdfsig_report(signed, signing.trust_roots_pem())
    assert report.signature_count == 2 and report.all_valid, report.text
    # the member keeps one certificate
    assert signing.member_certificate(member).id == signing.member_certificate(member).id


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_an_altered_byte_breaks_both_verifiers(app, make_user, small_pdf):
    signed = signing.sign_pdf(small_pdf, signer="platform", field_name="platform", reason="R")
    roots = signing.trust_roots_pem()
    # the middle of the original document, and the last bytes of the signed revision
    for at in (len(small_pdf) // 2, len(signed) - 40):
        altered = _flip(signed, at)
        assert not signing.signatures_ok(altered), at
        report = signing.pdfsig_report(altered, roots)
        assert not report.all_valid and report.valid_count == 0, report.text


def test_pdfsig_does_not_trust_an_unknown_root(app, small_pdf):
    signed = signing.sign_pdf(small_pdf, signer="platform", field_name="platform", reason="R")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from app.core.types import utcnow

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Someone else")])
    other = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(utcnow()).not_valid_after(utcnow().replace(year=2040))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    report = signing.pdfsig_report(signed, other.public_bytes(serialization.Encoding.PEM))
    assert report.valid_count == 1 and report.trusted_count == 0 and not report.all_valid


# --- the evaluation record ----------------------------------------------------------------

import hashlib  # noqa: E402
import io  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pyotp  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from tests.factories.records import build_finalised  # noqa: E402


@pytest.fixture
def finalised(app, make_tender, make_user, make_company):
    return build_finalised(make_tender, make_user, make_company)


def _pdftotext(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "record.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _attachment(pdf: bytes) -> bytes:
    reader = PdfReader(io.BytesIO(pdf))
    files = reader.attachments
    assert list(files) == ["scoring.json"]
    return files["scoring.json"][0]


def _make_record(finalised):
    from app.extensions import db
    from app.records import operations

    record = operations.request_record(finalised.staff, finalised.tender)
    db.session.commit()  # the job runs inline after the commit, or in the queue:
    run_queued_jobs()
    db.session.refresh(record)
    return record


def test_request_renders_signs_and_stores_the_record(app, finalised, tmp_path):
    from app.audit import AuditEvent
    from app.extensions import db
    from app.records import operations
    from app.records.models import RecordSignature, RecordStatus

    record = _make_record(finalised)
    assert record.status == RecordStatus.SIGNED, record.error
    assert record.progress == 100 and record.pages >= 3
    pdf = operations.record_pdf(record)
    # the scoring file travels inside, byte-identical; its hash is the document hash
    assert _attachment(pdf) == finalised.scoring_json.encode()
    digest = hashlib.sha256(finalised.scoring_json.encode()).hexdigest()
    assert record.scoring_sha256 == digest
    text = _pdftotext(pdf, tmp_path)
    pages = text.count("\f")
    assert text.count(digest) >= pages  # every page's footer
    assert text.count(finalised.tender.reference) >= pages
    assert f"Page 1 of {record.pages}" in text
    # contents against the scoring file
    result = finalised.scoring["result"]
    assert result["price"]["benchmark"].replace(".00", "") in text.replace(",", "")
    for bid in result["bids"]:
        assert bid["id"] in text
        if bid["total"]:
            assert bid["total"] in text
        for reason in bid["reasons"]:
            assert reason["message"][:30] in text.replace("\n", " ") or reason["code"]
    for expert in result["panel"]:
        assert f"Expert {expert}" in text
    assert "Clear design, minor gaps" in text and "Best service plan" in text
    assert record.audit_head in "".join(text.split())  # wrapped in its cell
    for company in finalised.companies:
        assert company.name in text
    # one platform signature, valid for both verifiers
    from app.records import signing

    assert signing.signatures_ok(pdf, expected=1)
    report = signing.pdfsig_report(pdf, signing.trust_roots_pem())
    assert report.signature_count == 1 and report.all_valid, report.text
    rows = db.session.scalars(
        db.select(RecordSignature).where(RecordSignature.record_id == record.id)
    ).all()
    assert [(r.signer_id, r.field_name, r.sha256) for r in rows] == [
        (None, "platform", hashlib.sha256(pdf).hexdigest())
    ]
    actions = db.session.scalars(db.select(AuditEvent.action)).all()
    assert "record.requested" in actions and "record.signed" in actions


def test_countersigning_by_every_member_completes_the_record(app, finalised, tmp_path):
    from app.extensions import db
    from app.records import operations, signing
    from app.records.models import RecordStatus

    record = _make_record(finalised)
    for expert in finalised.experts:
        operations.countersign(expert, record, pyotp.TOTP(expert.totp_secret).now())
        db.session.commit()
    db.session.refresh(record)
    assert record.status == RecordStatus.COMPLETE and record.completed_at
    pdf = operations.record_pdf(record)
    fields = [s.field_name for s in signing.validate_pdf(pdf)]
    assert fields == ["platform"] + [f"member-{n}" for n in range(1, 6)]
    assert signing.signatures_ok(pdf, expected=6)
    report = signing.pdfsig_report(pdf, signing.trust_roots_pem())
    assert report.signature_count == 6 and report.all_valid, report.text
    assert _attachment(pdf) == finalised.scoring_json.encode()
    # each member has a certificate of their own from the platform CA
    serials = {signing.member_certificate(e).serial for e in finalised.experts}
    assert len(serials) == 5
    # a byte altered anywhere breaks both verifiers
    for at in (len(pdf) // 3, len(pdf) - 100):
        altered = pdf[:at] + bytes([pdf[at] ^ 0x20]) + pdf[at + 1 :]
        assert not signing.signatures_ok(altered, expected=6), at
        assert not signing.pdfsig_report(altered, signing.trust_roots_pem()).all_valid


def test_wrong_code_refused_and_nothing_stored(app, finalised, client, auth):
    """The record page's two JSON steps (static/js/member_key.js drives them in the
    browser; tests/app/test_member_keys.py's key plays the browser here)."""
    import base64

    from app.extensions import db
    from app.records import operations
    from tests.factories.member_keys import BrowserKey
    from tests.factories.member_keys import enrol as _enrol
    from tests.factories.member_keys import totp_code as _code

    record = _make_record(finalised)
    document_id = record.document_id
    expert = finalised.experts[1]
    auth.login(expert)
    url = f"/records/tenders/{finalised.tender.id}"
    page = client.get(url)
    assert b"first make your signing key" in page.data and b'id="countersign"' not in page.data
    browser = BrowserKey()
    _enrol(expert, browser)
    page = client.get(url)
    assert page.status_code == 200 and b'id="countersign"' in page.data
    assert b"Countersign the record with my key" in page.data
    response = client.post(f"{url}/countersign", json={"code": "000000"})
    assert response.status_code == 401 and response.get_json()["error"] == "bad_totp"
    assert client.post(f"{url}/countersign", json={"code": "12"}).status_code == 400
    db.session.refresh(record)
    assert record.document_id == document_id
    assert len(operations.signatures_of(record)) == 1
    code = _code(expert)
    db.session.commit()
    prepared = client.post(f"{url}/countersign", json={"code": code})
    assert prepared.status_code == 201, prepared.get_json()
    data = prepared.get_json()
    attrs = base64.b64decode(data["signed_attrs"])
    sign = base64.b64encode(BrowserKey().sign(attrs)).decode()
    refused = client.post(data["finish_url"], json={"request": data["request"], "signature": sign})
    assert refused.status_code == 400 and refused.get_json()["error"] == "bad_signature"
    sign = base64.b64encode(browser.sign(attrs)).decode()
    done = client.post(data["finish_url"], json={"request": data["request"], "signature": sign})
    assert done.status_code == 201, done.get_json()
    db.session.refresh(record)
    assert record.document_id != document_id
    assert [s.field_name for s in operations.signatures_of(record)] == ["platform", "member-2"]
    page = client.get(url)
    assert b"You have countersigned this record." in page.data


def test_superseded_record_refuses_signatures(app, finalised):
    from app.core.errors import Conflict
    from app.extensions import db
    from app.records import operations
    from app.records.models import RecordStatus
    from app.records.versions import record_document

    record = _make_record(finalised)
    operations.supersede(record, "Objection upheld")
    db.session.commit()
    expert = finalised.experts[0]
    with app.test_request_context(), pytest.raises(Conflict):
        operations.countersign(expert, record, pyotp.TOTP(expert.totp_secret).now())
    db.session.rollback()
    db.session.refresh(record)
    assert record.status == RecordStatus.SUPERSEDED
    assert len(operations.signatures_of(record)) == 1
    assert record_document(record) is not None  # the file is kept


def test_job_failure_shows_failed_and_retry_succeeds(app, finalised, client, auth):
    from app.evaluations.models import Evaluation
    from app.extensions import db
    from app.records import operations
    from app.records.models import RecordStatus

    evaluation = db.session.get(Evaluation, finalised.tender.id)
    good = evaluation.scoring_json
    evaluation.scoring_json = "{not json"
    db.session.commit()
    record = _make_record(finalised)
    assert record.status == RecordStatus.FAILED and "JSONDecodeError" in record.error
    assert record.document_id is None
    auth.login(finalised.staff)
    status = client.get(f"/records/tenders/{finalised.tender.id}/status.json").get_json()
    assert status["status"] == "failed" and status["done"] and status["error"]
    page = client.get(f"/records/tenders/{finalised.tender.id}")
    assert b"Making the record failed." in page.data and b"Make the record again" in page.data
    evaluation = db.session.get(Evaluation, finalised.tender.id)
    evaluation.scoring_json = good
    db.session.commit()
    response = client.post(f"/records/tenders/{finalised.tender.id}/request")
    assert response.status_code == 303
    run_queued_jobs()
    db.session.refresh(record)
    assert record.status == RecordStatus.SIGNED, record.error
    download = client.get(f"/records/tenders/{finalised.tender.id}/record.pdf")
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    assert download.data == operations.record_pdf(record)
    download.close()


def test_request_refused_before_finalisation_and_for_others(app, finalised, make_user):
    from app.accounts.models import Role
    from app.core.errors import Conflict
    from app.evaluations.models import Evaluation, EvaluationStage
    from app.extensions import db
    from app.permissions import PermissionDenied
    from app.records import operations
    from app.records.models import EvaluationRecord

    with pytest.raises(PermissionDenied):
        operations.request_record(finalised.experts[1], finalised.tender)  # not the chair
    with pytest.raises(PermissionDenied):
        operations.request_record(make_user(Role.STAFF), finalised.tender)  # other centre
    db.session.get(Evaluation, finalised.tender.id).stage = EvaluationStage.UNBLINDED
    db.session.commit()
    with app.test_request_context(), pytest.raises(Conflict):
        operations.request_record(finalised.staff, finalised.tender)
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count(EvaluationRecord.id))) == 0


def test_finalise_hook_is_registered(app):
    from blinker import ANY

    from app.evaluations.signals import evaluation_finalised
    from app.records.operations import request_record_on_finalise

    assert request_record_on_finalise in evaluation_finalised.receivers_for(ANY)


def test_korean_record_uses_cjk_fonts(app, make_tender, make_user, make_company, tmp_path):
    from app.records import operations
    from app.records.models import RecordStatus

    built = build_finalised(make_tender, make_user, make_company, locale="ko")
    record = _make_record(built)
    assert record.status == RecordStatus.SIGNED, record.error
    pdf = operations.record_pdf(record)
    path = tmp_path / "ko.pdf"
    path.write_bytes(pdf)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout
    assert "Noto-Sans-CJK-KR" in fonts, fonts
    text = _pdftotext(pdf, tmp_path)
    assert "수원 Company 1 有限公司" in text
    assert '<html lang="ko"' not in text


def test_a_failed_evaluation_still_gets_its_signed_record(
    app, make_tender, make_user, make_company, tmp_path
):
    """Every bid above the ceiling: no benchmark, no ranking; the record says so, signed."""
    from app.records import operations
    from app.records.models import RecordStatus

    built = build_finalised(make_tender, make_user, make_company, ceiling_price="1000.00")
    assert built.scoring["result"]["outcome"]["status"] == "failed"
    record = _make_record(built)
    assert record.status == RecordStatus.SIGNED, record.error
    text = _pdftotext(operations.record_pdf(record), tmp_path)
    assert "¥1,000.00" in text  # the ceiling price, with its currency


def test_cli_verifies_the_record_and_catches_an_altered_scoring_file(app, finalised, tmp_path):
    import json
    import sys
    from pathlib import Path

    from app.evaluations.models import Evaluation
    from app.extensions import db
    from app.records import jobs, operations
    from evaluation import dumps

    record = _make_record(finalised)
    root = Path(__file__).resolve().parents[2]

    trust = tmp_path / "ca.pem"
    trust.write_bytes(signing.trust_roots_pem())

    def verify(pdf: bytes) -> subprocess.CompletedProcess:
        path = tmp_path / "record.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            [sys.executable, "-m", "evaluation", "verify", str(path), "--trust", str(trust)],
            cwd=root, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    out = verify(operations.record_pdf(record))
    assert out.returncode == 0, out.stdout + out.stderr
    # the same record with a scoring file altered after the fact
    evaluation = db.session.get(Evaluation, finalised.tender.id)
    html, _ = jobs.render_record_html(finalised.tender, evaluation, "en")
    doc = json.loads(finalised.scoring_json)
    doc["bids"][2]["price"] = "78000.00"
    out = verify(jobs.render_record_pdf(html, dumps(doc)))
    assert out.returncode == 1
    assert "$.result.input_sha256" in out.stdout and "price" in out.stdout


def test_private_keys_are_never_stored_in_clear(app, make_user):
    import os
    from pathlib import Path

    from app.extensions import db

    member = make_user(Role.EXPERT)
    row = signing.member_certificate(member)
    db.session.commit()
    assert "PRIVATE KEY" not in row.sealed_key and row.sealed_key.startswith("v1:")
    assert signing._unseal_key(row).startswith(b"-----BEGIN PRIVATE KEY-----")
    signing.platform_signer()
    keys = Path(app.config.get("PLATFORM_KEY_DIR") or Path(app.instance_path) / "keys")
    for name in (signing.CA_KEY_FILENAME, signing.PLATFORM_KEY_FILENAME):
        assert os.stat(keys / name).st_mode & 0o777 == 0o600
    # another SECRET_KEY cannot unseal it: the certificate is revoked and a new one issued
    secret = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another-secret-key-for-this-test-only"
    try:
        signed = signing.sign_pdf(
            render_pdf(HTML), signer=member, field_name="member-1", reason="R", visible=False
        )
    finally:
        app.config["SECRET_KEY"] = secret
    db.session.refresh(row)
    assert row.revoked_at is not None
    assert signing.validate_pdf(signed)[0].serial != row.serial


def test_the_chair_finalising_makes_the_signed_record(app, finalised):
    """The evaluation area's finalise runs the finalise hooks: the record is requested by
    the chair, rendered, signed and stored once the chair's transaction commits."""
    from app.evaluations import operations as evaluation_ops
    from app.evaluations.models import Evaluation, EvaluationStage
    from app.extensions import db
    from app.records import operations
    from app.records.models import RecordStatus

    evaluation = db.session.get(Evaluation, finalised.tender.id)
    evaluation.stage = EvaluationStage.UNBLINDED
    db.session.commit()
    chair = finalised.experts[0]
    with app.test_request_context():
        evaluation_ops.finalise(chair, finalised.tender)
    db.session.commit()
    run_queued_jobs()
    record = operations.current_record(finalised.tender)
    assert record is not None and record.requested_by_id == chair.id
    assert record.status == RecordStatus.SIGNED, record.error
    assert signing.signatures_ok(operations.record_pdf(record), expected=1)


def test_a_korean_signer_name_is_stamped_in_an_embedded_cjk_font(app, make_user, small_pdf):
    from app.extensions import db

    member = make_user(Role.EXPERT, full_name="김철수")
    signed = signing.sign_pdf(small_pdf, signer=member, field_name="member-1", reason="연서명")
    db.session.commit()
    assert signing.signatures_ok(signed, expected=1)
    path = Path(app.instance_path) / "stamp.pdf"
    path.write_bytes(signed)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout
    assert "NotoSansCJKkr" in fonts, fonts
    cjk = next(line for line in fonts.splitlines() if "NotoSansCJKkr" in line)
    assert cjk.split()[-5:-2] == ["yes", "yes", "yes"], cjk  # embedded, subset, unicode


def test_a_job_killed_mid_render_is_queued_again_once_stale(app, finalised):
    """A worker killed while rendering leaves the row RENDERING: asking again within the
    stale period changes nothing (the job may still be running); after it, the record is
    queued again and made once."""
    from datetime import timedelta

    from app.extensions import db
    from app.records import operations
    from app.records.models import EvaluationRecord, RecordStatus

    stuck = EvaluationRecord(
        tender_id=finalised.tender.id,
        round=1,
        status=RecordStatus.RENDERING,
        progress=40,
        step="render",
        requested_by_id=finalised.staff.id,
    )
    db.session.add(stuck)
    db.session.commit()
    stuck.started_at = stuck.requested_at
    db.session.commit()
    assert operations.request_record(finalised.staff, finalised.tender).id == stuck.id
    db.session.commit()
    run_queued_jobs()
    db.session.refresh(stuck)
    assert stuck.status == RecordStatus.RENDERING  # still within the stale period
    stuck.started_at = stuck.started_at - operations.STALE_AFTER - timedelta(seconds=1)
    db.session.commit()
    again = operations.request_record(finalised.staff, finalised.tender)
    db.session.commit()
    run_queued_jobs()
    db.session.refresh(again)
    assert again.id == stuck.id and again.status == RecordStatus.SIGNED, again.error
    assert signing.signatures_ok(operations.record_pdf(again), expected=1)
