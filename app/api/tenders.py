"""API: templates, tenders, enquiries, addenda, registrations, bonds (filled in below)."""

from __future__ import annotations
