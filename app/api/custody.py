"""API: a tender's public key, the one bidders seal their envelopes to (`python -m bidding
seal --tender-key KEY.pem --tender ID`). Public: the key protects bids, it is no secret."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, String
from flask import abort

from app.api import bp
from app.api.schemas import ErrorOut
from app.custody.operations import envelope_tender_id, tender_key_of
from app.tenders.access import public_tender


class TenderPublicKeyOut(Schema):
    tender_envelope_id = String(
        metadata={"description": "The tender id to put in envelopes (`--tender`), e.g. `T12`."}
    )
    public_key_hex = String(metadata={"description": "The raw 32-byte X25519 key, hex."})
    public_key_pem = String(metadata={"description": "The same key as PEM SubjectPublicKeyInfo."})
    fingerprint = String(metadata={"description": "SHA-256 of the raw key, hex."})
    threshold = Integer(metadata={"description": "k: custodians needed to open the bids."})
    custodians = Integer(metadata={"description": "n: custodians holding a share."})


@bp.get("/tenders/<int:tender_id>/public-key")
@bp.output(TenderPublicKeyOut)
@bp.doc(
    summary="A published tender's public key (public)",
    description="The HPKE (X25519, HKDF-SHA256, AES-256-GCM) key that bids are sealed to, made "
    "at publication; its private half is split k-of-n among the key custodians. Drafts have "
    "no key (404).",
    responses={
        404: {
            "description": "No such tender, or not published.",
            "content": {"application/json": {"schema": ErrorOut}},
        }
    },
)
def get_tender_public_key(tender_id: int) -> dict:
    tender = public_tender(tender_id)
    tender_key = tender_key_of(tender) or abort(404)
    return {
        "tender_envelope_id": envelope_tender_id(tender),
        "public_key_hex": tender_key.public_key,
        "public_key_pem": tender_key.public_key_pem,
        "fingerprint": tender_key.fingerprint,
        "threshold": tender_key.threshold,
        "custodians": len(tender_key.shares),
    }
