"""The record job: render the evaluation record (WeasyPrint, PDF/A-3b with the scoring file
attached as scoring.json; for a tender divided into lots, the lots file as
lots-evaluation.json and each lot's scoring file as scoring-<lot>.json), sign it as the
platform, store it. Seconds of work for a large tender, so never
in a request.

Progress is committed step by step (the job owns its session, inline or in a worker) so the
staff page can show it. Idempotent: a record that is already signed, or superseded, is left
alone; a failure marks the record FAILED with the error, and staff can request it again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time

from flask import current_app, render_template
from flask_babel import force_locale
from pypdf import PdfReader
from sqlalchemy import select

from app.accounts.models import User
from app.audit import append_event
from app.core.types import utcnow
from app.evaluations.models import Evaluation
from app.extensions import db
from app.pdf import TEMPLATES_DIR, PdfAttachment, render_pdf
from app.records import labels, signing
from app.records.content import RecordContent, record_content
from app.records.models import EvaluationRecord, RecordSignature, RecordStatus
from app.records.versions import PLATFORM_FIELD, record_title, store_version
from app.tasks import in_app_context
from app.tender_templates import normalize_locale
from app.tender_templates.rendering import aggregation_text, price_method_text
from app.tenders.models import Tender
from evaluation.pdf import LOTS_ATTACHMENT_NAME

log = logging.getLogger(__name__)

RECORD_TEMPLATE = "pdf/evaluation_record.html"
RECORD_STYLESHEET = "css/evaluation_record.css"
ATTACHMENT_NAME = "scoring.json"


def record_resources() -> dict:
    return {RECORD_STYLESHEET: TEMPLATES_DIR / "pdf" / "evaluation_record.css"}


def record_locale(record: EvaluationRecord) -> str:
    """The requester's language (the chair's or staff member's), else the default."""
    user = db.session.get(User, record.requested_by_id) if record.requested_by_id else None
    default = current_app.config.get("BABEL_DEFAULT_LOCALE", "en")
    try:
        return normalize_locale(user.locale) if user is not None and user.locale else default
    except Exception:
        return default


def render_record_html(tender: Tender, evaluation: Evaluation, locale: str) -> tuple[str, dict]:
    """The record's HTML and the audit head it shows (for tests and the benchmark too); for
    a tender divided into lots, `facts["lot_files"]` are the lots' attachments
    (`lot_files`)."""
    with force_locale(locale):
        content = record_content(tender, evaluation)
        html = record_html(content, locale)
    return html, {
        "audit_head": content.audit_head,
        "audit_seq": content.audit_seq,
        "lot_files": lot_files(content),
    }


def lot_files(content: RecordContent) -> list[tuple[str, str]]:
    """The lots' scoring files attached to the record of a tender divided into lots, as
    (attachment name, text), in lot order (empty for one lot)."""
    return [(lot.attachment, lot.scoring_text) for lot in content.lots]


def record_html(content: RecordContent, locale: str) -> str:
    """The template rendered with `content`, its words in `locale`."""
    with force_locale(locale):
        return render_template(
            RECORD_TEMPLATE,
            lang=locale.replace("_", "-"),
            issued_at=utcnow(),
            document_hash=scoring_sha256(content.scoring_text),
            anchor="",
            heading="h2",
            **content.as_context(),
            **labels.helpers(),
            **_descriptions(content, locale),
            lot_descriptions={lot.lot: _descriptions(lot.content, locale) for lot in content.lots},
        )


def _descriptions(content: RecordContent, locale: str) -> dict:
    """The price method and the technical aggregation in words (the template library's
    wording, in en, ko and zh_Hans), and each criterion's name for the flags."""
    locale = normalize_locale(locale)
    if content.lots:  # several lots: each lot's own (`lot_descriptions`)
        return {"method_description": "", "aggregation_description": "", "criterion_names": {}}
    price = dict(content.scoring.get("price") or {})
    if not isinstance(price.get("adjustments"), str | dict):
        price.pop("adjustments", None)
    method = price_method_text({"price": price}, locale) if price.get("method") else ""
    aggregation = next(
        (row["technical_method"] for row in content.aggregated if row["technical_method"]), None
    )
    return {
        "method_description": method if method != price.get("method") else "",
        "aggregation_description": aggregation_text(aggregation, locale)
        if aggregation in ("mean", "trimmed_mean", "auto")
        else "",
        "criterion_names": {c["key"]: f"{c['label']} {c['title']}" for c in content.criteria},
    }


