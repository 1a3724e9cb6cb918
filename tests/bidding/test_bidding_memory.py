"""Bounded memory: a ~200 MB envelope seals and opens in under 64 MiB of peak RSS.

Each step runs in a fresh subprocess that reports its own peak resident set size.  The
peak is read from ``VmHWM`` in ``/proc/self/status``: ``resource.getrusage``'s ``ru_maxrss``
also counts the parent's memory at fork time (Linux carries the pre-exec high-water mark
over), so under a large pytest process it would measure the test runner, not the library.
``ru_maxrss`` is only the fallback where ``/proc`` is missing.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

LIMIT_KIB = 64 * 1024
SIZE = 200 * 1000 * 1000

SEAL = textwrap.dedent(
    """
    import io, json, os, resource, sys
    from bidding import envelope, keys

    def peak_kib():
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    class Pattern(io.RawIOBase):
        '''SIZE bytes made on the fly: a random MiB repeated, never all in memory.'''
        def __init__(self, size):
            self.left = size
            self.block = os.urandom(1 << 20)
        def readable(self):
            return True
        def readinto(self, buffer):
            count = min(len(buffer), self.left, len(self.block))
            memoryview(buffer)[:count] = self.block[:count]
            self.left -= count
            return count

    key = keys.generate_tender_key()
    out_dir = sys.argv[1]
    keys.save_key_pair(out_dir, key)
    size = int(sys.argv[2])
    parts = [
        envelope.PartSource("commercial", io.BytesIO(b'{"price":"1.00"}'), 16),
        envelope.PartSource("technical", Pattern(size // 2), size // 2),
        envelope.PartSource("qualification-1", Pattern(size - size // 2), size - size // 2),
    ]
    with open(os.path.join(out_dir, "big.env"), "wb") as handle:
        result = envelope.seal(handle, key.public_key(), "T-BIG", "B-BIG", parts)
    print(json.dumps({"peak_kib": peak_kib(), "sha256": result.sha256, "size": result.size}))
    """
)

OPEN = textwrap.dedent(
    """
    import json, os, resource, sys
    from bidding import envelope, keys

    def peak_kib():
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    work, expected = sys.argv[1], sys.argv[2]
    with open(os.path.join(work, "tender.key.pem"), "rb") as handle:
        key = keys.load_private_key_pem(handle.read())
    with open(os.path.join(work, "big.env"), "rb") as handle:
        opened = envelope.open_envelope(
            handle, key, os.path.join(work, "opened"), expected_sha256=expected
        )
    sizes = {name: path.stat().st_size for name, path in opened.files.items()}
    print(json.dumps({"peak_kib": peak_kib(), "sizes": sizes}))
    """
)


def run_script(python: str, env: dict, script: str, *args: str) -> dict:
    result = subprocess.run(
        [python, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_large_envelope_seals_and_opens_in_bounded_memory(python, cli_env, tmp_path: Path) -> None:
    try:
        sealed = run_script(python, cli_env, SEAL, str(tmp_path), str(SIZE))
        assert sealed["size"] > SIZE
        assert sealed["peak_kib"] < LIMIT_KIB, f"sealing peak RSS {sealed['peak_kib']} KiB"
        opened = run_script(python, cli_env, OPEN, str(tmp_path), sealed["sha256"])
        assert opened["peak_kib"] < LIMIT_KIB, f"opening peak RSS {opened['peak_kib']} KiB"
        assert opened["sizes"] == {
            "commercial": 16,
            "technical": SIZE // 2,
            "qualification-1": SIZE - SIZE // 2,
        }
    finally:  # 400 MB of scratch: do not leave it for pytest's tmp retention
        for path in sorted(tmp_path.rglob("*"), reverse=True):
            if path.is_file():
                path.unlink()
