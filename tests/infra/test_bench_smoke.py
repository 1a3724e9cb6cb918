"""The in-process benchmarks of `make bench` still run: each script with tiny settings, as a
subprocess, exits 0, prints its ratio line and leaves nothing in its temporary folder.

No figure is checked (tests never time things); this catches a benchmark broken by a change
elsewhere, as bench_record.py was when signature checks began to read the CA's revocation
list from the database. The server benchmarks (portal, surge, watchers) start gunicorn and
need minutes; `make bench` runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CASES = {
    "envelope": (
        ["bench_envelope.py", "--size-mib", "2", "--repeat", "1"],
        "opening / raw decrypt = ",
    ),
    "opening": (
        ["bench_opening.py", "--envelopes", "3", "--size-mb", "0.2", "--repeat", "1"],
        "opening vs raw decrypt = ",
    ),
    "scoring": (
        ["bench_scoring.py", "--bids", "10", "--experts", "2", "--criteria", "3", "--repeat", "1"],
        "ratio score / parse+validate",
    ),
    "lots": (
        ["bench_lots.py", "--lots", "2", "--bids", "5", "--companies", "8", "--repeat", "1"],
        "ratio (lots + slowest award) / one lot",
    ),
    "record": (
        ["bench_record.py", "--bids", "4", "--experts", "2", "--criteria", "2", "--repeat", "1"],
        "signature valid: True",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_with_tiny_settings(name, tmp_path):
    arguments, expected = CASES[name]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    environment = {**os.environ, "TMPDIR": str(scratch)}
    for variable in ("DATABASE_URL", "REDIS_URL"):
        environment.pop(variable, None)
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / arguments[0]), *arguments[1:]],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout, result.stdout[-3000:]
    assert list(scratch.iterdir()) == []  # temporary files and keys removed
