"""The attachments of the record of a tender divided into lots, checked offline: each lot's
``scoring-<lot>.json`` must be that lot's entry of ``lots-evaluation.json`` (no Flask here;
the signed records the app makes are checked end to end in tests/app/test_record_lots.py)."""

from __future__ import annotations

import json

from evaluation import dumps, score
from evaluation.lots import (
    LOTS_FORMAT,
    AwardInput,
    AwardRule,
    award_lots,
    award_to_json,
    lot_ranking_of,
    verify_lots,
)
from evaluation.pdf import lot_attachment_name, lot_file_problems

from .helpers import example


def lots_document() -> dict:
    lots = []
    for reference in ("1", "A:2"):
        doc = example()
        doc["tender"]["lot"] = reference
        lots.append({"lot": reference, "scoring_file": score(doc)})
    rankings = tuple(lot_ranking_of(e["lot"], e["scoring_file"]) for e in lots)
    data = AwardInput(rankings, 1, AwardRule.LOT_ORDER)
    return {
        "format": LOTS_FORMAT,
        "input_sha256": "0" * 64,
        "lots": lots,
        "award": award_to_json(data, award_lots(data.lots, data.limit, data.rule)),
    }


def attachments(doc: dict) -> dict[str, bytes]:
    return {lot_attachment_name(e["lot"]): dumps(e["scoring_file"]).encode() for e in doc["lots"]}


def test_the_lot_files_of_a_consistent_record_pass():
    doc = lots_document()
    files = attachments(doc)
    assert sorted(files) == ["scoring-1.json", "scoring-A:2.json"]
    assert lot_file_problems(doc, files) == []
    assert verify_lots(doc) == []


def test_a_forged_missing_or_extra_lot_file_is_named():
    doc = lots_document()
    files = attachments(doc)
    forged = json.loads(files["scoring-A:2.json"])
    forged["bids"][0]["price"] = "1.00"
    files["scoring-A:2.json"] = dumps(forged).encode()
    files["scoring-9.json"] = b"{}"
    del files["scoring-1.json"]
    assert lot_file_problems(doc, files) == [
        "lot 1: its scoring file scoring-1.json is not attached",
        "lot A:2: the attached scoring-A:2.json is not the lot's scoring file in "
        "lots-evaluation.json (a lot file was changed)",
        "scoring-9.json is attached but names no lot of lots-evaluation.json",
    ]
    files = attachments(doc)
    files["scoring-1.json"] = b"not json"
    assert lot_file_problems(doc, files)[0].startswith(
        "lot 1: the attached scoring-1.json is not JSON"
    )


def test_a_changed_award_is_caught_by_the_replay():
    doc = lots_document()
    result = doc["award"]["result"]["lots"]
    result[0]["winner"], result[1]["winner"] = result[1]["winner"], result[0]["winner"]
    differences = verify_lots(doc)
    assert any(d.startswith("award: result.lots") for d in differences), differences
