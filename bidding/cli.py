"""``python -m bidding``: seal, inspect and open envelopes, verify receipts, inclusion,
opening records, notices and audit exports.

Usable by a bidder without the platform.  Exit codes: 0 success (valid), 1 refused or
invalid (the reason is printed on stderr), 2 usage error or an input file that cannot be
read or parsed as a key.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import audit_export, bundle, keys, merkle, notices, opening_record, receipts
from . import commercial as commercial_form
from . import envelope as env
from .canonical import CanonicalJSONError, parse_json
from .errors import BiddingError, MalformedKey, WrongPassphrase

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_EPILOG = "Exit status: 0 success, 1 refused or invalid (reason on stderr), 2 usage/input error."


class _InputError(Exception):
    """An input file cannot be read or used (exit 2)."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _load_key(path: str, loader: Any, what: str, **kwargs: Any) -> Any:
    data = _read(path, what)
    try:
        return loader(data, **kwargs)
    except (MalformedKey, WrongPassphrase) as exc:
        raise _InputError(f"{what} {path}: {exc}") from exc


# --- commands -----------------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    key = keys.generate_platform_key() if args.type == "platform" else keys.generate_tender_key()
    try:
        private_path, public_path = keys.save_key_pair(args.out, key, name=args.type)
    except FileExistsError as exc:
        print(f"error: {exc}; refusing to overwrite", file=sys.stderr)
        return EXIT_INVALID
    print(f"wrote {private_path} (private, keep it secret) and {public_path} (public)")
    return EXIT_OK


def _load_spec(path: str) -> commercial_form.CommercialSpec:
    try:
        return commercial_form.load_spec(_read(path, "field specification"))
    except ValueError as exc:
        raise _InputError(f"field specification {path}: {exc}") from exc


def _cmd_seal(args: argparse.Namespace) -> int:
    public_key = _load_key(args.tender_key, keys.load_public_key_pem, "tender public key")
    spec = _load_spec(args.fields) if args.fields else None
    raw_commercial = _read(args.commercial, "commercial file")
    try:
        fields = parse_json(raw_commercial)
        if not isinstance(fields, dict):
            raise ValueError("the commercial file must hold a JSON object")
        commercial = env.encode_commercial(fields)
    except (CanonicalJSONError, ValueError) as exc:
        print(f"error: {args.commercial}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if spec is not None:
        problems = commercial_form.check_commercial(spec, fields, bounds=True)
        if len(commercial) > commercial_form.MAX_COMMERCIAL_SIZE:
            problems.insert(
                0,
                commercial_form.CommercialProblem(
                    "too_large",
                    "",
                    {
                        "size": str(len(commercial)),
                        "max": str(commercial_form.MAX_COMMERCIAL_SIZE),
                    },
                ),
            )
        if problems:
            print(f"error: {args.commercial} does not follow the tender's form:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem.message}", file=sys.stderr)
            return EXIT_INVALID
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to replace it)", file=sys.stderr)
        return EXIT_INVALID
    with contextlib.ExitStack() as stack:
        try:
            technical = stack.enter_context(open(args.technical, "rb"))
            qualifications = [stack.enter_context(open(path, "rb")) for path in args.qualification]
        except OSError as exc:
            raise _InputError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        parts = env.bid_parts(commercial, technical, qualifications)
        fd, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or ".")
        try:
            with open(fd, "wb") as sink:
                result = env.seal(sink, public_key, args.tender, args.bidder, parts, lot=args.lot)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(temp_name, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
    lot = f" for lot {args.lot}" if args.lot else ""
    print(f"sealed {out}{lot}: {result.size} bytes")
    print(f"envelope SHA-256: {result.sha256}")
    for part in result.header.parts:
        print(f"  part {part.name}: {part.size} bytes")
    return EXIT_OK


def _expected_lot(args: argparse.Namespace) -> str | env.AnyLot | None:
    return args.lot if args.lot is not None else env.ANY_LOT


def _lot_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lot",
        metavar="REF",
        help="refuse unless the envelope is for this lot (checked before any key is used)",
    )


