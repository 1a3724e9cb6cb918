"""The public portal: announcements, tender pages, feeds. No sign-in needed."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("portal", __name__)
