"""API: OCDS releases of published tenders."""

from __future__ import annotations
