// Fairbid browser sealing: builds a version 1 envelope (version 2 when the bid is for a lot of a
// tender divided into lots: the header binds the lot) exactly as bidding/FORMAT.md specifies,
// with WebCrypto (AES-256-GCM, SHA-256, X25519) and @hpke/core (RFC 9180 HPKE).
//
// The bundle built from this file (app/static/build/seal.js, see `make node-deps`) exposes
// the exported functions as `window.FairbidSeal`.  It runs under CSP `script-src 'self'`:
// no eval, no inline code, no network access.  It only seals; opening is the tender's job.
//
// Memory: Blob parts (File objects) are read in slices of a few chunks, a few chunks are
// encrypted at a time, and the sealed chunks go to the browser's Blob storage (output
// "blob"), or to a writer such as a file in the origin-private file system, as they come:
// the page's memory stays bounded whatever the size of the bid.  Output "bytes" holds the
// whole envelope in memory.  See frontend/README.md.

import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";

// --- constants (FORMAT.md sections 1-4) ------------------------------------------------------

export const FORMAT_VERSION = 1;
export const FORMAT_VERSION_LOT = 2; // version 1 plus the lot the envelope is for
export const CHUNK_SIZE = 1 << 20; // what writers use
const MIN_CHUNK_SIZE = 1 << 6;
const MAX_CHUNK_SIZE = 1 << 24;
const MAX_CHUNKS = 2 ** 32;
const MAX_HEADER_SIZE = 128 * 1024;
const MAX_PARTS = 1000;
const TAG_SIZE = 16;
const KEY_SIZE = 32;
const FORMAT_NAME = "fairbid-envelope";
const MAGIC = [0x46, 0x41, 0x49, 0x52, 0x42, 0x49, 0x44]; // "FAIRBID"
const HPKE_INFO_LABEL = "fairbid-envelope-v1\u0000";
const SUITE_IDS = { aead: 2, kdf: 1, kem: 32 };
const SPKI_X25519_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00];
const IDENTIFIER_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const PRICE_RE = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const COMMERCIAL = "commercial";
const TECHNICAL = "technical";
const QUALIFICATION_PREFIX = "qualification-";
// Sealed bytes handed to Blob storage at a time (output "blob").
const BLOB_FLUSH_BYTES = 16 * CHUNK_SIZE;
// Bytes of a Blob part read at a time (at least one chunk).
const READ_WINDOW = 4 * CHUNK_SIZE;
// Chunks being encrypted at the same time (WebCrypto works off the main thread).
const PIPELINE_DEPTH = 3;

const encoder = new TextEncoder();

function subtle() {
  const api = globalThis.crypto && globalThis.crypto.subtle;
  if (!api) {
    throw new Error("WebCrypto is unavailable: the page must be served over HTTPS (or localhost)");
  }
  return api;
}

// --- canonical JSON (FORMAT.md section 2; bidding/canonical.py) ------------------------------

// Python sorts keys by code point; JavaScript's default sort compares UTF-16 code units,
// which differs only between astral characters (surrogates D800-DFFF) and U+E000-U+FFFF.
function compareCodePoints(a, b) {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x += x >= 0xe000 ? -0x800 : 0x2000;
        y += y >= 0xe000 ? -0x800 : 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

function checkWellFormed(text) {
  // A lone surrogate cannot be encoded as UTF-8 (Python refuses it too).
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      throw new TypeError("strings must be well-formed Unicode (lone surrogate)");
    }
    if (unit >= 0xdc00 && unit <= 0xdfff) {
      throw new TypeError("strings must be well-formed Unicode (lone surrogate)");
    }
  }
  return text;
}

function isPlainObject(value) {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function serialise(value, stack) {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "string":
      // JSON.stringify escapes exactly as Python's json.dumps(ensure_ascii=False): \" \\ \b \f
      // \n \r \t, other control characters as lowercase \u00xx, everything else verbatim.
      return JSON.stringify(checkWellFormed(value));
    case "number":
      if (!Number.isSafeInteger(value)) {
        throw new TypeError(
          `numbers must be integers within +/-(2^53 - 1), got ${value}: write amounts as decimal strings`,
        );
      }
      return String(value); // -0 gives "0"
    case "bigint":
      return value.toString();
    case "object":
      break;
    default:
      throw new TypeError(`a ${typeof value} has no JSON form`);
  }
  if (stack.includes(value)) throw new TypeError("circular structure");
  stack.push(value);
  let text;
  if (Array.isArray(value)) {
    const items = [];
    for (let i = 0; i < value.length; i++) {
      if (!(i in value) || value[i] === undefined) {
        throw new TypeError("arrays must not have holes or undefined items");
      }
      items.push(serialise(value[i], stack));
    }
    text = `[${items.join(",")}]`;
  } else if (isPlainObject(value)) {
    const keys = Object.keys(value).sort(compareCodePoints);
    const members = keys.map((key) => {
      if (value[key] === undefined) throw new TypeError(`member ${JSON.stringify(key)} is undefined`);
      return `${serialise(key, stack)}:${serialise(value[key], stack)}`;
    });
    text = `{${members.join(",")}}`;
  } else {
    throw new TypeError("only plain objects, arrays, strings, integers, booleans and null");
  }
  stack.pop();
  return text;
}

