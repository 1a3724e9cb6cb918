"""app.pdf and templates/pdf/document.html: CJK fonts, page furniture, and a URL fetcher
that never reads files or uses the network.

Checked with poppler-utils (pdffonts, pdfinfo, pdftotext, pdfdetach) and the Noto CJK
fonts, both installed by ``make system-deps``.
"""

from __future__ import annotations

import base64
import gettext
import logging
import re
import shutil
import socket
import struct
import subprocess
import urllib.request
import zlib
from pathlib import Path

import pytest
from markupsafe import Markup

from app.pdf import (
    PdfAttachment,
    ResourceRefused,
    ResourceUnavailable,
    render_document_html,
    render_document_pdf,
    render_pdf,
)

POPPLER = ("pdffonts", "pdfinfo", "pdftotext", "pdfdetach", "pdfimages")


def poppler(tool: str, pdf: Path, *args: str) -> str:
    assert shutil.which(tool), f"{tool} is missing: install poppler-utils (make system-deps)"
    result = subprocess.run(
        [tool, *args, str(pdf), *(["-"] if tool == "pdftotext" else [])],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def write(tmp_path: Path, pdf: bytes, name: str = "document.pdf") -> Path:
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / name
    path.write_bytes(pdf)
    return path


def page_count(pdf: Path) -> int:
    return int(re.search(r"^Pages:\s+(\d+)$", poppler("pdfinfo", pdf), re.MULTILINE)[1])


def embedded_fonts(pdf: Path) -> dict[str, bool]:
    """Font name (subset prefix removed) → embedded, from pdffonts."""
    fonts = {}
    for line in poppler("pdffonts", pdf).splitlines()[2:]:
        name, *_middle, emb, _sub, _uni, _obj, _gen = line.split()
        fonts[name.partition("+")[2] or name] = emb == "yes"
    return fonts


@pytest.fixture(autouse=True)
def no_network_or_file_fetching(monkeypatch):
    """Fail the test if anything tries to open a URL or a socket while rendering."""

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a URL or socket was opened: {args!r}")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)


def test_tools_and_fonts_are_installed() -> None:
    for tool in POPPLER:
        assert shutil.which(tool), f"{tool} is missing: install poppler-utils (make system-deps)"
    families = subprocess.run(
        ["fc-list", ":", "family"], capture_output=True, text=True, check=True
    ).stdout
    for family in ("Noto Sans CJK SC", "Noto Sans CJK KR"):
        assert family in families, f"{family} is missing: install fonts-noto-cjk"


# --- the document template ------------------------------------------------------------------

DOCUMENTS = {
    "en": {
        "title": "Tender document: supply of office desks",
        "kind": "Tender document",
        "issuer": "Riverside City Public Resource Trading Centre",
        "body": "Bids are due on 14 March 2025 at 10:00.",
    },
    "ko": {
        "title": "입찰 공고: 사무용 책상 구매",
        "kind": "입찰 문서",
        "issuer": "리버사이드시 공공자원거래센터",
        "body": "입찰 마감은 2025년 3월 14일 10시입니다.",
    },
    "zh-Hans": {
        "title": "招标文件：办公桌采购",
        "kind": "招标文件",
        "issuer": "河滨市公共资源交易中心",
        "body": "投标截止时间为2025年3月14日10时。",
    },
}


def document(lang: str, **extra) -> dict:
    texts = DOCUMENTS[lang]
    return {
        "lang": lang,
        "title": texts["title"],
        "reference": "FB-2025-0042",
        "kind": texts["kind"],
        "issuer": texts["issuer"],
        "issued_on": "2025-02-20",
        "body": Markup("<p>{}</p>").format(texts["body"]),
        **extra,
    }


def squeeze(text: str) -> str:
    """pdftotext output without whitespace (it may break CJK lines and insert spaces)."""
    return re.sub(r"\s+", "", text)


class KoreanTranslations(gettext.NullTranslations):
    def gettext(self, message: str) -> str:
        return {
            "Page %(page)s of %(pages)s": "%(pages)s쪽 중 %(page)s쪽",
            "Reference": "문서 번호",
        }.get(message, message)


@pytest.mark.parametrize(
    ("lang", "font"),
    [("en", "Noto-Sans-CJK-SC"), ("ko", "Noto-Sans-CJK-KR"), ("zh-Hans", "Noto-Sans-CJK-SC")],
)
def test_document_in_english_korean_and_chinese(tmp_path, caplog, lang: str, font: str) -> None:
    translations = KoreanTranslations() if lang == "ko" else None
    with caplog.at_level(logging.WARNING):
        pdf = write(tmp_path, render_document_pdf(document(lang), translations=translations))
    assert caplog.records == []  # no CSS WeasyPrint ignores, no resource it could not load

    fonts = embedded_fonts(pdf)
    assert fonts.get(font) is True, fonts  # the regional variant, embedded
    assert all(fonts.values()), fonts
    assert all(name.startswith("Noto-Sans-CJK") for name in fonts), fonts
    assert page_count(pdf) == 1

    text = squeeze(poppler("pdftotext", pdf, "-layout"))
    for value in DOCUMENTS[lang].values():
        assert squeeze(value) in text
    assert "FB-2025-0042" in text
    if lang == "ko":
        assert "1쪽중1쪽" in text
        assert "문서번호" in text
    else:
        assert "Page1of1" in text


def test_long_table_repeats_its_header_on_every_page(tmp_path) -> None:
    rows = [[n, f"Bidder T-{n:03d}", f"{1000 + n * 7}.00"] for n in range(1, 121)]
    table = {
        "caption": "Opening record",
        "columns": ["Envelope No.", "Technical code", "Bid price"],
        "rows": rows,
    }
    pdf = write(tmp_path, render_document_pdf(document("en", tables=[table])))

    pages = page_count(pdf)
    assert pages >= 2
    header = re.compile(r"Envelope No\.\s+Technical code\s+Bid price")
    full_text = poppler("pdftotext", pdf, "-layout")
    assert len(header.findall(full_text)) == pages
    second = poppler("pdftotext", pdf, "-layout", "-f", "2", "-l", "2")
    assert header.search(second)
    # Running header (title, reference) and footer on the pages after the first.
    assert "Tender document: supply of office desks" in second
    assert "FB-2025-0042" in second
    assert f"Page 2 of {pages}" in second
    assert "Bidder T-120" in full_text


def test_the_document_stylesheet_is_always_served(tmp_path) -> None:
    html = render_document_html(document("en"))
    assert '<link rel="stylesheet" href="fairbid:css/document.css">' in html
    refused: list[ResourceRefused] = []
    pdf = write(tmp_path, render_pdf(html, on_refused=refused.append))  # no resources given
    assert refused == []
    # The page counters come from the stylesheet: without it, no numbers.
    assert "Page 1 of 1" in poppler("pdftotext", pdf)


def test_template_escapes_its_context() -> None:
    html = render_document_html(
        {"title": "<script>alert(1)</script>", "reference": 'R"1', "body": "<b>not bold</b>"}
    )
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    assert '<html lang="en">' in html


# --- the restricted URL fetcher -------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_1PX = (  # one opaque black pixel, greyscale
    b"\x89PNG\r\n\x1a\n"
    + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    + png_chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    + png_chunk(b"IEND", b"")
)


