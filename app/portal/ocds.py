"""OCDS 1.1 releases of a public tender, one per stage of its life, and the release
package around them.

Pure apart from reading attributes: no Flask, no queries of its own. The caller gathers
the rows (`app.portal.ocds_facts`) and passes the settings (ocid prefix, currency) and how
to make a document's URL.

Releases are never edited; each stage that happened is its own release, and what a release
says depends only on what was true at its date, so the same release comes back with the
same content on every call (corrections are new releases):

- "<ocid>-tender": publication. tag tender.
- "<ocid>-update-<n>": the n-th addendum (tag tenderUpdate, an entry in
  `tender.amendments`); the bid deadline in force moves with it.
- "<ocid>-opening": the opening completed. tag tenderUpdate; the tenderers (parties with
  their unified social credit code, scheme CN-USCC) and `bids.statistics` (counts only: no
  price and no per-bid detail before the award).
- "<ocid>-candidates-<notice id>": each candidates notice (a re-evaluation publishes a new
  one). tag award / awardUpdate; one `pending` award per candidate, with its price; an
  award no longer among the candidates becomes `cancelled`.
- "<ocid>-award-<notice id>": the award notice. tags tenderUpdate + award / awardUpdate;
  tender status `complete`; the winner's award `active`, the other candidates'
  `unsuccessful`; `bids.details` (every opened envelope with its status and price) and the
  final statistics appear here and not before.
- "<ocid>-unsuccessful" (opening failed: too few envelopes) or
  "<ocid>-unsuccessful-<notice id>" (failed notice): tender status `unsuccessful`, the
  public reason in `tender.amendments`, pending awards `unsuccessful`.
- A tender of several lots publishes one notice per lot (`NoticeFacts.lot`): each lot's
  candidates, award or failure is its own release as above, touching only that lot's awards
  (`relatedLots`) and status (`tender.lots[].status`: active, then complete or
  unsuccessful); the tender becomes `complete` (or `unsuccessful`) once every lot is
  decided. `bids.statistics` has a `bids` count per lot (`relatedLot`) from the opening, and
  each decided lot's valid bids and lowest / highest valid price; `bids.details` lists a
  lot's envelopes once the lot is decided. `tender.lotDetails.maximumLotsAwardedPerSupplier`
  is the tender's win limit (兼投不兼中).
- "<ocid>-cancellation": tag tenderCancellation, tender status `cancelled`, the reason in
  `tender.amendments`, pending awards `cancelled`.
- "<ocid>-suspension-<n>": a supervisor suspended the tender (tag tenderUpdate). OCDS 1.1
  has no suspended status: the status stays `active` and the public reason goes in
  `tender.amendments` (id "suspension-<n>").
- "<ocid>-resumption-<n>": a second supervisor approved the resumption (tag tenderUpdate):
  an amendment "resumption-<n>" (saying whether the evaluation is done again) and, from this
  release on, the bid deadline moved by the time the tender stood still.

Other choices, where the standard leaves room:
- ocid = "<prefix>-<centre code>-<reference>" (`Tender.ocid_suffix`); a reference is unique
  per centre and frozen at publication.
- mainProcurementCategory is goods / works / services; an asset or land-use right sale is
  not procurement and has no code in that closed codelist, so the field is omitted and
  procurementMethodDetails says what the process is.
- OCDS 1.1 documents have no hash field: the SHA-256 and size go in `description`
  ("SHA-256: <hex>; <n> bytes"), so a consumer can check the file at `url`.
- Amounts are JSON numbers (the schema's type): Decimal becomes int when whole, else float,
  which is exact for the 2-decimal amounts of up to 15 significant digits we store.
- Several lots use the lots extension (`tender.lots`); a one-lot tender has no `lots`, as
  the extension advises. `bids` uses the bids extension. Both are listed in the package's
  `extensions` when used.
- Party ids: "centre-<code>" for the trading centre (buyer and procuring entity),
  "CN-USCC-<code>" for a company. Award ids: "award-<company id>" (with "-lot-<n>" when
  the tender has several lots), stable from the candidates notice to the award.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.types import timestamp

OCDS_VERSION = "1.1"
LOTS_EXTENSION = (
    "https://raw.githubusercontent.com/open-contracting-extensions/ocds_lots_extension/"
    "v1.1.5/extension.json"
)
BIDS_EXTENSION = (
    "https://raw.githubusercontent.com/open-contracting-extensions/ocds_bid_extension/"
    "master/extension.json"
)
USCC_SCHEME = "CN-USCC"
PROCUREMENT_CATEGORIES = frozenset({"goods", "works", "services"})
DOCUMENT_TYPES = {
    "tender_html": "biddingDocuments",
    "tender_pdf": "biddingDocuments",
    "attachment": "technicalSpecifications",
    "addendum_pdf": "clarifications",
}
# Documents of the tender section: the tender document, attachments, addenda. Records,
# notices and letters are documents of the awards (or private) and never listed here.
TENDER_DOCUMENT_KINDS = frozenset(DOCUMENT_TYPES)
# OpeningLine.status -> bid status before the evaluation's verdict.
LINE_STATUS = {"opened": "valid", "revoked": "disqualified", "withdrawn": "withdrawn"}


# -- the facts a caller gathers -------------------------------------------------------


@dataclass(frozen=True)
class Bidder:
    id: int
    name: str
    uscc: str


@dataclass(frozen=True)
class OpenedEnvelope:
    """One opening line: the envelope's bid id, when it was received, whose it is."""

    bid_id: int
    received_at: datetime | None
    company_id: int
    status: str  # opened | revoked | withdrawn
    price: str | None
    lot: int | None = None  # the lot's number (its OCDS id) in a tender of several lots


