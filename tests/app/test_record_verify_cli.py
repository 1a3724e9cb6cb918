"""`python -m evaluation verify record.pdf --trust CA.pem` checks the record's signatures,
that nothing was appended after the last one, and that the embedded scoring file is the one
the platform signed, before it recomputes the result. Every tamper case is caught by the one
documented command, with exit 1 and the reason."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyhanko.pdf_utils.embed import EmbeddedFileObject, FileSpec, embed_file
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from app.accounts.models import Role
from app.pdf import PdfAttachment, render_pdf
from app.records import signing
from evaluation import dumps, score
from evaluation.samples import example_document

ROOT = Path(__file__).resolve().parents[2]
HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>T</title></head>
<body><h1>Record</h1><p>Body text.</p></body></html>"""


def verify(tmp_path: Path, pdf: bytes, *extra: str, trust: bytes | None = None):
    record = tmp_path / "record.pdf"
    record.write_bytes(pdf)
    args = [sys.executable, "-m", "evaluation", "verify", str(record), *extra]
    if trust is not None:
        (tmp_path / "ca.pem").write_bytes(trust)
        args += ["--trust", str(tmp_path / "ca.pem")]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def scoring_text() -> str:
    return dumps(score(example_document()))


@pytest.fixture
def signed(app, make_user, scoring_text):
    """A record signed by the platform, then countersigned by a panel member."""
    from app.extensions import db

    pdf = render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", scoring_text)]
    )
    pdf = signing.sign_pdf(pdf, signer="platform", field_name="platform", reason="Record")
    member = make_user(Role.EXPERT)
    pdf = signing.sign_pdf(pdf, signer=member, field_name="member-1", reason="Countersigned")
    db.session.commit()
    return pdf


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _flip_in_signed_stream(pdf: bytes) -> bytes:
    """A byte flipped in the middle of the first stream that every signature covers: inside
    the first signed byte range (before the first signature's /Contents, which is not
    signed and whose hex a flip would make unreadable), in a stream's data (so the PDF still
    parses): only the digests break. A fixed offset such as a third of the file moved in
    and out of the /Contents with the PDF's size from one run to the next."""
    first_gap = int(re.search(rb"/ByteRange\s*\[\s*0\s+(\d+)", pdf).group(1))
    for match in re.finditer(rb"(?<!end)stream\r?\n", pdf):
        start, end = match.end(), pdf.find(b"endstream", match.end())
        if end - start > 64 and end < first_gap:
            return _flip(pdf, (start + end) // 2)
    raise AssertionError("no stream inside the first signed byte range")


def _with_new_scoring_file(pdf: bytes, text: str) -> bytes:
    """A forger's incremental update that attaches another scoring.json after the
    signatures (the signed bytes stay untouched)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    embed_file(
        writer,
        FileSpec(
            file_spec_string="scoring.json",
            embedded_data=EmbeddedFileObject.from_file_data(
                writer, data=text.encode(), mime_type="application/json"
            ),
        ),
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_genuine_record_verifies(app, signed, tmp_path):
    out = verify(tmp_path, signed, trust=signing.trust_roots_pem())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "signature 1 (platform" in out.stdout and "signature 2 (member-1" in out.stdout
    assert "the last signature covers the whole file" in out.stdout
    assert "is the one the platform signed" in out.stdout
    assert "verified, the result matches the recomputation" in out.stdout


def test_a_pdf_needs_a_trust_root(app, signed, tmp_path):
    out = verify(tmp_path, signed)
    assert out.returncode == 2
    assert "--trust" in out.stderr and "signing-ca.pem" in out.stderr


def test_an_unknown_trust_root_is_not_trusted(app, signed, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another CA")])
    now = signing.utcnow()
    other = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    out = verify(tmp_path, signed, trust=other.public_bytes(serialization.Encoding.PEM))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "does not chain to the given trust root" in out.stdout


def test_every_tamper_case_is_caught(app, signed, scoring_text, tmp_path):
    import json

    forged = json.loads(scoring_text)
    forged["bids"][0]["technical"]["E4"]["design"] = "29"
    rescored = dumps(score(forged))  # consistent in itself: only the signatures tell
    cases = {
        "a flipped byte in the signed document": (
            _flip_in_signed_stream(signed),
            "were changed after signing",
        ),
        "bytes appended after the last signature": (
            signed + b"\n% appended\n",
            "appended after the last signature",
        ),
        "a re-scored forgery attached after the signatures": (
            _with_new_scoring_file(signed, rescored),
            "differs from the one the first signature covers",
        ),
    }
    roots = signing.trust_roots_pem()
    for case, (pdf, reason) in cases.items():
        out = verify(tmp_path, pdf, trust=roots)
        assert out.returncode == 1, (case, out.stdout, out.stderr)
        assert reason in out.stdout, (case, out.stdout)


def test_an_unsigned_pdf_is_refused(app, scoring_text, tmp_path):
    pdf = render_pdf(
        HTML, pdf_variant="pdf/a-3b", attachments=[PdfAttachment("scoring.json", scoring_text)]
    )
    out = verify(tmp_path, pdf, trust=signing.trust_roots_pem())
    assert out.returncode == 1
    assert "carries no signature" in out.stdout