@pytest.fixture
def secret_css(tmp_path) -> Path:
    """A stylesheet on disk that would print a marker if it were ever loaded."""
    path = tmp_path / "secret.css"
    path.write_text('body::after { content: "SECRET-MARKER-7Q"; }')
    return path


def hostile_html(secret_css: Path) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head>
  <link rel="stylesheet" href="file:///etc/passwd">
  <link rel="stylesheet" href="{secret_css.as_uri()}">
  <style>@import url("http://example.com/style.css");</style>
</head><body>
  <p>Visible text.</p>
  <img src="file:///etc/passwd">
  <img src="http://example.com/x.png">
  <a rel="attachment" href="file:///etc/passwd">attached</a>
  <img src="data:image/png;base64,{base64.b64encode(PNG_1PX).decode()}">
</body></html>"""


def test_refused_urls_stop_rendering_by_default(secret_css) -> None:
    with pytest.raises(ResourceRefused) as refused:
        render_pdf(hostile_html(secret_css))
    assert refused.value.url == "file:///etc/passwd"
    assert refused.value.reason == "local files are never read"
    assert "refused to fetch 'file:///etc/passwd'" in str(refused.value)

    with pytest.raises(ResourceRefused, match="the network is never used") as refused:
        render_pdf('<img src="http://example.com/x.png">')
    assert refused.value.url == "http://example.com/x.png"


def test_refused_urls_are_left_out_when_not_strict(tmp_path, secret_css) -> None:
    refused: list[ResourceRefused] = []
    pdf = write(
        tmp_path, render_pdf(hostile_html(secret_css), strict=False, on_refused=refused.append)
    )

    assert sorted(error.url for error in refused) == sorted(
        [
            "file:///etc/passwd",  # stylesheet
            secret_css.as_uri(),
            "http://example.com/style.css",
            "file:///etc/passwd",  # image
            "http://example.com/x.png",
            "file:///etc/passwd",  # attachment
        ]
    )
    text = poppler("pdftotext", pdf)
    assert "Visible text." in text
    assert "SECRET-MARKER" not in text
    assert "root:" not in text
    assert b"root:x:0:0" not in pdf.read_bytes()
    assert "0 embedded files" in poppler("pdfdetach", pdf, "-list")
    # The data: URL image was served: pdfimages lists it (and nothing else) after its header.
    assert len(poppler("pdfimages", pdf, "-list").splitlines()) == 2 + 1


def test_internal_resources_and_data_urls_are_served(tmp_path, secret_css) -> None:
    # The positive control of the tests above: the same stylesheet, allowed by name, shows.
    html = """<html><head>
      <link rel="stylesheet" href="fairbid:css/extra.css">
      <link rel="stylesheet" href="data:text/css,p::after%7Bcontent:%22DATA-URL-OK%22%7D">
    </head><body><p>Body.</p></body></html>"""
    pdf = write(tmp_path, render_pdf(html, resources={"css/extra.css": secret_css}))
    text = poppler("pdftotext", pdf)
    assert "SECRET-MARKER-7Q" in text
    assert "DATA-URL-OK" in text

    # Bytes work as well as paths, and a "fairbid:" prefix on the key is optional.
    pdf = write(
        tmp_path,
        render_pdf(
            '<link rel="stylesheet" href="fairbid:a.css"><p>x</p>',
            resources={"fairbid:a.css": b'p::after { content: "FROM-BYTES"; }'},
        ),
        "bytes.pdf",
    )
    assert "FROM-BYTES" in poppler("pdftotext", pdf)


def test_unknown_or_unreadable_internal_resources(tmp_path) -> None:
    with pytest.raises(ResourceRefused, match=r"no internal resource named 'css/other\.css'"):
        render_pdf('<link rel="stylesheet" href="fairbid:css/other.css">')
    with pytest.raises(ResourceUnavailable, match=r"missing\.css"):
        render_pdf(
            '<link rel="stylesheet" href="fairbid:missing.css">',
            resources={"missing.css": tmp_path / "missing.css"},
        )


def test_relative_urls_resolve_through_the_fetcher_too(tmp_path) -> None:
    (tmp_path / "local.css").write_text("p { color: red }")
    with pytest.raises(ResourceRefused) as refused:
        render_pdf('<link rel="stylesheet" href="local.css">', base_url=str(tmp_path) + "/")
    assert refused.value.url == (tmp_path / "local.css").as_uri()


def test_pdf_a3_with_an_embedded_json_attachment(tmp_path) -> None:
    data = '{"tender": "FB-2025-0042", "scores": [85.5, 79.25], "panel": "심사위원회"}'
    pdf = write(
        tmp_path,
        render_pdf(
            "<html lang=en><p>Evaluation record</p></html>",
            stylesheets=['html { font-family: "Noto Sans CJK SC" }'],
            pdf_variant="pdf/a-3b",
            attachments=[PdfAttachment(name="scoring.json", data=data)],
        ),
    )
    assert "scoring.json" in poppler("pdfdetach", pdf, "-list")
    subprocess.run(
        ["pdfdetach", "-save", "1", "-o", str(tmp_path / "out.json"), str(pdf)],
        check=True,
        timeout=60,
    )
    assert (tmp_path / "out.json").read_text(encoding="utf-8") == data