@dataclass(frozen=True)
class OpeningFacts:
    status: str  # completed | failed (others: no release yet)
    completed_at: datetime | None
    reason: str = ""
    envelopes: tuple[OpenedEnvelope, ...] = ()
    withdrawn_by_bidders: int = 0  # bids their companies withdrew before the deadline


@dataclass(frozen=True)
class SealingFacts:
    """The signed sealing record made at the deadline: its Merkle root over `count`
    envelopes, its document and the public URL of the record."""

    root: str
    count: int
    document: Any
    url: str


@dataclass(frozen=True)
class NoticeFacts:
    """A result notice with its public documents as (documentType, TenderDocument)."""

    id: int
    kind: str  # candidates | award | failed
    published_at: datetime
    content: Any
    reason: str = ""
    documents: tuple[tuple[str, Any], ...] = ()
    lot: int | None = None  # the lot's number in a tender of several lots (None: the tender)


@dataclass(frozen=True)
class CheckpointFacts:
    """A signed checkpoint of the audit chain that anchors one of the tender's milestones:
    the first made at or after it (listed as a document, with the audit export's URL)."""

    seq: int
    head: str
    made_at: datetime
    url: str
    export_url: str


@dataclass(frozen=True)
class SuspensionFacts:
    """A supervision authority's suspension: when and why, and (once lifted) when it was
    lifted, by how much the bid deadline moved then, and whether a re-evaluation was ordered."""

    id: int
    suspended_at: datetime
    reason: str
    lifted_at: datetime | None = None
    deadline_shift_seconds: int = 0
    reevaluation: bool = False
    note: str = ""


@dataclass
class TenderFacts:
    tender: Any
    opening: OpeningFacts | None = None
    notices: list[NoticeFacts] = field(default_factory=list)
    bidders: dict[int, Bidder] = field(default_factory=dict)
    # The evaluation's verdict per bidder (unified social credit code): compliant or not.
    compliant: dict[str, bool] = field(default_factory=dict)
    # A tender of several lots: the verdict per (lot number, bidder id).
    lot_compliant: dict[tuple[int, str], bool] = field(default_factory=dict)
    # The tender this one re-tenders after it failed: (ocid suffix, title), or None.
    prior: tuple[str, str] | None = None
    sealing: SealingFacts | None = None
    checkpoints: tuple[CheckpointFacts, ...] = ()
    # The signed cancellation notice of a cancelled tender: (document, its public URL).
    cancellation: tuple[Any, str] | None = None
    suspensions: list[SuspensionFacts] = field(default_factory=list)


# -- small helpers ----------------------------------------------------------------------


def amount(value: Decimal | str | None) -> int | float | None:
    if value is None:
        return None
    try:
        value = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not value.is_finite():
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def value_of(money: Decimal | str | None, currency: str) -> dict[str, Any] | None:
    number = amount(money)
    if number is None:
        return None
    return {"amount": number, "currency": currency}


def changed_at(tender) -> datetime:
    """When the tender's announcement last changed (publication, addendum, cancellation)."""
    moments = [tender.published_at or tender.publication_at]
    moments += [addendum.published_at for addendum in tender.addenda]
    if tender.cancelled_at:
        moments.append(tender.cancelled_at)
    return max(moments)


def party_id(bidder: Bidder) -> str:
    return f"{USCC_SCHEME}-{bidder.uscc}"


def _reference(bidder: Bidder) -> dict[str, Any]:
    return {"id": party_id(bidder), "name": bidder.name}


def _party(bidder: Bidder, roles: list[str]) -> dict[str, Any]:
    return {
        "id": party_id(bidder),
        "name": bidder.name,
        "identifier": {"scheme": USCC_SCHEME, "id": bidder.uscc, "legalName": bidder.name},
        "roles": roles,
    }


