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
from pathlib import Path

import pytest
from weasyprint import HTML, Attachment

from evaluation import dumps, score
from evaluation.pdf import EmbeddedFileError, scoring_file_from_pdf

from .helpers import example

ROOT = Path(__file__).resolve().parents[2]
PAGE = "<html lang='en'><body><h1>Evaluation record</h1><p>Test record.</p></body></html>"


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


def test_verify_passes_on_a_record(tmp_path, scored_text):
    path = tmp_path / "record.pdf"
    path.write_bytes(record_pdf(scored_text))
    out = run("verify", str(path))
    assert out.returncode == 0, out.stderr
    assert "verified, the result matches the recomputation" in out.stdout
    assert "embedded scoring.json" in out.stderr


def test_verify_lists_the_differences_of_an_altered_file(tmp_path, scored_text):
    doc = json.loads(scored_text)
    doc["bids"][0]["technical"]["E4"]["design"] = "29"  # an expert's score changed after
    path = tmp_path / "altered.pdf"
    path.write_bytes(record_pdf(dumps(doc)))
    out = run("verify", str(path))
    assert out.returncode == 1, out.stderr
    assert "$.result.input_sha256" in out.stdout
    assert "$.result.bids[0].technical_score.expert_totals.E4" in out.stdout


def test_a_pdf_without_a_scoring_file_is_refused(tmp_path):
    path = tmp_path / "plain.pdf"
    path.write_bytes(record_pdf(None))
    out = run("verify", str(path))
    assert out.returncode == 2
    assert "no scoring.json attachment" in out.stderr
    with pytest.raises(EmbeddedFileError):
        scoring_file_from_pdf(b"%PDF-1.7 broken")
