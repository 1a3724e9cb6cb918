"""Exception classes of the bidding library.

Every error the library raises on bad input is a :class:`BiddingError`; callers that only
need "refuse it and say why" catch that and show ``str(error)``.  Messages never contain
plaintext of a bid, key material or passphrases.
"""

from __future__ import annotations


class BiddingError(Exception):
    """Base class of every error raised by :mod:`bidding`."""


# --- envelopes -----------------------------------------------------------------------------


class EnvelopeError(BiddingError):
    """An envelope was refused."""


class MalformedEnvelope(EnvelopeError):
    """Not a well-formed envelope: bad magic or version, bad header, wrong framing or size.

    Detectable without any key (``inspect_header``), so the server refuses such uploads.
    A truncated envelope, or one with trailing bytes, is malformed.
    """


class WrongTender(EnvelopeError):
    """The header names another tender than the one expected."""


class WrongBidder(EnvelopeError):
    """The header names another bidder than the one expected."""


class WrongLot(EnvelopeError):
    """The header names another lot than the one expected (or a lot where none is expected,
    or none where one is)."""


class DecryptionError(EnvelopeError):
    """The content key could not be unsealed.

    Either the private key is not the tender's key, or the header was altered after sealing
    (its tender, bidder, parts, sizes or key fields): the two cannot be told apart.
    """


class IntegrityError(EnvelopeError):
    """The content fails authentication: a chunk was altered, reordered, duplicated, moved
    from another envelope, or the header was swapped; or the envelope's SHA-256 differs from
    the one expected (its receipt)."""


class EnvelopeHashMismatch(IntegrityError):
    """The envelope's SHA-256 is not the one expected (the one on its receipt).

    With a receipt hash given, this is raised instead of any other envelope error when the
    stored bytes are not the receipted ones: a platform or storage fault, not the bidder's.
    """


# --- keys and the key ceremony -------------------------------------------------------------


class KeyCeremonyError(BiddingError):
    """A key, share or custodian key file was refused."""


class MalformedKey(KeyCeremonyError):
    """A key file or key blob could not be parsed or is of the wrong type."""


class WrongPassphrase(KeyCeremonyError):
    """The passphrase does not unlock this custodian key (or the key blob was altered)."""


class ShareError(KeyCeremonyError):
    """A share could not be decrypted, is malformed, has a bad checksum, does not belong
    with the other shares, or there are fewer shares than the threshold."""


class KeyMismatch(KeyCeremonyError):
    """The rebuilt private key does not match the published tender public key.

    Raised when a share or the sharing passphrase is wrong but still combined without a
    checksum error: SLIP-39 then silently yields another secret.
    """


# --- receipts and sealing records ----------------------------------------------------------


class ReceiptError(BiddingError):
    """A receipt is malformed or its signature does not verify."""


class SealingRecordError(BiddingError):
    """A sealing record is malformed, its signature does not verify, or an inclusion proof
    fails."""


class InclusionError(SealingRecordError):
    """An envelope hash is not included in the sealing record's Merkle tree."""


class OpeningRecordError(BiddingError):
    """An opening record is malformed, its signature does not verify, or it does not match
    the sealing record it names."""


class NoticeError(BiddingError):
    """A signed public notice is malformed or its signature does not verify."""


class AuditExportError(BiddingError):
    """An audit export or checkpoint is malformed, unsigned, incomplete or altered."""


class BundleError(BiddingError):
    """A verification bundle's manifest is malformed or unsigned, or a file is missing,
    altered or not part of it."""
