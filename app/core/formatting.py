"""Moments, sizes and time zones as people read them: in the centre's zone and the viewer's
language. Shared by every stage of the lifecycle (pages, notices, receipts, feeds)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
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


# One way of writing a moment per language, 24-hour clock (no mixed AM/PM styles): the
# date, the time (with seconds and the zone's offset from UTC for the long forms).
MOMENT_PATTERNS = {
    "en": ("d MMM y", "HH:mm"),
    "ko": ("y. M. d.", "HH:mm"),
    "zh": ("y年M月d日", "HH:mm"),
}
_WITH_ZONE = frozenset({"long", "full", "precise"})


def _pattern(locale, form: str) -> str:
    date, time = MOMENT_PATTERNS.get(getattr(locale, "language", "en"), MOMENT_PATTERNS["en"])
    if form in _WITH_ZONE:
        time += ":ss"
    return f"{date} {time}"


def utc_offset(moment: datetime, zone: ZoneInfo) -> str:
    """ "UTC+8", "UTC+5:30", "UTC" for the zone at that moment."""
    offset = moment.astimezone(zone).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def moment_text(moment: datetime | None, form: str = "medium", centre=None) -> str:
    """A moment as the viewer reads it: in the centre's time zone (the platform's by default),
    in the viewer's language, one style per language. `form`: short/medium (date and
    minutes), long/full/precise (seconds and the zone's offset)."""
    if moment is None:
        return ""
    return format_moment(moment, form, centre_timezone(centre), get_locale())


def format_moment(moment: datetime, form: str, zone: ZoneInfo, locale) -> str:
    """`moment_text` with the zone and the (babel) locale given: no request or app context."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = format_datetime(moment, _pattern(locale, form), tzinfo=zone, locale=locale)
    if form in _WITH_ZONE:
        text += f" ({utc_offset(moment, zone)})"
    return text


def centre_time_formatter(locale=None) -> Callable[..., str]:
    """`centre_time` for one page: the locale and the platform's zone resolved once instead
    of at each of the page's dates (a list page shows 40). Same output."""
    locale = locale or get_locale()
    default_zone = platform_timezone()

    def format_centre_time(moment: datetime | None, centre, form: str = "long") -> str:
        if moment is None:
            return ""
        name = getattr(centre, "timezone", None)
        zone = ZoneInfo(name) if name else default_zone  # ZoneInfo caches its instances
        return format_moment(moment, form, zone, locale)

    return format_centre_time


def centre_time(moment: datetime | None, centre, form: str = "long") -> str:
    """A moment in the centre's time zone, in the viewer's language, zone shown."""
    return moment_text(moment, form, centre)


def file_size(size: int | None) -> str:
    """ "580 bytes", "1.2 MB", "580바이트", "1.2兆字节": Babel's units in the viewer's language
    (English: the short symbols for kB and MB; Korean and Chinese: their own words, as
    CLDR has no short forms for them in every length)."""
    if size is None:
        return ""
    locale = get_locale()
    english = getattr(locale, "language", "en") == "en"
    for unit, factor in (("digital-megabyte", 10**6), ("digital-kilobyte", 10**3)):
        if size >= factor:
            length = "short" if english else "long"
            return format_unit(round(size / factor, 1), unit, length, locale=locale)
    return format_unit(size, "digital-byte", "long", locale=locale)
