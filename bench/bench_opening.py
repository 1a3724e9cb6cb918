"""Benchmark (not a test): the opening of 500 envelopes of 2 MB vs raw work on the same bytes.

Seals ``--envelopes`` envelopes (default 500) of ``--size-mb`` MB (default 2: a commercial
part and a technical part) and stores them in a blob store (``app.storage``, as an upload
does) in a temporary directory, then, in the same run on
the same files, interleaved, best of ``--repeat`` rounds:

* **opening**: what the opening job does per envelope (``app/opening/operations.py``,
  ``_open_one``): ``bidding.envelope.decrypt_envelope`` on the stored file with the expected
  tender, bidder and receipt hash, the commercial part into memory and the other parts to a
  sink (the job writes them to the blob store: not counted here; no database either);
* **raw decrypt**: read each file and decrypt its body with one streaming AES-256-GCM
  decryptor (``cryptography``, 1 MiB pieces): the baseline of the issue;
* **raw read + SHA-256**: read each file and hash it (``hashlib``): the floor of an opening
  that checks the receipt hash, since hashing is slower than decrypting.

Prints the wall times, MB/s and the ratios (baseline time / opening time).

    python bench/bench_opening.py [--envelopes 500] [--size-mb 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.storage import BlobStore
from bidding import envelope as env
from bidding.keys import generate_tender_key

PIECE = 1 << 20


class NullSink:
    def write(self, data: object) -> int:
        return len(data)  # type: ignore[arg-type]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=500)
    parser.add_argument("--size-mb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = int(args.size_mb * 1e6)
    tender_key = generate_tender_key()
    public_key = tender_key.public_key()
    commercial = env.encode_commercial({"price": "1234567.89"})
    technical = os.urandom(size - len(commercial))
    raw_key, raw_nonce = os.urandom(32), os.urandom(12)

    workdir = Path(tempfile.mkdtemp(prefix="bench-opening-"))
    try:
        envelopes: list[tuple[Path, str, str]] = []
        start = time.perf_counter()
        # Stored as an upload stores them (the blob store's writes), opened from the store's
        # files as the job opens them.
        store = BlobStore(workdir / "blobs")
        sealed_path = workdir / "sealed.env"
        for number in range(args.envelopes):
            bidder = f"B-{number:04d}"
            with open(sealed_path, "wb") as handle:
                sealed = env.seal(
                    handle,
                    public_key,
                    "T-BENCH",
                    bidder,
                    env.bid_parts(commercial, io.BytesIO(technical)),
                )
            with open(sealed_path, "rb") as handle:
                stored = store.put_stream(handle, max_size=sealed_path.stat().st_size)
            envelopes.append((store.path_for(stored.sha256), bidder, sealed.sha256))
        seal_s = time.perf_counter() - start
        total = sum(path.stat().st_size for path, _, _ in envelopes)
        buffer = bytearray(max(path.stat().st_size for path, _, _ in envelopes))
        out = bytearray(PIECE + 15)

        def opening() -> None:
            for path, bidder, sha256 in envelopes:
                kept = io.BytesIO()
                with open(path, "rb", buffering=0) as handle:
                    env.decrypt_envelope(
                        handle,
                        tender_key,
                        lambda name, kept=kept: kept if name == env.COMMERCIAL else NullSink(),
                        expected_tender="T-BENCH",
                        expected_bidder=bidder,
                        expected_sha256=sha256,
                    )
                assert kept.getvalue() == commercial  # a sanity check

        def read(path: Path) -> memoryview:
            with open(path, "rb", buffering=0) as handle:
                count = handle.readinto(buffer)
            return memoryview(buffer)[:count]

        def raw_decrypt() -> None:
            for path, _, _ in envelopes:
                data = read(path)
                decryptor = Cipher(algorithms.AES(raw_key), modes.GCM(raw_nonce)).decryptor()
                for offset in range(0, len(data), PIECE):
                    decryptor.update_into(data[offset : offset + PIECE], out)
                data.release()

        def raw_sha256() -> None:
            for path, _, _ in envelopes:
                data = read(path)
                hashlib.sha256(data).digest()
                data.release()

        cases = {"opening": opening, "raw_decrypt": raw_decrypt, "raw_sha256": raw_sha256}
        opening()  # warm the page cache
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(args.repeat):
            for name, run in cases.items():
                best[name] = min(best[name], timed(run))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"opening benchmark: {args.envelopes} envelopes of {args.size_mb:g} MB "
        f"({total / 1e6:.0f} MB on disk, sealed in {seal_s:.1f} s), best of {args.repeat}"
    )
    for label, name in (
        ("opening (decrypt_envelope + receipt hash)", "opening"),
        ("raw read + AES-256-GCM decrypt (baseline)", "raw_decrypt"),
        ("raw read + SHA-256 (floor with the hash)", "raw_sha256"),
    ):
        seconds = best[name]
        print(f"  {label:<44} {seconds:7.3f} s  {total / seconds / 1e6:7.0f} MB/s")
    print(f"opening vs raw decrypt = {best['raw_decrypt'] / best['opening']:.2f}")
    print(f"opening vs raw read + SHA-256 = {best['raw_sha256'] / best['opening']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
