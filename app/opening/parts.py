"""Technical and qualification parts kept at opening, and the anonymity scan.

The opening job decrypts each envelope once. Its technical part and `qualification-N` parts
stream into temporary files in the blob store's own temporary directory (bounded memory);
they are kept only when the whole envelope verified (`decrypt_envelope` says the caller must
discard everything otherwise). Then:

- a PDF technical part is rewritten page by page with pypdf, without the document
  information dictionary (/Info: author, creator, producer...) nor XMP /Metadata (catalog
  and pages), nor any action but plain links (document and page JavaScript, launch and form
  actions: the panel's browser opens these files); its text is extracted and scanned
  (`evaluation.anonymity`) for the company's name, unified social credit code and aliases;
- a technical part that is not a PDF, a PDF that does not parse or has no text layer, is
  stored as it came and flagged: the panel must look at it (an anonymity question);
- qualification parts are stored as they came (they carry the bidder's name by nature and
  are never shown to the experts scoring blind).

The evaluation stage reads these parts under the codes; it also calls `record_evaluated_bid`
for tenders opened before parts were kept.

`record_evaluated_bid` creates the `EvaluatedBid` of an opened bid with a random code such
as `T-7QK` (three characters drawn with `secrets` from an unambiguous alphabet), unique
within the tender: the order of the codes says nothing about the order of submission.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filetype
from flask import current_app
from sqlalchemy import select

from app.companies.models import Company, CompanyAlias
from app.extensions import db
from app.opening.models import AnonymityDecision, EvaluatedBid, TechnicalSource
from app.storage import BlobStore
from evaluation.anonymity import Identity, bidder_identities, normalise, scan_text, variants
from evaluation.sources import text_sketch

log = logging.getLogger(__name__)

TECHNICAL = "technical"
QUALIFICATION_PREFIX = "qualification-"
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I
CODE_LENGTH = 3
PDF_TYPE = "application/pdf"
OCTET = "application/octet-stream"
MAX_HITS = 50  # hits kept per bid (the panel needs examples, not every occurrence)
_OVERLAP = 400  # characters of the previous page scanned again (a name across pages)

# Flags recorded as anonymity hits (kind, no term).
FLAG_NOT_PDF = "not_pdf"
FLAG_UNREADABLE = "unreadable_pdf"
FLAG_NO_TEXT = "no_text"
FLAG_TOO_LARGE = "too_large"
FLAGS = (FLAG_NOT_PDF, FLAG_UNREADABLE, FLAG_NO_TEXT, FLAG_TOO_LARGE)
# A PDF larger than this is stored as it came and flagged rather than rewritten in memory
# (pypdf holds the objects it copies); FAIRBID config EVALUATION_PDF_REWRITE_MAX overrides.
DEFAULT_REWRITE_MAX = 200 * 1024 * 1024


@dataclass
class KeptParts:
    technical_sha256: str | None = None
    technical_size: int | None = None
    technical_type: str = OCTET
    qualification: list[dict] = field(default_factory=list)
    hits: list[dict] = field(default_factory=list)
    # For supervisors only (`TechnicalSource`): read before the metadata is stripped.
    source: dict | None = None


class PartSinks:
    """Temporary files receiving the technical and qualification parts of one envelope."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.temp_dir = store.root / "tmp"
        self._files: dict[str, tuple[Path, Any]] = {}

    def sink_for(self, name: str):
        if name != TECHNICAL and not name.startswith(QUALIFICATION_PREFIX):
            return _Discard()
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=self.temp_dir, prefix="opening-", suffix=".part")
        handle = os.fdopen(fd, "wb")
        self._files[name] = (Path(path), handle)
        return handle

    def _close(self) -> None:
        for _, handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.close()

    def discard(self) -> None:
        self._close()
        for path, _ in self._files.values():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._files.clear()

    def keep(self, company: Company) -> KeptParts:
        """Store the parts (the technical one stripped and scanned); always cleans up."""
        self._close()
        kept = KeptParts()
        try:
            for name, (path, _) in sorted(self._files.items(), key=lambda i: _order(i[0])):
                if name == TECHNICAL:
                    _keep_technical(self.store, path, company, kept)
                else:
                    stored = _put(self.store, path)
                    kept.qualification.append(
                        {
                            "name": name,
                            "sha256": stored.sha256,
                            "size": stored.size,
                            "content_type": _sniff(path),
                        }
                    )
        finally:
            self.discard()
        return kept


class _Discard:
    def write(self, data) -> int:
        return len(data)


def _order(name: str) -> tuple[int, int]:
    if name == TECHNICAL:
        return (0, 0)
    number = name.removeprefix(QUALIFICATION_PREFIX)
    return (1, int(number) if number.isdigit() else 0)


def _put(store: BlobStore, path: Path):
    with path.open("rb") as stream:
        return store.put_stream(stream, max_size=path.stat().st_size)


