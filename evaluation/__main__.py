"""``python -m evaluation``: score, verify and validate scoring files.

Exit status: 0 done (verified); 1 ``verify`` found differences or a bad signature; 2 the
input could not be used (unreadable, not a valid scoring file, a PDF without one, a usage
error). A signed evaluation record (PDF) is verified with its signatures (``--trust``), then
through its embedded scoring.json (evaluation.pdf); the record of a tender divided into lots
through its lots-evaluation.json and every lot's scoring-<lot>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from evaluation.lots import LOTS_FORMAT
from evaluation.model import ScoringFileError
from evaluation.scoring_file import (
    FORMAT_HELP,
    dumps,
    is_pdf,
    parse_json,
    schema,
    score,
    validate,
    verify,
)

EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_UNUSABLE = 2

PDF_MESSAGE = (
    "{name} is a PDF without a usable scoring file: {reason}. Give a signed evaluation "
    "record (its scoring.json attachment is read), or the scoring file itself."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Score a tender's bids from a scoring file, or verify a scored one.\n"
        "Exit status: 0 done (verified); 1 verify found differences; 2 FILE cannot be used\n"
        "(unreadable, not a valid scoring file, a PDF without one).\nFILE may be a signed "
        "evaluation record (PDF): its embedded scoring.json is used (for a tender divided "
        "into lots: lots-evaluation.json and each lot's scoring-<lot>.json).",
        epilog=FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_score = sub.add_parser(
        "score",
        help="print the scoring file completed with its result",
        description="Validate FILE, compute the evaluation and print the completed scoring "
        "file (canonical JSON). An existing result in FILE is replaced.",
        epilog=FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_score.add_argument("file", metavar="FILE", help="scoring file, or - for standard input")
    p_score.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    p_verify = sub.add_parser(
        "verify",
        help="check a record's signatures, recompute the result and list every difference",
        description="For a signed evaluation record (PDF): check every signature against "
        "the trust root given with --trust (intact, valid, trusted), that the last one "
        "covers the whole file, and that the embedded scoring.json is the one the platform "
        "signed (a tender divided into lots: lots-evaluation.json and every lot's "
        "scoring-<lot>.json, each the lot's entry of the lots file; every lot is recomputed "
        "and the award across lots replayed). Then recompute the result from the input "
        "part of the scoring file and compare it with the recorded one. Exit 0 when all "
        "holds, 1 naming every problem or difference, 2 when FILE cannot be used.",
    )
    p_verify.add_argument("file", metavar="FILE", help="signed record (PDF), or scored file")
    p_verify.add_argument(
        "--trust",
        metavar="CA.pem",
        help="the platform CA's certificate (PEM): required for a PDF. Published at "
        "/api/v1/platform/signing-ca.pem; the drill writes it as platform-ca-cert.pem",
    )
    p_verify.add_argument(
        "--crl",
        metavar="FILE",
        help="the platform CA's certificate revocation list (PEM or DER), published at "
        "/api/v1/platform/signing-ca.crl: a signature made after its certificate was "
        "revoked (a panel member's lost key) fails the record",
    )
    p_validate = sub.add_parser(
        "validate",
        help="check FILE against the format and list every problem",
        description="Check the input part of FILE (the JSON Schema plus the rules it cannot "
        "express) and list every problem with its path.",
    )
    p_validate.add_argument("file", metavar="FILE", help="scoring file, or - for stdin")
    sub.add_parser("schema", help="print the JSON Schema of the scoring file")
    p_replay = sub.add_parser(
        "draw-replay",
        help="recompute a panel draw from its published JSON",
        description="Recompute a panel draw from the JSON the platform publishes at "
        "/panels/tenders/ID/draw.json: check the seed against its inputs (sealing-record "
        "Merkle root and draw time), then print the initially drawn and the current panel "
        "(user ids; null for a seat left vacant) and the commitment the file makes (seed, "
        "salted hashes of the eligible list and of the outcome). Before the award or failure "
        "notice draw.json holds only that commitment; with --commitment, check it against "
        "the full file published with the result. `non_technical` lists the specialties that do "
        "not count toward the two-thirds of technical or economic seats (default: legal). "
        "Exit 0 when the seed matches its inputs (and the full file the commitment), 1 when "
        "it does not, 2 when FILE "
        "cannot be used.",
    )
    p_replay.add_argument("file", metavar="FILE", help="draw JSON, or - for stdin")
    p_replay.add_argument(
        "--commitment",
        metavar="EARLIER",
        help="the commitment published before the result (draw.json then): check that FILE, "
        "the full draw published with the award or failure notice, is the draw it committed "
        "to (exit 1 when it is not)",
    )
    p_screens = sub.add_parser(
        "screens",
        help="price screens of one competition (red flags for supervisors)",
        description='Read {"prices": ["812000.00", ...]} (optional "ceiling": a decimal '
        'string; optional "comparable_margins": the (b2 - b1) / b1 of comparable '
        "competitions, for Cardinal R024/R058) and print n, cv, skewness, kurtosis, diffp, "
        "rd, rdnor (decimal strings, 6 places; null where n is too small or the statistic "
        "is undefined) and the flags raised with the default thresholds (see the README, "
        '"Red flags"). Exit 0, or 2 when FILE cannot be used.',
    )
    p_screens.add_argument("file", metavar="FILE", help="JSON file, or - for stdin")
    p_award = sub.add_parser(
        "award",
        help="decide the winner of every lot under a per-company win limit, or replay it",
        description="FILE is a lot-award document (format fairbid-lot-award/1: limit, rule "
        "lot_order | max_total_score | min_total_price, and per lot, in the tender's lot "
        "order, its ranking of compliant bidders: company, total, price). Without a result "
        "in FILE, print the document completed with the award and its trace; with one, "
        "recompute it and list every difference. Exit 0 done (the recorded award matches), "
        "1 it differs, 2 FILE cannot be used.",
    )
    p_award.add_argument("file", metavar="FILE", help="lot-award JSON, or - for stdin")
    return parser


def _screens(data: bytes, name: str) -> int:
    from evaluation.screens import read_prices, screen_prices

    try:
        document = json.loads(data)
        prices, ceiling, margins = read_prices(document)
        result = screen_prices(prices, ceiling=ceiling, comparable_margins=margins)
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"error: {name}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    sys.stdout.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _award(data: bytes, name: str) -> int:
    from evaluation.lots import LotAwardError, award_lots, award_to_json, input_from_json, replay

    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise LotAwardError("not a JSON object")
        award_input = input_from_json(doc)
    except (ValueError, LotAwardError) as exc:
        print(f"error: {name} is not a usable lot-award document: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if "result" not in doc:
        award = award_lots(award_input.lots, award_input.limit, award_input.rule)
        sys.stdout.write(json.dumps(award_to_json(award_input, award), indent=2) + "\n")
        return EXIT_OK
    differences = replay(doc)
    if differences:
        print(f"{name}: {len(differences)} difference(s) from the recomputed award:")
        for difference in differences:
            print(f"  {difference}")
        return EXIT_DIFFERENT
    print(f"{name}: verified, the award matches the recomputation")
    return EXIT_OK


COMMITMENT_ONLY = (
    "{name} is a commitment, not the full draw: until the award or failure notice the "
    "platform publishes only the seed and the hashes of the eligible list and of the outcome. "
    "Replay the full draw file published with the result, and give this file with "
    "--commitment to check that it is the draw committed to."
)


def _draw_replay(data: bytes, name: str, earlier_name: str | None) -> int:
    from evaluation.draw import (
        NON_TECHNICAL,
        DrawError,
        check_commitment,
        commitment,
        replay,
        seed_from,
    )

    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and "eligible" not in doc and "eligible_sha256" in doc:
            print(f"error: {COMMITMENT_ONLY.format(name=name)}", file=sys.stderr)
            return EXIT_UNUSABLE
        inputs = doc["seed_inputs"]
        expected = seed_from(inputs["merkle_root"], inputs["draw_time"]).hex()
        result = replay(
            doc["eligible"],
            doc["size"],
            doc["quotas"],
            doc["seed"],
            doc.get("redraws", ()),
            frozenset(doc.get("non_technical", NON_TECHNICAL)),
        )
        committed = commitment(doc)
    except (ValueError, KeyError, TypeError, AttributeError, DrawError) as exc:
        print(f"error: not a replayable draw: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    out = {"seed_matches_inputs": expected == doc["seed"], **result, "commitment": committed}
    differences: list[str] = []
    if earlier_name is not None:
        try:
            earlier = json.loads(_read(earlier_name))
            differences = check_commitment(doc, earlier)
        except OSError as exc:
            print(f"error: cannot read {earlier_name}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        except (ValueError, KeyError, TypeError, AttributeError, DrawError) as exc:
            print(f"error: {earlier_name} is not a usable commitment: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        out["commitment_matches"] = not differences
        out["commitment_differences"] = differences
    sys.stdout.write(json.dumps(out) + "\n")
    return EXIT_OK if expected == doc["seed"] and not differences else EXIT_DIFFERENT


def _check_signatures(
    name: str, data: bytes, trust: str | None, crl: str | None = None
) -> int | None:
    """Print what was checked; an exit status when the record fails (or cannot be checked),
    None when every signature holds."""
    from evaluation.pdf import record_problems

    if not trust:
        print(
            f"error: {name} is a PDF (a signed record): give the platform CA's certificate with "
            "--trust CA.pem (published at /api/v1/platform/signing-ca.pem; the drill writes "
            "platform-ca-cert.pem)",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE
    try:
        trust_pem = Path(trust).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {trust}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    crl_data = None
    if crl:
        try:
            crl_data = Path(crl).read_bytes()
        except OSError as exc:
            print(f"error: cannot read {crl}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNUSABLE
    checked, problems = record_problems(data, trust_pem, crl_data)
    if crl_data is not None and not problems:
        checked.append("no signature was made with a certificate revoked before it (--crl)")
    for line in checked:
        print(f"{name}: {line}")
    if problems:
        print(f"{name}: {len(problems)} problem(s) with its signatures:")
        for problem in problems:
            print(f"  {problem}")
        return EXIT_DIFFERENT
    return None


def _verify_lots(
    doc: dict,
    name: str,
    lot_files: dict[str, bytes] | None = None,
    signatures_failed: bool = False,
) -> int:
    """`verify` of the evaluation of a tender divided into lots (every lot's scoring file,
    then the award across lots). From a signed record (`lot_files`: its `scoring-<lot>.json`
    attachments), each lot's attached file must be its entry of the lots file."""
    from evaluation.lots import LotAwardError, verify_lots
    from evaluation.pdf import lot_file_problems

    differences = [] if lot_files is None else lot_file_problems(doc, lot_files)
    try:
        differences += verify_lots(doc)
    except LotAwardError as exc:
        print(f"error: {name} is not a usable evaluation of lots: {exc}", file=sys.stderr)
        return EXIT_DIFFERENT if signatures_failed or differences else EXIT_UNUSABLE
    if differences:
        print(f"{name}: {len(differences)} difference(s) from the recomputation:")
        for difference in differences:
            print(f"  {difference}")
        return EXIT_DIFFERENT
    if signatures_failed:
        print(
            f"{name}: NOT verified: every lot and the award match the recomputation, but "
            "the signatures do not hold (above)"
        )
        return EXIT_DIFFERENT
    lots = ", ".join(str(entry.get("lot")) for entry in doc["lots"])
    print(f"{name}: verified, every lot ({lots}) and the award match the recomputation")
    return EXIT_OK


