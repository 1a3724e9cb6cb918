"""Interop: envelopes sealed in headless Chromium by the built sealing script
(app/static/build/seal.js, from frontend/seal.js and @hpke/core) open in Python.

The bundle is served from a loopback HTTP server (a secure context, as WebCrypto requires)
under CSP ``default-src 'none'; script-src 'self'`` and loaded with its Subresource-Integrity
value from :mod:`app.bids.sealing_script`, as the bid page loads it.  The page generates the
parts, seals them and uploads the envelope to the test server; Python then inspects it
without a key, opens it with the tender's private key and compares the parts.
"""

from __future__ import annotations

import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.bids import sealing_script
from bidding import keys
from bidding.envelope import encode_commercial, inspect_envelope, open_envelope
from bidding.errors import (
    DecryptionError,
    IntegrityError,
    MalformedEnvelope,
    WrongBidder,
    WrongLot,
)

MIB = 1 << 20
TENDER = "T-2025-0042"
BIDDER = "B-0099"
PAGE = Path(__file__).with_name("sealing_page.html")
CSP = "default-src 'none'; script-src 'self'; connect-src 'self'"

COMMERCIAL = {
    "price": "1234567.89",
    "currency": "EUR",
    "delivery_days": 30,
    "notes": 'Zürich — 北京 🏗 "quoted"\n\ttab \x01 \x7f \u2028 back\\slash',
    "items": [{"qty": 2, "unit": "m²"}, True, None, -5, []],
    "ключ": "значение",
    "\ue000": "private use: sorts before astral characters by code point",
    "😀": "astral",
    "nested": {"z": 1, "A": 2, "a": {}},
}

# Runs in the page: builds the parts (random bytes, or the commercial fields through
# FairbidSeal.encodeCommercial), seals them and uploads the envelope to the test server.
SEAL_JS = """
async ({pem, tender, bidder, chunkSize, output, parts, upload, lot}) => {
  const randomBytes = (n) => {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, Math.min(n, i + 65536)));
    }
    return bytes;
  };
  const hex = async (data) => Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", data)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  const sealParts = [];
  const digests = {};
  for (const part of parts) {
    const bytes = part.fields !== undefined
      ? FairbidSeal.encodeCommercial(part.fields)
      : part.text !== undefined ? new TextEncoder().encode(part.text) : randomBytes(part.size);
    digests[part.name] = await hex(bytes);
    sealParts.push({name: part.name, data: part.as === "blob" ? new Blob([bytes]) : bytes});
  }
  const progress = [];
  const options = {
    tenderPublicKey: pem, tender, bidder, parts: sealParts,
    onProgress: (done, total) => progress.push([done, total]),
  };
  if (chunkSize !== null) options.chunkSize = chunkSize;
  if (lot !== null) options.lot = lot;
  let file = null;
  let writable = null;
  if (output === "opfs") {
    // Written piece by piece to a file in the origin-private file system.
    const root = await navigator.storage.getDirectory();
    file = await root.getFileHandle(upload + ".env", {create: true});
    writable = await file.createWritable();
    options.output = writable;
  } else if (output !== null) {
    options.output = output;
  }
  let envelope = await FairbidSeal.sealEnvelope(options);
  let kind = envelope instanceof Blob ? "Blob" : envelope.constructor.name;
  if (writable) {
    await writable.close();
    const written = envelope;
    envelope = await file.getFile();
    kind = written === envelope.size ? "written" : "size mismatch";
  }
  const response = await fetch("/upload/" + upload, {method: "POST", body: envelope});
  return {digests, progress, kind, status: response.status};
}
"""


