"""Tender documents: rendered from the template body and the tender's data to HTML and
PDF at publication (and for each addendum), stored in the blob store by SHA-256."""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from flask import Response, current_app, render_template, send_file
from flask_babel import get_locale, ngettext
from flask_babel import lazy_gettext as _l
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, select, update

from app import tender_templates
from app.accounts.models import User
from app.audit import append_event
from app.core.cache import invalidate_after_commit
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.extensions import db
from app.pdf import TEMPLATES_DIR, ResourceRefused, render_pdf
from app.permissions import Permission, require
from app.storage import BlobNotFound, BlobStore, BlobTooLarge, InvalidBlobId
from app.tender_templates.errors import TemplateValidationError
from app.tenders.models import (
    Addendum,
    DocumentDownload,
    DocumentKind,
    Tender,
    TenderDocument,
    TenderStatus,
)
from app.uploads import HEAD_SIZE, RejectCode, UploadRejected, check_upload, safe_filename

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    html: TenderDocument
    pdf: TenderDocument

    @property
    def sha256(self) -> str:
        return self.pdf.sha256


def blob_store() -> BlobStore:
    root = current_app.config["BLOB_DIR"] or Path(current_app.instance_path) / "blobs"
    return BlobStore(Path(root))


def invalidate_portal_cache() -> None:
    invalidate_after_commit()


def document_context(tender: Tender, doc: dict | None = None) -> dict:
    """The tender's data in the shape template bodies are rendered with (see
    `tender_templates.sample_context`): plain values, no model objects, times in the
    centre's time zone."""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    first = tender.lots[0] if tender.lots else None

    def local(moment):
        return moment.astimezone(zone) if moment else None

    return {
        "tender": {
            "title": tender.title,
            "reference": tender.reference,
            "centre": tender.centre.name,
            "budget": tender.budget,
            "ceiling_price": first.ceiling_price if first else None,
            "reserve_price": first.reserve_price if first else None,
            "bid_bond": tender.bid_bond_amount,
            "currency": current_app.config["FAIRBID_CURRENCY"],
        },
        "schedule": {
            "publication": local(tender.publication_at),
            "enquiry_deadline": local(tender.enquiry_deadline),
            "submission_deadline": local(tender.submission_deadline),
            "opening": local(tender.opening_at),
            "evaluation_period": ngettext(
                "%(num)d day after the opening",
                "%(num)d days after the opening",
                tender.evaluation_days,
            ),
        },
        "lots": [
            {
                "number": lot.number,
                "title": lot.title,
                "budget": lot.budget,
                "ceiling_price": lot.ceiling_price,
                "reserve_price": lot.reserve_price,
            }
            for lot in tender.lots
        ],
        "custodians": {"count": len(tender.custodians), "threshold": tender.custodian_threshold},
        "contact": {"name": tender.centre.name},
    }


@cache
def _markdown() -> MarkdownIt:
    # Raw HTML off: whatever staff type is shown as text, never passed through.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: str) -> Markup:
    """Safe HTML of a Markdown text written by staff (addenda)."""
    return Markup(_markdown().render(text or ""))  # noqa: S704 (markdown-it, raw HTML off)


def stylesheet_url() -> str:
    """The official-document stylesheet as a data: URL: the stored HTML file stays
    self-contained, and the PDF fetcher serves data: URLs without touching anything else."""
    css = (TEMPLATES_DIR / "pdf" / "document.css").read_bytes()
    return "data:text/css;base64," + base64.b64encode(css).decode()


def _pdf(html: str) -> bytes:
    """The PDF, or a clear error when the document refers to something it may not fetch
    (an image on another site, a local file): nothing is stored then."""
    try:
        return render_pdf(html)
    except ResourceRefused as refused:
        raise OperationError(
            _l(
                "The document refers to %(url)s, which documents may not use. Remove it "
                "from the text.",
                url=refused.url[:200],
            ),
            code="document_resource",
        ) from None


def _store(
    tender: Tender,
    kind: str,
    title: str,
    filename: str,
    content_type: str,
    data: bytes,
    addendum: Addendum | None = None,
) -> TenderDocument:
    stored = blob_store().put_bytes(data, max_size=current_app.config["MAX_ATTACHMENT_SIZE"])
    document = TenderDocument(
        tender_id=tender.id,
        kind=kind,
        title=title,
        filename=filename,
        content_type=content_type,
        size=stored.size,
        sha256=stored.sha256,
        addendum_id=addendum.id if addendum else None,
    )
    db.session.add(document)
    return document


