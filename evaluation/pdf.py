"""The signed evaluation record (PDF/A-3 with the associated file ``scoring.json``), checked
offline: no Flask, no database, no network.

``python -m evaluation verify record.pdf --trust platform-ca-cert.pem`` uses it to check every
signature with pyHanko's validator against the given trust root, that the last signature covers
the whole file (bytes appended after it are reported), that the embedded scoring file is the one
the platform signed, and then recomputes the record's result from that file.

The record of a tender divided into lots carries no ``scoring.json``: it carries the lots
file ``lots-evaluation.json`` (format ``fairbid-lots-evaluation/1``: every lot's scoring
file and the award across lots) and, for each lot, that lot's scoring file as
``scoring-<lot>.json`` (``lot_attachment_name``), the same JSON as the lot's entry in the
lots file. The verification then checks that every one of these attachments is the one the
platform signed, that each lot's attachment is its entry of the lots file
(``lot_file_problems``), recomputes every lot and replays the award.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

ATTACHMENT_NAME = "scoring.json"
LOTS_ATTACHMENT_NAME = "lots-evaluation.json"
LOT_ATTACHMENT_PREFIX = "scoring-"
T = TypeVar("T")

__all__ = [
    "ATTACHMENT_NAME",
    "LOTS_ATTACHMENT_NAME",
    "EmbeddedFileError",
    "SignatureStatus",
    "embedded_files",
    "evaluation_files",
    "has_signatures",
    "load_crls",
    "lot_attachment_name",
    "lot_file_problems",
    "record_problems",
    "scoring_file_from_pdf",
    "validate_signatures",
]


class EmbeddedFileError(ValueError):
    """The PDF cannot be read, or carries no (single) scoring file."""


def embedded_files(data: bytes) -> dict[str, list[bytes]]:
    """Every embedded file of the PDF, by name (a name may occur more than once)."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as error:  # pragma: no cover - pypdf is a dependency
        raise EmbeddedFileError("reading PDFs needs the pypdf package") from error
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        return {name: list(contents) for name, contents in reader.attachments.items()}
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        raise EmbeddedFileError(f"not a readable PDF ({error})") from error


def scoring_file_from_pdf(data: bytes) -> bytes:
    """The bytes of the record's ``scoring.json`` attachment, exactly as embedded."""
    files = embedded_files(data)
    found = files.get(ATTACHMENT_NAME, [])
    if not found:
        names = ", ".join(sorted(files)) or "none"
        raise EmbeddedFileError(f"no {ATTACHMENT_NAME} attachment (attachments: {names})")
    if len(found) > 1 or len({bytes(x) for x in found}) > 1:
        raise EmbeddedFileError(f"more than one {ATTACHMENT_NAME} attachment")
    return bytes(found[0])


def lot_attachment_name(reference: str) -> str:
    """The name of a lot's scoring file in the record: ``scoring-<lot reference>.json``
    (lot references are 1-32 characters of A-Z a-z 0-9 . _ : -)."""
    return f"{LOT_ATTACHMENT_PREFIX}{reference}.json"


def is_lot_attachment(name: str) -> bool:
    return name.startswith(LOT_ATTACHMENT_PREFIX) and name.endswith(".json")


def evaluation_files(data: bytes) -> dict[str, bytes]:
    """The record's evaluation attachments, by name: ``scoring.json`` (one lot), or
    ``lots-evaluation.json`` and every ``scoring-<lot>.json`` (several lots). A name found
    more than once with different contents raises ``EmbeddedFileError``."""
    files = embedded_files(data)
    out: dict[str, bytes] = {}
    for name, contents in files.items():
        if name not in (ATTACHMENT_NAME, LOTS_ATTACHMENT_NAME) and not is_lot_attachment(name):
            continue
        if len({bytes(x) for x in contents}) > 1:
            raise EmbeddedFileError(f"more than one {name} attachment")
        out[name] = bytes(contents[0])
    return out