class _Handler(BaseHTTPRequestHandler):
    server: _SealingServer

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/", "/wrong-integrity"):
            value = sealing_script.integrity()
            if self.path == "/wrong-integrity":
                value = "sha384-" + "A" * 64
            page = PAGE.read_text(encoding="utf-8").replace("__INTEGRITY__", value)
            self._send(200, page.encode(), "text/html; charset=utf-8")
        elif self.path == "/seal.js":
            body = sealing_script.bundle_path().read_bytes()
            self._send(200, body, "text/javascript; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        if not self.path.startswith("/upload/"):
            self._send(404, b"not found", "text/plain")
            return
        length = int(self.headers["Content-Length"])
        body = bytearray()
        while len(body) < length:
            block = self.rfile.read(min(1 << 20, length - len(body)))
            if not block:
                break
            body += block
        self.server.uploads[self.path.removeprefix("/upload/")] = bytes(body)
        self._send(200, b"ok", "text/plain")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _SealingServer(ThreadingHTTPServer):
    daemon_threads = True
    uploads: dict[str, bytes]


@pytest.fixture(scope="module")
def sealing_server():
    sealing_script.bundle_path()  # fails clearly ("run make install") if not built
    server = _SealingServer(("127.0.0.1", 0), _Handler)
    server.uploads = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def tender_key():
    return keys.generate_tender_key()


@pytest.fixture
def sealing_page(page, sealing_server):
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"http://127.0.0.1:{sealing_server.server_port}/")
    assert page.evaluate("typeof window.FairbidSeal") == "object"
    yield page
    assert errors == []


def _seal(page, server, tender_key, parts, *, upload, chunk_size=None, output=None, lot=None):
    pem = keys.public_key_to_pem(tender_key.public_key()).decode("ascii")
    result = page.evaluate(
        SEAL_JS,
        {
            "pem": pem,
            "tender": TENDER,
            "bidder": BIDDER,
            "chunkSize": chunk_size,
            "output": output,
            "parts": parts,
            "upload": upload,
            "lot": lot,
        },
    )
    assert result["status"] == 200
    return result, server.uploads.pop(upload)


def _open_and_compare(envelope, tender_key, result, parts, tmp_path, chunk_size):
    info = inspect_envelope(io.BytesIO(envelope), expected_tender=TENDER, expected_bidder=BIDDER)
    header = info.header
    assert (header.tender, header.bidder, header.chunk_size) == (TENDER, BIDDER, chunk_size)
    sizes = [(part.name, part.size) for part in header.parts]
    assert [name for name, _ in sizes] == [part["name"] for part in parts]
    total = sum(size for _, size in sizes)
    assert info.size == len(envelope) == 12 + len(header.raw) + total + 16 * header.chunk_count
    assert envelope[:12] == b"FAIRBID\x01" + len(header.raw).to_bytes(4, "big")
    opened = open_envelope(
        io.BytesIO(envelope),
        tender_key,
        tmp_path / "opened",
        expected_tender=TENDER,
        expected_bidder=BIDDER,
        expected_sha256=hashlib.sha256(envelope).hexdigest(),
        fsync=False,
    )
    for part in parts:
        data = opened.files[part["name"]].read_bytes()
        assert hashlib.sha256(data).hexdigest() == result["digests"][part["name"]], part["name"]
        if "fields" in part:
            assert data == encode_commercial(part["fields"])
        if "size" in part:
            assert len(data) == part["size"]
    # Progress: one call per chunk, reaching the total.
    assert len(result["progress"]) == header.chunk_count
    assert result["progress"][-1] == [total, total]
    return header


def test_sealed_in_chromium_opens_in_python(sealing_page, sealing_server, tender_key, tmp_path):
    # Several 1 MiB chunks and a partial last one; chunks straddle the part boundaries; a
    # File-like Blob part, an empty part and a small byte-array part.
    parts = [
        {"name": "commercial", "fields": COMMERCIAL, "as": "bytes"},
        {"name": "technical", "size": 3 * MIB + 12345, "as": "blob"},
        {"name": "qualification-1", "size": 0, "as": "blob"},
        {"name": "qualification-2", "size": 1000, "as": "bytes"},
    ]
    result, envelope = _seal(sealing_page, sealing_server, tender_key, parts, upload="mixed")
    assert result["kind"] == "Blob"  # the default output
    header = _open_and_compare(envelope, tender_key, result, parts, tmp_path, MIB)
    assert header.chunk_count == 4
    assert header.chunk_plain_size(3) not in (0, MIB)