def render_tender_document(tender: Tender, doc: dict) -> Rendered:
    locale = str(get_locale() or "en")
    try:
        body = tender_templates.render_body(doc, document_context(tender, doc), locale)
    except TemplateValidationError as invalid:
        raise OperationError(
            _l("The template body cannot be rendered: %(errors)s", errors=str(invalid)),
            code="template_body",
        ) from None
    html = render_template(
        "pdf/tender_document.html",
        tender=tender,
        body=Markup(body),  # noqa: S704 (rendered by tender_templates, raw HTML off)
        lang=locale.replace("_", "-"),
        stylesheet_url=stylesheet_url(),
    )
    pdf = _pdf(html)
    # Earlier renderings (a re-publication never happens, but a draft may be re-rendered).
    db.session.execute(
        update(TenderDocument)
        .where(
            TenderDocument.tender_id == tender.id,
            TenderDocument.kind.in_([DocumentKind.TENDER_HTML, DocumentKind.TENDER_PDF]),
            TenderDocument.superseded_at.is_(None),
        )
        .values(superseded_at=utcnow())
    )
    name = f"{tender.reference}-tender-document"
    rendered = Rendered(
        html=_store(
            tender,
            DocumentKind.TENDER_HTML,
            tender.title,
            f"{name}.html",
            "text/html; charset=utf-8",
            html.encode(),
        ),
        pdf=_store(
            tender, DocumentKind.TENDER_PDF, tender.title, f"{name}.pdf", "application/pdf", pdf
        ),
    )
    db.session.flush()
    return rendered


def render_addendum(tender: Tender, addendum: Addendum) -> TenderDocument:
    locale = str(get_locale() or "en")
    body = markdown_html(addendum.body)
    html = render_template(
        "pdf/addendum.html",
        tender=tender,
        addendum=addendum,
        body=body,
        lang=locale.replace("_", "-"),
        stylesheet_url=stylesheet_url(),
    )
    document = _store(
        tender,
        DocumentKind.ADDENDUM_PDF,
        addendum.title,
        f"{tender.reference}-addendum-{addendum.number}.pdf",
        "application/pdf",
        _pdf(html),
        addendum,
    )
    db.session.flush()
    return document


# --- attachments (drawings, bills of quantities) ----------------------------------------------