def lots_file_from_pdf(data: bytes) -> tuple[bytes, dict[str, bytes]] | None:
    """The record's ``lots-evaluation.json`` and its lots' ``scoring-<lot>.json`` (None for
    a record without a lots file)."""
    files = evaluation_files(data)
    if LOTS_ATTACHMENT_NAME not in files:
        return None
    lots = {name: body for name, body in files.items() if is_lot_attachment(name)}
    return files[LOTS_ATTACHMENT_NAME], lots


def lot_file_problems(lots_doc: object, attached: dict[str, bytes]) -> list[str]:
    """Whether each lot of the lots file has its scoring file attached as
    ``scoring-<lot>.json``, identical (as JSON) to the lot's entry of the lots file, and no
    other lot file is attached. One line per problem (empty: consistent)."""
    import json

    entries = lots_doc.get("lots") if isinstance(lots_doc, dict) else None
    if not isinstance(entries, list):
        return [f"{LOTS_ATTACHMENT_NAME} lists no lots"]
    problems: list[str] = []
    expected: set[str] = set()
    for entry in entries:
        reference = str(entry.get("lot")) if isinstance(entry, dict) else "?"
        name = lot_attachment_name(reference)
        expected.add(name)
        body = attached.get(name)
        if body is None:
            problems.append(f"lot {reference}: its scoring file {name} is not attached")
            continue
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            problems.append(f"lot {reference}: the attached {name} is not JSON ({error})")
            continue
        if parsed != entry.get("scoring_file"):
            problems.append(
                f"lot {reference}: the attached {name} is not the lot's scoring file in "
                f"{LOTS_ATTACHMENT_NAME} (a lot file was changed)"
            )
    for name in sorted(set(attached) - expected):
        problems.append(f"{name} is attached but names no lot of {LOTS_ATTACHMENT_NAME}")
    return problems


# --- signatures ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """One embedded signature as pyHanko's validator sees it."""

    field_name: str
    signer: str  # the signing certificate's subject (human readable)
    serial: str  # hex
    intact: bool  # the signed bytes hash to the signed digest
    valid: bool  # the cryptographic signature checks
    trusted: bool  # the certificate chains to a given trust root
    coverage: str  # ENTIRE_FILE for the last one, ENTIRE_REVISION for earlier ones
    modification_level: str  # changes after this signature: NONE, LTA_UPDATES, FORM_FILLING...
    docmdp_ok: bool | None
    signed_at: dt.datetime | None
    timestamp_ok: bool | None  # None: no signature time-stamp
    bottom_line: bool  # pyHanko's verdict: all of the above hold
    signed_end: int = 0  # where the bytes this signature covers end
    revoked: bool = False  # the signer's certificate was revoked before this signature

    @property
    def ok(self) -> bool:
        return self.bottom_line and self.intact and self.valid and self.trusted