def test_content_an_exact_multiple_of_the_chunk_size(
    sealing_page, sealing_server, tender_key, tmp_path
):
    commercial_size = len(encode_commercial(COMMERCIAL))
    parts = [
        {"name": "commercial", "fields": COMMERCIAL, "as": "blob"},
        {"name": "technical", "size": 2 * MIB - commercial_size, "as": "blob"},
    ]
    result, envelope = _seal(
        sealing_page, sealing_server, tender_key, parts, upload="exact", output="bytes"
    )
    assert result["kind"] == "Uint8Array"
    header = _open_and_compare(envelope, tender_key, result, parts, tmp_path, MIB)
    assert header.chunk_count == 2  # the last chunk is full; no empty chunk follows
    assert header.chunk_plain_size(1) == MIB


def test_empty_content_has_one_empty_chunk(sealing_page, sealing_server, tender_key, tmp_path):
    parts = [
        {"name": "commercial", "text": "", "as": "bytes"},
        {"name": "technical", "size": 0, "as": "blob"},
    ]
    result, envelope = _seal(sealing_page, sealing_server, tender_key, parts, upload="empty")
    header = _open_and_compare(envelope, tender_key, result, parts, tmp_path, MIB)
    assert header.chunk_count == 1
    assert len(envelope) == 12 + len(header.raw) + 16


def test_small_chunks_and_many_parts(sealing_page, sealing_server, tender_key, tmp_path):
    parts = [
        {"name": "commercial", "fields": {"price": "0.5"}, "as": "bytes"},
        {"name": "technical", "size": 1000, "as": "blob"},
    ] + [
        {"name": f"qualification-{n}", "size": (n * 37) % 150, "as": "blob" if n % 2 else "bytes"}
        for n in range(1, 13)
    ]
    result, envelope = _seal(
        sealing_page, sealing_server, tender_key, parts, upload="small", chunk_size=64
    )
    header = _open_and_compare(envelope, tender_key, result, parts, tmp_path, 64)
    assert header.chunk_count > 30


def test_large_blob_output_spans_several_blob_flushes(
    sealing_page, sealing_server, tender_key, tmp_path
):
    # More than 16 MiB: the sealed chunks are handed to Blob storage in several batches.
    parts = [
        {"name": "commercial", "fields": {"price": "99"}, "as": "bytes"},
        {"name": "technical", "size": 37 * MIB + 5, "as": "blob"},
    ]
    result, envelope = _seal(sealing_page, sealing_server, tender_key, parts, upload="large")
    header = _open_and_compare(envelope, tender_key, result, parts, tmp_path, MIB)
    assert header.chunk_count == 38


def test_written_to_a_file_in_the_origin_private_file_system(
    sealing_page, sealing_server, tender_key, tmp_path
):
    parts = [
        {"name": "commercial", "fields": COMMERCIAL, "as": "bytes"},
        {"name": "technical", "size": 2 * MIB + 3, "as": "blob"},
        {"name": "qualification-1", "size": 77, "as": "bytes"},
    ]
    result, envelope = _seal(
        sealing_page, sealing_server, tender_key, parts, upload="opfs", output="opfs"
    )
    assert result["kind"] == "written"  # sealEnvelope resolved to the size it wrote
    header = _open_and_compare(envelope, tender_key, result, parts, tmp_path, MIB)
    assert header.chunk_count == 3


