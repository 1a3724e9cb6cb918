"""The verification bundle of a finished tender: every public artefact an outsider needs to
check its outcome offline, a `VERIFY.md` with the exact commands, and a `MANIFEST.json` of
every file's SHA-256 signed by the platform key (`bidding.bundle`). Served as one zip on the
tender's public page once it is awarded or failed; the drill writes the same files."""

from __future__ import annotations

import io
import json
import zipfile

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.api.ocds import tender_package
from app.audit.export import tender_export
from app.bids.documents import record_of
from app.bids.operations import SEALING_RECORD_KIND
from app.bids.receipts import platform_public_key_pem, platform_signing_key
from app.custody.operations import envelope_tender_id
from app.evaluations.queries import evaluation_of
from app.extensions import db
from app.opening.operations import OPENING_RECORD_KIND
from app.records import signing
from app.results.operations import NOTICE_DOCUMENT_KIND
from app.results.reading import signed_record
from app.tenders.documents import blob_store
from app.tenders.models import DocumentKind, Tender, TenderDocument, TenderStatus
from bidding.bundle import MANIFEST_NAME, sign_manifest
from bidding.receipts import dump_document

BUNDLE_STATUSES = frozenset({TenderStatus.AWARDED, TenderStatus.FAILED})
NOT_READY = _l(
    "The verification bundle is made once the audit log's next signed checkpoint covers the "
    "tender's last event: try again in a few minutes."
)
RECEIPT_KEY = "platform-receipt-key.pem"
CA_CERT = "platform-ca-cert.pem"


class BundleNotReady(Exception):
    """The tender's audit export has no closing checkpoint yet."""


def _blob(document: TenderDocument) -> bytes:
    with blob_store().open(document.sha256) as stream:
        return stream.read()


def _documents(tender: Tender, kind: str) -> list[TenderDocument]:
    return list(
        db.session.scalars(
            select(TenderDocument)
            .where(TenderDocument.tender_id == tender.id, TenderDocument.kind == kind)
            .order_by(TenderDocument.id)
        )
    )


def bundle_files(tender: Tender) -> dict[str, bytes]:
    """name -> content of every file of the bundle, VERIFY.md and the signed MANIFEST.json
    included. Raises BundleNotReady while the audit export cannot be made."""
    tid = envelope_tender_id(tender)
    audit = tender_export(tender.id, tender_id=tid, reference=tender.reference)
    if audit is None:
        raise BundleNotReady(str(NOT_READY))
    files: dict[str, bytes] = {}
    tender_pdf = [d for d in _documents(tender, DocumentKind.TENDER_PDF) if not d.superseded_at]
    if tender_pdf:
        files["tender-document.pdf"] = _blob(tender_pdf[-1])
    sealing = record_of(tender, SEALING_RECORD_KIND)
    if sealing is not None:
        files["sealing-record.json"] = _blob(sealing)
    opening = record_of(tender, OPENING_RECORD_KIND)
    if opening is not None:
        files["opening-record.json"] = _blob(opening)
    record = signed_record(tender, evaluation_of(tender))
    if record is not None and record.document_id is not None:
        files["evaluation-record.pdf"] = _blob(db.session.get(TenderDocument, record.document_id))
    for notice in _documents(tender, NOTICE_DOCUMENT_KIND):
        files[f"notices/{notice.filename}"] = _blob(notice)
    files["audit.jsonl"] = audit
    files[RECEIPT_KEY] = platform_public_key_pem()
    if "evaluation-record.pdf" in files:
        files["platform-signing-cert.pem"] = signing.platform_signer().certificate_pem
        files[CA_CERT] = signing.trust_roots_pem()
    files["ocds.json"] = (
        json.dumps(tender_package(tender), indent=2, ensure_ascii=False) + "\n"
    ).encode()
    files["VERIFY.md"] = verify_md(tender, tid, sorted(files)).encode()
    manifest = sign_manifest(tid, tender.reference, files, platform_signing_key())
    files[MANIFEST_NAME] = dump_document(manifest)
    return files


def verify_commands(tender: Tender, names: list[str]) -> list[str]:
    """The bundle's commands, run from the unpacked folder (the bundle test runs them)."""
    key = f"--platform-key {RECEIPT_KEY}"
    commands = [f"python -m bidding verify-bundle . {key}"]
    if "opening-record.json" in names:
        sealing = " --sealing-record sealing-record.json" if "sealing-record.json" in names else ""
        commands.append(f"python -m bidding verify-opening opening-record.json {key}{sealing}")
    for name in names:
        if name.startswith("notices/"):
            commands.append(f"python -m bidding verify-notice {name} {key}")
    commands.append(f"python -m bidding verify-audit audit.jsonl {key} --tender {tender.id}")
    if "evaluation-record.pdf" in names:
        commands.append(f"python -m evaluation verify evaluation-record.pdf --trust {CA_CERT}")
    return commands


def verify_md(tender: Tender, tid: str, names: list[str]) -> str:
    files = "\n".join(f"- `{name}`" for name in [*names, "VERIFY.md", MANIFEST_NAME])
    commands = "\n".join(verify_commands(tender, names))
    return f"""# Verifying tender {tender.reference} ({tid})

This folder is the verification bundle of tender {tender.reference} (platform id
{tender.id}, envelope id {tid}), status {tender.status}. Every command below runs offline
with the Fairbid project installed (`pip install .` in its source tree: the `bidding` and
`evaluation` libraries) and nothing else. Run them from this folder; each exits 0 when the
check holds and 1 naming the first problem.

First compare the platform key with the one the portal publishes
(`/api/v1/platform/receipt-key.pem`): `verify-bundle` prints its fingerprint.

```sh
{commands}
```

What each proves:

- `verify-bundle`: `MANIFEST.json` is signed by the platform key and lists the SHA-256 of
  every other file; none is missing, altered or added.
- `verify-opening`: the opening record is signed by the platform and every envelope it
  opened is a leaf of the signed sealing record (Merkle root) it names.
- `verify-notice`: each result notice (candidates, award, failure) is signed by the
  platform.
- `verify-audit`: `audit.jsonl` is the complete, unaltered sequence of the platform's audit
  log between two checkpoints signed by the platform; the tender's events carry their public
  payload (actor, object, data) and only the hash of their private one (the client's IP
  address with a secret random salt: no address is published), other tenders' events are
  stubs (header and both payload hashes), and no stub is the tender's.
- `python -m evaluation verify`: every signature of the evaluation record (the platform and
  the panel members) against the platform CA, the last one covering the whole file, the
  embedded scoring file the one signed, and the result recomputed from it.

Files:

{files}

Formats: `bidding/FORMAT.md` and the README of the Fairbid source.
"""


def bundle_zip(files: dict[str, bytes]) -> bytes:
    """The files as a zip with fixed timestamps (the same files give the same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def bundle_name(tender: Tender) -> str:
    return f"verification-bundle-{envelope_tender_id(tender)}.zip"