def _lot_of(doc: object) -> str:
    """ " (lot REF)" for a scoring file of one lot of a tender divided into lots."""
    tender = doc.get("tender") if isinstance(doc, dict) else None
    lot = tender.get("lot") if isinstance(tender, dict) else None
    return f" (lot {lot})" if isinstance(lot, str) and lot else ""


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        sys.stdout.write(json.dumps(schema(), indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    try:
        data = _read(args.file)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if args.command == "draw-replay":
        return _draw_replay(data, args.file, args.commitment)
    if args.command == "screens":
        return _screens(data, args.file)
    if args.command == "award":
        return _award(data, args.file)
    signatures_failed = False
    lot_files: dict[str, bytes] | None = None
    if is_pdf(data):
        from evaluation.pdf import (
            LOTS_ATTACHMENT_NAME,
            EmbeddedFileError,
            has_signatures,
            lots_file_from_pdf,
            scoring_file_from_pdf,
        )

        attachment = "scoring.json"
        try:
            lots = lots_file_from_pdf(data)
            if lots is not None:  # the record of a tender divided into lots
                (embedded, lot_files), unusable = lots, None
                attachment = LOTS_ATTACHMENT_NAME
            else:
                embedded, unusable = scoring_file_from_pdf(data), None
        except EmbeddedFileError as exc:
            embedded, unusable = None, exc
        trust = getattr(args, "trust", None)
        if args.command == "verify" and (embedded is not None or (trust and has_signatures(data))):
            outcome = _check_signatures(args.file, data, trust, getattr(args, "crl", None))
            if outcome == EXIT_UNUSABLE:
                return outcome
            # A bad signature fails the record; the recomputation still runs, to show what
            # else differs.
            signatures_failed = outcome is not None
        if embedded is None:
            print(f"error: {PDF_MESSAGE.format(name=args.file, reason=unusable)}", file=sys.stderr)
            # A signed record whose signatures failed is a failed verification (1), not just
            # an unusable input.
            return EXIT_DIFFERENT if signatures_failed else EXIT_UNUSABLE
        data = embedded
        print(f"{args.file}: reading its embedded {attachment}", file=sys.stderr)
    try:
        doc = parse_json(data)
        if args.command == "score":
            text = dumps(score(doc))
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
            return EXIT_OK
        if args.command == "validate":
            validate(doc)
            print(f"{args.file}: valid scoring file")
            return EXIT_OK
        if isinstance(doc, dict) and doc.get("format") == LOTS_FORMAT:
            return _verify_lots(doc, args.file, lot_files, signatures_failed)
        differences = verify(doc)
    except ScoringFileError as exc:
        print(f"error: {args.file} is not a valid scoring file:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_UNUSABLE
    if differences:
        print(f"{args.file}: {len(differences)} difference(s) from the recomputed result:")
        for difference in differences:
            print(f"  {difference}")
        return EXIT_DIFFERENT
    if signatures_failed:
        print(
            f"{args.file}: NOT verified: the result matches the recomputation, but the "
            "signatures do not hold (above)"
        )
        return EXIT_DIFFERENT
    print(f"{args.file}{_lot_of(doc)}: verified, the result matches the recomputation")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