def test_python_refuses_a_tampered_browser_envelope(
    sealing_page, sealing_server, tender_key, tmp_path
):
    parts = [
        {"name": "commercial", "fields": {"price": "10.00"}, "as": "bytes"},
        {"name": "technical", "size": MIB + 100, "as": "blob"},
    ]
    _, envelope = _seal(sealing_page, sealing_server, tender_key, parts, upload="tamper")
    header = inspect_envelope(io.BytesIO(envelope)).header
    body = 12 + len(header.raw)

    def opens(data: bytes, name: str, **expected: str) -> None:
        open_envelope(io.BytesIO(data), tender_key, tmp_path / name, fsync=False, **expected)
        pytest.fail("a tampered envelope opened")  # pragma: no cover

    for index, offset in enumerate((body, body + MIB + 3, len(envelope) - 1)):
        altered = bytearray(envelope)
        altered[offset] ^= 0x01
        with pytest.raises(IntegrityError):
            opens(bytes(altered), f"chunk-{index}")
        assert not (tmp_path / f"chunk-{index}").exists()
    # Re-labelled to another bidder (same length): the HPKE info no longer matches.
    relabelled = envelope.replace(b'"bidder":"B-0099"', b'"bidder":"B-0098"', 1)
    with pytest.raises(WrongBidder):
        opens(relabelled, "relabelled-expected", expected_bidder=BIDDER)
    with pytest.raises(DecryptionError):
        opens(relabelled, "relabelled")
    # Chunks swapped (same total size), truncated, trailing data.
    first, second = envelope[body : body + MIB + 16], envelope[body + MIB + 16 :]
    with pytest.raises(IntegrityError):
        opens(envelope[:body] + second + first, "swapped")
    with pytest.raises(MalformedEnvelope):
        opens(envelope[:-1], "truncated")
    with pytest.raises(MalformedEnvelope):
        opens(envelope + b"\x00", "trailing")
    with pytest.raises(MalformedEnvelope):
        inspect_envelope(io.BytesIO(envelope[: body + MIB + 16]))


def test_encode_commercial_matches_python(sealing_page):
    samples = [
        COMMERCIAL,
        {},
        {"price": "0"},
        {"b": 1, "a": [1, 2, {"d": None, "c": False}], "": "empty key"},
        {"10": "x", "9": "y", "a b": "z", "A": "upper", "é": "e acute", "ｚ": "full width"},
        {"big": 9007199254740991, "negative": -9007199254740991, "zero": 0},
        {"controls": "".join(chr(c) for c in range(32)) + '"\\/\x7f\u2028\u2029\ufeff'},
    ]
    encoded = sealing_page.evaluate(
        "(samples) => samples.map((fields) => Array.from(FairbidSeal.encodeCommercial(fields)))",
        samples,
    )
    assert [bytes(item) for item in encoded] == [encode_commercial(item) for item in samples]


@pytest.mark.parametrize(
    "expression, message",
    [
        ("FairbidSeal.encodeCommercial({price: 12.5})", "decimal string"),
        ("FairbidSeal.encodeCommercial({price: '01'})", "decimal string"),
        ("FairbidSeal.encodeCommercial({price: '1e3'})", "decimal string"),
        ("FairbidSeal.encodeCommercial({amount: 0.1})", "decimal strings"),
        ("FairbidSeal.encodeCommercial({n: 2 ** 53})", "integers"),
        ("FairbidSeal.encodeCommercial({n: NaN})", "integers"),
        ("FairbidSeal.encodeCommercial({s: 'a\\uD800b'})", "lone surrogate"),
        ("FairbidSeal.encodeCommercial({d: new Date(0)})", "plain objects"),
        ("FairbidSeal.encodeCommercial({u: undefined})", "undefined"),
        ("FairbidSeal.encodeCommercial([1])", "JSON object"),
    ],
)
def test_encode_commercial_refuses_what_python_refuses(sealing_page, expression, message):
    error = sealing_page.evaluate(
        f"() => {{ try {{ {expression}; }} catch (e) {{ return e.message; }} }}"
    )
    assert error is not None and message in error


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tender": "T 1"}, "tender id"),
        ({"bidder": ""}, "bidder id"),
        ({"names": ["technical", "commercial"]}, "first part must be 'commercial'"),
        ({"names": ["commercial", "qualification-2"]}, "unexpected part name"),
        ({"names": ["commercial", "technical", "technical"]}, "unexpected part name"),
        ({"chunkSize": 1000}, "power of two"),
        ({"chunkSize": 32}, "power of two"),
        ({"key": "short"}, "not an X25519 key"),
        ({"key": "ed25519"}, "not an X25519 key"),
        ({"output": "string"}, "output must be"),
        ({"output": None}, "output must be"),
    ],
)
def test_seal_envelope_refuses_bad_arguments(sealing_page, tender_key, options, message):
    ed25519_pem = keys.public_key_to_pem(keys.generate_platform_key().public_key()).decode()
    key = {
        None: keys.public_key_to_pem(tender_key.public_key()).decode(),
        "short": [1, 2, 3],
        "ed25519": ed25519_pem,
    }[options.get("key")]
    error = sealing_page.evaluate(
        """async ({key, tender, bidder, names, chunkSize, output}) => {
            const tenderPublicKey = Array.isArray(key) ? new Uint8Array(key) : key;
            const parts = names.map((name) => ({name, data: new Uint8Array(3)}));
            try {
                await FairbidSeal.sealEnvelope(
                    {tenderPublicKey, tender, bidder, parts, chunkSize, output});
            } catch (e) { return e.message; }
        }""",
        {
            "key": key,
            "tender": options.get("tender", TENDER),
            "bidder": options.get("bidder", BIDDER),
            "names": options.get("names", ["commercial", "technical"]),
            "chunkSize": options.get("chunkSize", 1 << 20),
            "output": options.get("output", "blob"),
        },
    )
    assert error is not None and message in error


