"""Names people and companies are known by: one check for every way in (forms, API, CLI).

A name is shown to other people (tender pages, opening records, evaluation records, e-mails)
and matched against technical bids, so it must read as what it is: NFC-normalised, and free
of control characters (NUL included), bidi overrides and isolates (U+202A-U+202E,
U+2066-U+2069, which make "Acme ‮Ltd" display reversed), other invisible format characters,
separators, surrogates, private-use and unassigned code points.
"""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from wtforms import Field, Form, ValidationError

from app.core.errors import OperationError

# Cc control, Cf format (bidi controls, zero-width characters), Cs surrogates, Co private
# use, Cn unassigned, Zl/Zp line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def refused_character(value: str) -> str | None:
    """The first character a name may not contain, as `U+XXXX`, or None."""
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def _refusal(label: object, char: str) -> str:
    return _l(
        "%(field)s contains a control or text-direction character (%(char)s). "
        "Type the name again without it.",
        field=label,
        char=char,
    )


def clean_name(value: str | None, label: object) -> str:
    """The name NFC-normalised and stripped; refused (`bad_characters`) if it holds a
    character listed above. `label` names the field in the message."""
    value = unicodedata.normalize("NFC", value or "").strip()
    char = refused_character(value)
    if char is not None:
        raise OperationError(_refusal(label, char), code="bad_characters")
    return value


class PlainName:
    """WTForms validator: the same check as `clean_name`, shown beside the field."""

    def __call__(self, form: Form, field: Field) -> None:
        char = refused_character(unicodedata.normalize("NFC", field.data or ""))
        if char is not None:
            raise ValidationError(_refusal(field.label.text, char))


# Homoglyphs: letters of other alphabets drawn like Latin ones (a subset of Unicode's
# confusables, UTS #39, for the alphabets company names here mix with Latin), to the Latin
# letter they pass for.
_CONFUSABLES = str.maketrans(
    "АВЕКМНОРСТУХІЈЅаеорсухіјѕԁԛԝһкмнтвΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοριν",
    "ABEKMHOPCTYXIJSaeopcyxijsdqwhkmhtbABEZHIKMNOPTYXaopiv",
)
_LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def _script(char: str) -> str | None:
    name = unicodedata.name(char, "")
    for script in _LOOKALIKE_SCRIPTS:
        if name.startswith(script + " "):
            return script
    return None


def mixed_script_word(value: str) -> str | None:
    """The first word that mixes Latin, Cyrillic and Greek letters (e.g. "Bridgеs" with a
    Cyrillic "е"), or None. Words of one alphabet, and Latin beside CJK, are fine."""
    for word in value.split():
        scripts = {_script(char) for char in word if char.isalpha()} - {None}
        if len(scripts) > 1:
            return word
    return None


def name_skeleton(value: str) -> str:
    """What a name looks like: compatibility forms folded (full-width letters), look-alike
    letters of other alphabets read as Latin, case and spacing ignored. Two names with the
    same skeleton read the same to a person."""
    folded = unicodedata.normalize("NFKC", value).translate(_CONFUSABLES).casefold()
    return " ".join(folded.split())
