"""Moments, sizes and time zones as people read them: in the centre's zone and the viewer's
language. Shared by every stage of the lifecycle (pages, notices, receipts, feeds)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, get_date_format, get_datetime_format, get_time_format
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


@lru_cache(maxsize=64)
def _datetime_patterns(locale: Locale, form: str):
    """What `babel.dates.format_datetime(moment, form)` looks up at each call, once."""
    joined = get_datetime_format(form, locale=locale).replace("'", "")
    return joined, get_time_format(form, locale=locale), get_date_format(form, locale=locale)


def centre_time_formatter(locale: Locale | None = None) -> Callable[..., str]:
    """`centre_time` for one page: the locale, the zones and babel's patterns resolved once
    instead of at each of the page's dates (a list page shows 40). Same output."""
    locale = locale or get_locale()
    default_zone = platform_timezone()

    def format_centre_time(moment: datetime | None, centre, form: str = "long") -> str:
        if moment is None:
            return ""
        name = getattr(centre, "timezone", None)
        zone = ZoneInfo(name) if name else default_zone  # ZoneInfo caches its instances
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        local = moment.astimezone(zone)
        joined, time_pattern, date_pattern = _datetime_patterns(locale, form)
        return joined.replace(
            "{0}", time_pattern.apply(local.timetz(), locale, reference_date=local.date())
        ).replace("{1}", date_pattern.apply(local.date(), locale))

    return format_centre_time


def file_size(size: int) -> str:
    locale = get_locale()
    for unit, factor in (("digital-megabyte", 10**6), ("digital-kilobyte", 10**3)):
        if size >= factor:
            return format_unit(round(size / factor, 1), unit, "short", locale=locale)
    return format_unit(size, "digital-byte", "short", locale=locale)
