"""Checks on uploaded attachments before they are stored.

An attachment is accepted only when three things agree: its file name's extension, the magic
bytes at the start of its content (read with the ``filetype`` library, plus a look at ZIP
member names for Office files), and the Content-Type the browser declared, if any.  The
caller reads the first :data:`HEAD_SIZE` bytes, calls :func:`check_upload`, and then streams
the whole file into the blob store; the stored file is later served with the accepted kind's
``media_type`` (never the declared one), under :func:`safe_filename`, as an attachment.

What a head can't prove: an Office file whose first ZIP members don't name its part folders
is accepted on its ZIP signature alone; nothing here inspects the rest of a file, parses it,
or scans it for malware (sealed bid parts can't be inspected before opening anyway).

No Flask here.
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import filetype

__all__ = [
    "DEFAULT_ALLOWED",
    "HEAD_SIZE",
    "KINDS",
    "RejectCode",
    "UploadKind",
    "UploadRejected",
    "check_upload",
    "safe_filename",
    "split_extension",
]

HEAD_SIZE = 8192
"""How many leading bytes :func:`check_upload` wants (as ``filetype`` reads)."""


class RejectCode(StrEnum):
    EMPTY = "empty"
    EXTENSION_NOT_ALLOWED = "extension_not_allowed"
    CONTENT_MISMATCH = "content_mismatch"
    CONTENT_TYPE_MISMATCH = "content_type_mismatch"


class UploadRejected(ValueError):
    """An upload was refused; ``code`` is machine-readable, ``message`` is for the uploader."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"UploadRejected({self.code.value!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class UploadKind:
    """One accepted type of document."""

    name: str
    """Short key, e.g. ``"pdf"``, as used in ``allowed`` sets and configuration."""
    label: str
    """What to call it in messages: ``"a PDF document"``."""
    media_type: str
    """The Content-Type to store and serve the file with."""
    extensions: tuple[str, ...]
    """Lowercase extensions without the dot, the usual one first."""
    declared_types: frozenset[str]
    """Content-Types browsers and operating systems send for this kind."""


_ZIP_TYPES = frozenset(
    {"application/zip", "application/x-zip-compressed", "application/x-zip", "multipart/x-zip"}
)
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _kind(
    name: str, label: str, media_type: str, extensions: tuple[str, ...], *declared: str
) -> UploadKind:
    return UploadKind(
        name=name,
        label=label,
        media_type=media_type,
        extensions=extensions,
        declared_types=frozenset({media_type, *declared}),
    )


KINDS: Mapping[str, UploadKind] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            _kind("pdf", "a PDF document", "application/pdf", ("pdf",), "application/x-pdf"),
            # Some systems send Office files as plain ZIP archives.
            _kind("docx", "a Word document (.docx)", _DOCX, ("docx",), *_ZIP_TYPES),
            _kind("xlsx", "an Excel workbook (.xlsx)", _XLSX, ("xlsx",), *_ZIP_TYPES),
            _kind("zip", "a ZIP archive", "application/zip", ("zip",), *_ZIP_TYPES),
            _kind("png", "a PNG image", "image/png", ("png",), "image/x-png"),
            _kind("jpeg", "a JPEG image", "image/jpeg", ("jpg", "jpeg"), "image/pjpeg"),
            _kind("txt", "a plain text file", "text/plain", ("txt",)),
            # Windows with Excel installed sends CSV files as application/vnd.ms-excel.
            _kind(
                "csv",
                "a CSV file",
                "text/csv",
                ("csv",),
                "text/plain",
                "application/csv",
                "text/x-csv",
                "text/comma-separated-values",
                "application/vnd.ms-excel",
            ),
            _kind(
                "dwg",
                "an AutoCAD drawing (.dwg)",
                "image/vnd.dwg",
                ("dwg",),
                "application/acad",
                "application/x-acad",
                "application/dwg",
                "application/x-dwg",
                "image/x-dwg",
            ),
        )
    }
)
"""Every kind :func:`check_upload` knows; it accepts only those named in ``allowed``."""

DEFAULT_ALLOWED: frozenset[str] = frozenset(KINDS) - {"dwg"}

