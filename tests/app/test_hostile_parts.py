"""Hostile technical parts, handled after opening: a PDF carrying JavaScript is kept without
any of it, a zip bomb is kept as it came (never unpacked) and flagged for the panel."""

from __future__ import annotations

import io
import zipfile

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject, TextStringObject
from sqlalchemy import select

from app.extensions import db
from app.opening.models import EvaluatedBid
from app.opening.parts import FLAG_NOT_PDF
from app.tenders.documents import blob_store
from tests.factories.evaluations import opened_tender, text_pdf


def _js(text: str) -> DictionaryObject:
    return DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject(text)}
    )


def javascript_pdf() -> bytes:
    """A real one-page PDF with JavaScript on opening the document, on opening the page, in
    a link, and a plain web link that may stay."""
    source = PdfReader(io.BytesIO(text_pdf(["Technical proposal", "Delivered on time."])))
    writer = PdfWriter()
    page = writer.add_page(source.pages[0])
    page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): _js("app.alert('page')")})
    rect = ArrayObject([NumberObject(0), NumberObject(0), NumberObject(50), NumberObject(50)])

    def link(action: DictionaryObject):
        return writer._add_object(
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Annot"),
                    NameObject("/Subtype"): NameObject("/Link"),
                    NameObject("/Rect"): rect,
                    NameObject("/A"): action,
                }
            )
        )

    web = DictionaryObject(
        {
            NameObject("/S"): NameObject("/URI"),
            NameObject("/URI"): TextStringObject("https://x.example/"),
        }
    )
    page[NameObject("/Annots")] = ArrayObject([link(_js("app.alert('link')")), link(web)])
    writer._root_object[NameObject("/OpenAction")] = _js("app.alert('document')")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    out = io.BytesIO()
    block = b"\0" * (1024 * 1024)
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("proposal.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(size // len(block)):
            member.write(block)
    return out.getvalue()


@pytest.fixture
def hostile_opened(make_tender, make_user):
    scripted, bomb = javascript_pdf(), zip_bomb()
    assert b"/JavaScript" in scripted and len(bomb) < 1024 * 1024
    plain = text_pdf(["Technical proposal", "Plain."])
    opened = opened_tender(
        make_tender, make_user, ["100.00", "200.00", "300.00"], [scripted, bomb, plain]
    )
    query = select(EvaluatedBid).where(EvaluatedBid.tender_id == opened.tender.id)
    parts = {part.bid_id: part for part in db.session.scalars(query)}
    return opened, [parts[bid.id] for bid in opened.bids], bomb


def test_a_technical_pdf_keeps_no_javascript(hostile_opened):
    _opened, (scripted, _bomb, _plain), _ = hostile_opened
    data = blob_store().path_for(scripted.technical_sha256).read_bytes()
    assert scripted.technical_type == "application/pdf"
    assert b"/JavaScript" not in data and b"/JS" not in data and b"/OpenAction" not in data
    page = PdfReader(io.BytesIO(data)).pages[0]
    assert "/AA" not in page
    actions = [annotation.get_object().get("/A") for annotation in page["/Annots"]]
    assert [action and action.get_object()["/S"] for action in actions] == [None, "/URI"]
    assert "Delivered on time." in page.extract_text()


def test_a_zip_bomb_is_kept_as_it_came_and_flagged(hostile_opened):
    _opened, (_scripted, bomb_part, plain), bomb = hostile_opened
    stored = blob_store().path_for(bomb_part.technical_sha256).read_bytes()
    assert stored == bomb  # never unpacked, never rewritten
    assert bomb_part.technical_type != "application/pdf"
    assert {hit["kind"] for hit in bomb_part.anonymity_hits} == {FLAG_NOT_PDF}
    assert plain.technical_type == "application/pdf"
