"""Atom feeds of announcements (feedgen): one per centre, one per category."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from babel.dates import format_datetime
from feedgen.feed import FeedGenerator
from flask_babel import get_locale
from flask_babel import gettext as _

from app.core.formatting import centre_timezone
from app.core.types import utcnow
from app.portal.ocds import changed_at
from app.portal.queries import CATEGORIES
from app.tenders.labels import STATUS_LABELS
from app.tenders.models import Tender


def entry_summary(tender: Tender) -> str:
    deadline = format_datetime(
        tender.submission_deadline,
        "long",
        tzinfo=centre_timezone(tender.centre),
        locale=get_locale(),
    )
    parts = [
        _("Reference: %(ref)s", ref=tender.reference),
        _("Centre: %(centre)s", centre=tender.centre.name),
        _("Category: %(category)s", category=CATEGORIES.get(tender.category, tender.category)),
        _("Status: %(status)s", status=STATUS_LABELS.get(tender.status, tender.status)),
        _("Bid deadline: %(when)s", when=deadline),
    ]
    if tender.status == "cancelled" and tender.cancel_reason:
        parts.append(_("Cancelled: %(reason)s", reason=tender.cancel_reason))
    return "\n".join(parts)


def build_feed(
    *,
    title: str,
    feed_url: str,
    page_url: str,
    tenders: list[Tender],
    tender_url: Callable[[Tender], str],
    empty_updated: datetime | None = None,
) -> bytes:
    """An Atom document; entries newest first. Entry ids are the tender pages' URLs."""
    feed = FeedGenerator()
    feed.id(feed_url)
    feed.title(title)
    feed.author({"name": _("Fairbid")})
    feed.link(href=page_url, rel="alternate")
    feed.link(href=feed_url, rel="self")
    feed.language(str(get_locale()).replace("_", "-"))
    feed.generator("Fairbid")
    updated = [changed_at(tender) for tender in tenders]
    feed.updated(max(updated) if updated else (empty_updated or utcnow()))
    for tender, when in zip(tenders, updated, strict=True):
        entry = feed.add_entry(order="append")
        url = tender_url(tender)
        entry.id(url)
        entry.title(f"[{tender.reference}] {tender.title}")
        entry.link(href=url, rel="alternate")
        entry.published(tender.published_at or tender.publication_at)
        entry.updated(when)
        entry.author({"name": tender.centre.name})
        entry.category(
            term=tender.category, label=str(CATEGORIES.get(tender.category, tender.category))
        )
        entry.summary(entry_summary(tender))
    return feed.atom_str(pretty=True)
