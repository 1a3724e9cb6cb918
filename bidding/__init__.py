"""Fairbid's sealed-bid library: envelopes, key ceremony, receipts and sealing records.

Pure Python on top of ``cryptography`` and ``shamir-mnemonic``; no web framework, no
database.  The web application calls these functions with plain data and stores what they
return.  The envelope byte format is specified in ``bidding/FORMAT.md``.
"""

from .envelope import (
    ANY_LOT,
    CHUNK_SIZE,
    EnvelopeHeader,
    Part,
    PartSource,
    bid_parts,
    decode_commercial,
    decrypt_envelope,
    encode_commercial,
    inspect_envelope,
    inspect_header,
    open_envelope,
    seal,
)
from .errors import (
    BiddingError,
    DecryptionError,
    EnvelopeError,
    EnvelopeHashMismatch,
    InclusionError,
    IntegrityError,
    KeyCeremonyError,
    KeyMismatch,
    MalformedEnvelope,
    MalformedKey,
    ReceiptError,
    SealingRecordError,
    ShareError,
    WrongBidder,
    WrongLot,
    WrongPassphrase,
    WrongTender,
)

__all__ = [
    "ANY_LOT",
    "CHUNK_SIZE",
    "BiddingError",
    "DecryptionError",
    "EnvelopeError",
    "EnvelopeHashMismatch",
    "EnvelopeHeader",
    "InclusionError",
    "IntegrityError",
    "KeyCeremonyError",
    "KeyMismatch",
    "MalformedEnvelope",
    "MalformedKey",
    "Part",
    "PartSource",
    "ReceiptError",
    "SealingRecordError",
    "ShareError",
    "WrongBidder",
    "WrongLot",
    "WrongPassphrase",
    "WrongTender",
    "bid_parts",
    "decode_commercial",
    "decrypt_envelope",
    "encode_commercial",
    "inspect_envelope",
    "inspect_header",
    "open_envelope",
    "seal",
]