def _sniff(path: Path) -> str:
    with path.open("rb") as stream:
        head = stream.read(8192)
    if head.startswith(b"%PDF-"):
        return PDF_TYPE
    kind = filetype.guess(head) if head else None
    return kind.mime if kind is not None else OCTET


def identities_of(company: Company) -> list[Identity]:
    aliases = db.session.scalars(
        select(CompanyAlias.alias).where(CompanyAlias.company_id == company.id)
    ).all()
    return bidder_identities(company.name, company.registration_number, list(aliases))


def _keep_technical(store: BlobStore, path: Path, company: Company, kept: KeptParts) -> None:
    size = path.stat().st_size
    if size == 0:
        return  # an empty part: no technical part
    kept.source = {"original_sha256": _sha256(path), "author": "", "creator": "", "producer": ""}
    if _sniff(path) != PDF_TYPE:
        stored = _put(store, path)
        kept.technical_sha256, kept.technical_size = stored.sha256, stored.size
        kept.technical_type = _sniff(path)
        kept.hits.append(_flag(FLAG_NOT_PDF))
        return
    stripped = path.with_suffix(".stripped")
    try:
        if size > _rewrite_max():
            raise _TooLarge()
        pages = _strip_pdf(path, stripped, kept.source)
        source = stripped
    except _TooLarge:
        pages, source = None, path
        kept.hits.append(_flag(FLAG_TOO_LARGE))
    except Exception as error:  # a PDF that pypdf cannot read: kept as is, for the panel
        log.warning("technical part unreadable (%s): %s", type(error).__name__, error)
        pages, source = None, path
        kept.hits.append(_flag(FLAG_UNREADABLE))
    try:
        stored = _put(store, source)
    finally:
        with contextlib.suppress(FileNotFoundError):
            stripped.unlink()
    kept.technical_sha256, kept.technical_size = stored.sha256, stored.size
    kept.technical_type = PDF_TYPE
    if pages is None:
        return
    if not any(text.strip() for text in pages):
        kept.hits.append(_flag(FLAG_NO_TEXT))
        return
    kept.source["text_sketch"] = [str(h) for h in text_sketch("\n".join(pages))]
    kept.hits.extend(scan_pages(pages, identities_of(company)))


class _TooLarge(Exception):
    pass


def _rewrite_max() -> int:
    try:
        return int(current_app.config.get("EVALUATION_PDF_REWRITE_MAX", DEFAULT_REWRITE_MAX))
    except RuntimeError:  # outside an application
        return DEFAULT_REWRITE_MAX


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _document_info(reader, into: dict | None) -> None:
    """/Author, /Creator, /Producer of the document information dictionary, read before it
    is dropped (for the supervisors' same-source signals)."""
    if into is None:
        return
    try:
        info = reader.metadata or {}
        for key in ("/Author", "/Creator", "/Producer"):
            name = key[1:].lower()
            value = info.get(key)
            into[name] = str(value).strip()[:300] if value is not None else ""
    except Exception:  # a damaged /Info: nothing to compare
        log.warning("document information of a technical part unreadable")


def _strip_pdf(source: Path, target: Path, info: dict | None = None) -> list[str]:
    """Rewrite `source` to `target` without /Info and XMP metadata; the text of each page.
    The /Author, /Creator and /Producer it drops are first copied into `info`."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject

    # An open file, not a path: given a path, pypdf reads the whole file into memory.
    with source.open("rb") as stream:
        reader = PdfReader(stream, strict=False)
        if reader.is_encrypted:
            reader.decrypt("")  # an owner-password-only PDF; anything else raises here
        _document_info(reader, info)
        writer = PdfWriter()
        texts = []
        for page in reader.pages:
            try:
                texts.append(page.extract_text() or "")
            except Exception:  # a page whose text cannot be extracted
                texts.append("")
            added = writer.add_page(page)
            for key in ("/Metadata", "/PieceInfo"):
                if key in added:
                    del added[NameObject(key)]
            _anonymous_annotations(added)
            _inert_actions(added)
        writer.metadata = None
        for key in ("/Metadata", "/PieceInfo"):
            if key in writer.root_object:
                del writer.root_object[NameObject(key)]
        with target.open("wb") as out:
            writer.write(out)
    return texts


def _anonymous_annotations(page) -> None:
    """Comments name their author (/T): drop it, with their dates and ids."""
    from pypdf.generic import NameObject

    try:
        annotations = page.get("/Annots")
        for reference in annotations.get_object() if annotations else []:
            annotation = reference.get_object()
            for key in ("/T", "/M", "/NM", "/CreationDate"):
                if key in annotation:
                    del annotation[NameObject(key)]
    except Exception:  # a damaged annotation list: left as it is
        log.warning("annotations of a technical part could not be cleaned")


# Actions a link may keep: moving inside the document, or a web address the reader asks
# about. Everything else (JavaScript, launching programs, submitting forms, other files)
# is removed: the panel's browser opens these files.
_SAFE_ACTIONS = frozenset({"/GoTo", "/URI"})


def _inert_actions(page) -> None:
    """Remove the page's automatic actions (/AA: on open, on close) and every annotation
    action that is not a plain link (the catalog's /OpenAction and document JavaScript are
    already gone: the writer builds a new catalog)."""
    from pypdf.generic import NameObject

    if "/AA" in page:
        del page[NameObject("/AA")]
    try:
        annotations = page.get("/Annots")
        for reference in annotations.get_object() if annotations else []:
            annotation = reference.get_object()
            if "/AA" in annotation:
                del annotation[NameObject("/AA")]
            action = annotation.get("/A")
            if action is not None and action.get_object().get("/S") not in _SAFE_ACTIONS:
                del annotation[NameObject("/A")]
    except Exception:  # a damaged annotation list: drop it whole rather than keep an action
        log.warning("annotations of a technical part could not be checked; removed")
        if "/Annots" in page:
            del page[NameObject("/Annots")]


def _flag(kind: str) -> dict:
    return {"kind": kind, "term": "", "excerpt": ""}


def scan_pages(pages: list[str], identities: list[Identity]) -> list[dict]:
    """Hits of `identities` in the pages' text, a name split across two pages included."""
    hits: list[dict] = []
    seen: set[tuple[str, str, str]] = set()
    tail = ""
    for number, text in enumerate(pages, start=1):
        for hit in scan_text(tail + text, identities):
            key = (hit.kind, hit.value, hit.context)
            if key in seen:
                continue
            seen.add(key)
            hits.append(
                {"kind": hit.kind, "term": hit.value, "excerpt": hit.context, "page": number}
            )
            if len(hits) >= MAX_HITS:
                return hits
        tail = text[-_OVERLAP:]
    return hits


