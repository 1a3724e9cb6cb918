"""The tender's commercial field specification (the form a bid's commercial part follows),
from its template; published on the tender's pages and API, checked at the opening."""

from __future__ import annotations

import logging

from app.tenders.models import Tender
from app.tenders.operations import template_document
from bidding.commercial import OPEN_SPEC, CommercialSpec, commercial_spec

log = logging.getLogger(__name__)


def commercial_spec_of(tender: Tender) -> CommercialSpec:
    """The specification of the tender's template; a template that does not load (never
    for a published tender) gives the open one: the price, and plain fields."""
    try:
        fields = template_document(tender.template_version)["commercial_fields"]
        return commercial_spec(fields)
    except Exception:  # a broken template must not stop an opening
        log.warning("tender %s: template does not load; open commercial spec", tender.id)
        return OPEN_SPEC