/** Canonical JSON text of `value` (sorted keys, no whitespace); encode as UTF-8 for bytes. */
export function canonicalJson(value) {
  return serialise(value, []);
}

/**
 * The bytes of the `commercial` part, identical to Python's
 * `bidding.envelope.encode_commercial`: canonical JSON (UTF-8) of a plain object; amounts are
 * decimal strings (floats are refused); `price`, if present, must match /^(0|[1-9]\d*)(\.\d+)?$/.
 */
export function encodeCommercial(fields) {
  if (!isPlainObject(fields)) throw new TypeError("the commercial part must be a JSON object");
  if ("price" in fields && (typeof fields.price !== "string" || !PRICE_RE.test(fields.price))) {
    throw new TypeError('"price" must be a decimal string such as "1234567.89"');
  }
  return encoder.encode(canonicalJson(fields));
}

// --- small helpers ----------------------------------------------------------------------------

function base64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

function ascii(text) {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function isBlob(data) {
  return typeof Blob !== "undefined" && data instanceof Blob;
}

/**
 * The raw 32-byte X25519 key from a tender public key given as raw bytes, as the 44-byte DER
 * SubjectPublicKeyInfo, or as its PEM ("-----BEGIN PUBLIC KEY-----"), FORMAT.md section 3.
 */
export function tenderPublicKeyBytes(key) {
  let bytes;
  if (typeof key === "string") {
    const match = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/.exec(key);
    if (!match) throw new TypeError("the tender public key PEM has no PUBLIC KEY block");
    const binary = atob(match[1].replace(/\s+/g, ""));
    bytes = ascii(binary);
  } else {
    bytes = toBytes(key);
    if (!bytes) throw new TypeError("the tender public key must be bytes or a PEM string");
  }
  if (bytes.length === 32) return new Uint8Array(bytes);
  if (bytes.length === 44 && SPKI_X25519_PREFIX.every((byte, i) => bytes[i] === byte)) {
    return bytes.slice(12);
  }
  throw new TypeError("the tender public key is not an X25519 key (32 raw bytes or SPKI)");
}

function checkIdentifier(value, what) {
  if (typeof value !== "string" || !IDENTIFIER_RE.test(value)) {
    throw new TypeError(
      `${what} must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit`,
    );
  }
}

function checkPartNames(names) {
  if (names.length === 0 || names[0] !== COMMERCIAL) {
    throw new TypeError("the first part must be 'commercial'");
  }
  let rest = names.slice(1);
  if (rest.length && rest[0] === TECHNICAL) rest = rest.slice(1);
  rest.forEach((name, index) => {
    if (name !== `${QUALIFICATION_PREFIX}${index + 1}`) {
      throw new TypeError(
        `unexpected part name ${JSON.stringify(name)}: expected 'technical' after ` +
          "'commercial', then qualification-1, qualification-2, ... in order",
      );
    }
  });
  if (names.length > MAX_PARTS) throw new RangeError(`at most ${MAX_PARTS} parts`);
}

function checkChunkSize(size) {
  if (
    !Number.isInteger(size) ||
    size < MIN_CHUNK_SIZE ||
    size > MAX_CHUNK_SIZE ||
    (size & (size - 1)) !== 0
  ) {
    throw new RangeError(
      `chunkSize must be a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}`,
    );
  }
}

// --- content: the parts concatenated, read chunk by chunk -----------------------------------

class ContentReader {
  constructor(sources) {
    this.sources = sources; // [{name, bytes | blob, size}]
    this.index = 0;
    this.offset = 0; // within sources[index]
    this.window = null; // {index, start, bytes}: a read-ahead slice of a Blob part
  }

  // Bytes [start, start + length) of Blob part `index`, through a read-ahead window
  // (few large slice reads are much faster than many chunk-sized ones).
  async blobBytes(index, start, length) {
    const source = this.sources[index];
    let window = this.window;
    if (
      !window ||
      window.index !== index ||
      start < window.start ||
      start + length > window.start + window.bytes.length
    ) {
      this.window = null;
      const end = Math.min(source.size, start + Math.max(length, READ_WINDOW));
      const bytes = new Uint8Array(await source.blob.slice(start, end).arrayBuffer());
      if (bytes.length !== end - start) {
        throw new Error(`part ${JSON.stringify(source.name)} changed while it was being sealed`);
      }
      window = this.window = { index, start, bytes };
    }
    const from = start - window.start;
    return window.bytes.subarray(from, from + length);
  }

  // The next `length` content bytes (length > 0 only when that much content is left).
  async read(length) {
    const pieces = [];
    let left = length;
    while (left > 0) {
      const source = this.sources[this.index];
      const take = Math.min(left, source.size - this.offset);
      if (take === 0) {
        this.index++;
        this.offset = 0;
        continue;
      }
      const start = this.offset;
      pieces.push(
        source.bytes
          ? source.bytes.subarray(start, start + take)
          : await this.blobBytes(this.index, start, take),
      );
      this.offset += take;
      left -= take;
    }
    if (pieces.length === 1) return pieces[0];
    const chunk = new Uint8Array(length);
    let at = 0;
    for (const piece of pieces) {
      chunk.set(piece, at);
      at += piece.length;
    }
    return chunk;
  }
}

// Collects the envelope: a Blob built incrementally, or one preallocated Uint8Array.
class BlobSink {
  constructor() {
    this.blob = null;
    this.pending = [];
    this.pendingBytes = 0;
  }

  write(data) {
    this.pending.push(data);
    this.pendingBytes += data.byteLength;
    if (this.pendingBytes >= BLOB_FLUSH_BYTES) this.flush();
  }

  flush() {
    if (this.blob) this.pending.unshift(this.blob);
    this.blob = new Blob(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
  }

  finish() {
    if (this.blob) this.pending.unshift(this.blob);
    return new Blob(this.pending, { type: "application/octet-stream" });
  }
}

// Hands each piece to a caller's writer (an OPFS FileSystemWritableFileStream, a
// WritableStreamDefaultWriter, ...), waiting for each write; the caller closes it.
class WriterSink {
  constructor(writer) {
    this.writer = writer;
    this.size = 0;
  }

  async write(data) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    await this.writer.write(bytes);
    this.size += bytes.length;
  }

  finish() {
    return this.size;
  }
}

class BytesSink {
  constructor(size) {
    this.bytes = new Uint8Array(size);
    this.at = 0;
  }

  write(data) {
    this.bytes.set(data instanceof Uint8Array ? data : new Uint8Array(data), this.at);
    this.at += data.byteLength;
  }

  finish() {
    if (this.at !== this.bytes.length) throw new Error("internal error: envelope size mismatch");
    return this.bytes;
  }
}

// --- sealing ----------------------------------------------------------------------------------

/**
 * Seal a bid into a Fairbid envelope (bidding/FORMAT.md, version 1; version 2 with a lot).
 *
 * @param {object} options
 * @param {Uint8Array|ArrayBuffer|string} options.tenderPublicKey the tender's X25519 public key:
 *   32 raw bytes, the 44-byte DER SubjectPublicKeyInfo, or its PEM text
 * @param {string} options.tender tender id
 * @param {string} options.bidder bidder id
 * @param {string|null} [options.lot] the lot the bid is for, in a tender divided into lots
 *   (bound by the header: an envelope version 2); omit for a tender of one lot
 * @param {{name: string, data: Uint8Array|ArrayBuffer|Blob}[]} options.parts `commercial`
 *   (see encodeCommercial), then optionally `technical`, then `qualification-1`, ... in order;
 *   Blobs (File objects) are read in chunk-sized slices
 * @param {number} [options.chunkSize=1048576] plaintext bytes per chunk (keep the default)
 * @param {"blob"|"bytes"|{write: (chunk: Uint8Array) => any}} [options.output="blob"]
 *   "blob": return a Blob (bounded JavaScript memory; Chromium refuses to read Blobs built
 *   in memory beyond about 500 MB); "bytes": return a Uint8Array; or a writer such as an
 *   OPFS FileSystemWritableFileStream or a WritableStreamDefaultWriter, to which the envelope
 *   is written piece by piece in order (each write awaited; the caller closes it)
 * @param {(done: number, total: number) => void} [options.onProgress] called after each chunk
 *   with the plaintext bytes sealed so far and the total
 * @param {AbortSignal} [options.signal] aborts between chunks
 * @returns {Promise<Blob|Uint8Array|number>} the envelope, or its size in bytes when it was
 *   written to a writer
 */
export async function sealEnvelope({
  tenderPublicKey,
  tender,
  bidder,
  lot = null,
  parts,
  chunkSize = CHUNK_SIZE,
  output = "blob",
  onProgress,
  signal,
} = {}) {
  const api = subtle();
  const publicKey = tenderPublicKeyBytes(tenderPublicKey);
  checkIdentifier(tender, "tender id");
  checkIdentifier(bidder, "bidder id");
  if (lot !== null && lot !== undefined) checkIdentifier(lot, "lot reference");
  const version = lot === null || lot === undefined ? FORMAT_VERSION : FORMAT_VERSION_LOT;
  checkChunkSize(chunkSize);
  const toWriter = output !== null && typeof output === "object" && typeof output.write === "function";
  if (output !== "blob" && output !== "bytes" && !toWriter) {
    throw new TypeError('output must be "blob", "bytes" or an object with a write() method');
  }
  if (!Array.isArray(parts)) throw new TypeError("parts must be an array of {name, data}");
  const sources = parts.map((part) => {
    const name = part && part.name;
    const data = part && part.data;
    if (isBlob(data)) return { name, blob: data, size: data.size };
    const bytes = toBytes(data);
    if (!bytes) throw new TypeError(`part ${JSON.stringify(name)}: data must be bytes or a Blob`);
    return { name, bytes, size: bytes.length };
  });
  checkPartNames(sources.map((source) => source.name));
  const total = sources.reduce((sum, source) => sum + source.size, 0);
  if (!Number.isSafeInteger(total)) throw new RangeError("the bid is too large");
  const count = Math.max(1, Math.ceil(total / chunkSize));
  if (count > MAX_CHUNKS) throw new RangeError("the bid is too large for this chunk size");
  signal?.throwIfAborted();

  // Header core and HPKE info (FORMAT.md section 3).
  const core = {
    bidder,
    chunk_size: chunkSize,
    format: FORMAT_NAME,
    parts: sources.map((source) => ({ name: source.name, size: source.size })),
    suite: { ...SUITE_IDS },
    tender,
    version,
  };
  if (version === FORMAT_VERSION_LOT) core.lot = lot;
  const coreHash = new Uint8Array(await api.digest("SHA-256", encoder.encode(canonicalJson(core))));
  const info = new Uint8Array(HPKE_INFO_LABEL.length + coreHash.length);
  info.set(ascii(HPKE_INFO_LABEL));
  info.set(coreHash, HPKE_INFO_LABEL.length);

  const suite = new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Aes256Gcm(),
  });
  const recipientPublicKey = await suite.kem.deserializePublicKey(publicKey);
  const contentKey = crypto.getRandomValues(new Uint8Array(KEY_SIZE));
  let sealedKey;
  let aesKey;
  try {
    sealedKey = await suite.seal({ recipientPublicKey, info }, contentKey);
    aesKey = await api.importKey("raw", contentKey, { name: "AES-GCM" }, false, ["encrypt"]);
  } finally {
    contentKey.fill(0);
  }
  const header = encoder.encode(
    canonicalJson({
      ...core,
      key: {
        enc: base64(new Uint8Array(sealedKey.enc)),
        sealed: base64(new Uint8Array(sealedKey.ct)),
      },
    }),
  );
  if (header.length > MAX_HEADER_SIZE) throw new RangeError("header too large (too many parts)");
  const aad = new Uint8Array(await api.digest("SHA-256", header));

  const prefix = new Uint8Array(12);
  prefix.set(MAGIC);
  prefix[7] = version;
  new DataView(prefix.buffer).setUint32(8, header.length);
  const size = prefix.length + header.length + total + TAG_SIZE * count;
  const sink = toWriter
    ? new WriterSink(output)
    : output === "bytes"
      ? new BytesSink(size)
      : new BlobSink();
  await sink.write(prefix);
  await sink.write(header);

  // Chunks (FORMAT.md section 4).  A few chunks are encrypted concurrently while the next
  // ones are read; the sealed chunks are written in order.
  const reader = new ContentReader(sources);
  const inFlight = [];
  let done = 0;
  const writeOldest = async () => {
    const { sealed, length } = await inFlight.shift();
    await sink.write(sealed);
    done += length;
    if (onProgress) onProgress(done, total);
  };
  try {
    for (let index = 0; index < count; index++) {
      signal?.throwIfAborted();
      const plain = await reader.read(index < count - 1 ? chunkSize : total - chunkSize * index);
      const nonce = new Uint8Array(12);
      new DataView(nonce.buffer).setUint32(7, index);
      nonce[11] = index === count - 1 ? 1 : 0;
      // WebCrypto copies `plain` when encrypt() is called, so the reader may reuse its window.
      const sealing = api
        .encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 }, aesKey, plain)
        .then((sealed) => ({ sealed, length: plain.length }));
      sealing.catch(() => {}); // a rejection surfaces when awaited
      inFlight.push(sealing);
      if (inFlight.length >= PIPELINE_DEPTH) await writeOldest();
    }
    while (inFlight.length) await writeOldest();
  } finally {
    inFlight.length = 0;
  }
  return sink.finish();
}