def scoring_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_record_pdf(
    html: str, scoring_json: str, lots: list[tuple[str, str]] | None = None
) -> bytes:
    """The record's PDF/A-3b with its evaluation attached: `scoring_json` as scoring.json;
    with `lots` (a tender divided into lots), `scoring_json` is the lots file, attached as
    lots-evaluation.json, and each (name, text) of `lots` is a lot's scoring file."""
    if lots is None:
        attachments = [
            PdfAttachment(
                name=ATTACHMENT_NAME,
                data=scoring_json.encode("utf-8"),
                description="Fairbid scoring file (input and result)",
                relationship="Data",
            )
        ]
    else:
        attachments = [
            PdfAttachment(
                name=LOTS_ATTACHMENT_NAME,
                data=scoring_json.encode("utf-8"),
                description="Fairbid evaluation of the lots (every lot's scoring file and "
                "the award across lots)",
                relationship="Data",
            ),
            *(
                PdfAttachment(
                    name=name,
                    data=text.encode("utf-8"),
                    description="Fairbid scoring file of one lot (input and result)",
                    relationship="Data",
                )
                for name, text in lots
            ),
        ]
    return render_pdf(
        html, resources=record_resources(), pdf_variant="pdf/a-3b", attachments=attachments
    )


def _step(record: EvaluationRecord, step: str, progress: int) -> None:
    record.step = step
    record.progress = progress
    db.session.commit()


def _load(record_id: int) -> EvaluationRecord | None:
    return db.session.scalar(
        select(EvaluationRecord)
        .where(EvaluationRecord.id == record_id)
        .execution_options(populate_existing=True)
    )


@in_app_context
def render_record(record_id: int) -> str:
    """RQ job: render, sign and store the evaluation record `record_id`."""
    record = _load(record_id)
    if record is None:
        return "missing"
    if record.status not in (RecordStatus.QUEUED, RecordStatus.RENDERING, RecordStatus.FAILED):
        return str(record.status)
    record.status = RecordStatus.RENDERING
    record.started_at = utcnow()
    record.error = ""
    _step(record, "collecting", 5)
    try:
        outcome = _make(record)
        db.session.commit()
        return outcome
    except Exception as error:
        db.session.rollback()
        log.exception("evaluation record %s failed", record_id)
        record = _load(record_id)
        if record is not None and record.status != RecordStatus.SUPERSEDED:
            record.status = RecordStatus.FAILED
            record.error = f"{type(error).__name__}: {error}"[:2000]
            record.step = "failed"
            tender = db.session.get(Tender, record.tender_id)
            append_event(
                "record.failed",
                object_type="tender",
                object_id=record.tender_id,
                centre_id=tender.centre_id if tender else None,
                data={"record": record.id, "error": type(error).__name__},
            )
            db.session.commit()
        return "failed"


def _make(record: EvaluationRecord) -> str:
    tender = db.session.get(Tender, record.tender_id)
    evaluation = db.session.get(Evaluation, record.tender_id)
    if (
        tender is None
        or evaluation is None
        or not (evaluation.scoring_json or evaluation.lots_json)
    ):
        raise RuntimeError("the tender's evaluation has no scoring file")
    if evaluation.round != record.round:
        raise RuntimeError("the evaluation moved to another round; this record is stale")
    # a tender divided into lots: the lots file (every lot's scoring file and the award)
    scoring_json = evaluation.lots_json or evaluation.scoring_json
    locale = record_locale(record)
    _step(record, "rendering", 15)
    started = time.perf_counter()
    html, facts = render_record_html(tender, evaluation, locale)
    pdf = render_record_pdf(
        html, scoring_json, facts["lot_files"] if evaluation.lots_json else None
    )
    rendered = time.perf_counter()
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    record.pages = pages
    _step(record, "signing", 80)
    signed = signing.sign_pdf(
        pdf,
        signer="platform",
        field_name=PLATFORM_FIELD,
        reason=f"Evaluation record {tender.reference}, round {record.round}",
        stamp_text=f"Fairbid platform\n{tender.reference}\n%(ts)s",
    )
    done = time.perf_counter()
    _step(record, "storing", 95)
    record = _load(record.id)
    if record.status == RecordStatus.SUPERSEDED:
        return "superseded"
    certificate = signing.platform_certificate()
    document = store_version(record, tender, signed, record_title(tender, record))
    db.session.add(
        RecordSignature(
            record_id=record.id,
            signer_id=None,
            certificate_id=certificate.id,
            field_name=PLATFORM_FIELD,
            signed_at=utcnow(),
            sha256=document.sha256,
            size=document.size,
        )
    )
    record.status = RecordStatus.SIGNED
    record.scoring_sha256 = scoring_sha256(scoring_json)
    record.audit_head = facts["audit_head"]
    record.pages = pages
    record.progress = 100
    record.step = "signed"
    db.session.flush()
    append_event(
        "record.signed",
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "record": record.id,
            "round": record.round,
            "sha256": document.sha256,
            "scoring_sha256": record.scoring_sha256,
            "audit_head": record.audit_head,
            "pages": pages,
            "certificate": certificate.serial,
        },
    )
    log.info(
        "evaluation record %s: %d pages, rendered in %.1f s, signed in %.2f s",
        record.id,
        pages,
        rendered - started,
        done - rendered,
    )
    return "signed"
