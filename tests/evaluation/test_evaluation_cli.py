"""``python -m evaluation`` run as a separate process, as staff and auditors would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation import dumps, score

from .helpers import example

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluation", *args],
        cwd=ROOT,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "tender.json"
    path.write_text(dumps(example()), encoding="utf-8")
    return path


@pytest.fixture
def scored_file(tmp_path: Path) -> Path:
    path = tmp_path / "scored.json"
    path.write_text(dumps(score(example())), encoding="utf-8")
    return path


def test_score_prints_the_completed_file(input_file: Path):
    out = run("score", str(input_file))
    assert out.returncode == 0, out.stderr
    assert out.stdout == dumps(score(example()))
    assert json.loads(out.stdout)["result"]["outcome"]["candidates"] == ["B2", "B1", "B3"]


def test_score_reads_stdin_and_writes_a_file(input_file: Path, tmp_path: Path):
    target = tmp_path / "out.json"
    out = run("score", "-", "-o", str(target), stdin=input_file.read_bytes())
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert target.read_text(encoding="utf-8") == dumps(score(example()))


def test_verify_accepts_an_untouched_file(scored_file: Path):
    out = run("verify", str(scored_file))
    assert out.returncode == 0, out.stderr
    # The example names its lot (tender.lot): a tender divided into lots has one file each.
    assert f"{scored_file} (lot 1): verified" in out.stdout


def test_verify_detects_a_single_altered_score(scored_file: Path):
    text = scored_file.read_text(encoding="utf-8")
    assert text.count('"price_score": "36.27"') == 1
    scored_file.write_text(text.replace('"price_score": "36.27"', '"price_score": "36.28"'))
    out = run("verify", str(scored_file))
    assert out.returncode == 1
    assert "1 difference(s)" in out.stdout
    assert '$.result.bids[0].price_score: file has "36.28", recomputed "36.27"' in out.stdout


def test_verify_detects_an_altered_expert_score(scored_file: Path):
    doc = json.loads(scored_file.read_text(encoding="utf-8"))
    doc["bids"][1]["technical"]["E4"]["service_plan"] = "15"
    scored_file.write_text(json.dumps(doc), encoding="utf-8")
    out = run("verify", str(scored_file))
    assert out.returncode == 1
    assert "$.result.input_sha256" in out.stdout
    assert "$.result.bids[1].technical_score.expert_totals.E4" in out.stdout


def test_verify_refuses_a_pdf_without_a_scoring_file(tmp_path: Path):
    pdf = tmp_path / "record.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    out = run("verify", str(pdf))
    assert out.returncode == 2
    assert "is a PDF" in out.stderr
    assert "without a usable scoring file" in out.stderr


def test_invalid_file_lists_every_problem(tmp_path: Path):
    doc = example()
    doc["bids"][0]["price"] = 88000.5
    doc["aggregation"] = "median"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    for command in ("score", "validate", "verify"):
        out = run(command, str(path))
        assert out.returncode == 2, command
        assert "$.aggregation: 'median' is not one of" in out.stderr
        assert "$.bids[0].price: must be a decimal string" in out.stderr


def test_unreadable_and_unscored_files(tmp_path: Path, input_file: Path):
    out = run("verify", str(tmp_path / "missing.json"))
    assert out.returncode == 2 and "cannot read" in out.stderr
    out = run("verify", str(input_file))
    assert out.returncode == 2 and "no result to verify" in out.stderr
    out = run("validate", str(input_file))
    assert out.returncode == 0 and "valid scoring file" in out.stdout


def test_help_documents_the_format():
    out = run("--help")
    assert out.returncode == 0
    for text in (
        "THE SCORING FILE",
        "average_benchmark",
        "drop_highest_from",
        "lowest_evaluated_price",
        "trimmed_mean",
        "input_sha256",
        "half up",
    ):
        assert text in out.stdout, text


def test_schema_command_prints_the_schema():
    out = run("schema")
    assert out.returncode == 0
    assert json.loads(out.stdout)["title"] == "Fairbid scoring file"


def test_award_computes_then_verifies_and_names_a_tampered_winner(tmp_path: Path):
    lots = [
        {
            "lot": "1",
            "ranking": [
                {"company": "A", "total": "90", "price": "100"},
                {"company": "B", "total": "80", "price": "100"},
            ],
        },
        {"lot": "2", "ranking": [{"company": "A", "total": "95", "price": "100"}]},
    ]
    doc = {"format": "fairbid-lot-award/1", "limit": 1, "rule": "lot_order", "lots": lots}
    path = tmp_path / "award.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    out = run("award", str(path))
    assert out.returncode == 0, out.stderr
    awarded = json.loads(out.stdout)
    assert [a["winner"] for a in awarded["result"]["lots"]] == ["A", None]
    path.write_text(out.stdout, encoding="utf-8")
    out = run("award", str(path))
    assert out.returncode == 0 and "verified, the award matches" in out.stdout
    awarded["result"]["lots"][1]["winner"] = "A"
    path.write_text(json.dumps(awarded), encoding="utf-8")
    out = run("award", str(path))
    assert out.returncode == 1 and "result.lots" in out.stdout
    path.write_text(json.dumps({**doc, "limit": 0}), encoding="utf-8")
    out = run("award", str(path))
    assert out.returncode == 2 and "limit" in out.stderr
