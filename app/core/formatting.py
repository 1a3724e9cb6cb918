"""Moments, sizes and time zones as people read them: in the centre's zone and the viewer's
language. Shared by every stage of the lifecycle (pages, notices, receipts, feeds)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.units import format_unit
from flask import current_app
from flask_babel import get_locale


def platform_timezone() -> ZoneInfo:
    return ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])


def centre_timezone(centre=None) -> ZoneInfo:
    """Schedules are typed and shown in the trading centre's time zone, stored in UTC.
    Centres have no time zone of their own yet: the platform's zone (Asia/Shanghai by
    default) is every centre's until one is added to the model."""
    name = getattr(centre, "timezone", None)
    return ZoneInfo(name) if name else platform_timezone()


def centre_time(moment: datetime | None, centre, form: str = "long") -> str:
    """A moment in the centre's time zone, in the viewer's language, zone shown."""
    if moment is None:
        return ""
    return format_datetime(moment, form, tzinfo=centre_timezone(centre), locale=get_locale())


def file_size(size: int) -> str:
    locale = get_locale()
    for unit, factor in (("digital-megabyte", 10**6), ("digital-kilobyte", 10**3)):
        if size >= factor:
            return format_unit(round(size / factor, 1), unit, "short", locale=locale)
    return format_unit(size, "digital-byte", "short", locale=locale)