def _cmd_inspect(args: argparse.Namespace) -> int:
    try:
        handle = open(args.envelope, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _InputError(f"cannot read envelope {args.envelope}: {exc.strerror}") from exc
    with handle:
        info = env.inspect_envelope(
            handle,
            expected_tender=args.tender,
            expected_bidder=args.bidder,
            expected_lot=_expected_lot(args),
        )
    header = info.header
    lot = f", lot {header.lot}" if header.lot is not None else ""
    print(f"envelope format {header.version}, tender {header.tender}{lot}, bidder {header.bidder}")
    print(f"size {info.size} bytes, SHA-256 {info.sha256}")
    print(f"chunks: {header.chunk_count} of up to {header.chunk_size} bytes")
    for part in header.parts:
        print(f"  part {part.name}: {part.size} bytes")
    print("well-formed (content not verified: that needs the tender private key)")
    return EXIT_OK


def _cmd_open(args: argparse.Namespace) -> int:
    passphrase = None
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if value is None:
            raise _InputError(f"environment variable {args.passphrase_env} is not set")
        passphrase = value.encode("utf-8")
    private_key = _load_key(
        args.tender_private_key,
        keys.load_private_key_pem,
        "tender private key",
        passphrase=passphrase,
    )
    try:
        handle = open(args.envelope, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _InputError(f"cannot read envelope {args.envelope}: {exc.strerror}") from exc
    with handle:
        try:
            opened = env.open_envelope(
                handle,
                private_key,
                args.out,
                expected_tender=args.tender,
                expected_bidder=args.bidder,
                expected_sha256=args.expected_sha256,
                expected_lot=_expected_lot(args),
            )
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INVALID
    header = opened.header
    lot = f", lot {header.lot}" if header.lot is not None else ""
    print(f"opened envelope of bidder {header.bidder} for tender {header.tender}{lot}")
    for name, path in opened.files.items():
        print(f"  {name}: {path}")
    try:
        env.decode_commercial(opened.files["commercial"].read_bytes())
    except ValueError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    return EXIT_OK


def _platform_key(path: str) -> Ed25519PublicKey:
    key: Ed25519PublicKey = _load_key(
        path, keys.load_public_key_pem, "platform public key", kind=Ed25519PublicKey
    )
    return key


def _cmd_verify_receipt(args: argparse.Namespace) -> int:
    public_key = _platform_key(args.platform_key)
    data = _read(args.receipt, "receipt")
    receipt = receipts.verify_receipt(data, public_key)
    if args.envelope:
        try:
            with open(args.envelope, "rb") as handle:
                info = env.inspect_envelope(handle)
        except OSError as exc:
            raise _InputError(f"cannot read envelope {args.envelope}: {exc.strerror}") from exc
        if info.sha256 != receipt.envelope_sha256 or info.size != receipt.size:
            print(
                f"invalid: the receipt is for envelope {receipt.envelope_sha256} "
                f"({receipt.size} bytes), {args.envelope} is {info.sha256} ({info.size} bytes)",
                file=sys.stderr,
            )
            return EXIT_INVALID
        if info.header.lot != receipt.lot:
            print(
                f"invalid: the receipt is for lot {receipt.lot}, {args.envelope} for lot "
                f"{info.header.lot}",
                file=sys.stderr,
            )
            return EXIT_INVALID
    lot = f", lot {receipt.lot}" if receipt.lot is not None else ""
    print(
        f"valid receipt: tender {receipt.tender}{lot}, bidder {receipt.bidder}, "
        f"sequence {receipt.sequence}, received {receipt.received_at}"
    )
    print(f"envelope SHA-256 {receipt.envelope_sha256}, {receipt.size} bytes")
    if args.envelope:
        print(f"{args.envelope} matches the receipt")
    return EXIT_OK


def _cmd_verify_inclusion(args: argparse.Namespace) -> int:
    public_key = _platform_key(args.platform_key) if args.platform_key else None
    receipt_data = _read(args.receipt, "receipt")
    record_data = _read(args.sealing_record, "sealing record")
    if public_key is not None:
        receipt = receipts.verify_receipt(receipt_data, public_key)
    else:
        receipt = receipts.read_receipt(receipt_data)
        print(
            "warning: no --platform-key: signatures not checked, only the Merkle proof",
            file=sys.stderr,
        )
    record = merkle.verify_sealing_record(record_data, public_key)
    index = merkle.verify_receipt_inclusion(receipt, record)
    lot = f" for lot {receipt.lot}" if receipt.lot is not None else ""
    print(
        f"included: envelope {receipt.envelope_sha256} is leaf {index} of {record.size}{lot} "
        f"in the sealing record of tender {record.tender} (root {record.root}, "
        f"sealed {record.sealed_at})"
    )
    return EXIT_OK


def _cmd_verify_opening(args: argparse.Namespace) -> int:
    public_key = _platform_key(args.platform_key)
    data = _read(args.opening_record, "opening record")
    sealing = _read(args.sealing_record, "sealing record") if args.sealing_record else None
    body = opening_record.verify_opening_record(data, public_key, sealing)
    print(
        f"valid opening record: tender {body['tender']} ({body['reference']}), opened "
        f"{body['opened_at']}, {len(body['lines'])} line(s), signed by the platform key"
    )
    if sealing is not None:
        print("every opened envelope is in the sealing record it names")
    return EXIT_OK


def _cmd_verify_notice(args: argparse.Namespace) -> int:
    body = notices.verify_notice(_read(args.notice, "notice"), _platform_key(args.platform_key))
    print(
        f"valid {body['kind']} notice {body['notice']} of tender {body['tender']} "
        f"({body['reference']}), published {body['published_at']}, signed by the platform key"
    )
    return EXIT_OK


def _cmd_verify_audit(args: argparse.Namespace) -> int:
    summary = audit_export.verify_export(
        _read(args.export, "audit export"), _platform_key(args.platform_key), args.tender
    )
    first = summary.first_checkpoint
    opening = (
        f"signed checkpoint at event {first.seq} ({first.made_at})" if first else "the genesis"
    )
    last = summary.last_checkpoint
    print(
        f"valid audit export of tender {summary.tender}: events {summary.from_seq + 1}.."
        f"{summary.to_seq} complete and unaltered from {opening} to the signed checkpoint at "
        f"event {last.seq} ({last.made_at}); {summary.events} event(s) of the tender "
        "(public payload, private payload hashed), "
        f"{summary.stubs} stub(s) of others, none the tender's; {summary.checkpoints} "
        "checkpoint(s) signed by the platform key"
    )
    return EXIT_OK


def _cmd_verify_bundle(args: argparse.Namespace) -> int:
    key = _platform_key(args.platform_key)
    directory = Path(args.directory)
    if not directory.is_dir():
        raise _InputError(f"{directory} is not a directory")
    summary = bundle.verify_bundle(directory, key)
    print(
        f"valid bundle of tender {summary.tender} ({summary.reference}): {summary.files} "
        "file(s), none missing, altered or added, as signed by the platform key "
        f"{keys.key_fingerprint(key)}"
    )
    return EXIT_OK


# --- parser -------------------------------------------------------------------------------


def _platform_key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform-key",
        required=True,
        metavar="PUB.pem",
        help="the platform's Ed25519 public key (PEM)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bidding",
        description="Fairbid sealed bids: seal and open envelopes, verify receipts and "
        "sealing-record inclusion, offline.",
        epilog=_EPILOG,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, epilog=_EPILOG)

    p = command("seal", "Seal a bid into an envelope for a tender's public key.")
    p.add_argument(
        "--tender-key",
        required=True,
        metavar="KEY.pem",
        help="the tender's public key (PEM, X25519), from the tender page",
    )
    p.add_argument("--tender", required=True, metavar="ID", help="tender id")
    p.add_argument("--bidder", required=True, metavar="ID", help="your bidder id")
    p.add_argument(
        "--lot",
        metavar="REF",
        help="the lot this bid is for, in a tender divided into lots (its reference on the "
        "tender page); the envelope's header binds it. Omit for a tender of one lot",
    )
    p.add_argument(
        "--commercial",
        required=True,
        metavar="BID.json",
        help="commercial fields as a JSON object; amounts as decimal strings, "
        'e.g. {"price": "1234567.89"}',
    )
    p.add_argument("--technical", required=True, metavar="FILE", help="technical proposal file")
    p.add_argument(
        "--qualification",
        action="append",
        default=[],
        metavar="FILE",
        help="qualification document (repeat for several, kept in order)",
    )
    p.add_argument("--out", required=True, metavar="BID.env", help="envelope to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--fields",
        metavar="SPEC.json",
        help="the tender's commercial field specification (its tender page / "
        "GET /api/v1/tenders/<id>/commercial-fields): refuse to seal a commercial file "
        "that does not follow it",
    )
    p.set_defaults(func=_cmd_seal)

    p = command("inspect", "Check an envelope's header and framing (no key needed).")
    p.add_argument("envelope", metavar="ENVELOPE")
    p.add_argument("--tender", metavar="ID", help="refuse unless the envelope is for this tender")
    p.add_argument("--bidder", metavar="ID", help="refuse unless the envelope is from this bidder")
    _lot_argument(p)
    p.set_defaults(func=_cmd_inspect)

    p = command("verify-receipt", "Verify a receipt's platform signature.")
    p.add_argument("receipt", metavar="RECEIPT.json")
    _platform_key_argument(p)
    p.add_argument(
        "--envelope",
        metavar="ENVELOPE",
        help="also check that this envelope file is the one receipted",
    )
    p.set_defaults(func=_cmd_verify_receipt)

    p = command("verify-inclusion", "Verify that a receipt's envelope is in a sealing record.")
    p.add_argument("receipt", metavar="RECEIPT.json")
    p.add_argument("sealing_record", metavar="SEALING_RECORD.json")
    p.add_argument(
        "--platform-key",
        metavar="PUB.pem",
        help="also verify both signatures with the platform's public key",
    )
    p.set_defaults(func=_cmd_verify_inclusion)

    p = command(
        "verify-opening",
        "Verify an opening record's platform signature (and, with the sealing record, that "
        "every opened envelope was sealed).",
    )
    p.add_argument("opening_record", metavar="OPENING_RECORD.json")
    _platform_key_argument(p)
    p.add_argument(
        "--sealing-record",
        metavar="SEALING_RECORD.json",
        help="the sealing record it names: checked by hash, signature and leaves",
    )
    p.set_defaults(func=_cmd_verify_opening)

    p = command("verify-notice", "Verify a signed result notice (candidates, award, failure).")
    p.add_argument("notice", metavar="NOTICE.json")
    _platform_key_argument(p)
    p.set_defaults(func=_cmd_verify_notice)

    p = command(
        "verify-audit",
        "Verify a tender's audit export: the complete, unaltered chain between two signed "
        "checkpoints, the tender's events with their public payload and their private "
        "payload's hash (no IP address), other tenders' events as stubs only.",
    )
    p.add_argument("export", metavar="AUDIT.jsonl")
    _platform_key_argument(p)
    p.add_argument("--tender", metavar="ID", help="refuse unless the export is of this tender")
    p.set_defaults(func=_cmd_verify_audit)

    p = command(
        "verify-bundle",
        "Verify a verification bundle's signed MANIFEST.json: every file present, unaltered, "
        "none added.",
    )
    p.add_argument("directory", metavar="DIR", help="the unpacked bundle")
    _platform_key_argument(p)
    p.set_defaults(func=_cmd_verify_bundle)

    p = command("open", "Verify and decrypt an envelope into a directory (all or nothing).")
    p.add_argument("envelope", metavar="ENVELOPE")
    p.add_argument(
        "--tender-private-key",
        required=True,
        metavar="KEY.pem",
        help="the tender's private key (PEM, X25519)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory to create (must not exist, or be empty)",
    )
    p.add_argument("--tender", metavar="ID", help="refuse unless the envelope is for this tender")
    p.add_argument("--bidder", metavar="ID", help="refuse unless the envelope is from this bidder")
    _lot_argument(p)
    p.add_argument(
        "--expected-sha256",
        metavar="HEX",
        help="refuse unless the envelope has this SHA-256 (from its receipt)",
    )
    p.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="environment variable holding the private key's PEM passphrase",
    )
    p.set_defaults(func=_cmd_open)

    p = command("keygen", "Generate a test key pair (PEM) into a directory.")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument(
        "--type",
        choices=["tender", "platform"],
        default="tender",
        help="tender: X25519 for sealing (default); platform: Ed25519 for signing",
    )
    p.set_defaults(func=_cmd_keygen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BiddingError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