def notice_entries(notice: NoticeFacts) -> list[dict[str, Any]]:
    """The ranked candidates (or winners) a notice publishes.

    `content` is {"candidates": [{"rank", "company_id", "company", "price", ...}]}; an award
    notice may name its winner(s) under "winner" / "winners" instead of (or beside) the list.
    """
    content = notice.content
    if isinstance(content, list):
        return [e for e in content if isinstance(e, dict)]
    if not isinstance(content, dict):
        return []
    if notice.kind == "award":
        for key in ("winners", "winner", "award", "awarded"):
            found = content.get(key)
            if isinstance(found, dict):
                return [found]
            if isinstance(found, list) and found:
                return [e for e in found if isinstance(e, dict)]
    for key in ("candidates", "ranking"):
        found = content.get(key)
        if isinstance(found, list):
            entries = [e for e in found if isinstance(e, dict)]
            if notice.kind == "award" and any("rank" in e for e in entries):
                return [e for e in entries if _rank(e) == 1]
            return entries
    return []


def _rank(entry: dict[str, Any]) -> int | None:
    try:
        return int(entry.get("rank"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


# -- the builder --------------------------------------------------------------------------


class _State:
    """The contracting process as it stands after each stage, copied into each release."""

    def __init__(self, facts: TenderFacts, ocid: str, currency: str, document_url) -> None:
        self.facts = facts
        self.tender = facts.tender
        self.ocid = ocid
        self.currency = currency
        self.document_url = document_url
        self.multi_lot = len(self.tender.lots) > 1
        # Each lot's status by its OCDS id (a tender of several lots).
        # (A lot an addendum cancelled is no competition: it has no result to wait for.)
        self.lot_status: dict[str, str] = (
            {
                str(lot.number): "active"
                for lot in self.tender.lots
                if not getattr(lot, "is_cancelled", False)
            }
            if self.multi_lot
            else {}
        )
        self.addenda_in_force = 0
        self.status = "active"
        self.amendments: list[dict[str, Any]] = []
        self.tenderers: list[Bidder] = []
        self.suppliers: set[int] = set()
        self.statistics: list[dict[str, Any]] = []
        self.details: list[dict[str, Any]] | None = None
        self.awards: dict[str, dict[str, Any]] = {}
        self.award_period_start: datetime | None = None
        self.award_period_end: datetime | None = None
        self.sealed = False
        self.checkpoints: list[CheckpointFacts] = []
        self.date: datetime | None = None

    # Lookups ---------------------------------------------------------------------

    def lots_in_force(self) -> list[dict[str, Any]]:
        """The lots as the addenda in force left them: a lot added by a later addendum is
        not there yet; one cancelled by an addendum in force has status `cancelled`."""
        numbers = {addendum.id: addendum.number for addendum in self.tender.addenda}
        added_by = {
            change["lot"]: addendum.number
            for addendum in self.tender.addenda
            for change in addendum.lot_changes or []
            if change.get("action") == "add"
        }
        out = []
        for lot in self.tender.lots:
            if added_by.get(lot.reference, 0) > self.addenda_in_force:
                continue
            entry = _lot(lot, self.currency)
            # Its result once decided (complete or unsuccessful: see `settle_lot`).
            if self.lot_status.get(str(lot.number), "active") != "active":
                entry["status"] = self.lot_status[str(lot.number)]
            cancelled_in = numbers.get(lot.cancelled_by_addendum_id)
            if cancelled_in is not None and cancelled_in <= self.addenda_in_force:
                entry["status"] = "cancelled"
            out.append(entry)
        return out

    def bidder_of(self, entry: dict[str, Any]) -> Bidder | None:
        bidders = self.facts.bidders
        company_id = entry.get("company_id")
        if isinstance(company_id, int) and company_id in bidders:
            return bidders[company_id]
        code = entry.get("uscc") or entry.get("registration_number") or entry.get("bid")
        for bidder in bidders.values():
            if code and bidder.uscc == code:
                return bidder
        return None

    def envelope_of(self, bidder: Bidder, lot: int | None = None) -> OpenedEnvelope | None:
        """The bidder's opened envelope (for `lot` in a tender of several lots)."""
        opening = self.facts.opening
        if opening is None:
            return None
        for envelope in opening.envelopes:
            if envelope.company_id == bidder.id and (lot is None or envelope.lot == lot):
                return envelope
        return None

    def of_lot(self, award: dict[str, Any], lot: int | None) -> bool:
        """Whether an award belongs to `lot` (every award does when no lot is given)."""
        return lot is None or award.get("relatedLots") == [str(lot)]

    def lots_decided(self) -> bool:
        return all(status != "active" for status in self.lot_status.values())

    # Sections --------------------------------------------------------------------

    def deadline(self) -> datetime:
        """The bid deadline in force once `addenda_in_force` addenda were published."""
        addenda = sorted(self.tender.addenda, key=lambda a: a.number)
        # The value read is as it stood at `known` (now, or an addendum's publication): the
        # resumptions between `known` and the release's date move it (see `_resumed`).
        if not addenda:
            deadline, known = self.tender.submission_deadline, None
        elif self.addenda_in_force == 0:
            deadline, known = addenda[0].deadline_before, addenda[0].published_at
        else:
            addendum = addenda[self.addenda_in_force - 1]
            deadline, known = addendum.deadline_after, addendum.published_at
        return deadline + self._resumed(known)

    def _resumed(self, known: datetime | None) -> timedelta:
        """The deadline shifts of resumptions after `known` (None: now) up to this release's
        date, minus those after the release's date up to `known`."""
        if self.date is None:
            return timedelta(0)
        shift = timedelta(0)
        for suspension in self.facts.suspensions:
            lifted = suspension.lifted_at
            if lifted is None or not suspension.deadline_shift_seconds:
                continue
            moved = timedelta(seconds=suspension.deadline_shift_seconds)
            if known is not None and known < lifted <= self.date:
                shift += moved
            elif self.date < lifted and (known is None or lifted <= known):
                shift -= moved
        return shift

    def tender_section(self, date: datetime) -> dict[str, Any]:
        tender = self.tender
        centre = tender.centre
        deadline = self.deadline()
        # An addendum moves the opening with the deadline: undo the later shifts.
        opening_at = tender.opening_at - (tender.submission_deadline - deadline)
        section: dict[str, Any] = {
            "id": tender.reference,
            "title": tender.title,
            "status": self.status,
            "procuringEntity": {"id": f"centre-{centre.code}", "name": centre.name},
            "procurementMethod": "open",
            "submissionMethod": ["electronicSubmission"],
            "tenderPeriod": {
                "startDate": timestamp(tender.publication_at),
                "endDate": timestamp(deadline),
            },
            "enquiryPeriod": {
                "startDate": timestamp(tender.publication_at),
                "endDate": timestamp(tender.enquiry_deadline),
            },
            "hasEnquiries": any(e.asked_at <= date for e in tender.enquiries),
            "awardPeriod": {
                "startDate": timestamp(self.award_period_start or opening_at),
            },
        }
        if self.award_period_end is not None:
            section["awardPeriod"]["endDate"] = timestamp(self.award_period_end)
        if tender.description:
            section["description"] = tender.description
        value = value_of(tender.budget, self.currency)
        if value is None and len(tender.lots) == 1:
            value = value_of(tender.lots[0].ceiling_price, self.currency)
        if value:
            section["value"] = value
        if tender.category in PROCUREMENT_CATEGORIES:
            section["mainProcurementCategory"] = tender.category
        else:
            section["procurementMethodDetails"] = (
                "Open public sale of assets or land-use rights (highest price wins)"
            )
        if self.multi_lot:
            section["lots"] = self.lots_in_force()
            if getattr(tender, "max_lots_won", None):
                section["lotDetails"] = {"maximumLotsAwardedPerSupplier": tender.max_lots_won}
        documents = self.tender_documents(date)
        if documents:
            section["documents"] = documents
        if self.tenderers:
            section["numberOfTenderers"] = len(self.tenderers)
            section["tenderers"] = [_reference(b) for b in self.tenderers]
        if self.amendments:
            section["amendments"] = copy.deepcopy(self.amendments)
        return section

    def tender_documents(self, date: datetime) -> list[dict[str, Any]]:
        addendum_numbers = {a.id: a.number for a in self.tender.addenda}
        listed = []
        for document in self.tender.documents:
            if document.kind not in TENDER_DOCUMENT_KINDS:
                continue
            if document.addendum_id is not None:
                number = addendum_numbers.get(document.addendum_id)
                if number is None or number > self.addenda_in_force:
                    continue
            # Superseded by then (a draft's earlier rendering: before publication).
            if document.superseded_at is not None and document.superseded_at <= date:
                continue
            listed.append(_document(document, self.document_url))
        sealing = self.facts.sealing
        if self.sealed and sealing is not None:
            entry = _document(sealing.document, self.document_url, "submissionDocuments")
            entry["url"] = sealing.url
            entry["description"] = (
                f"Sealing record: Merkle root {sealing.root} over {sealing.count} envelope(s); "
                + entry["description"]
            )
            listed.append(entry)
        if self.status == "cancelled" and self.facts.cancellation is not None:
            document, url = self.facts.cancellation
            entry = _document(document, self.document_url, "tenderNotice")
            entry["url"] = url
            listed.append(entry)
        listed.extend(_checkpoint_document(checkpoint) for checkpoint in self.checkpoints)
        return listed

    def parties(self) -> list[dict[str, Any]]:
        centre = self.tender.centre
        parties = [
            {
                "id": f"centre-{centre.code}",
                "name": centre.name,
                "roles": ["buyer", "procuringEntity"],
            }
        ]
        for bidder in self.tenderers:
            roles = ["tenderer"] + (["supplier"] if bidder.id in self.suppliers else [])
            parties.append(_party(bidder, roles))
        return parties

    def release(self, suffix: str, tag: list[str], date: datetime) -> dict[str, Any]:
        self.date = date
        centre = self.tender.centre
        release: dict[str, Any] = {
            "ocid": self.ocid,
            "id": f"{self.ocid}-{suffix}",
            "date": timestamp(date),
            "tag": tag,
            "initiationType": "tender",
            "parties": self.parties(),
            "buyer": {"id": f"centre-{centre.code}", "name": centre.name},
            "tender": self.tender_section(date),
        }
        if self.statistics or self.details is not None:
            bids: dict[str, Any] = {"statistics": copy.deepcopy(self.statistics)}
            if self.details is not None:
                bids["details"] = copy.deepcopy(self.details)
            release["bids"] = bids
        if self.awards:
            release["awards"] = copy.deepcopy(list(self.awards.values()))
        if self.facts.prior is not None:
            suffix, title = self.facts.prior
            prior_ocid = f"{self.ocid.removesuffix(self.tender.ocid_suffix)}{suffix}"
            release["relatedProcesses"] = [
                {
                    "id": "prior",
                    "relationship": ["unsuccessfulProcess"],
                    "title": title,
                    "scheme": "ocid",
                    "identifier": prior_ocid,
                }
            ]
        return release

    # Stages ------------------------------------------------------------------------

    def open(self, opening: OpeningFacts, date: datetime) -> None:
        seen: dict[int, Bidder] = {}
        for envelope in opening.envelopes:
            bidder = self.facts.bidders.get(envelope.company_id)
            if bidder is not None:
                seen.setdefault(bidder.id, bidder)
        self.tenderers = sorted(seen.values(), key=lambda b: b.uscc)
        counts = {"opened": 0, "revoked": 0, "withdrawn": 0}
        for envelope in opening.envelopes:
            counts[envelope.status] = counts.get(envelope.status, 0) + 1
        total = len(opening.envelopes)
        when = timestamp(date)
        self.statistics = [
            _statistic("bids", total, when),
            _statistic("electronicBids", total, when),
            _statistic(
                "disqualifiedBids",
                counts["revoked"],
                when,
                "Envelopes the bidder's fault made unreadable at the opening (revoked)",
            ),
            _statistic(
                "withdrawnBids",
                opening.withdrawn_by_bidders,
                when,
                "Bids their companies withdrew before the deadline",
            ),
            _statistic(
                "unopenedBids",
                counts["withdrawn"],
                when,
                "Envelopes the platform could not open at the opening (an incident, recorded)",
            ),
        ]
        if self.multi_lot:
            for lot in sorted(self.tender.lots, key=lambda lot: lot.number):
                if str(lot.number) not in self.lot_status:
                    continue  # cancelled
                number = sum(1 for e in opening.envelopes if e.lot == lot.number)
                self.statistics.append(_lot_statistic("bids", number, when, lot.number))

    def award_entries(self, notice: NoticeFacts) -> list[tuple[str, dict[str, Any], Bidder]]:
        """(award id, award, bidder) for each candidate or winner the notice names."""
        out = []
        for entry in notice_entries(notice):
            bidder = self.bidder_of(entry)
            if bidder is None:
                continue
            lot = notice.lot if notice.lot is not None else entry.get("lot")
            award_id = f"award-{bidder.id}"
            if self.multi_lot and lot is not None:
                award_id += f"-lot-{lot}"
            envelope = self.envelope_of(bidder, lot if self.multi_lot else None)
            price = entry.get("price")
            if price is None and envelope is not None:
                price = envelope.price
            award: dict[str, Any] = {
                "id": award_id,
                "date": timestamp(notice.published_at),
                "suppliers": [_reference(bidder)],
            }
            rank = _rank(entry)
            if rank is not None:
                award["title"] = f"Candidate ranked {rank}"
            value = value_of(price, self.currency)
            if value:
                award["value"] = value
            if envelope is not None:
                award["relatedBids"] = [str(envelope.bid_id)]
            if self.multi_lot and lot is not None:
                award["relatedLots"] = [str(lot)]
            documents = [
                _document(document, self.document_url, document_type)
                for document_type, document in notice.documents
            ]
            if documents:
                award["documents"] = documents
            if bidder not in self.tenderers:  # a party every award refers to
                self.tenderers.append(bidder)
            out.append((award_id, award, bidder))
        return out

    def candidates(self, notice: NoticeFacts) -> None:
        if self.award_period_start is None:
            self.award_period_start = notice.published_at
        named = {award_id: award for award_id, award, _b in self.award_entries(notice)}
        lot = notice.lot if self.multi_lot else None
        for award_id, award in self.awards.items():
            if award_id not in named and award["status"] == "pending" and self.of_lot(award, lot):
                award["status"] = "cancelled"
                award["date"] = timestamp(notice.published_at)
        for award_id, award in named.items():
            award["status"] = "pending"
            self.awards[award_id] = award

    def settle_lot(self, lot: int, status: str, date: datetime) -> None:
        """A lot decided (complete or unsuccessful); the tender too once every lot is."""
        self.lot_status[str(lot)] = status
        if self.lots_decided():
            statuses = set(self.lot_status.values())
            self.status = "complete" if "complete" in statuses else "unsuccessful"
            self.award_period_end = date
        self.publish_details(date)

    def fail_lot(self, notice: NoticeFacts, date: datetime) -> None:
        """One lot of several failed: its pending awards unsuccessful, its reason an
        amendment."""
        lot = notice.lot
        reference = next((x.reference for x in self.tender.lots if x.number == lot), str(lot))
        self.amendments.append(
            {
                "id": f"unsuccessful-{notice.id}",
                "date": timestamp(date),
                "rationale": f"Lot {reference}: {notice.reason or 'unsuccessful'}",
            }
        )
        for award in self.awards.values():
            if award["status"] == "pending" and self.of_lot(award, lot):
                award["status"] = "unsuccessful"
                award["date"] = timestamp(date)
        self.settle_lot(lot, "unsuccessful", date)

    def award(self, notice: NoticeFacts) -> None:
        if self.award_period_start is None:
            self.award_period_start = notice.published_at
        lot = notice.lot if self.multi_lot else None
        if lot is None:
            self.award_period_end = notice.published_at
            self.status = "complete"
        entries = self.award_entries(notice)
        winners = {award_id: award for award_id, award, _b in entries}
        for award_id, award in self.awards.items():
            if award_id not in winners and award["status"] == "pending" and self.of_lot(award, lot):
                award["status"] = "unsuccessful"
                award["date"] = timestamp(notice.published_at)
        for award_id, award in winners.items():
            award["status"] = "active"
            previous = self.awards.get(award_id)
            if previous is not None and "title" in previous and "title" not in award:
                award["title"] = previous["title"]
            self.awards[award_id] = award
        self.suppliers.update(bidder.id for _id, _award, bidder in entries)
        if lot is not None:
            self.settle_lot(lot, "complete", notice.published_at)
            return
        # One award notice for the whole tender (older notices of several lots name each
        # winner's lot): the lots it awards are complete, the others unsuccessful.
        won = {lots[0] for award in winners.values() for lots in [award.get("relatedLots")] if lots}
        for number in self.lot_status:
            self.lot_status[number] = "complete" if number in won else "unsuccessful"
        self.publish_details(notice.published_at)

    def publish_details(self, date: datetime) -> None:
        """After the award: every envelope with its final status and price."""
        opening = self.facts.opening
        if opening is None:
            return
        details = []
        valid_prices = []
        disqualified = 0
        for envelope in sorted(opening.envelopes, key=lambda e: e.bid_id):
            if self.multi_lot and self.lot_status.get(str(envelope.lot)) in (None, "active"):
                continue  # a lot still being decided (or cancelled): listed once decided
            bidder = self.facts.bidders.get(envelope.company_id)
            status = LINE_STATUS.get(envelope.status, "disqualified")
            if self.multi_lot:
                verdict = self.facts.lot_compliant.get(
                    (envelope.lot, bidder.uscc if bidder else "")
                )
            else:
                verdict = self.facts.compliant.get(bidder.uscc) if bidder else None
            if status == "valid" and verdict is False:
                status = "disqualified"
            detail: dict[str, Any] = {"id": str(envelope.bid_id), "status": status}
            if envelope.received_at is not None:
                detail["date"] = timestamp(envelope.received_at)
            if bidder is not None:
                detail["tenderers"] = [_reference(bidder)]
            if self.multi_lot and envelope.lot is not None:
                detail["relatedLots"] = [str(envelope.lot)]
            value = value_of(envelope.price, self.currency) if envelope.status == "opened" else None
            if value:
                detail["value"] = value
            if status == "valid" and value:
                valid_prices.append(value["amount"])
            disqualified += status == "disqualified"
            details.append(detail)
        self.details = details
        when = timestamp(date)
        valid = sum(1 for d in details if d["status"] == "valid")
        statistics = {s["id"]: s for s in self.statistics}
        statistics["validBids"] = _statistic("validBids", valid, when)
        statistics["disqualifiedBids"] = _statistic(
            "disqualifiedBids",
            disqualified,
            when,
            "Revoked at the opening or found non-compliant by the evaluation",
        )
        if valid_prices and not self.multi_lot:  # prices of different lots: per lot only
            for measure, number in (
                ("lowestValidBidValue", min(valid_prices)),
                ("highestValidBidValue", max(valid_prices)),
            ):
                statistics[measure] = _statistic(measure, number, when)
                statistics[measure]["currency"] = self.currency
        if self.multi_lot:
            for lot in sorted(self.tender.lots, key=lambda lot: lot.number):
                if self.lot_status.get(str(lot.number)) in (None, "active"):
                    continue
                self.lot_statistics(statistics, lot.number, details, when)
        self.statistics = list(statistics.values())

    def lot_statistics(
        self, statistics: dict[str, dict[str, Any]], lot: int, details: list, when: str
    ) -> None:
        """A decided lot's valid bids and lowest / highest valid price (`relatedLot`)."""
        mine = [d for d in details if d.get("relatedLots") == [str(lot)]]
        valid = [d for d in mine if d["status"] == "valid"]
        entries = [_lot_statistic("validBids", len(valid), when, lot)]
        prices = [d["value"]["amount"] for d in valid if "value" in d]
        if prices:
            for measure, number in (
                ("lowestValidBidValue", min(prices)),
                ("highestValidBidValue", max(prices)),
            ):
                entry = _lot_statistic(measure, number, when, lot)
                entry["currency"] = self.currency
                entries.append(entry)
        for entry in entries:
            statistics[entry["id"]] = entry

    def end(self, status: str, amendment_id: str, date: datetime, reason: str) -> None:
        self.status = status
        self.amendments.append(
            {"id": amendment_id, "date": timestamp(date), "rationale": reason or status.title()}
        )
        award_status = "cancelled" if status == "cancelled" else "unsuccessful"
        for lot, lot_status in self.lot_status.items():
            if lot_status == "active":
                self.lot_status[lot] = status
        for award in self.awards.values():
            if award["status"] == "pending":
                award["status"] = award_status
                award["date"] = timestamp(date)


def _stages(facts: TenderFacts) -> list[tuple[datetime, int, str, Any]]:
    """(date, order, kind, payload) of every stage that happened, in order."""
    tender = facts.tender
    stages: list[tuple[datetime, int, str, Any]] = [
        (tender.published_at or tender.publication_at, 0, "tender", None)
    ]
    for addendum in sorted(tender.addenda, key=lambda a: a.number):
        stages.append((addendum.published_at, 1, "addendum", addendum))
    if facts.sealing is not None:
        stages.append((facts.sealing.document.created_at, 1, "sealed", facts.sealing))
    opening = facts.opening
    failed = False
    if opening is not None and opening.completed_at is not None:
        if opening.status == "completed":
            stages.append((opening.completed_at, 2, "opening", opening))
        elif opening.status == "failed":
            stages.append((opening.completed_at, 2, "opening_failed", opening))
            failed = True
    for notice in sorted(facts.notices, key=lambda n: (n.published_at, n.id)):
        if notice.kind in ("candidates", "award", "failed"):
            stages.append((notice.published_at, 3, notice.kind, notice))
            failed = failed or notice.kind == "failed"
    for number, suspension in enumerate(facts.suspensions, start=1):
        stages.append((suspension.suspended_at, 1, "suspended", (number, suspension)))
        if suspension.lifted_at is not None:
            stages.append((suspension.lifted_at, 1, "resumed", (number, suspension)))
    if tender.status == "cancelled":
        stages.append((tender.cancelled_at or changed_at(tender), 4, "cancelled", None))
    elif tender.status == "failed" and not failed:
        # Failed without a notice on record: say so, dated at the last known stage.
        stages.append((max(s[0] for s in stages), 4, "failed_unexplained", None))
    for checkpoint in facts.checkpoints:
        stages.append((checkpoint.made_at, 5, "checkpoint", checkpoint))
    stages.sort(key=lambda s: (s[0], s[1]))
    return stages


def build_releases(
    facts: TenderFacts | Any,
    *,
    prefix: str,
    currency: str,
    document_url: Callable[[Any], str],
) -> list[dict[str, Any]]:
    """Every release of a public tender, oldest first. `facts` may be a bare tender."""
    if not isinstance(facts, TenderFacts):
        facts = TenderFacts(tender=facts)
    tender = facts.tender
    if tender.status == "draft":
        raise ValueError("a draft tender has no public release")
    ocid = f"{prefix}-{tender.ocid_suffix}"
    state = _State(facts, ocid, currency, document_url)
    releases = []
    awarded_before = False
    for date, _order, kind, payload in _stages(facts):
        if kind == "tender":
            releases.append(state.release("tender", ["tender"], date))
        elif kind == "addendum":
            state.addenda_in_force = payload.number
            state.amendments.append(_amendment(payload, ocid))
            releases.append(state.release(f"update-{payload.number}", ["tenderUpdate"], date))
        elif kind == "sealed":
            state.sealed = True
            releases.append(state.release("sealed", ["tenderUpdate"], date))
        elif kind == "opening":
            state.open(payload, date)
            releases.append(state.release("opening", ["tenderUpdate"], date))
        elif kind == "opening_failed":
            if payload.envelopes:
                state.open(payload, date)
            state.end("unsuccessful", "unsuccessful", date, payload.reason)
            releases.append(state.release("unsuccessful", ["tenderUpdate"], date))
        elif kind == "candidates":
            state.candidates(payload)
            tag = ["awardUpdate"] if awarded_before else ["award"]
            awarded_before = True
            releases.append(state.release(f"candidates-{payload.id}", tag, date))
        elif kind == "award":
            state.award(payload)
            tag = ["tenderUpdate", "awardUpdate" if awarded_before else "award"]
            awarded_before = True
            releases.append(state.release(f"award-{payload.id}", tag, date))
        elif kind == "failed" and state.multi_lot and payload.lot is not None:
            had_awards = bool(state.awards)
            state.fail_lot(payload, date)
            tag = ["tenderUpdate", "awardUpdate"] if had_awards else ["tenderUpdate"]
            releases.append(state.release(f"unsuccessful-{payload.id}", tag, date))
        elif kind == "failed":
            had_awards = bool(state.awards)
            state.end("unsuccessful", f"unsuccessful-{payload.id}", date, payload.reason)
            tag = ["tenderUpdate", "awardUpdate"] if had_awards else ["tenderUpdate"]
            releases.append(state.release(f"unsuccessful-{payload.id}", tag, date))
        elif kind == "failed_unexplained":
            state.end("unsuccessful", "unsuccessful", date, "")
            releases.append(state.release("unsuccessful", ["tenderUpdate"], date))
        elif kind == "checkpoint":
            state.checkpoints.append(payload)
            releases.append(state.release(f"checkpoint-{payload.seq}", ["tenderUpdate"], date))
        elif kind == "suspended":
            number, suspension = payload
            state.amendments.append(
                {
                    "id": f"suspension-{number}",
                    "date": timestamp(suspension.suspended_at),
                    "rationale": f"Suspended by the supervision authority: {suspension.reason}",
                }
            )
            releases.append(state.release(f"suspension-{number}", ["tenderUpdate"], date))
        elif kind == "resumed":
            number, suspension = payload
            what = "resumed with a new evaluation" if suspension.reevaluation else "resumed"
            state.amendments.append(
                {
                    "id": f"resumption-{number}",
                    "date": timestamp(suspension.lifted_at),
                    "rationale": f"Suspension {number} lifted after a second supervisor's "
                    f"approval; {what}: {suspension.note}",
                }
            )
            releases.append(state.release(f"resumption-{number}", ["tenderUpdate"], date))
        elif kind == "cancelled":
            state.end("cancelled", "cancellation", date, tender.cancel_reason or "Cancelled")
            releases.append(state.release("cancellation", ["tenderCancellation"], date))
    return releases


def _statistic(measure: str, value: int | float, date: str, notes: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"id": measure, "measure": measure, "value": value, "date": date}
    if notes:
        out["notes"] = notes
    return out


def _lot_statistic(measure: str, value: int | float, date: str, lot: int) -> dict[str, Any]:
    """A statistic of one lot (the bids extension's `relatedLot`); its id names the lot."""
    out = _statistic(measure, value, date)
    out["id"] = f"{measure}-lot-{lot}"
    out["relatedLot"] = str(lot)
    return out


def _lot(lot, currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(lot.number), "title": lot.title}
    value = value_of(lot.ceiling_price or lot.budget, currency)
    if value:
        out["value"] = value
    return out


def _document(
    document, document_url: Callable[[Any], str], document_type: str | None = None
) -> dict[str, Any]:
    return {
        "id": str(document.id),
        "documentType": document_type or DOCUMENT_TYPES.get(document.kind, "biddingDocuments"),
        "title": document.title,
        "description": f"SHA-256: {document.sha256}; {document.size} bytes",
        "url": document_url(document),
        "datePublished": timestamp(document.created_at),
        "format": document.content_type.split(";")[0].strip(),
    }


def _checkpoint_document(checkpoint: CheckpointFacts) -> dict[str, Any]:
    return {
        "id": f"checkpoint-{checkpoint.seq}",
        "documentType": "auditCheckpoint",
        "title": f"Signed checkpoint of the audit log at event {checkpoint.seq}",
        "description": (
            f"Chain head {checkpoint.head} after event {checkpoint.seq}, signed by the "
            f"platform key (Ed25519). The tender's audit export ({checkpoint.export_url}) is "
            "checked against it with `python -m bidding verify-audit`."
        ),
        "url": checkpoint.url,
        "datePublished": timestamp(checkpoint.made_at),
        "format": "application/json",
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
    releases: Iterable[dict[str, Any]],
    *,
    uri: str,
    publisher: dict[str, str],
    license_url: str | None = None,
    publication_policy: str | None = None,
    published_date: datetime | None = None,
) -> dict[str, Any]:
    """A release package. publishedDate is the latest release's date (the package is made
    on demand, so it dates from the last change of what it holds), or `published_date`
    for an empty package."""
    releases = list(releases)
    dates = [release["date"] for release in releases]
    published = max(dates) if dates else timestamp(published_date or datetime.now(UTC))
    package: dict[str, Any] = {
        "uri": uri,
        "version": OCDS_VERSION,
        "publishedDate": published,
        "publisher": publisher,
        "releases": releases,
    }
    extensions = []
    if any("lots" in release.get("tender", {}) for release in releases):
        extensions.append(LOTS_EXTENSION)
    if any("bids" in release for release in releases):
        extensions.append(BIDS_EXTENSION)
    if extensions:
        package["extensions"] = extensions
    if license_url:
        package["license"] = license_url
    if publication_policy:
        package["publicationPolicy"] = publication_policy
    return package
