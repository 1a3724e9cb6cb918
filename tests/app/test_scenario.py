"""The end-to-end drill (`flask scenario run`, app.scenario): a whole tender through the
real operations for every built-in template, its output checked with the public verifiers
(`python -m bidding verify-receipt`, `python -m evaluation verify`); the simulated clock
that never leaks; bad options refused before anything is written; the demo seed leaving a
tender in every stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.accounts.models import User
from app.bids.models import Bid, BidStatus
from app.companies.models import Company
from app.core.types import CLOCK_OFFSET, utcnow
from app.extensions import db
from app.scenario import STAGES, Options, run
from app.scenario.clock import ClockError, SimulatedClock
from app.tenders.models import Tender, TenderStatus
from tests.app.bundle_checks import check_bundle
from tests.factories.ocds import assert_valid, package_validator

ROOT = Path(__file__).resolve().parents[2]
# Every stage's service exists: the drill goes all the way.
AT_LEAST = "award"
# (template, bidders, countersign): each panel member's countersignature costs a PDF
# signature (about a second each), so one template has them all.
TEMPLATES = [
    ("goods", 5, True),
    ("works", 4, False),
    ("services", 5, False),
    ("asset_sale", 4, False),
]


def cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def drill(template: str, bidders: int, out: Path | None, countersign=False, **kwargs):
    lines: list[str] = []
    options = Options(
        template=template,
        bidders=bidders,
        experts=5,
        seed=11,
        countersign=countersign,
        echo=lines.append,
    )
    result = run(options, out=out, **kwargs)
    return result, "\n".join(lines)


def reached_at_least(result, stage: str) -> bool:
    return result.reached is not None and STAGES.index(result.reached) >= STAGES.index(stage)


# --- the drill, every template ------------------------------------------------------------


@pytest.mark.parametrize(("template", "bidders", "countersign"), TEMPLATES)
def test_the_drill_runs_a_whole_tender(app, tmp_path, template, bidders, countersign):
    out = tmp_path / "drill"
    result, log = drill(template, bidders, out, countersign=countersign)
    assert reached_at_least(result, AT_LEAST), log
    if result.stopped:
        # Only a stage whose service is missing stops the drill, and it says so.
        assert "not available yet" in result.stopped, log
        assert result.reached != "award"
    tender = db.session.get(Tender, result.tender_id)

    # Progress and the time per stage.
    for timing in result.timings:
        assert f"  {timing.stage:<11}" in log and timing.seconds >= 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tender_id"] == tender.id and summary["reached"] == result.reached
    assert [s["stage"] for s in summary["stages"]] == list(STAGES[: len(summary["stages"])])

    # The incidents: one late envelope refused (and shown), one replaced, one withdrawn.
    assert len(summary["refusals"]) == 1 and "deadline has passed" in summary["refusals"][0]
    assert "late envelope refused: The bid deadline has passed" in log
    statuses = db.session.scalars(select(Bid.status).where(Bid.tender_id == tender.id)).all()
    assert sorted(statuses).count(BidStatus.SUPERSEDED) == 1
    assert statuses.count(BidStatus.WITHDRAWN) == 1
    assert statuses.count(BidStatus.SUBMITTED) == bidders - 1

    # Every receipt verifies offline with the published platform key.
    receipts = sorted((out / "receipts").glob("*.json"))
    assert len(receipts) == bidders + 1  # the replaced bid's receipt too
    key = out / "platform-receipt-key.pem"
    for receipt in receipts[:2]:
        envelope = out / "envelopes" / f"{receipt.stem}.env"
        checked = cli(
            "-m", "bidding", "verify-receipt", str(receipt),
            "--platform-key", str(key), "--envelope", str(envelope),
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        assert "valid receipt" in checked.stdout
    # The sealing record holds the current bids; the opening record every opened one.
    sealing = json.loads((out / "sealing-record.json").read_text())
    assert sealing["record"]["size"] == bidders - 1
    opening = json.loads((out / "opening-record.json").read_text())["record"]
    assert len(opening["lines"]) == bidders - 1
    assert opening["sealing_record_sha256"]
    # Signed by the platform, and every opened envelope is one the sealing record sealed.
    checked = cli(
        "-m", "bidding", "verify-opening", str(out / "opening-record.json"),
        "--platform-key", str(key), "--sealing-record", str(out / "sealing-record.json"),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "every opened envelope is in the sealing record" in checked.stdout

    # The scoring file recomputes, and the ranking in the summary is the file's.
    scoring = out / "scoring.json"
    verified = cli("-m", "evaluation", "verify", str(scoring))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    document = json.loads(scoring.read_text())
    ranked = sorted(
        (b for b in document["result"]["bids"] if b.get("rank") is not None),
        key=lambda b: b["rank"],
    )
    assert [r["bidder"] for r in summary["ranking"]] == [b["id"] for b in ranked]
    noncompliant = [b for b in document["result"]["bids"] if not b["compliant"]]
    assert len(noncompliant) >= 1  # the one priced on the wrong side of the limit
    if result.reached == "award":
        assert summary["winner"] == ranked[0]["id"]
        assert tender.status == TenderStatus.AWARDED
        pdf = out / "evaluation-record.pdf"
        trust = out / "platform-ca-cert.pem"
        verified = cli("-m", "evaluation", "verify", str(pdf), "--trust", str(trust))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "the last signature covers the whole file" in verified.stdout
        from app.records.signing import signatures_ok

        # The platform's signature, then one per panel member when they countersigned.
        assert signatures_ok(pdf.read_bytes(), expected=1 + (5 if countersign else 0))
        assert (out / "platform-signing-cert.pem").read_bytes().startswith(b"-----BEGIN")

    # The tender's audit export: its events in full, other tenders' as stubs, between two
    # signed checkpoints; the offline verifier accepts it.
    lines = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "export" and lines[0]["tender"] == tender.id
    assert lines[1]["type"] == "checkpoint" or lines[0]["from_seq"] == 0
    assert lines[-1]["type"] == "checkpoint"
    actions = [e["action"] for e in lines if e["type"] == "event"]
    for action in ("tender.created", "tender.published", "bid.withdrawn", "tender.opened"):
        assert action in actions
    assert all(e["tender"] != tender.id for e in lines if e["type"] == "stub")
    checked = cli(
        "-m", "bidding", "verify-audit", str(out / "audit.jsonl"),
        "--platform-key", str(key), "--tender", str(tender.id),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "complete and unaltered" in checked.stdout
    # The OCDS package as the public API serves it, valid against the release package schema.
    ocds = json.loads((out / "ocds.json").read_text())
    assert_valid(package_validator(), ocds)
    if result.reached == "award":
        assert ocds["releases"][-1]["awards"]
        # The signed checkpoints anchoring its milestones are documents of its releases.
        last = ocds["releases"][-1]
        anchors = [d for d in last["tender"]["documents"] if d["documentType"] == "auditCheckpoint"]
        assert anchors and all("/audit/checkpoints/" in d["url"] for d in anchors)
        assert ocds["releases"][0]["ocid"].count(tender.centre.code) == 1
        # The verification bundle: unpacked in an empty folder, its documented commands
        # pass, and each of its files tampered with is caught by every command reading it.
        caught = check_bundle(out / "verification-bundle.zip", tmp_path / "bundle")
        assert {"verify-bundle"} <= set(caught["tender-document.pdf"])
        assert "verify-audit" in caught["audit.jsonl"]
        assert "verify-opening" in caught["opening-record.json"]
        assert "verify-opening" in caught["sealing-record.json"]
        assert "verify" in caught["evaluation-record.pdf"]
        assert "verify" in caught["platform-ca-cert.pem"]
        notices = [name for name in caught if name.startswith("notices/")]
        assert len(notices) == 2 and all("verify-notice" in caught[n] for n in notices)


# --- the drill, a tender of three lots ----------------------------------------------------

# Every stage exists for several lots too: the drill goes all the way.
LOTS_AT_LEAST = "award"


def test_the_drill_runs_a_tender_of_three_lots(app, tmp_path):
    """`--lots 3`: companies spread over the lots, one bidding for every lot with the
    strongest proposal; per lot its envelopes, opening lines, scoring file and ranking; the
    award across lots gives that company only as many lots as the limit (one), the others
    go to the next compliant bidder; everything the outsider checks still verifies."""
    out = tmp_path / "drill"
    lines: list[str] = []
    options = Options(
        template="goods",
        bidders=5,
        experts=5,
        seed=11,
        lots=3,
        countersign=False,
        echo=lines.append,
    )
    result = run(options, out=out)
    log = "\n".join(lines)
    assert reached_at_least(result, LOTS_AT_LEAST), log
    if result.stopped:
        assert "not available yet" in result.stopped and not result.failed, log
    tender = db.session.get(Tender, result.tender_id)
    assert [lot.reference for lot in tender.lots] == ["L1", "L2", "L3"]
    assert tender.max_lots_won == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reached"] == result.reached and summary["max_lots_won"] == 1
    assert "late envelope refused: The bid deadline has passed" in log
    assert "deadline has passed" in summary["refusals"][0]

    # Envelopes per lot: 2 lots for each of four companies and every lot for the fifth,
    # one replaced (L1) and one withdrawn (L2).
    bids = db.session.scalars(select(Bid).where(Bid.tender_id == tender.id)).all()
    lot_of = {lot.id: lot.reference for lot in tender.lots}
    standing: dict[str, int] = {}
    for bid in bids:
        assert bid.lot_id in lot_of
        if bid.status == BidStatus.SUBMITTED:
            standing[lot_of[bid.lot_id]] = standing.get(lot_of[bid.lot_id], 0) + 1
    assert standing == {"L1": 4, "L2": 3, "L3": 3}
    assert sorted(b.status for b in bids).count(BidStatus.SUPERSEDED) == 1
    assert [b.status for b in bids].count(BidStatus.WITHDRAWN) == 1
    lots_by_company: dict[int, set[str]] = {}
    for bid in bids:
        lots_by_company.setdefault(bid.company_id, set()).add(lot_of[bid.lot_id])
    assert sorted(len(lots) for lots in lots_by_company.values()) == [2, 2, 2, 2, 3]

    # Every receipt verifies with its envelope (named by lot).
    key = out / "platform-receipt-key.pem"
    receipts = sorted((out / "receipts").glob("*.json"))
    assert len(receipts) == len(bids) == 12
    assert {r.stem.rsplit("-", 1)[1] for r in receipts} == {"L1", "L2", "L3"}

    def envelope_of(receipt: Path) -> Path:
        return out / "envelopes" / f"{receipt.stem}.env"

    for receipt in receipts[:3]:
        checked = cli(
            "-m", "bidding", "verify-receipt", str(receipt),
            "--platform-key", str(key), "--envelope", str(envelope_of(receipt)),
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
    for receipt in receipts:  # each receipt names the lot its envelope is for
        assert json.loads(receipt.read_text())["receipt"]["lot"] == receipt.stem.rsplit("-", 1)[1]
    # One sealing record over every lot's envelopes, each leaf naming its lot; the opening
    # record's lines name them too.
    sealing = json.loads((out / "sealing-record.json").read_text())
    assert sealing["record"]["size"] == 10
    leaves = [leaf["lot"] for leaf in sealing["record"]["leaves"]]
    assert {lot: leaves.count(lot) for lot in set(leaves)} == standing
    opening = json.loads((out / "opening-record.json").read_text())["record"]
    assert sorted(line["lot"] for line in opening["lines"]) == ["L1"] * 4 + ["L2"] * 3 + ["L3"] * 3
    checked = cli(
        "-m", "bidding", "verify-opening", str(out / "opening-record.json"),
        "--platform-key", str(key), "--sealing-record", str(out / "sealing-record.json"),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "every opened envelope is in the sealing record" in checked.stdout

    # One scoring file per lot, each recomputing; the whole evaluation replays the award.
    assert not (out / "scoring.json").exists()
    assert [lot["lot"] for lot in summary["lots"]] == ["L1", "L2", "L3"]
    for lot in summary["lots"]:
        path = out / f"scoring-{lot['lot']}.json"
        verified = cli("-m", "evaluation", "verify", str(path))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert f"(lot {lot['lot']}): verified" in verified.stdout
        document = json.loads(path.read_text())
        assert document["tender"]["lot"] == lot["lot"]
        ranked = sorted(
            (b for b in document["result"]["bids"] if b.get("rank") is not None),
            key=lambda b: b["rank"],
        )
        assert [r["bidder"] for r in lot["ranking"]] == [b["id"] for b in ranked]
        assert all(r["company"] for r in lot["ranking"])
    verified = cli("-m", "evaluation", "verify", str(out / "lots-evaluation.json"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "every lot (L1, L2, L3) and the award match" in verified.stdout

    # The award across lots: the company bidding for every lot ranks first in each, wins
    # one (the first, by lot order) and is passed over in the others for the limit; each
    # other lot goes to its best-ranked compliant company under the limit.
    award = json.loads((out / "lots-evaluation.json").read_text())["award"]
    assert award["limit"] == 1 and award["rule"] == "lot_order"
    strong = {r["ranking"][0]["bidder"] for r in summary["lots"]}
    assert len(strong) == 1, summary["lots"]
    (strong,) = strong
    everywhere = next(c for c, lots in lots_by_company.items() if len(lots) == 3)
    assert db.session.get(Company, everywhere).registration_number == strong
    winners = [lot["winner"] for lot in summary["lots"]]
    assert all(winners) and len(set(winners)) == 3, summary["lots"]
    assert winners.count(strong) == 1 and winners[0] == strong
    for lot in summary["lots"][1:]:
        assert [p["company"] for p in lot["passed_over"]] == [strong]
        assert lot["passed_over"][0]["reason"] == "limit_reached"
        assert lot["winner"] == lot["ranking"][1]["bidder"] and lot["winner_rank"] == 2
    expected = "awarded" if result.reached == "award" else "ranked"
    assert {lot["status"] for lot in summary["lots"]} == {expected}
    if result.reached == "award":
        assert tender.status == TenderStatus.AWARDED and summary["status"] == "awarded"
        # An objection to lot L2 held up that lot's award only: L1 and L3 were awarded while
        # it was open, L2 once staff dismissed it.
        assert "objects to lot L2" in log
        assert "award notices published for lots L1, L3; lot L2's award waits" in log
        assert "objection dismissed; lot L2 awarded" in log
        assert len(summary["refusals"]) == 2
        assert "objection is still open" in summary["refusals"][1]
        # The signed record has a part per lot and the award across lots; its embedded
        # files are the ones signed, and it recomputes every lot and replays the award.
        pdf = out / "evaluation-record.pdf"
        verified = cli(
            "-m", "evaluation", "verify", str(pdf), "--trust", str(out / "platform-ca-cert.pem")
        )  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "the last signature covers the whole file" in verified.stdout
        assert "every lot (L1, L2, L3) and the award match" in verified.stdout
        from app.records.signing import signatures_ok

        assert signatures_ok(pdf.read_bytes(), expected=1)
        # The files the drill wrote are, byte for byte, the ones the record signed.
        from pypdf import PdfReader

        attached = PdfReader(pdf).attachments
        names = ["lots-evaluation.json", "scoring-L1.json", "scoring-L2.json", "scoring-L3.json"]
        assert sorted(attached) == names
        for name in names:
            assert attached[name] == [(out / name).read_bytes()], name

    # The audit export and the OCDS package, as for one lot.
    checked = cli(
        "-m", "bidding", "verify-audit", str(out / "audit.jsonl"),
        "--platform-key", str(key), "--tender", str(tender.id),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "complete and unaltered" in checked.stdout
    events = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    actions = [e["action"] for e in events if e["type"] == "event"]
    assert actions.count("opening.lot_failed") == 0 and "tender.opened" in actions
    if result.reached == "award":
        assert actions.count("results.award_published") == 3
        assert "results.objection_filed" in actions and "results.objection_dismissed" in actions
    ocds = json.loads((out / "ocds.json").read_text())
    assert_valid(package_validator(), ocds)
    last = ocds["releases"][-1]
    assert len(last["tender"]["lots"]) == 3
    if result.reached == "award":
        assert all(d.get("relatedLots") for d in last["bids"]["details"])
        # One active award per lot, to the company the award across lots chose.
        numbers = {lot.reference: str(lot.number) for lot in tender.lots}
        for lot in summary["lots"]:
            active = [
                a
                for a in last["awards"]
                if a["status"] == "active" and a["relatedLots"] == [numbers[lot["lot"]]]
            ]
            assert len(active) == 1, last["awards"]
            assert active[0]["suppliers"][0]["id"] == f"CN-USCC-{lot['winner']}"
        assert {lot["status"] for lot in last["tender"]["lots"]} == {"complete"}
        # The verification bundle: its documented commands pass, and tampering is caught.
        caught = check_bundle(out / "verification-bundle.zip", tmp_path / "bundle")
        assert "verify" in caught["evaluation-record.pdf"]
        assert "verify-opening" in caught["opening-record.json"]
        assert "verify-audit" in caught["audit.jsonl"]
        notices = [name for name in caught if name.startswith("notices/")]
        # A candidates and an award notice per lot.
        assert len(notices) == 6 and all("verify-notice" in caught[n] for n in notices)


def test_a_drill_of_several_lots_needs_enough_bidders(app, tmp_path):
    users = count(User)
    with pytest.raises(ValueError, match="3 lots of the goods template need at least 5 bidders"):
        run(Options(lots=3, bidders=4, echo=lambda _line: None), out=tmp_path / "x")
    with pytest.raises(ValueError, match="1 to 5 lots"):
        run(Options(lots=6, echo=lambda _line: None), out=tmp_path / "x")
    with pytest.raises(ValueError, match="win limit"):
        run(Options(lots=2, max_lots_won=3, echo=lambda _line: None), out=tmp_path / "x")
    assert count(User) == users and not (tmp_path / "x").exists()


# Seeds of the sale drill (4 bidders): with no technical score, equal prices tie and need
# the lot draw (seed 8 does); the others rank without one.
SALE_SEEDS = [5, 8, 12]


@pytest.mark.parametrize("seed", SALE_SEEDS)
def test_the_sale_drill_draws_lots_and_counts_compliant_bids_truly(app, seed):
    lines: list[str] = []
    options = Options(template="asset_sale", bidders=4, experts=5, seed=seed, echo=lines.append)
    result = run(options, stop_after="unblinded", out=None)
    log = "\n".join(lines)
    assert result.reached == "unblinded" and not result.stopped, log
    tender = db.session.get(Tender, result.tender_id)
    from app.evaluations import queries

    evaluation = queries.evaluation_of(tender)
    scored = json.loads(evaluation.scoring_json)["result"]
    assert scored["outcome"]["status"] == "ranked", log
    bids = scored["bids"]
    compliant = sum(1 for b in bids if b["compliant"])
    assert compliant >= 1
    review = next(line for line in lines if line.lstrip().startswith("review"))
    unblinded = next(line for line in lines if line.lstrip().startswith("unblinded"))
    # A sale has no technical pass marks: what passes the review is what is compliant.
    assert f"{compliant} of {len(bids)} bids pass the review" in review, log
    assert f"{compliant} of {len(bids)} bids compliant" in unblinded, log
    drawn = any(b.get("draw") for b in json.loads(evaluation.scoring_json)["bids"])
    assert ("lot draw" in unblinded) == drawn, log
    if seed == 8:
        assert drawn, log


def test_the_drill_leaves_the_real_clock_alone(app, tmp_path):
    before = datetime.now(UTC)
    result, _log = drill("goods", 4, None, stop_after="bids")
    assert CLOCK_OFFSET.get() is None
    assert abs(utcnow() - datetime.now(UTC)) < timedelta(seconds=1)
    tender = db.session.get(Tender, result.tender_id)
    # Backdated: everything it wrote is in the past, and the tender is open for bids now.
    assert tender.published_at < before
    assert tender.submission_deadline > before + timedelta(days=7)
    assert tender.status == TenderStatus.PUBLISHED
    received = db.session.scalars(select(Bid.received_at).where(Bid.tender_id == tender.id))
    assert all(moment < before for moment in received)


def test_the_simulated_clock_only_moves_forward(app):
    start = datetime.now(UTC) - timedelta(days=30)
    with SimulatedClock(start) as clock:
        assert abs(utcnow() - start) < timedelta(seconds=1)
        later = clock.advance(timedelta(days=2))
        assert later - start >= timedelta(days=2)
        assert clock.travel_to(start) >= later  # the past is left alone
        with pytest.raises(ClockError):
            clock.advance(timedelta(days=-1))
        with pytest.raises(ClockError), SimulatedClock(start):
            pass
    assert CLOCK_OFFSET.get() is None
    with pytest.raises(ValueError):
        SimulatedClock(datetime(2026, 1, 1))  # naive


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"template": "bridges"}, "template must be one of"),
        ({"experts": 4}, "odd number of experts, at least 5"),
        ({"experts": 3}, "odd number of experts, at least 5"),
        ({"bidders": 0}, "at least one bidder"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(app, tmp_path, options, message):
    users, tenders = count(User), count(Tender)
    with pytest.raises(ValueError, match=message):
        run(Options(**options, echo=lambda _line: None), out=tmp_path / "x")
    with pytest.raises(ValueError, match="stop_after"):
        run(Options(echo=lambda _line: None), stop_after="lunch")
    assert (count(User), count(Tender)) == (users, tenders)
    assert not (tmp_path / "x").exists()


def test_too_few_bids_fail_the_tender_at_the_opening(app, tmp_path):
    lines: list[str] = []
    options = Options(template="goods", bidders=2, incidents=False, echo=lines.append)
    result = run(options, out=tmp_path / "failed")
    assert result.failed and result.reached == "opening"
    assert "tender FAILED" in "\n".join(lines)
    assert db.session.get(Tender, result.tender_id).status == TenderStatus.FAILED
    summary = json.loads((tmp_path / "failed" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["winner"] is None
    # A failed tender has its verification bundle too: no evaluation record, its documented
    # commands pass and catch every tampered file.
    caught = check_bundle(tmp_path / "failed" / "verification-bundle.zip", tmp_path / "bundle")
    assert "evaluation-record.pdf" not in caught and "verify-audit" in caught["audit.jsonl"]


def test_the_command_runs_on_a_fresh_empty_database(tmp_path):
    env = {
        **os.environ,
        "FAIRBID_ENV": "testing",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "FAIRBID_INSTANCE_DIR": str(tmp_path / "instance"),
        "REDIS_URL": "",
    }
    out = tmp_path / "out"
    done = cli(
        "-m", "flask", "--app", "app", "scenario", "run", "--bidders", "4", "--experts", "5",
        "--template", "goods", "--seed", "3", "--out", str(out), "--stop-after", "opening",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for stage in STAGES[: STAGES.index("opening") + 1]:
        assert f"  {stage:<11}" in done.stdout
    assert json.loads((out / "summary.json").read_text())["reached"] == "opening"
    assert (out / "opening-record.json").exists() and (out / "sealing-record.json").exists()
    refused = cli(
        "-m", "flask", "--app", "app", "scenario", "run", "--experts", "4", "--out", str(out),
        env=env,
    )  # fmt: skip
    assert refused.returncode == 1 and "odd number of experts" in refused.stderr
    # --lots: the same database, a tender of three lots as far as the opening.
    lots = tmp_path / "lots"
    done = cli(
        "-m", "flask", "--app", "app", "scenario", "run", "--lots", "3", "--bidders", "5",
        "--seed", "3", "--out", str(lots), "--stop-after", "opening", "--no-migrate",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lot L1: 4, lot L2: 3, lot L3: 3" in done.stdout
    summary = json.loads((lots / "summary.json").read_text())
    assert [(lot["lot"], lot["status"]) for lot in summary["lots"]] == [
        ("L1", "evaluating"),
        ("L2", "evaluating"),
        ("L3", "evaluating"),
    ]
    refused = cli(
        "-m", "flask", "--app", "app", "scenario", "run", "--lots", "3", "--bidders", "4",
        "--out", str(lots), env=env,
    )  # fmt: skip
    assert refused.returncode == 1 and "need at least 5 bidders" in refused.stderr


# --- the demo seed ------------------------------------------------------------------------


def test_the_demo_seed_leaves_a_tender_in_every_stage(app):
    from app.demo import DEMO_STAGES, seed
    from app.opening.operations import session_of

    lines: list[str] = []
    seed(echo=lines.append)
    text = "\n".join(lines)
    now = utcnow()
    tenders = {
        t.reference: t
        for t in db.session.scalars(select(Tender).where(Tender.reference.like("HZ-DEMO-%")))
    }
    assert sorted(tenders) == sorted(row[0] for row in DEMO_STAGES)
    for reference, *_rest, label in DEMO_STAGES:
        assert reference in text and label in text

    open_for_bids = tenders["HZ-DEMO-OPEN"]
    assert open_for_bids.status == TenderStatus.PUBLISHED
    assert open_for_bids.submission_deadline > now + timedelta(days=7)  # a live countdown
    awaiting = tenders["HZ-DEMO-CLOSED"]
    assert awaiting.submission_deadline < now and awaiting.opening_at < now
    assert awaiting.status in (TenderStatus.PUBLISHED, TenderStatus.CLOSED)
    assert session_of(awaiting) is None  # the demo custodians open it
    # One tender closes a few minutes after seeding: the clock closes and seals it.
    closing = tenders["HZ-DEMO-CLOSING"]
    assert closing.status == TenderStatus.PUBLISHED
    assert now < closing.submission_deadline <= now + timedelta(minutes=6)
    from app.clock.service import tick

    report = tick(closing.submission_deadline + timedelta(seconds=5))
    assert ("close", closing.id) in report.performed
    grace = timedelta(seconds=app.config["SEALING_GRACE_SECONDS"])
    report = tick(closing.submission_deadline + grace + timedelta(seconds=5))
    assert ("seal", closing.id) in report.performed
    assert tenders["HZ-DEMO-EVAL"].status == TenderStatus.EVALUATING
    assert tenders["HZ-DEMO-FAIL"].status == TenderStatus.FAILED
    # Candidates and award need the signed record (app/records): as far as the stages go.
    assert tenders["HZ-DEMO-CAND"].status in (TenderStatus.CANDIDATES, TenderStatus.EVALUATING)
    assert tenders["HZ-DEMO-AWARD"].status in (TenderStatus.AWARDED, TenderStatus.EVALUATING)
    # Everything the drill wrote lies in the past of the real clock.
    assert all(t.created_at < now for t in tenders.values())
    assert_the_tour_leaves_every_role_something_to_do(tenders, text)

    # Idempotent: a second seed adds nothing and shows the stored credentials again.
    users = count(User)
    again: list[str] = []
    seed(echo=again.append)
    assert "Demo data already present." in again[0]
    assert count(User) == users
    assert db.session.scalar(
        select(func.count()).select_from(Tender).where(Tender.reference.like("HZ-DEMO-%"))
    ) == len(DEMO_STAGES)


def assert_the_tour_leaves_every_role_something_to_do(tenders: dict, text: str) -> None:
    """The guided tour: an expert with an open score sheet and one invited, a ceremony
    waiting for the demo custodians, a company awaiting approval, the demo experts in the
    pool, and the printed credentials naming the account for each part."""
    from app.companies.models import Company, CompanyStatus
    from app.custody.models import KeyShare
    from app.demo import DEMO_EXPERTS
    from app.evaluations import operations as evaluation_ops
    from app.panels import operations as panels
    from app.panels.models import ExpertProfile, MemberStatus

    experts = [db.session.scalar(select(User).where(User.email == e)) for e in DEMO_EXPERTS]
    evaluating = tenders["HZ-DEMO-EVAL"]
    profiles = [db.session.get(ExpertProfile, e.id) for e in experts]
    assert all(p is not None and p.available for p in profiles)
    assert {p.centre_id for p in profiles} == {evaluating.centre_id}
    statuses = {e.email: panels.member_of(e, evaluating).status for e in experts}
    assert MemberStatus.ACCEPTED in statuses.values(), statuses
    # Every demo expert sits on the panel: accepted (the draw may have seated them, and the
    # drill accepts its drawn members) or invited to the seat handed over to them.
    assert set(statuses.values()) <= {MemberStatus.ACCEPTED, MemberStatus.INVITED}, statuses
    scorer = next(e for e in experts if statuses[e.email] == MemberStatus.ACCEPTED)
    sheet = evaluation_ops.my_sheet(scorer, evaluating)
    assert sheet.bids and sheet.criteria and not sheet.locked
    for invited in (e for e in experts if statuses[e.email] == MemberStatus.INVITED):
        assert evaluating.id in {m.tender_id for m in panels.invitations_of(invited)}
    # Scoring still counts five accepted members once the invitation is answered.
    seated = [m for m in panels.members_of(evaluating) if m.status != MemberStatus.REMOVED]
    assert len(seated) == 5
    # The ceremony waits for the demo custodians (their shares, none unlocked).
    custodians = db.session.scalars(
        select(User).where(User.email.like("custodian%@demo.fairbid.example"))
    ).all()
    shares = db.session.scalars(
        select(KeyShare).where(KeyShare.tender_id == tenders["HZ-DEMO-CLOSED"].id)
    ).all()
    assert {s.custodian_id for s in shares} == {c.id for c in custodians}
    # A company awaits the staff's approval.
    assert db.session.scalar(select(Company.id).where(Company.status == CompanyStatus.PENDING))
    # The credentials say which account to try for which part.
    for account in ("bidder1@", "staff@", "custodian1@", "supervisor@", "admin@"):
        assert f"  {account}..." in text
    # Each demo expert's line names what that expert finds (the draw decides whether the
    # others were seated and accepted by the drill or invited to a handed-over seat).
    tasks = {
        MemberStatus.ACCEPTED: "your technical score sheet is open",
        MemberStatus.INVITED: "an invitation to the panel",
    }
    for expert in experts:
        account = expert.email.split("@")[0] + "@..."
        line = next(row for row in text.splitlines() if row.strip().startswith(account))
        assert tasks[statuses[expert.email]] in line, (line, statuses[expert.email])
    assert "closes a few minutes after start" in text


def test_the_command_offers_every_stage_and_template():
    from app import tender_templates
    from app.scenario.cli import scenario_run

    choices = {p.name: list(getattr(p.type, "choices", [])) for p in scenario_run.params}
    assert choices["stop_after"] == list(STAGES)
    assert choices["template"] == list(tender_templates.BUILTIN_KEYS)
    lots = next(p for p in scenario_run.params if p.name == "lots")
    assert (lots.default, lots.type.min, lots.type.max) == (1, 1, 5)
