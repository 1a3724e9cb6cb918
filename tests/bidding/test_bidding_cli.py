"""``python -m bidding``: every command, through a real subprocess, with its exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bidding import keys, merkle, receipts

COMMANDS = ["seal", "inspect", "verify-receipt", "verify-inclusion", "open", "keygen"]


def run(python: str, env: dict, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "bidding", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, python, cli_env) -> dict[str, Path]:
    """Keys made by ``keygen``, a bid sealed by ``seal``, a receipt and a sealing record."""
    base = tmp_path_factory.mktemp("cli")
    for kind in ("tender", "platform"):
        result = run(python, cli_env, "keygen", "--out", base / "keys", "--type", kind)
        assert result.returncode == 0, result.stderr
    (base / "bid.json").write_text(json.dumps({"price": "1234567.89", "days": "180"}))
    (base / "proposal.pdf").write_bytes(b"%PDF-1.7 technical proposal\n" * 1000)
    (base / "licence.pdf").write_bytes(b"%PDF-1.7 licence\n")
    (base / "empty.pdf").write_bytes(b"")
    result = run(
        python,
        cli_env,
        "seal",
        "--tender-key",
        base / "keys" / "tender.pub.pem",
        "--tender",
        "T-2025-001",
        "--bidder",
        "B-42",
        "--commercial",
        base / "bid.json",
        "--technical",
        base / "proposal.pdf",
        "--qualification",
        base / "licence.pdf",
        "--qualification",
        base / "empty.pdf",
        "--out",
        base / "bid.env",
    )
    assert result.returncode == 0, result.stderr
    envelope = (base / "bid.env").read_bytes()
    digest = hashlib.sha256(envelope).hexdigest()
    assert f"envelope SHA-256: {digest}" in result.stdout

    platform = keys.load_private_key_pem(
        (base / "keys" / "platform.key.pem").read_bytes(),
        kind=type(keys.generate_platform_key()),
    )
    moment = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    receipt = receipts.make_receipt("T-2025-001", "B-42", digest, len(envelope), moment, 3)
    (base / "receipt.json").write_bytes(
        receipts.dump_document(receipts.sign_receipt(receipt, platform))
    )
    others = [hashlib.sha256(bytes([i])).hexdigest() for i in range(4)]
    record = merkle.make_sealing_record(
        "T-2025-001", [*others[:2], digest, *others[2:]], moment, platform
    )
    (base / "record.json").write_bytes(receipts.dump_document(record))
    excluded = merkle.make_sealing_record("T-2025-001", others, moment, platform)
    (base / "record-without.json").write_bytes(receipts.dump_document(excluded))
    return {
        "base": base,
        "tender_pub": base / "keys" / "tender.pub.pem",
        "tender_key": base / "keys" / "tender.key.pem",
        "platform_pub": base / "keys" / "platform.pub.pem",
        "envelope": base / "bid.env",
        "receipt": base / "receipt.json",
        "record": base / "record.json",
        "record_without": base / "record-without.json",
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_help(python, cli_env, command: str) -> None:
    result = run(python, cli_env, command, "--help")
    assert result.returncode == 0
    assert "usage: python -m bidding " + command in result.stdout
    assert "Exit status" in result.stdout


def test_usage_errors(python, cli_env) -> None:
    assert run(python, cli_env).returncode == 2
    assert run(python, cli_env, "--help").returncode == 0
    assert run(python, cli_env, "frobnicate").returncode == 2
    assert run(python, cli_env, "seal", "--tender", "T").returncode == 2


def test_open_writes_every_part(python, cli_env, workspace, tmp_path: Path) -> None:
    out = tmp_path / "opened"
    digest = hashlib.sha256(workspace["envelope"].read_bytes()).hexdigest()
    result = run(
        python,
        cli_env,
        "open",
        workspace["envelope"],
        "--tender-private-key",
        workspace["tender_key"],
        "--out",
        out,
        "--tender",
        "T-2025-001",
        "--bidder",
        "B-42",
        "--expected-sha256",
        digest,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "commercial.json",
        "qualification-1",
        "qualification-2",
        "technical",
    ]
    assert json.loads((out / "commercial.json").read_text()) == {
        "days": "180",
        "price": "1234567.89",
    }
    assert (out / "technical").read_bytes() == (workspace["base"] / "proposal.pdf").read_bytes()
    assert (out / "qualification-1").read_bytes() == b"%PDF-1.7 licence\n"
    assert (out / "qualification-2").read_bytes() == b""


def test_open_refuses_and_writes_nothing(python, cli_env, workspace, tmp_path: Path) -> None:
    data = bytearray(workspace["envelope"].read_bytes())
    data[-100] ^= 0x01
    tampered = tmp_path / "tampered.env"
    tampered.write_bytes(bytes(data))
    other = tmp_path / "other-keys"
    assert run(python, cli_env, "keygen", "--out", other).returncode == 0
    cases = [
        (tampered, workspace["tender_key"], [], "fails authentication"),
        (workspace["envelope"], other / "tender.key.pem", [], "cannot be unsealed"),
        (workspace["envelope"], workspace["tender_key"], ["--tender", "T-OTHER"], "tender"),
        (workspace["envelope"], workspace["tender_key"], ["--bidder", "B-OTHER"], "bidder"),
        (
            workspace["envelope"],
            workspace["tender_key"],
            ["--expected-sha256", "0" * 64],
            "SHA-256",
        ),
    ]
    for number, (envelope, key, extra, reason) in enumerate(cases):
        out = tmp_path / f"out-{number}"
        result = run(
            python, cli_env, "open", envelope, "--tender-private-key", key, "--out", out, *extra
        )
        assert result.returncode == 1, (number, result.stderr)
        assert reason in result.stderr
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-keys", "tampered.env"]
    # A key that is not a key, a missing envelope: input errors (2).
    not_key = tmp_path / "not-a-key.pem"
    not_key.write_text("hello")
    result = run(
        python,
        cli_env,
        "open",
        workspace["envelope"],
        "--tender-private-key",
        not_key,
        "--out",
        tmp_path / "x",
    )
    assert result.returncode == 2 and "not a PEM private key" in result.stderr
    result = run(
        python,
        cli_env,
        "open",
        tmp_path / "missing.env",
        "--tender-private-key",
        workspace["tender_key"],
        "--out",
        tmp_path / "x",
    )
    assert result.returncode == 2
    # Non-empty output directory: refused.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    result = run(
        python,
        cli_env,
        "open",
        workspace["envelope"],
        "--tender-private-key",
        workspace["tender_key"],
        "--out",
        busy,
    )
    assert result.returncode == 1 and "not an empty directory" in result.stderr


def test_open_with_an_encrypted_key(python, cli_env, workspace, tmp_path: Path) -> None:
    private = keys.load_private_key_pem(workspace["tender_key"].read_bytes())
    locked = tmp_path / "locked.pem"
    locked.write_bytes(keys.private_key_to_pem(private, passphrase=b"s3cret"))
    args = ["open", workspace["envelope"], "--tender-private-key", locked]
    env_ok = {**cli_env, "TENDER_KEY_PASS": "s3cret"}
    result = run(
        python, env_ok, *args, "--out", tmp_path / "a", "--passphrase-env", "TENDER_KEY_PASS"
    )
    assert result.returncode == 0, result.stderr
    env_bad = {**cli_env, "TENDER_KEY_PASS": "wrong"}
    result = run(
        python, env_bad, *args, "--out", tmp_path / "b", "--passphrase-env", "TENDER_KEY_PASS"
    )
    assert result.returncode == 2 and "passphrase" in result.stderr
    assert not (tmp_path / "b").exists()


def test_seal_refusals(python, cli_env, workspace, tmp_path: Path) -> None:
    base = workspace["base"]
    common = [
        "--tender-key",
        workspace["tender_pub"],
        "--tender",
        "T-1",
        "--bidder",
        "B-1",
        "--technical",
        base / "proposal.pdf",
    ]
    float_bid = tmp_path / "float.json"
    float_bid.write_text('{"price": 1234.5}')
    result = run(
        python, cli_env, "seal", *common, "--commercial", float_bid, "--out", tmp_path / "a.env"
    )
    assert result.returncode == 1 and "decimal string" in result.stderr
    assert not (tmp_path / "a.env").exists()
    result = run(
        python,
        cli_env,
        "seal",
        *common,
        "--commercial",
        base / "bid.json",
        "--qualification",
        tmp_path / "missing.pdf",
        "--out",
        tmp_path / "b.env",
    )
    assert result.returncode == 2 and "missing.pdf" in result.stderr
    result = run(
        python,
        cli_env,
        "seal",
        "--tender-key",
        workspace["platform_pub"],
        "--tender",
        "T-1",
        "--bidder",
        "B-1",
        "--technical",
        base / "proposal.pdf",
        "--commercial",
        base / "bid.json",
        "--out",
        tmp_path / "c.env",
    )
    assert result.returncode == 2 and "X25519" in result.stderr
    result = run(
        python,
        cli_env,
        "seal",
        *common,
        "--commercial",
        base / "bid.json",
        "--out",
        workspace["envelope"],
    )
    assert result.returncode == 1 and "exists" in result.stderr
    result = run(
        python,
        cli_env,
        "seal",
        "--tender-key",
        workspace["tender_pub"],
        "--tender",
        "T 1",
        "--bidder",
        "B-1",
        "--technical",
        base / "proposal.pdf",
        "--commercial",
        base / "bid.json",
        "--out",
        tmp_path / "d.env",
    )
    assert result.returncode == 1 and "tender id" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.json"]


def test_inspect(python, cli_env, workspace, tmp_path: Path) -> None:
    result = run(python, cli_env, "inspect", workspace["envelope"], "--tender", "T-2025-001")
    assert result.returncode == 0, result.stderr
    assert "tender T-2025-001, bidder B-42" in result.stdout
    truncated = tmp_path / "short.env"
    truncated.write_bytes(workspace["envelope"].read_bytes()[:-1])
    result = run(python, cli_env, "inspect", truncated)
    assert result.returncode == 1 and "truncated" in result.stderr
    result = run(python, cli_env, "inspect", workspace["envelope"], "--bidder", "B-1")
    assert result.returncode == 1 and "bidder" in result.stderr


def test_verify_receipt(python, cli_env, workspace, tmp_path: Path) -> None:
    args = ["--platform-key", workspace["platform_pub"]]
    result = run(
        python,
        cli_env,
        "verify-receipt",
        workspace["receipt"],
        *args,
        "--envelope",
        workspace["envelope"],
    )
    assert result.returncode == 0, result.stderr
    assert "valid receipt" in result.stdout and "matches the receipt" in result.stdout

    document = json.loads(workspace["receipt"].read_text())
    document["receipt"]["received_at"] = "2025-03-01T09:29:59.000000Z"  # backdated
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(document))
    result = run(python, cli_env, "verify-receipt", altered, *args)
    assert result.returncode == 1 and "invalid signature" in result.stderr

    other = tmp_path / "other"
    run(python, cli_env, "keygen", "--out", other, "--type", "platform")
    result = run(
        python,
        cli_env,
        "verify-receipt",
        workspace["receipt"],
        "--platform-key",
        other / "platform.pub.pem",
    )
    assert result.returncode == 1 and "names signing key" in result.stderr

    other_envelope = tmp_path / "other.env"
    other_envelope.write_bytes(workspace["envelope"].read_bytes())
    with other_envelope.open("r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\x00")
    result = run(
        python, cli_env, "verify-receipt", workspace["receipt"], *args, "--envelope", other_envelope
    )
    assert result.returncode == 1 and "receipt is for envelope" in result.stderr

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{")
    result = run(python, cli_env, "verify-receipt", garbage, *args)
    assert result.returncode == 1 and "malformed receipt" in result.stderr
    result = run(python, cli_env, "verify-receipt", tmp_path / "missing.json", *args)
    assert result.returncode == 2


def test_verify_inclusion(python, cli_env, workspace, tmp_path: Path) -> None:
    result = run(
        python,
        cli_env,
        "verify-inclusion",
        workspace["receipt"],
        workspace["record"],
        "--platform-key",
        workspace["platform_pub"],
    )
    assert result.returncode == 0, result.stderr
    assert "is leaf 2 of 5" in result.stdout

    result = run(python, cli_env, "verify-inclusion", workspace["receipt"], workspace["record"])
    assert result.returncode == 0 and "signatures not checked" in result.stderr

    result = run(
        python,
        cli_env,
        "verify-inclusion",
        workspace["receipt"],
        workspace["record_without"],
        "--platform-key",
        workspace["platform_pub"],
    )
    assert result.returncode == 1 and "not in the sealing record" in result.stderr

    document = json.loads(workspace["record"].read_text())
    document["record"]["leaves"][0] = "0" * 64
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    result = run(python, cli_env, "verify-inclusion", workspace["receipt"], forged)
    assert result.returncode == 1 and "not the Merkle root" in result.stderr


def test_keygen_refuses_to_overwrite(python, cli_env, tmp_path: Path) -> None:
    assert run(python, cli_env, "keygen", "--out", tmp_path).returncode == 0
    result = run(python, cli_env, "keygen", "--out", tmp_path)
    assert result.returncode == 1 and "refusing to overwrite" in result.stderr
    assert (tmp_path / "tender.key.pem").stat().st_mode & 0o777 == 0o600


def test_seal_for_a_lot_and_refuse_it_under_another(
    python, cli_env, workspace, tmp_path: Path
) -> None:
    base = workspace["base"]
    out = tmp_path / "lot2.env"
    result = run(
        python,
        cli_env,
        "seal",
        "--tender-key",
        workspace["tender_pub"],
        "--tender",
        "T-2025-001",
        "--bidder",
        "B-42",
        "--lot",
        "2",
        "--commercial",
        base / "bid.json",
        "--technical",
        base / "proposal.pdf",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "for lot 2" in result.stdout
    result = run(python, cli_env, "inspect", out, "--lot", "2")
    assert result.returncode == 0 and "lot 2, bidder B-42" in result.stdout
    result = run(python, cli_env, "inspect", out, "--lot", "1")
    assert result.returncode == 1 and "lot '2', not '1'" in result.stderr
    opened = tmp_path / "opened"
    args = ("open", out, "--tender-private-key", workspace["tender_key"], "--out", opened)
    result = run(python, cli_env, *args, "--lot", "1")
    assert result.returncode == 1 and "lot '2', not '1'" in result.stderr
    assert not opened.exists()
    result = run(python, cli_env, *args, "--lot", "2")
    assert result.returncode == 0, result.stderr
    assert "for tender T-2025-001, lot 2" in result.stdout
    result = run(python, cli_env, "inspect", workspace["envelope"], "--lot", "1")
    assert result.returncode == 1 and "names no lot" in result.stderr
    result = run(
        python,
        cli_env,
        "seal",
        "--tender-key",
        workspace["tender_pub"],
        "--tender",
        "T-1",
        "--bidder",
        "B-1",
        "--lot",
        "bad lot",
        "--commercial",
        base / "bid.json",
        "--technical",
        base / "proposal.pdf",
        "--out",
        tmp_path / "bad.env",
    )
    assert result.returncode != 0 and "lot" in result.stderr
    assert not (tmp_path / "bad.env").exists()


def test_verify_inclusion_in_a_sealing_record_of_lots(
    python, cli_env, workspace, tmp_path: Path
) -> None:
    """A tender of several lots: a version 2 receipt naming the lot, a version 2 sealing
    record whose leaves carry their lot; a receipt for the wrong lot is refused."""
    platform = keys.load_private_key_pem(
        (workspace["base"] / "keys" / "platform.key.pem").read_bytes(),
        kind=type(keys.generate_platform_key()),
    )
    moment = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    digests = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]
    lots = ["1", "2", "2", "3", "1"]
    record = merkle.make_sealing_record("T-2025-001", digests, moment, platform, lots=lots)
    (tmp_path / "record.json").write_bytes(receipts.dump_document(record))

    def receipt_file(name: str, lot: str | None) -> Path:
        receipt = receipts.make_receipt("T-2025-001", "B-42", digests[2], 10, moment, 3, lot=lot)
        path = tmp_path / name
        path.write_bytes(receipts.dump_document(receipts.sign_receipt(receipt, platform)))
        return path

    key = ("--platform-key", workspace["platform_pub"])
    result = run(python, cli_env, "verify-receipt", receipt_file("r2.json", "2"), *key)
    assert result.returncode == 0, result.stderr
    assert "valid receipt: tender T-2025-001, lot 2, bidder B-42" in result.stdout
    args = ("verify-inclusion", tmp_path / "r2.json", tmp_path / "record.json")
    result = run(python, cli_env, *args, *key)
    assert result.returncode == 0, result.stderr
    assert "is leaf 2 of 5 for lot 2" in result.stdout
    result = run(python, cli_env, *args)
    assert result.returncode == 0 and "signatures not checked" in result.stderr

    result = run(
        python,
        cli_env,
        "verify-inclusion",
        receipt_file("r3.json", "3"),
        tmp_path / "record.json",
        *key,
    )
    assert result.returncode == 1 and "seals this envelope for lot 2" in result.stderr
    result = run(
        python,
        cli_env,
        "verify-inclusion",
        receipt_file("r-none.json", None),
        tmp_path / "record.json",
        *key,
    )
    assert result.returncode == 1 and "names no lot" in result.stderr

    # The old (version 1) receipt and record of the workspace still verify.
    result = run(
        python, cli_env, "verify-inclusion", workspace["receipt"], workspace["record"], *key
    )
    assert result.returncode == 0 and "is leaf 2 of 5 in" in result.stdout

    # An envelope moved to another lot in the published record: the root no longer matches.
    document = json.loads((tmp_path / "record.json").read_text())
    document["record"]["leaves"][2]["lot"] = "3"
    (tmp_path / "moved.json").write_text(json.dumps(document))
    result = run(python, cli_env, "verify-inclusion", tmp_path / "r2.json", tmp_path / "moved.json")
    assert result.returncode == 1 and "not the Merkle root" in result.stderr
