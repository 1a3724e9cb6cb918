"""``python -m evaluation verify record.pdf``: the scoring file embedded in a PDF/A-3 record
(as the platform attaches it) is read back byte-identical and verified; an altered one is
caught with its differences listed. The records made by the app are checked the same way in
tests/app/test_records.py."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from weasyprint import HTML, Attachment

from evaluation import dumps, score
from evaluation.pdf import EmbeddedFileError, scoring_file_from_pdf

from .helpers import example

ROOT = Path(__file__).resolve().parents[2]
PAGE = "<html lang='en'><body><h1>Evaluation record</h1><p>Test record.</p></body></html>"


@pytest.fixture(scope="module")
def trust(tmp_path_factory) -> str:
    """A trust root made at test time (no record here is signed by it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("trust") / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluation", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def record_pdf(text: str | None, name: str = "scoring.json") -> bytes:
    attachments = [] if text is None else [Attachment(string=text.encode(), name=name)]
    with warnings.catch_warnings():
        # WeasyPrint 70 leaves its sRGB profile open when writing PDF/A (see app/pdf.py).
        warnings.filterwarnings("ignore", r"unclosed file .*sRGB2014", category=ResourceWarning)
        pdf = HTML(string=PAGE).write_pdf(pdf_variant="pdf/a-3b", attachments=attachments)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"unclosed file .*sRGB2014", category=ResourceWarning)
        gc.collect()
    return pdf


@pytest.fixture(scope="module")
def scored_text() -> str:
    return dumps(score(example()))


def test_embedded_file_comes_back_byte_identical(scored_text):
    assert scoring_file_from_pdf(record_pdf(scored_text)) == scored_text.encode()


def test_an_unsigned_record_is_recomputed_but_not_verified(tmp_path, scored_text, trust):
    """Signed records are checked in tests/app/test_record_verify_cli.py (the platform's CA);
    a PDF without signatures is never "verified", whatever its scoring file says."""
    path = tmp_path / "record.pdf"
    path.write_bytes(record_pdf(scored_text))
    out = run("verify", str(path), "--trust", trust)
    assert out.returncode == 1, out.stderr
    assert "carries no signature" in out.stdout
    assert "NOT verified: the result matches the recomputation" in out.stdout
    assert "embedded scoring.json" in out.stderr


def test_a_record_needs_a_trust_root(tmp_path, scored_text):
    path = tmp_path / "record.pdf"
    path.write_bytes(record_pdf(scored_text))
    out = run("verify", str(path))
    assert out.returncode == 2
    assert "--trust" in out.stderr


def test_verify_lists_the_differences_of_an_altered_file(tmp_path, scored_text, trust):
    doc = json.loads(scored_text)
    doc["bids"][0]["technical"]["E4"]["design"] = "29"  # an expert's score changed after
    path = tmp_path / "altered.pdf"
    path.write_bytes(record_pdf(dumps(doc)))
    out = run("verify", str(path), "--trust", trust)
    assert out.returncode == 1, out.stderr
    assert "$.result.input_sha256" in out.stdout
    assert "$.result.bids[0].technical_score.expert_totals.E4" in out.stdout


def test_a_pdf_without_a_scoring_file_is_refused(tmp_path, trust):
    path = tmp_path / "plain.pdf"
    path.write_bytes(record_pdf(None))
    out = run("verify", str(path), "--trust", trust)
    assert out.returncode == 2
    assert "no scoring.json attachment" in out.stderr
    with pytest.raises(EmbeddedFileError):
        scoring_file_from_pdf(b"%PDF-1.7 broken")
