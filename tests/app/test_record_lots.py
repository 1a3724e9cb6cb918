"""The signed evaluation record of a tender divided into lots: a part per lot and the award
across lots, every lot's scoring file attached (scoring-<lot>.json) with the lots file
(lots-evaluation.json), signed by the platform and countersigned by the panel, checked by
pyHanko, pdfsig and `python -m evaluation verify`, which catches a forged lot file or a
changed award."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import flask_babel
import pyotp
import pytest
from pypdf import PdfReader

from app.evaluations.models import Evaluation
from app.extensions import db
from app.records import jobs, operations, signing
from app.records.models import RecordStatus
from app.records.versions import PLATFORM_FIELD
from evaluation import dumps
from tests.conftest import run_queued_jobs
from tests.factories.lots import finalised, lots_tender

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lots_record(app, make_tender, make_user):
    """Three lots, a limit of one lot per company, finalised by the chair: the finalisation
    requests the record, which the job renders and signs."""
    with app.test_request_context():
        tender, bidders, experts = lots_tender(make_tender, make_user, limit=1)
        evaluation = finalised(tender, experts)
    run_queued_jobs()
    record = operations.current_record(tender)
    db.session.refresh(record)
    return tender, bidders, experts, evaluation, record


def _attachments(pdf: bytes) -> dict[str, bytes]:
    return {name: body[0] for name, body in PdfReader(io.BytesIO(pdf)).attachments.items()}


def _assert_attached_once_as_data(pdf: bytes) -> None:
    """PDF/A-3: every attachment listed once in the catalog's /AF, as /Data, JSON."""
    reader = PdfReader(io.BytesIO(pdf))
    associated = [a.get_object() for a in reader.trailer["/Root"]["/AF"]]
    names = sorted(str(spec["/UF"]) for spec in associated)
    assert (
        names
        == sorted(reader.attachments)
        == [
            "lots-evaluation.json",
            "scoring-1.json",
            "scoring-2.json",
            "scoring-3.json",
        ]
    )
    for spec in associated:
        assert spec["/F"] == spec["/UF"] and spec["/AFRelationship"] == "/Data"
        assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/application/json"


def _replace_attachment(pdf: bytes, name: str, price: str) -> bytes:
    """The PDF with an incremental update giving the first bid of attachment `name` another
    price (the signed revisions are left as they are)."""
    from pypdf import PdfWriter

    writer = PdfWriter(io.BytesIO(pdf), incremental=True)
    names = writer._root_object["/Names"]["/EmbeddedFiles"]["/Names"]
    spec = next(names[i + 1].get_object() for i in range(0, len(names), 2) if names[i] == name)
    stream = spec["/EF"]["/F"].get_object()
    doc = json.loads(stream.get_data())
    doc["bids"][0]["price"] = price
    stream.set_data(dumps(doc).encode())
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().startswith(pdf)
    return out.getvalue()


