"""app.uploads: extension, magic bytes and declared Content-Type must agree."""

from __future__ import annotations

import io
import struct
import unicodedata
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.uploads import (
    DEFAULT_ALLOWED,
    HEAD_SIZE,
    KINDS,
    RejectCode,
    UploadRejected,
    check_upload,
    safe_filename,
    split_extension,
)

# --- sample contents ------------------------------------------------------------------------

PDF = (
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG = (
    b"\x89PNG\r\n\x1a\n"
    + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    + png_chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    + png_chunk(b"IEND", b"")
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'
DWG = b"AC1032\x00\x00\x00\x00\x00\x00\x00\x00" + bytes(range(256))


def zip_bytes(members: dict[str, bytes], *, first: tuple[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if first:
            archive.writestr(*first)
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


CONTENT_TYPES = ("[Content_Types].xml", b'<?xml version="1.0"?><Types/>')
DOCX = zip_bytes(
    {"_rels/.rels": b"<Relationships/>", "word/document.xml": b"<w:document/>"},
    first=CONTENT_TYPES,
)
XLSX = zip_bytes(
    {"_rels/.rels": b"<Relationships/>", "xl/workbook.xml": b"<workbook/>"}, first=CONTENT_TYPES
)
ODT = zip_bytes(
    {"content.xml": b"<office:document-content/>"},
    first=("mimetype", b"application/vnd.oasis.opendocument.text"),
)
# The folder that names the kind lies beyond the head: only the ZIP signature can be checked.
DOCX_LARGE_FIRST_MEMBER = zip_bytes(
    {"word/document.xml": b"<w:document/>"},
    first=("[Content_Types].xml", bytes(range(256)) * 64),
)
ZIP = zip_bytes({"bill-of-quantities.xlsx": XLSX, "drawings/site.pdf": PDF})


def head(content: bytes) -> bytes:
    return content[:HEAD_SIZE]


# --- accepted -------------------------------------------------------------------------------

DOCX_TYPE = KINDS["docx"].media_type


@pytest.mark.parametrize(
    ("filename", "declared", "content", "kind"),
    [
        ("technical-proposal.pdf", "application/pdf", PDF, "pdf"),
        ("Technical Proposal.PDF", None, PDF, "pdf"),
        ("C:\\Users\\bidder\\Desktop\\bid.pdf", "application/octet-stream", PDF, "pdf"),
        ("기술제안서.pdf", "application/pdf; charset=binary", PDF, "pdf"),
        ("投标文件.pdf", "", PDF, "pdf"),
        ("site-photo.png", "image/png", PNG, "png"),
        ("site-photo.jpg", "image/jpeg", JPEG, "jpeg"),
        ("site-photo.jpeg", "image/pjpeg", JPEG, "jpeg"),
        ("method-statement.docx", DOCX_TYPE, DOCX, "docx"),
        ("method-statement.docx", "application/x-zip-compressed", DOCX, "docx"),
        ("method-statement.docx", DOCX_TYPE, DOCX_LARGE_FIRST_MEMBER, "docx"),
        ("prices.xlsx", KINDS["xlsx"].media_type, XLSX, "xlsx"),
        ("annexes.zip", "application/zip", ZIP, "zip"),
        ("notes.txt", "text/plain", "입찰 참고 사항\n납기: 30일\n".encode(), "txt"),
        ("notes.txt", "text/plain", "\ufeff说明\r\n".encode("utf-16"), "txt"),
        ("prices.csv", "text/csv", b"item,price\r\ndesk,120.50\r\n", "csv"),
        ("prices.csv", "application/vnd.ms-excel", "品名,单价\n办公桌,120\n".encode("gbk"), "csv"),
        ("cars.csv", "text/csv", b"BMW,12\nMZ Motors,3\n", "csv"),  # not a BMP, not an EXE
        ("notice.txt", "text/plain", "<2025 공고> 입찰 안내\n".encode(), "txt"),
        ("notice.txt", "text/plain", b"<Draft> a <b>bold</b> claim\n", "txt"),
    ],
)
def test_good_files_are_accepted(filename, declared, content, kind) -> None:
    accepted = check_upload(filename, declared, head(content))
    assert accepted is KINDS[kind]


def test_dwg_is_accepted_only_when_configured() -> None:
    assert "dwg" not in DEFAULT_ALLOWED
    with pytest.raises(UploadRejected) as rejected:
        check_upload("site-plan.dwg", "application/acad", DWG)
    assert rejected.value.code is RejectCode.EXTENSION_NOT_ALLOWED
    allowed = DEFAULT_ALLOWED | {"dwg"}
    assert check_upload("site-plan.dwg", "application/acad", DWG, allowed=allowed).name == "dwg"


def test_allowed_kinds_can_be_narrowed() -> None:
    assert check_upload("bid.pdf", None, PDF, allowed={"pdf"}).name == "pdf"
    with pytest.raises(UploadRejected) as rejected:
        check_upload("bid.docx", None, DOCX, allowed={"pdf"})
    assert rejected.value.code is RejectCode.EXTENSION_NOT_ALLOWED
    assert rejected.value.message == (
        "Files of type .docx are not accepted here. Accepted types: .pdf."
    )
    with pytest.raises(ValueError, match="unknown upload kinds"):
        check_upload("bid.pdf", None, PDF, allowed={"pdf", "exe"})


# --- rejected -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "declared", "content", "code", "says"),
    [
        ("bid.pdf", "application/pdf", b"", RejectCode.EMPTY, "The file is empty."),
        ("setup.exe", None, EXE, RejectCode.EXTENSION_NOT_ALLOWED, "type .exe are not"),
        ("page.html", "text/html", HTML, RejectCode.EXTENSION_NOT_ALLOWED, ".html"),
        ("logo.svg", "image/svg+xml", SVG, RejectCode.EXTENSION_NOT_ALLOWED, ".svg"),
        ("report.pdf.exe", None, EXE, RejectCode.EXTENSION_NOT_ALLOWED, ".exe"),
        ("README", None, b"text", RejectCode.EXTENSION_NOT_ALLOWED, "without an extension"),
        # A right-to-left override makes "invoice\u202efdp.exe" display as "invoiceexe.pdf".
        ("invoice\u202efdp.exe", None, EXE, RejectCode.EXTENSION_NOT_ALLOWED, ".exe"),
        ("bid.pdf", "application/pdf", EXE, RejectCode.CONTENT_MISMATCH, "a Windows program"),
        ("bid.pdf", "application/pdf", HTML, RejectCode.CONTENT_MISMATCH, "HTML"),
        ("bid.pdf", None, SVG, RejectCode.CONTENT_MISMATCH, "HTML or other markup"),
        ("bid.pdf", None, PNG, RejectCode.CONTENT_MISMATCH, "a PNG image, not a PDF"),
        ("photo.png", "image/png", JPEG, RejectCode.CONTENT_MISMATCH, "a JPEG image"),
        ("notes.txt", "text/plain", HTML, RejectCode.CONTENT_MISMATCH, "HTML"),
        ("notes.txt", "text/plain", PDF, RejectCode.CONTENT_MISMATCH, "a PDF document"),
        ("notes.txt", None, b'\n  <a href="x">click</a>', RejectCode.CONTENT_MISMATCH, "HTML"),
        (
            "notes.csv",
            None,
            b"\xef\xbb\xbf<?xml version='1.0'?>",
            RejectCode.CONTENT_MISMATCH,
            "HTML",
        ),
        ("prices.csv", "text/csv", EXE, RejectCode.CONTENT_MISMATCH, "a Windows program"),
        ("prices.xlsx", None, DOCX, RejectCode.CONTENT_MISMATCH, "not an Excel workbook"),
        ("proposal.docx", None, XLSX, RejectCode.CONTENT_MISMATCH, "not a Word document"),
        ("proposal.docx", None, ODT, RejectCode.CONTENT_MISMATCH, "not a Word document"),
        ("proposal.docx", None, PDF, RejectCode.CONTENT_MISMATCH, "a PDF document"),
        ("annexes.zip", None, EXE, RejectCode.CONTENT_MISMATCH, "not a ZIP archive"),
        ("photo.png", "application/pdf", PNG, RejectCode.CONTENT_TYPE_MISMATCH, "application/pdf"),
        ("bid.pdf", "text/html", PDF, RejectCode.CONTENT_TYPE_MISMATCH, "sent as text/html"),
        ("bid.pdf", "image/svg+xml", PDF, RejectCode.CONTENT_TYPE_MISMATCH, "image/svg+xml"),
        ("notes.txt", "application/x-msdownload", b"hi", RejectCode.CONTENT_TYPE_MISMATCH, ""),
    ],
)
def test_bad_files_are_rejected(filename, declared, content, code, says) -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_upload(filename, declared, head(content))
    assert rejected.value.code is code
    assert says in rejected.value.message
    assert str(rejected.value) == rejected.value.message
    assert rejected.value.message.endswith(".")


def test_messages_are_plain_sentences() -> None:
    with pytest.raises(UploadRejected) as rejected:
        check_upload("bid.pdf", "application/pdf", EXE)
    assert rejected.value.message == (
        "The file is named .pdf but its content is a Windows program, not a PDF document."
    )
    with pytest.raises(UploadRejected) as rejected:
        check_upload("photo.png", "application/pdf", PNG)
    assert rejected.value.message == (
        "The file was sent as application/pdf but its content is a PNG image."
    )
    assert rejected.value.code == "content_type_mismatch"  # a StrEnum: plain strings work


# --- file names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("technical proposal.pdf", "technical proposal.pdf"),
        ("기술제안서 (최종).pdf", "기술제안서 (최종).pdf"),
        ("投标文件_第1册.docx", "投标文件_第1册.docx"),
        (unicodedata.normalize("NFD", "견적서.xlsx"), "견적서.xlsx"),  # macOS sends NFD
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\bidder\\bid.pdf", "bid.pdf"),
        ("a\x00b\x1fc\x7f.pdf", "abc.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("line\nbreak\t.txt", "line break.txt"),
        ('what?:*<>|".pdf', "what_______.pdf"),
        ("  .hidden.pdf. . ", "hidden.pdf"),
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ("", "file"),
        ("...", "file"),
        ("/", "file"),
        (".pdf", "pdf"),
        ("name.", "name"),
    ],
)
def test_safe_filename(given_name: str, expected: str) -> None:
    assert safe_filename(given_name) == expected


def test_long_names_are_cut_but_keep_their_extension() -> None:
    latin = safe_filename("x" * 500 + ".pdf")
    assert latin == "x" * 116 + ".pdf"
    korean = safe_filename("가" * 300 + ".docx")
    assert korean.endswith(".docx")
    assert len(korean) <= 120
    assert len(korean.encode()) <= 255
    assert safe_filename("가" * 300 + ".docx", max_length=1000).encode().__len__() <= 255


def test_split_extension() -> None:
    assert split_extension("report.final.PDF") == ("report.final", "PDF")
    assert split_extension("archive") == ("archive", "")
    assert split_extension(".bashrc") == (".bashrc", "")
    assert split_extension("v1.2 draft") == ("v1.2 draft", "")
    assert split_extension("x.thisisfartoolongforanextension") == (
        "x.thisisfartoolongforanextension",
        "",
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_safe_filename_is_always_safe(name: str) -> None:
    safe = safe_filename(name)
    assert safe
    assert safe == safe.strip(". ")
    assert not any(char in safe for char in '/\\<>:"|?*')
    assert all(unicodedata.category(char)[0] != "C" for char in safe)
    assert len(safe) <= 120
    assert len(safe.encode()) <= 255
    assert safe == unicodedata.normalize("NFC", safe)
    assert safe_filename(safe) == safe