# Declared types that say nothing about the content ("some bytes"): never a contradiction.
_NEUTRAL_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # first member; empty archive
_OOXML_FOLDERS = {"word/": "docx", "xl/": "xlsx", "ppt/": "pptx"}
# What browsers sniff as HTML or XML (WHATWG MIME Sniffing, "identify an unknown MIME type"),
# plus SVG: such text is refused even when it is named .txt or .csv.
_MARKUP = re.compile(
    rb"[\t\n\x0c\r ]*<(?:"
    rb"(?:!doctype\s+html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p"
    rb"|svg)[\t\n\x0c\r >]"
    rb"|!--|\?xml)",
    re.IGNORECASE,
)
# Formats whose first bytes are printable: not text, although free of control characters.
# (filetype's two-byte signatures, such as "BM" for BMP or "MZ" for EXE, are not used for
# text: "BMW,12" is a fine CSV line, and real BMP or EXE files contain control bytes.)
_NOT_TEXT_SIGNATURES = (
    b"%PDF-",
    b"\xef\xbb\xbf%PDF-",
    b"%!PS",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"AC10",
)
# Text may contain tab, LF, FF, CR and Ctrl-Z (old DOS end of file); no other C0 control.
_BINARY_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x19\x1b-\x1f]")


def check_upload(
    filename: str,
    declared_content_type: str | None,
    head: bytes,
    *,
    allowed: Collection[str] = DEFAULT_ALLOWED,
) -> UploadKind:
    """The kind of an uploaded file, or :class:`UploadRejected` saying what is wrong.

    ``head`` is the start of the content (at least :data:`HEAD_SIZE` bytes when the file has
    that many; empty means the file is empty).  ``allowed`` names kinds of :data:`KINDS`.
    """
    unknown = set(allowed) - KINDS.keys()
    if unknown:
        raise ValueError(f"unknown upload kinds: {sorted(unknown)}")
    if not head:
        raise UploadRejected(RejectCode.EMPTY, "The file is empty.")

    _stem, extension = split_extension(safe_filename(filename))
    kind = _kind_for_extension(extension.lower(), allowed)
    if kind is None:
        accepted = ", ".join(
            sorted(f".{ext}" for name in allowed for ext in KINDS[name].extensions)
        )
        what = f"Files of type .{extension}" if extension else "Files without an extension"
        raise UploadRejected(
            RejectCode.EXTENSION_NOT_ALLOWED,
            f"{what} are not accepted here. Accepted types: {accepted}.",
        )

    if not _CONTENT_CHECKS[kind.name](head):
        raise UploadRejected(
            RejectCode.CONTENT_MISMATCH,
            f"The file is named .{extension} but its content is {_describe(head)}, "
            f"not {kind.label}.",
        )

    declared = _media_type(declared_content_type)
    if declared not in _NEUTRAL_TYPES and declared not in kind.declared_types:
        raise UploadRejected(
            RejectCode.CONTENT_TYPE_MISMATCH,
            f"The file was sent as {declared[:100]} but its content is {kind.label}.",
        )
    return kind


def _kind_for_extension(extension: str, allowed: Collection[str]) -> UploadKind | None:
    for name in allowed:
        if extension in KINDS[name].extensions:
            return KINDS[name]
    return None


def _media_type(content_type: str | None) -> str:
    """``"Application/PDF; charset=x"`` → ``"application/pdf"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


# --- content checks -------------------------------------------------------------------------


def _detected(head: bytes) -> str | None:
    """filetype's extension for the content (``"pdf"``, ``"exe"``, ``"docx"``...), or None."""
    guessed = filetype.guess(head[:HEAD_SIZE])
    return guessed.extension if guessed is not None else None


def _is_zip(head: bytes) -> bool:
    return head.startswith(_ZIP_SIGNATURES)


def _zip_member_names(head: bytes) -> list[str]:
    """Names of the ZIP members whose local headers lie within ``head``, in order.

    Stops at a member whose compressed size is only known after its data (streamed ZIPs
    set flag bit 3), and at anything that is not a local file header.
    """
    names: list[str] = []
    offset = 0
    while head.startswith(b"PK\x03\x04", offset) and offset + 30 <= len(head):
        (flags,) = struct.unpack_from("<H", head, offset + 6)
        (compressed_size,) = struct.unpack_from("<I", head, offset + 18)
        name_length, extra_length = struct.unpack_from("<HH", head, offset + 26)
        name_start = offset + 30
        if name_start + name_length > len(head):
            break
        names.append(head[name_start : name_start + name_length].decode("utf-8", "replace"))
        if flags & 0x08 or compressed_size == 0xFFFFFFFF:  # data descriptor; ZIP64
            break
        offset = name_start + name_length + extra_length + compressed_size
    return names


def _office_check(expected: str) -> Callable[[bytes], bool]:
    def check(head: bytes) -> bool:
        if not _is_zip(head):
            return False
        names = _zip_member_names(head)
        if any(name == "mimetype" for name in names):
            return False  # an OpenDocument file (.odt, .ods)
        found = {
            kind
            for name in names
            for folder, kind in _OOXML_FOLDERS.items()
            if name.startswith(folder)
        }
        # Another Office kind's folder and not ours: a renamed file.  Neither: the members
        # that would tell lie beyond the head, so the ZIP signature has to do.
        return expected in found or not found

    return check