def _pdftotext(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "record.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _verify(pdf: bytes, tmp_path, name: str = "record.pdf") -> subprocess.CompletedProcess:
    trust = tmp_path / "ca.pem"
    trust.write_bytes(signing.trust_roots_pem())
    path = tmp_path / name
    path.write_bytes(pdf)
    return subprocess.run(
        [sys.executable, "-m", "evaluation", "verify", str(path), "--trust", str(trust)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_the_record_has_a_part_per_lot_and_the_award_with_every_lot_file(
    app, lots_record, tmp_path
):
    _tender, bidders, _experts, evaluation, record = lots_record
    assert record.status == RecordStatus.SIGNED, record.error
    pdf = operations.record_pdf(record)
    files = _attachments(pdf)
    assert sorted(files) == [
        "lots-evaluation.json",
        "scoring-1.json",
        "scoring-2.json",
        "scoring-3.json",
    ]
    assert files["lots-evaluation.json"] == evaluation.lots_json.encode()
    lots = json.loads(evaluation.lots_json)
    for entry in lots["lots"]:
        assert files[f"scoring-{entry['lot']}.json"] == dumps(entry["scoring_file"]).encode()
    digest = hashlib.sha256(evaluation.lots_json.encode()).hexdigest()
    assert record.scoring_sha256 == digest
    text = _pdftotext(pdf, tmp_path)
    flat = " ".join(text.split())
    pages = text.count("\f")
    assert text.count(digest) >= pages  # every page's footer
    for n in (1, 2, 3):
        assert f"Lot {n}: Lot {n}" in flat
        assert f"scoring-{n}.json" in flat
    assert "¥200,000.00" in flat and "¥300,000.00" in flat  # lots 2 and 3's ceilings
    assert flat.count("6. Compliance") == 3 and flat.count("11. Ranking") == 3
    assert "Award across lots" in flat and "Most lots one company may win 1" in flat
    names = [b.company.name for b in bidders]
    # company 0 tops every lot but wins lot 1 only; passed over in lots 2 and 3
    assert flat.count(f"{names[0]} (rank 1) already wins the most lots") == 2
    assert flat.count(f"{names[1]} (rank 2) already wins the most lots") == 1
    for name in names:
        assert name in flat
    assert signing.signatures_ok(pdf, expected=1)
    report = signing.pdfsig_report(pdf, signing.trust_roots_pem())
    assert report.signature_count == 1 and report.all_valid, report.text


def test_the_record_page_and_api_list_the_lots(app, client, auth, lots_record):
    from tests.factories.accounts import token_for
    from tests.factories.opening import staff_of

    tender, bidders, _experts, evaluation, record = lots_record
    staff = staff_of(tender)
    names = [b.company.name for b in bidders]
    auth.login(staff)
    page = client.get(f"/records/tenders/{tender.id}").get_data(as_text=True)
    assert page.count('<tr data-lot="') == 3
    for n, name in zip((1, 2, 3), names, strict=True):
        assert f"<code>scoring-{n}.json</code>" in page
        assert name in page  # each company wins one lot under the limit of one
    data = client.get(f"/api/v1/tenders/{tender.id}/records", headers=token_for(staff))
    assert data.status_code == 200, data.get_json()
    lots = data.get_json()["records"][0]["lots"]
    stored = json.loads(evaluation.lots_json)
    assert [lot["lot"] for lot in lots] == ["1", "2", "3"]
    assert [lot["winner_name"] for lot in lots] == names
    assert [lot["attachment"] for lot in lots] == [
        "scoring-1.json",
        "scoring-2.json",
        "scoring-3.json",
    ]
    for lot, entry in zip(lots, stored["lots"], strict=True):
        digest = hashlib.sha256(dumps(entry["scoring_file"]).encode()).hexdigest()
        assert lot["sha256"] == digest
    assert lots[1]["passed_over"] == [bidders[0].company.registration_number]
    # once the evaluation's lots file is no longer the record's (a later round), the lots
    # are read from the signed PDF itself
    changed = json.loads(evaluation.lots_json)
    changed["lots"] = changed["lots"][:1]
    evaluation.lots_json = dumps(changed)
    db.session.commit()
    assert operations.record_lots(record, tender) == lots
    # in Korean, the record page's new words are translated
    url = f"/records/tenders/{tender.id}"
    client.set_cookie("fairbid_lang", "ko")
    flask_babel.refresh()  # the earlier request cached its locale in the shared context
    page = client.get(url).get_data(as_text=True)
    flask_babel.refresh()
    assert "기록의 로트" in page and "Lots in the record" not in page and "scoring-2.json" in page


def test_countersigned_lots_record_verifies_and_a_forged_lot_is_caught(app, lots_record, tmp_path):
    tender, _bidders, experts, evaluation, record = lots_record
    from tests.factories.member_keys import BrowserKey, enrol, totp_code

    # the first member countersigns with the key their browser holds, the others with the
    # older server-held keys
    browser = BrowserKey()
    with app.test_request_context():
        enrol(experts[0], browser)
        pending = operations.prepare_countersignature(experts[0], record, totp_code(experts[0]))
        db.session.commit()
        value = browser.sign(bytes(pending.signed_attrs))
        operations.finish_countersignature(experts[0], record, pending.id, value)
    db.session.commit()
    for expert in experts[1:]:
        with app.test_request_context():
            operations.countersign(expert, record, pyotp.TOTP(expert.totp_secret).now())
        db.session.commit()
    db.session.refresh(record)
    assert record.status == RecordStatus.COMPLETE
    pdf = operations.record_pdf(record)
    count = 1 + len(experts)
    assert signing.signatures_ok(pdf, expected=count)
    report = signing.pdfsig_report(pdf, signing.trust_roots_pem())
    assert report.signature_count == count and report.all_valid, report.text
    _assert_attached_once_as_data(pdf)
    out = _verify(pdf, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every lot (1, 2, 3) and the award match" in out.stdout
    assert "lots-evaluation.json, scoring-1.json" in out.stdout

    # a lot's attached file changed in place, in an update appended after the signatures
    tampered = _replace_attachment(pdf, "scoring-2.json", "1.00")
    out = _verify(tampered, tmp_path, "tampered.pdf")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the embedded scoring-2.json differs from the one the first signature covers" in (
        out.stdout
    )
    assert "lot 2: the attached scoring-2.json is not the lot's scoring file" in out.stdout
    assert not signing.signatures_ok(tampered)

    # Forgeries, each signed by the platform so that only the contents can give them away.
    html, facts = jobs.render_record_html(tender, evaluation, "en")
    lots_text = evaluation.lots_json

    def signed(lots_json: str, lot_files: list[tuple[str, str]]) -> bytes:
        return signing.sign_pdf(
            jobs.render_record_pdf(html, lots_json, lot_files),
            signer="platform",
            field_name=PLATFORM_FIELD,
            reason="forgery",
        )

    # a lot's attached file changed (a price), the lots file left as it was
    doc = json.loads(facts["lot_files"][1][1])
    doc["bids"][0]["price"] = "1.00"
    forged = [facts["lot_files"][0], ("scoring-2.json", dumps(doc)), facts["lot_files"][2]]
    out = _verify(signed(lots_text, forged), tmp_path, "forged-lot.pdf")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "lot 2: the attached scoring-2.json is not the lot's scoring file" in out.stdout

    # the award changed in the lots file and its lot file left out
    doc = json.loads(lots_text)
    winners = doc["award"]["result"]["lots"]
    winners[1]["winner"], winners[2]["winner"] = winners[2]["winner"], winners[1]["winner"]
    out = _verify(signed(dumps(doc), facts["lot_files"][:2]), tmp_path, "forged-award.pdf")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "award: result.lots" in out.stdout
    assert "lot 3: its scoring file scoring-3.json is not attached" in out.stdout

    # a lot's file changed consistently in both places: its recomputation differs
    doc = json.loads(lots_text)
    doc["lots"][2]["scoring_file"]["bids"][1]["price"] = "1.00"
    lot_files = [*facts["lot_files"][:2], ("scoring-3.json", dumps(doc["lots"][2]["scoring_file"]))]
    out = _verify(signed(dumps(doc), lot_files), tmp_path, "forged-both.pdf")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "lot 3: $.result.input_sha256" in out.stdout


def test_a_single_lot_record_keeps_its_one_scoring_file(app, make_tender, make_user, make_company):
    from tests.factories.records import build_finalised

    built = build_finalised(make_tender, make_user, make_company)
    with app.test_request_context():
        operations.request_record(built.staff, built.tender)
    db.session.commit()
    run_queued_jobs()
    record = operations.current_record(built.tender)
    db.session.refresh(record)
    assert list(_attachments(operations.record_pdf(record))) == ["scoring.json"]
    assert db.session.get(Evaluation, built.tender.id).lots_json is None


@pytest.mark.parametrize("locale", ["ko", "zh_Hans"])
def test_the_lots_record_reads_in_korean_and_chinese_with_a_lot_failed_at_the_opening(
    app, make_tender, make_user, locale
):
    """Every new word of the lots' parts and of the award is translated; a lot without
    opened bids still has its part (no ranking, no winner)."""
    from tests.factories.lots import PRICES, unblinded

    thin = {i: {k: v for k, v in PRICES[i].items() if k != "3" or i == 0} for i in PRICES}
    with app.test_request_context():
        tender, _bidders, experts = lots_tender(make_tender, make_user, limit=1, prices=thin)
        evaluation = unblinded(tender, experts)
        html, facts = jobs.render_record_html(tender, evaluation, locale)
    assert [name for name, _text in facts["lot_files"]] == [
        "scoring-1.json",
        "scoring-2.json",
        "scoring-3.json",
    ]
    assert html.count('class="portrait lot"') == 3
    assert 'id="lot-3-ranking"' in html and 'id="award"' in html
    words = {
        "ko": ("로트 간 낙찰", "동점", "처리 과정"),
        "zh_Hans": ("跨标段授标", "同分", "过程记录"),
    }
    for word in words[locale]:
        assert word in html
    for english in (
        "Award across lots",
        "Opened lines",
        "Rule when the limit binds",
        "Most lots one company may win",
        "Passed over",
        "already wins the most lots",
        "lots-evaluation.json): ",
        "No tie in this lot.",
        "each lot's part below",
    ):
        assert english not in html, english
