"""What the drill leaves in its output directory: every public artefact of the tender, as a
bidder, an auditor or a journalist would fetch it, and a summary."""

from __future__ import annotations

import json
from contextlib import nullcontext, suppress
from pathlib import Path

from flask import current_app, has_request_context, request
from sqlalchemy import select

import evaluation as evaluation_lib
from app.audit.export import tender_export
from app.bids.models import Bid
from app.bids.operations import bidder_id, sealing_record_of
from app.bids.receipts import platform_public_key_pem
from app.companies.models import Company
from app.custody.operations import envelope_tender_id
from app.evaluations.models import Evaluation
from app.extensions import db
from app.opening.operations import record_of
from app.portal import bundle
from app.records import signing
from app.results.operations import evaluation_of, signed_record
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument


def _blob(sha256: str) -> bytes:
    with blob_store().open(sha256) as stream:
        return stream.read()


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def _company_code(bid: Bid) -> str:
    return bidder_id(db.session.get(Company, bid.company_id))


def write_envelope_receipts(out: Path, tender: Tender, envelopes: dict[int, bytes]) -> list[Path]:
    written = []
    bids = db.session.scalars(select(Bid).where(Bid.tender_id == tender.id).order_by(Bid.id))
    lots = {lot.id: lot.reference for lot in tender.lots}
    for bid in bids:
        stem = f"bid-{bid.id:06d}-{_company_code(bid)}"
        if bid.lot_id is not None:
            stem += f"-{lots[bid.lot_id]}"
        written.append(_write(out / "receipts" / f"{stem}.json", bid.receipt))
        if bid.id in envelopes:
            _write(out / "envelopes" / f"{stem}.env", envelopes[bid.id])
    return written


def audit_export(tender: Tender) -> bytes | None:
    """The tender's verifiable audit export (`python -m bidding verify-audit`)."""
    return tender_export(
        tender.id, tender_id=envelope_tender_id(tender), reference=tender.reference
    )


def ocds_package(tender: Tender) -> dict | None:
    """The OCDS release package exactly as the public API serves it."""
    client = current_app.test_client()
    base_url = request.host_url if has_request_context() else None
    response = client.get(f"/api/v1/ocds/tenders/{tender.id}", base_url=base_url)
    if response.status_code != 200:
        return None
    return response.get_json()


def signing_certificate_pem() -> bytes | None:
    """The platform's document-signing certificate (which signed the record)."""
    return signing.platform_signer().certificate_pem


def record_pdf(tender: Tender) -> bytes | None:
    record = signed_record(tender, evaluation_of(tender))
    if record is None or record.document_id is None:
        return None
    document = db.session.get(TenderDocument, record.document_id)
    return _blob(document.sha256)


def write_all(out: Path, drill) -> dict[str, str]:
    """Write every artefact that exists so far; returns name -> path."""
    tender = drill.tender
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}

    def put(name: str, data: bytes | str | None) -> None:
        if data is not None:
            written[name] = str(_write(out / name, data))

    put("platform-receipt-key.pem", platform_public_key_pem())
    if tender is None:
        return written
    receipts = write_envelope_receipts(out, tender, drill.envelopes)
    if receipts:
        written["receipts/"] = str(out / "receipts")
    sealing = sealing_record_of(tender)
    put("sealing-record.json", _blob(sealing.sha256) if sealing else None)
    opening = record_of(tender)
    put("opening-record.json", _blob(opening.sha256) if opening else None)
    evaluation = _evaluation(tender)
    if evaluation is not None and evaluation.scoring_json and evaluation.unblinded_at:
        put("scoring.json", evaluation.scoring_json)
    if evaluation is not None and evaluation.lots_json and evaluation.unblinded_at:
        # Several lots: each lot's scoring file (`python -m evaluation verify scoring-L1.json`)
        # and the whole evaluation, the award across lots included (`… verify
        # lots-evaluation.json` recomputes every lot and replays the award).
        document = json.loads(evaluation.lots_json)
        for entry in document["lots"]:
            put(f"scoring-{entry['lot']}.json", evaluation_lib.dumps(entry["scoring_file"]))
        put("lots-evaluation.json", evaluation.lots_json)
    put("evaluation-record.pdf", record_pdf(tender))
    signed = "evaluation-record.pdf" in written
    put("platform-signing-cert.pem", signing_certificate_pem() if signed else None)
    # The trust root for `python -m evaluation verify evaluation-record.pdf --trust …`: the
    # platform CA, which also issues the panel members' certificates.
    put("platform-ca-cert.pem", signing.trust_roots_pem() if signed else None)
    # Its CRL (DER), for `… --crl platform-ca.crl`: certificates revoked so far.
    put("platform-ca.crl", signing.revocation_list_der() if signed else None)
    package = ocds_package(tender)
    put("ocds.json", json.dumps(package, indent=2, ensure_ascii=False) if package else None)
    put("audit.jsonl", audit_export(tender))
    if tender.status in bundle.BUNDLE_STATUSES:
        # The same zip as the tender page's download (its URLs need a request context).
        context = nullcontext() if has_request_context() else current_app.test_request_context()
        with context, suppress(bundle.BundleNotReady):
            put("verification-bundle.zip", bundle.bundle_zip(bundle.bundle_files(tender)))
    return written


def _evaluation(tender: Tender):
    return db.session.get(Evaluation, tender.id)
