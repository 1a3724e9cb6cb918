"""The scoring file embedded in a signed evaluation record (PDF/A-3 associated file
``scoring.json``), read with pypdf: no Flask, no database, no network.

``python -m evaluation verify record.pdf`` uses it to recompute the record's result from the
document alone. It does not check the PDF's signatures: use a PDF signature validator for
that (pyHanko, or poppler's ``pdfsig`` with the platform's signing CA trusted).
"""

from __future__ import annotations

import io

ATTACHMENT_NAME = "scoring.json"

__all__ = ["ATTACHMENT_NAME", "EmbeddedFileError", "embedded_files", "scoring_file_from_pdf"]


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