def test_sealed_for_a_lot_in_chromium_opens_in_python_for_that_lot_only(
    sealing_page, sealing_server, tender_key, tmp_path
):
    parts = [
        {"name": "commercial", "fields": COMMERCIAL, "as": "bytes"},
        {"name": "technical", "size": 5000, "as": "bytes"},
    ]
    result, envelope = _seal(
        sealing_page, sealing_server, tender_key, parts, upload="lot", output="bytes", lot="L2"
    )
    assert envelope[:8] == b"FAIRBID\x02"
    header = inspect_envelope(io.BytesIO(envelope), expected_lot="L2").header
    assert (header.version, header.lot) == (2, "L2")
    with pytest.raises(WrongLot):
        open_envelope(io.BytesIO(envelope), None, tmp_path / "other", expected_lot="L1")  # type: ignore[arg-type]
    opened = open_envelope(
        io.BytesIO(envelope), tender_key, tmp_path / "opened", expected_lot="L2", fsync=False
    )
    data = opened.files["technical"].read_bytes()
    assert hashlib.sha256(data).hexdigest() == result["digests"]["technical"]
    error = sealing_page.evaluate(
        """async (pem) => {
            try {
                await FairbidSeal.sealEnvelope({tenderPublicKey: pem, tender: "T-1",
                    bidder: "B-1", lot: "bad lot",
                    parts: [{name: "commercial", data: new Uint8Array(1)}]});
            } catch (e) { return e.message; }
        }""",
        keys.public_key_to_pem(tender_key.public_key()).decode(),
    )
    assert error is not None and "lot reference" in error


def test_raw_and_spki_public_keys_are_accepted(sealing_page, tender_key, tmp_path):
    public = tender_key.public_key()
    raw = public.public_bytes_raw()
    spki = b"\x30\x2a\x30\x05\x06\x03\x2b\x65\x6e\x03\x21\x00" + raw
    sealed = sealing_page.evaluate(
        """async ({keys, tender, bidder}) => {
            const out = [];
            for (const key of keys) {
                const envelope = await FairbidSeal.sealEnvelope({
                    tenderPublicKey: new Uint8Array(key), tender, bidder, output: "bytes",
                    parts: [{name: "commercial", data: FairbidSeal.encodeCommercial({price: "1"})}],
                });
                out.push(Array.from(envelope));
            }
            return out;
        }""",
        {"keys": [list(raw), list(spki)], "tender": TENDER, "bidder": BIDDER},
    )
    for index, envelope in enumerate(sealed):
        opened = open_envelope(io.BytesIO(bytes(envelope)), tender_key, tmp_path / str(index))
        assert opened.files["commercial"].read_bytes() == b'{"price":"1"}'


def test_the_bundle_is_refused_under_a_wrong_integrity_value(page, sealing_server):
    page.goto(f"http://127.0.0.1:{sealing_server.server_port}/wrong-integrity")
    assert page.evaluate("typeof window.FairbidSeal") == "undefined"
