"""Same-source signals among the bids of one competition (red flags for supervisors).

Implementing regulations art. 40 presume collusion when bids come from one source: technical
files that are identical or near-identical, documents written by the same person, uploads from
the same address or device. This module compares plain records; the app gathers them (file
hashes and PDF metadata captured at opening, keyed hashes of the uploader's address and user
agent) and only after the opening, and shows the flags to supervisors only.

Defaults (``SourceThresholds``; all platform defaults, no published cut-off):

- ``similar_technical_texts``: the estimated Jaccard similarity of the texts' character
  9-gram sets is >= 0.8. The estimate is a bottom-k MinHash sketch (k = 128; Broder 1997,
  "On the resemblance and containment of documents"), so the texts themselves need not be kept.
- ``identical_technical_files``: equal SHA-256 of the technical files as submitted (before
  their metadata was stripped); score 1.
- ``same_pdf_author`` (score 0.8): the same non-empty /Author; ``same_pdf_software`` (score
  0.3, common software is common): the same non-empty /Creator and /Producer.
- ``same_submission_address`` (score 0.6) and ``same_submission_device`` (address and user
  agent both equal, score 0.9); the app passes keyed hashes, never the values.

Bid-bond payer accounts are not compared: the platform records no payer account (a bond
record holds its kind, amount and reference only).
"""

from __future__ import annotations

import hashlib
import heapq
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from evaluation.decimals import fmt
from evaluation.screens import RedFlag

SKETCH_SIZE = 128
SHINGLE = 9
MAX_TEXT = 2_000_000  # characters sketched (a technical text larger than this is cut)


@dataclass(frozen=True)
class SourceThresholds:
    text_similarity: Decimal = Decimal("0.8")
    min_text_length: int = 200  # characters: shorter texts are not compared


@dataclass(frozen=True)
class SourceRecord:
    """What is known of one bid's source (any field may be missing)."""

    label: str
    file_sha256: str | None = None
    text_sketch: Sequence[int] | None = None
    author: str | None = None
    creator: str | None = None
    producer: str | None = None
    address_hash: str | None = None
    agent_hash: str | None = None


def normalise_text(text: str) -> str:
    """NFKC, case-folded, every run of whitespace removed (layout says nothing of the text)."""
    return "".join(unicodedata.normalize("NFKC", text[:MAX_TEXT]).casefold().split())


def text_sketch(text: str, size: int = SKETCH_SIZE) -> list[int]:
    """Bottom-k MinHash sketch of the text's character 9-grams: the `size` smallest 64-bit
    hashes, sorted. Texts shorter than one shingle give an empty sketch."""
    flat = normalise_text(text)
    hashes = {
        int.from_bytes(
            hashlib.blake2b(flat[i : i + SHINGLE].encode("utf-8"), digest_size=8).digest(), "big"
        )
        for i in range(len(flat) - SHINGLE + 1)
    }
    return sorted(heapq.nsmallest(size, hashes))


def sketch_similarity(a: Sequence[int], b: Sequence[int], size: int = SKETCH_SIZE) -> Decimal:
    """Estimated Jaccard similarity of two sketches: the share of the union's `size` smallest
    hashes that both sets hold (exact when both sets are smaller than `size`)."""
    set_a, set_b = set(a), set(b)
    union = heapq.nsmallest(size, set_a | set_b)
    if not union:
        return Decimal(0)
    both = sum(1 for h in union if h in set_a and h in set_b)
    return Decimal(both) / Decimal(len(union))


def _groups(records: Iterable[SourceRecord], key: Callable[[SourceRecord], object]):
    groups: dict[object, list[str]] = defaultdict(list)
    for record in records:
        value = key(record)
        if value:
            groups[value].append(record.label)
    return [sorted(labels) for _, labels in sorted(groups.items(), key=str) if len(labels) > 1]


def same_source_flags(
    records: Sequence[SourceRecord], thresholds: SourceThresholds | None = None
) -> list[RedFlag]:
    """Flags for bids of one competition that look as if they came from one source."""
    t = thresholds or SourceThresholds()
    flags: list[RedFlag] = []
    for labels in _groups(records, lambda r: r.file_sha256):
        flags.append(RedFlag("identical_technical_files", Decimal(1), "", {"bids": _j(labels)}))
    identical = {frozenset(g) for g in _groups(records, lambda r: r.file_sha256)}
    sketched = [r for r in records if r.text_sketch]
    for a, b in combinations(sorted(sketched, key=lambda r: r.label), 2):
        if a.file_sha256 and a.file_sha256 == b.file_sha256:
            continue  # already flagged as identical files
        if any({a.label, b.label} <= group for group in identical):
            continue
        if min(len(a.text_sketch), len(b.text_sketch)) < min(SKETCH_SIZE, t.min_text_length):
            continue
        similarity = sketch_similarity(a.text_sketch, b.text_sketch)
        if similarity >= t.text_similarity:
            flags.append(
                RedFlag(
                    "similar_technical_texts",
                    similarity,
                    fmt(t.text_similarity),
                    {
                        "bids": _j([a.label, b.label]),
                        "similarity": fmt(similarity.quantize(Decimal("0.01"))),
                        "threshold": fmt(t.text_similarity),
                    },
                )
            )
    for labels in _groups(records, lambda r: (r.author or "").strip().casefold()):
        flags.append(RedFlag("same_pdf_author", Decimal("0.8"), "", {"bids": _j(labels)}))

    def software(r: SourceRecord):
        creator, producer = (r.creator or "").strip(), (r.producer or "").strip()
        return (creator, producer) if creator and producer else None

    for labels in _groups(records, software):
        flags.append(RedFlag("same_pdf_software", Decimal("0.3"), "", {"bids": _j(labels)}))
    devices = {
        frozenset(g)
        for g in _groups(
            records, lambda r: (r.address_hash, r.agent_hash) if r.address_hash else None
        )
        if g
    }
    for labels in _groups(records, lambda r: r.address_hash):
        same_device = [g for g in devices if g <= set(labels)]
        for group in sorted(same_device, key=sorted):
            flags.append(
                RedFlag("same_submission_device", Decimal("0.9"), "", {"bids": _j(sorted(group))})
            )
        if not any(group == set(labels) for group in same_device):
            flags.append(
                RedFlag("same_submission_address", Decimal("0.6"), "", {"bids": _j(labels)})
            )
    return flags


def _j(labels: Iterable[str]) -> str:
    return ", ".join(labels)