class _Rejoined(io.RawIOBase):
    """The head already read for the type check, then the rest of the upload stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._head:
            part = self._head if size < 0 else self._head[:size]
            self._head = self._head[len(part) :]
            return part
        return self._rest.read(size)


def _refusal(rejected: UploadRejected, filename: str, declared: str | None):
    name = safe_filename(filename)
    if rejected.code == RejectCode.EMPTY:
        return _l("The file %(name)s is empty.", name=name)
    if rejected.code == RejectCode.EXTENSION_NOT_ALLOWED:
        return _l(
            "Files like %(name)s are not accepted. Attach PDF, Word, Excel, ZIP, PNG, JPEG, "
            "text or CSV files.",
            name=name,
        )
    if rejected.code == RejectCode.CONTENT_TYPE_MISMATCH:
        return _l(
            "%(name)s was sent as %(type)s, but its content is something else: refused.",
            name=name,
            type=(declared or "")[:100],
        )
    return _l(
        "The content of %(name)s does not match its file type: refused.",
        name=name,
    )


@dataclass
class Upload:
    """A file as it arrives with a form or an API call: its name, declared type, stream."""

    filename: str
    content_type: str | None
    stream: BinaryIO


def store_attachments(uploads: list[Upload], *, max_files: int) -> list[dict]:
    """Check every file's type on its first bytes, then stream each into the blob store
    under the attachment size cap. A refused file (count, type or size) raises
    `OperationError` before any row refers to a blob (an orphan blob of a refused request
    is never deleted here: the same bytes may belong to a concurrent upload, the store
    deduplicates). Returns, per file, its
    `{"filename", "sha256", "size", "content_type"}`."""
    uploads = [upload for upload in uploads if upload.filename]
    if len(uploads) > max_files:
        raise OperationError(_l("Attach at most %(n)d files.", n=max_files), code="too_many_files")
    checked = []
    for upload in uploads:  # every type first: a bad file stores nothing at all
        head = upload.stream.read(HEAD_SIZE)
        try:
            kind = check_upload(upload.filename, upload.content_type, head)
        except UploadRejected as rejected:
            raise OperationError(
                _refusal(rejected, upload.filename, upload.content_type),
                code=f"upload_{rejected.code}",
            ) from None
        checked.append((upload, head, kind))
    limit = current_app.config["MAX_ATTACHMENT_SIZE"]
    store = blob_store()
    attachments = []
    try:
        for upload, head, kind in checked:
            stored = store.put_stream(_Rejoined(head, upload.stream), max_size=limit)
            attachments.append(
                {
                    "filename": safe_filename(upload.filename),
                    "sha256": stored.sha256,
                    "size": stored.size,
                    "content_type": kind.media_type,
                }
            )
    except BlobTooLarge:
        raise OperationError(
            _l(
                "The attachment %(name)s is larger than the limit of %(mib)s MiB.",
                name=safe_filename(upload.filename),
                mib=_mib(limit),
            ),
            code="too_large",
            status=413,
        ) from None
    return attachments


def add_attachment(
    actor: User,
    tender: Tender,
    filename: str,
    declared_type: str | None,
    stream: BinaryIO,
    title: str = "",
) -> TenderDocument:
    """Store an attachment of a draft. The type is checked on the first bytes before
    anything is written; the size cap while streaming; a refused file leaves nothing."""
    require(actor, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    if tender.status != TenderStatus.DRAFT:
        raise Conflict(
            _l("Attachments are added before publication; afterwards through addenda."),
            code="not_draft",
        )
    head = stream.read(HEAD_SIZE)
    try:
        kind = check_upload(filename or "", declared_type, head)
    except UploadRejected as rejected:
        raise OperationError(
            _refusal(rejected, filename or "", declared_type), code=f"upload_{rejected.code}"
        ) from None
    limit = current_app.config["MAX_ATTACHMENT_SIZE"]
    try:
        stored = blob_store().put_stream(_Rejoined(head, stream), max_size=limit)
    except BlobTooLarge:
        raise OperationError(
            _l("The file is larger than the limit of %(mib)s MiB.", mib=_mib(limit)),
            code="too_large",
            status=413,
        ) from None
    name = safe_filename(filename)
    document = TenderDocument(
        tender_id=tender.id,
        kind=DocumentKind.ATTACHMENT,
        title=(title or "").strip()[:300] or name,
        filename=name,
        content_type=kind.media_type,
        size=stored.size,
        sha256=stored.sha256,
    )
    db.session.add(document)
    db.session.flush()
    append_event(
        "tender.attachment_added",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"document_id": document.id, "sha256": stored.sha256, "size": stored.size},
    )
    return document


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


def download_counts(tender: Tender) -> dict[int, int]:
    """Downloads of each of the tender's documents."""
    rows = db.session.execute(
        select(DocumentDownload.document_id, func.count(DocumentDownload.id))
        .join(TenderDocument, TenderDocument.id == DocumentDownload.document_id)
        .where(TenderDocument.tender_id == tender.id)
        .group_by(DocumentDownload.document_id)
    )
    return dict(rows.all())


def open_document(document: TenderDocument) -> BinaryIO:
    """The stored bytes of a document; a clear 404 when the blob is missing."""
    try:
        return blob_store().open(document.sha256)
    except (BlobNotFound, InvalidBlobId):
        log.error("blob %s of tender document %s is missing", document.sha256, document.id)
        raise OperationError(
            _l("The file of this document is not available. Contact the trading centre."),
            code="file_missing",
            status=404,
        ) from None


def send_document(document: TenderDocument, stream: BinaryIO) -> Response:
    """A download with the document's SHA-256 in `Repr-Digest` (RFC 9530), never cached."""
    response = send_file(
        stream,
        mimetype=document.content_type,
        as_attachment=True,
        download_name=document.filename,
        conditional=False,
        etag=False,
        max_age=0,
    )
    # The stored type is sent as it is: `send_file` would append a second charset to a
    # `text/html; charset=utf-8` already carrying one.
    response.content_type = document.content_type
    response.content_length = document.size
    digest = base64.b64encode(bytes.fromhex(document.sha256)).decode()
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    response.headers["Cache-Control"] = "private, no-store"
    return response