def outside_event_loop(call: Callable[[], T]) -> T:
    """pyHanko's synchronous API wraps its async one with `asyncio.run`, which refuses to run
    where an event loop is already running in this thread: there, it runs in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return call()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def validate_signatures(
    data: bytes, trust_roots: list, other_certs: list | tuple = (), crls: list | tuple = ()
) -> list[SignatureStatus]:
    """Every regular signature of the PDF, validated with pyHanko against `trust_roots`
    (asn1crypto certificates; nothing fetched from the network). A PDF that cannot be parsed
    raises `ValueError`; a signature that cannot even be processed comes back not intact.

    Each signature is validated at its own time (its signature time-stamp when it has one,
    else the signing time it reports), so a certificate that expired or was revoked later
    does not undo earlier signatures; with `crls` (asn1crypto CRLs, e.g. the platform CA's),
    a signature made after its certificate's revocation is not trusted (`revoked`)."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = list(reader.embedded_regular_signatures)
    except Exception as error:  # pyHanko raises various PdfReadError subclasses
        raise ValueError(f"not a readable PDF: {error}") from error
    statuses = []
    for signature in embedded:
        end = _signed_end(signature)
        try:
            context = _context_at(_signature_time(signature), trust_roots, other_certs, crls)
            status = outside_event_loop(
                lambda signature=signature, context=context: validate_pdf_signature(
                    signature, context
                )
            )
        except Exception:  # a mangled CMS object or byte range
            statuses.append(
                SignatureStatus(
                    field_name=signature.field_name, signer="", serial="", intact=False,
                    valid=False, trusted=False, coverage="", modification_level="",
                    docmdp_ok=None, signed_at=None, timestamp_ok=None, bottom_line=False,
                    signed_end=end,
                )
            )  # fmt: skip
            continue
        cert = status.signing_cert
        ts = status.timestamp_validity
        statuses.append(
            SignatureStatus(
                field_name=signature.field_name,
                signer=cert.subject.human_friendly,
                serial=format(cert.serial_number, "x"),
                intact=bool(status.intact),
                valid=bool(status.valid),
                trusted=bool(status.trusted),
                coverage=status.coverage.name if status.coverage else "",
                modification_level=(
                    status.modification_level.name if status.modification_level else ""
                ),
                docmdp_ok=status.docmdp_ok,
                signed_at=status.signer_reported_dt,
                timestamp_ok=None if ts is None else bool(ts.valid and ts.intact and ts.trusted),
                bottom_line=bool(status.bottom_line),
                signed_end=end,
                revoked=bool(status.revoked),
            )
        )
    return statuses


def _context_at(moment: dt.datetime | None, trust_roots, other_certs, crls):
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(
        trust_roots=list(trust_roots),
        other_certs=list(other_certs),
        allow_fetching=False,
        revocation_mode="soft-fail",
        crls=list(crls),
        moment=moment,
        # the CRL is newer than the signature: its entries still say when each certificate
        # was revoked, and a signature before that date stands
        retroactive_revinfo=True,
    )


def _signature_time(signature) -> dt.datetime | None:
    """The time of the signature's time-stamp token, else the signing time it reports."""
    from pyhanko.sign.validation.generic_cms import extract_tst_data_iter

    try:
        for tst_signed_data in extract_tst_data_iter(signature.signer_info, signed=False):
            info = tst_signed_data["encap_content_info"]["content"].parsed
            return info["gen_time"].native
    except Exception:  # noqa: S110 - a malformed token: fall back to the reported time
        pass
    moment = signature.self_reported_timestamp
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def load_crls(data: bytes) -> list:
    """The CRL(s) of a PEM or DER file, for `validate_signatures`."""
    from asn1crypto import crl, pem

    if pem.detect(data):
        blocks = [body for kind, _headers, body in pem.unarmor(data, multiple=True)
                  if kind == "X509 CRL"]  # fmt: skip
    else:
        blocks = [data]
    if not blocks:
        raise ValueError("no CRL in the file")
    lists = [crl.CertificateList.load(block) for block in blocks]
    for item in lists:
        item.native  # noqa: B018 - parse it now: a damaged file fails here, not later
    return lists


def _signed_end(signature) -> int:
    try:
        byte_range = [int(x) for x in signature.sig_object["/ByteRange"]]
        return byte_range[2] + byte_range[3]
    except (KeyError, IndexError, TypeError, ValueError):
        return 0


def _last_signed_end(data: bytes) -> int:
    """Where the bytes covered by the file's last signature of any kind (document time-stamps
    included) end."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    signatures = list(PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures)
    return max((_signed_end(s) for s in signatures), default=0)


def has_signatures(data: bytes) -> bool:
    """Whether the PDF carries any signature (False when it cannot be parsed)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        return bool(list(PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures))
    except Exception:  # pyHanko raises various PdfReadError subclasses
        return False


def load_trust_roots(pem: bytes) -> list:
    """The certificates of a PEM (or DER) file, for `validate_signatures`."""
    from pyhanko.keys import load_certs_from_pemder_data

    certificates = list(load_certs_from_pemder_data(pem))
    if not certificates:
        raise ValueError("no certificate in the trust file")
    return certificates


def record_problems(
    data: bytes, trust_pem: bytes, crl_data: bytes | None = None
) -> tuple[list[str], list[str]]:
    """Check a signed record: (what was checked, one line each; the problems found). No
    problems means every signature is intact, valid and trusted, the last one covers the
    whole file, and the embedded scoring file is byte-identical to the one the first (the
    platform's) signature covers. With `crl_data` (the platform CA's CRL, PEM or DER), a
    signature made after its certificate was revoked is a problem."""
    try:
        roots = load_trust_roots(trust_pem)
    except Exception as error:  # asn1crypto / pyHanko parse errors
        return [], [f"the trust file cannot be read ({error})"]
    crls: list = []
    if crl_data is not None:
        try:
            crls = load_crls(crl_data)
        except Exception as error:  # asn1crypto parse errors
            return [], [f"the CRL file cannot be read ({error})"]
    try:
        statuses = validate_signatures(data, roots, crls=crls)
    except ValueError as error:
        return [], [str(error)]
    if not statuses:
        return [], ["the PDF carries no signature"]
    checked: list[str] = []
    problems: list[str] = []
    for number, status in enumerate(statuses, 1):
        name = f"signature {number} ({status.field_name}, {status.signer or 'unknown signer'})"
        if not status.intact:
            problems.append(f"{name}: the signed bytes were changed after signing")
        elif not status.valid:
            problems.append(f"{name}: the signature value does not verify")
        elif status.revoked:
            problems.append(
                f"{name}: made after its certificate (serial {status.serial}) was revoked"
            )
        elif not status.trusted:
            problems.append(f"{name}: its certificate does not chain to the given trust root")
        elif not status.bottom_line:
            problems.append(
                f"{name}: later changes are not allowed by this signature "
                f"(modification level {status.modification_level or 'unknown'})"
            )
        else:
            checked.append(f"{name}: intact, valid, trusted")
    end = _last_signed_end(data)
    if end < len(data):
        problems.append(
            f"{len(data) - end} byte(s) were appended after the last signature and are "
            "covered by no signature"
        )
    else:
        checked.append("the last signature covers the whole file")
    try:
        signed_files = evaluation_files(data[: statuses[0].signed_end])
    except EmbeddedFileError as error:
        problems.append(f"the signed revision carries no usable {ATTACHMENT_NAME} ({error})")
        return checked, problems
    if ATTACHMENT_NAME not in signed_files and LOTS_ATTACHMENT_NAME in signed_files:
        return checked, problems + _same_files(data, signed_files, checked)
    differs = f"the embedded {ATTACHMENT_NAME} differs from the one the first signature covers"
    try:
        signed = scoring_file_from_pdf(data[: statuses[0].signed_end])
    except EmbeddedFileError as error:
        problems.append(f"the signed revision carries no usable {ATTACHMENT_NAME} ({error})")
        return checked, problems
    try:
        current = scoring_file_from_pdf(data)
    except EmbeddedFileError as error:
        problems.append(f"{differs} ({error})")
        return checked, problems
    if signed != current:
        problems.append(differs)
    else:
        checked.append(f"the embedded {ATTACHMENT_NAME} is the one the platform signed")
    return checked, problems


def _same_files(data: bytes, signed: dict[str, bytes], checked: list[str]) -> list[str]:
    """A record of several lots: every evaluation attachment of the whole file is the one
    the platform's signature covers (none changed, added or removed). The problems."""
    try:
        current = evaluation_files(data)
    except EmbeddedFileError as error:
        return [f"the record's evaluation files cannot be read ({error})"]
    problems = []
    for name in sorted(set(signed) | set(current)):
        if name not in current:
            problems.append(f"the embedded {name} the platform signed is gone")
        elif name not in signed:
            problems.append(f"{name} was attached after the platform signed")
        elif signed[name] != current[name]:
            problems.append(f"the embedded {name} differs from the one the first signature covers")
    if not problems:
        names = ", ".join(sorted(signed))
        checked.append(f"the embedded {names} are the ones the platform signed")
    return problems