_NAME_PUNCTUATION = ".,;:)）]】」'\"’”"


def masked_excerpt(hit: dict, replacement: str = "[name removed]") -> str:
    """The hit's excerpt with each occurrence of the identity replaced by one fixed token:
    the panel judges the context without learning whose bid it is. A fixed token, not a
    character-per-character mask, so that the length, the word breaks and the punctuation
    of the name do not show either."""
    excerpt = hit.get("excerpt") or ""
    term = hit.get("term") or ""
    if not excerpt or not term:
        return excerpt
    haystack, positions = normalise(excerpt)
    kind = "name" if hit.get("kind") != "registration_number" else "registration_number"
    # The punctuation that closes the name ("Ltd.") goes with it.
    closing = term[len(term.rstrip(_NAME_PUNCTUATION)) :]
    spans: list[tuple[int, int]] = []
    for needle in variants(Identity(kind, term)):
        start = haystack.find(needle)
        while start != -1:
            end = positions[start + len(needle) - 1] + 1
            if closing and excerpt.startswith(closing, end):
                end += len(closing)
            spans.append((positions[start], end))
            start = haystack.find(needle, start + 1)
    merged: list[list[int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    out, cursor = [], 0
    for begin, end in merged:
        out += [excerpt[cursor:begin], replacement]
        cursor = end
    out.append(excerpt[cursor:])
    return "".join(out)


def new_code(taken: set[str]) -> str:
    while True:
        code = "T-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            taken.add(code)
            return code


def record_opened_bids(tender_id: int, opened: list[tuple[int, KeptParts | None]]) -> None:
    """The EvaluatedBids of a tender's opened bids, created in a random order so that
    neither their codes nor their row ids follow the order of submission."""
    shuffled = list(opened)
    secrets.SystemRandom().shuffle(shuffled)
    taken: set[str] = set()
    for bid_id, kept in shuffled:
        record_evaluated_bid(tender_id, bid_id, kept, taken)
        db.session.flush()  # ids in this order


def record_evaluated_bid(tender_id: int, bid_id: int, kept: KeptParts | None, taken: set[str]):
    """The EvaluatedBid of an opened bid (the caller's transaction)."""
    kept = kept or KeptParts()
    row = EvaluatedBid(
        tender_id=tender_id,
        bid_id=bid_id,
        code=new_code(taken),
        technical_sha256=kept.technical_sha256,
        technical_size=kept.technical_size,
        technical_type=kept.technical_type,
        qualification=kept.qualification,
        anonymity_hits=kept.hits,
        anonymity_decision=AnonymityDecision.PENDING if kept.hits else AnonymityDecision.CLEAN,
        anonymity_reason="",
        override_reason="",
        checks={},
        low_price_justification="",
        low_price_attachments=[],
        low_price_reason="",
    )
    db.session.add(row)
    if kept.source is not None:
        db.session.add(
            TechnicalSource(
                tender_id=tender_id,
                bid_id=bid_id,
                original_sha256=kept.source["original_sha256"],
                author=kept.source.get("author", ""),
                creator=kept.source.get("creator", ""),
                producer=kept.source.get("producer", ""),
                text_sketch=kept.source.get("text_sketch", []),
            )
        )
    return row
