"""OCDS 1.1 `tender` releases of published tenders, and the release package around them.

Pure apart from reading the tender's attributes: no Flask, no queries of its own. The
caller passes the settings (ocid prefix, currency) and how to make a document's URL.

Choices, where the standard leaves room:
- ocid = "<prefix>-<centre code>-<reference>" (`Tender.ocid_suffix`); a reference is unique
  per centre and frozen at publication.
- A release id names the state it describes: "<ocid>-tender", "<ocid>-update-<n>" after
  the n-th addendum, "<ocid>-cancellation"; an award or failure adds "-complete" /
  "-unsuccessful". Corrections are new releases, never edits of an old one.
- tender.status (closed codelist): published, closed, opened, evaluating and candidates
  are all "active" (the process is under way); awarded is "complete"; failed is
  "unsuccessful"; cancelled is "cancelled".
- mainProcurementCategory is goods / works / services; an asset or land-use right sale is
  not procurement and has no code in that closed codelist, so the field is omitted and
  procurementMethodDetails says what the process is.
- OCDS documents have no hash field: the SHA-256 and size go in `description`
  ("SHA-256: <hex>; <n> bytes"), so a consumer can check the file at `url`.
- Amounts are JSON numbers (the schema's type): Decimal becomes int when whole, else float,
  which is exact for the 2-decimal amounts of up to 15 significant digits we store.
- Several lots use the lots extension (`tender.lots`), listed in the package's
  `extensions`; a one-lot tender has no `lots`, as the extension advises.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

OCDS_VERSION = "1.1"
LOTS_EXTENSION = (
    "https://raw.githubusercontent.com/open-contracting-extensions/ocds_lots_extension/"
    "v1.1.5/extension.json"
)
PROCUREMENT_CATEGORIES = frozenset({"goods", "works", "services"})
TENDER_STATUS = {
    "published": "active",
    "closed": "active",
    "opened": "active",
    "evaluating": "active",
    "candidates": "active",
    "awarded": "complete",
    "failed": "unsuccessful",
    "cancelled": "cancelled",
}
DOCUMENT_TYPES = {
    "tender_html": "biddingDocuments",
    "tender_pdf": "biddingDocuments",
    "attachment": "technicalSpecifications",
    "addendum_pdf": "clarifications",
}


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def amount(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)


def value_of(money: Decimal | None, currency: str) -> dict[str, Any] | None:
    if money is None:
        return None
    return {"amount": amount(money), "currency": currency}


def release_state(tender) -> tuple[list[str], str, datetime]:
    """(tag, id suffix, date) of the release describing the tender as it stands."""
    addenda = sorted(tender.addenda, key=lambda a: a.number)
    if tender.status == "cancelled":
        return ["tenderCancellation"], "cancellation", tender.cancelled_at or changed_at(tender)
    if addenda:
        tag, suffix = ["tenderUpdate"], f"update-{addenda[-1].number}"
    else:
        tag, suffix = ["tender"], "tender"
    if TENDER_STATUS.get(tender.status) in ("complete", "unsuccessful"):
        suffix += "-" + TENDER_STATUS[tender.status]
    return tag, suffix, changed_at(tender)


def changed_at(tender) -> datetime:
    moments = [tender.published_at or tender.publication_at]
    moments += [addendum.published_at for addendum in tender.addenda]
    if tender.cancelled_at:
        moments.append(tender.cancelled_at)
    return max(moments)


def build_release(
    tender,
    *,
    prefix: str,
    currency: str,
    document_url: Callable[[Any], str],
    documents: list | None = None,
) -> dict[str, Any]:
    """The OCDS release for a public tender. `documents` defaults to those not superseded."""
    if tender.status == "draft":
        raise ValueError("a draft tender has no public release")
    ocid = f"{prefix}-{tender.ocid_suffix}"
    tag, suffix, date = release_state(tender)
    centre = tender.centre
    party_id = f"centre-{centre.code}"
    if documents is None:
        documents = [d for d in tender.documents if d.superseded_at is None]

    section: dict[str, Any] = {
        "id": tender.reference,
        "title": tender.title,
        "status": TENDER_STATUS[tender.status],
        "procuringEntity": {"id": party_id, "name": centre.name},
        "procurementMethod": "open",
        "submissionMethod": ["electronicSubmission"],
        "tenderPeriod": {
            "startDate": timestamp(tender.publication_at),
            "endDate": timestamp(tender.submission_deadline),
        },
        "enquiryPeriod": {
            "startDate": timestamp(tender.publication_at),
            "endDate": timestamp(tender.enquiry_deadline),
        },
        "hasEnquiries": bool(tender.enquiries),
    }
    if tender.description:
        section["description"] = tender.description
    value = value_of(tender.budget, currency)
    if value:
        section["value"] = value
    if tender.category in PROCUREMENT_CATEGORIES:
        section["mainProcurementCategory"] = tender.category
    else:
        section["procurementMethodDetails"] = (
            "Open public sale of assets or land-use rights (highest price wins)"
        )
    if len(tender.lots) > 1:
        section["lots"] = [_lot(lot, currency) for lot in tender.lots]
    if documents:
        section["documents"] = [_document(d, document_url) for d in documents]
    amendments = [
        _amendment(addendum, ocid) for addendum in sorted(tender.addenda, key=lambda a: a.number)
    ]
    if tender.status == "cancelled":
        amendments.append(
            {
                "id": "cancellation",
                "date": timestamp(date),
                "rationale": tender.cancel_reason or "Cancelled",
            }
        )
    if amendments:
        section["amendments"] = amendments

    return {
        "ocid": ocid,
        "id": f"{ocid}-{suffix}",
        "date": timestamp(date),
        "tag": tag,
        "initiationType": "tender",
        "parties": [{"id": party_id, "name": centre.name, "roles": ["buyer", "procuringEntity"]}],
        "buyer": {"id": party_id, "name": centre.name},
        "tender": section,
    }


def _lot(lot, currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(lot.number), "title": lot.title}
    value = value_of(lot.ceiling_price or lot.budget, currency)
    if value:
        out["value"] = value
    return out


def _document(document, document_url: Callable[[Any], str]) -> dict[str, Any]:
    return {
        "id": str(document.id),
        "documentType": DOCUMENT_TYPES.get(document.kind, "biddingDocuments"),
        "title": document.title,
        "description": f"SHA-256: {document.sha256}; {document.size} bytes",
        "url": document_url(document),
        "datePublished": timestamp(document.created_at),
        "format": document.content_type.split(";")[0].strip(),
    }


def _amendment(addendum, ocid: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f"addendum-{addendum.number}",
        "date": timestamp(addendum.published_at),
        "rationale": addendum.title,
        "description": addendum.body,
        "releaseID": f"{ocid}-update-{addendum.number}",
    }
    previous = "tender" if addendum.number == 1 else f"update-{addendum.number - 1}"
    out["amendsReleaseID"] = f"{ocid}-{previous}"
    return out


def build_package(
    releases: list[dict[str, Any]],
    *,
    uri: str,
    publisher: dict[str, str],
    license_url: str | None = None,
    publication_policy: str | None = None,
) -> dict[str, Any]:
    """A release package. publishedDate is the latest release's date: the package is made
    on demand, so it dates from the last change of what it holds."""
    package: dict[str, Any] = {
        "uri": uri,
        "version": OCDS_VERSION,
        "publishedDate": max(release["date"] for release in releases),
        "publisher": publisher,
        "releases": releases,
    }
    if any("lots" in release.get("tender", {}) for release in releases):
        package["extensions"] = [LOTS_EXTENSION]
    if license_url:
        package["license"] = license_url
    if publication_policy:
        package["publicationPolicy"] = publication_policy
    return package