def _text_content(head: bytes) -> str | None:
    """The head decoded as text, or None when it is binary or a known binary format."""
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            body = head[len(bom) :]
            text = body[: len(body) - len(body) % 2].decode(encoding, "replace")
            return None if _BINARY_CONTROL.search(text.encode("utf-8")) else text
    if _BINARY_CONTROL.search(head) or head.startswith(_NOT_TEXT_SIGNATURES):
        return None
    # UTF-8 or a legacy encoding (GBK, EUC-KR, as Excel writes CSV): bytes are enough here.
    return head.decode("utf-8", "replace")


def _is_plain_text(head: bytes) -> bool:
    text = _text_content(head)
    return text is not None and not _is_markup(text)


def _is_markup(text: str) -> bool:
    return _MARKUP.match(text.lstrip("\ufeff").encode("utf-8")) is not None


_CONTENT_CHECKS: Mapping[str, Callable[[bytes], bool]] = {
    "pdf": lambda head: _detected(head) == "pdf",
    "docx": _office_check("docx"),
    "xlsx": _office_check("xlsx"),
    "zip": _is_zip,
    "png": lambda head: _detected(head) == "png",
    "jpeg": lambda head: _detected(head) == "jpg",
    "txt": _is_plain_text,
    "csv": _is_plain_text,
    "dwg": lambda head: _detected(head) == "dwg",
}

_DESCRIPTIONS = {
    "exe": "a Windows program",
    "elf": "a Linux program",
    "pdf": "a PDF document",
    "png": "a PNG image",
    "jpg": "a JPEG image",
    "gif": "a GIF image",
    "docx": "a Word document",
    "xlsx": "an Excel workbook",
    "pptx": "a PowerPoint presentation",
    "doc": "an old-format Word document (.doc)",
    "xls": "an old-format Excel workbook (.xls)",
    "zip": "a ZIP archive",
    "rar": "a RAR archive",
    "7z": "a 7-Zip archive",
}


def _describe(head: bytes) -> str:
    """What the content looks like, for messages."""
    text = _text_content(head)
    if text is not None:
        return "HTML or other markup" if _is_markup(text) else "plain text"
    detected = _detected(head)
    if detected is not None:
        return _DESCRIPTIONS.get(detected, f"a .{detected} file")
    return "unrecognised binary data"


# --- file names -----------------------------------------------------------------------------

_MAX_EXTENSION = 16
_FORBIDDEN_CHARS = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
_MAX_BYTES = 255  # a file name on every common filesystem


def split_extension(name: str) -> tuple[str, str]:
    """``"report.final.PDF"`` → ``("report.final", "PDF")``; no extension → ``(name, "")``.

    An "extension" longer than 16 characters or with anything but ASCII letters and digits is
    part of the stem.
    """
    stem, dot, extension = name.rpartition(".")
    if (
        dot
        and stem.strip(". ")
        and extension.isascii()
        and extension.isalnum()
        and len(extension) <= _MAX_EXTENSION
    ):
        return stem, extension
    return name, ""


def safe_filename(name: str, *, max_length: int = 120, default: str = "file") -> str:
    """A file name safe to store and to offer for download, close to what the user gave.

    Keeps letters, digits and marks of every script (Korean, Chinese...), spaces and
    ordinary punctuation; drops any directory part (``/`` or ``\\``), control and invisible
    formatting characters (including right-to-left overrides used to disguise extensions);
    replaces characters Windows forbids with ``_``; normalises to NFC (macOS sends Korean
    decomposed); strips leading and trailing dots and spaces; limits the length to
    ``max_length`` characters and 255 UTF-8 bytes, keeping the extension.
    """
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(
        " " if _is_space(char) else char
        for char in name
        if _is_space(char) or unicodedata.category(char)[0] != "C"
    )
    name = _FORBIDDEN_CHARS.sub("_", name)
    name = re.sub(r" {2,}", " ", name).strip(". ")
    stem, extension = split_extension(name)
    stem = stem.rstrip(". ")
    if stem.split(".")[0].lower() in _WINDOWS_DEVICES:
        stem = f"_{stem}"
    suffix = f".{extension}" if extension else ""
    stem = _truncate(stem, max_length - len(suffix), _MAX_BYTES - len(suffix.encode()))
    stem = stem.rstrip(". ") or default
    return f"{stem}{suffix}"


def _is_space(char: str) -> bool:
    """Separators (including the ideographic space) and tab or line breaks, not other
    control characters such as U+001F, which ``str.isspace`` also counts."""
    return unicodedata.category(char)[0] == "Z" or char in "\t\n\r\v\f"


def _truncate(text: str, max_chars: int, max_bytes: int) -> str:
    text = text[: max(max_chars, 0)]
    return text.encode("utf-8")[: max(max_bytes, 0)].decode("utf-8", "ignore")
