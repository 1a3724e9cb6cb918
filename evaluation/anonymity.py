"""Dark-bid screening: find a bidder's identity in the text of its technical part.

Before the panel sees technical parts, the text of each is scanned for the bidder's
name, unified social credit code and known aliases. Matching is done on a normalised form
(Unicode NFKC, case-folded, with spaces and punctuation removed) so that line breaks,
full-width characters, spacing tricks and case changes do not hide a name; company-form
suffixes ("Co., Ltd.", "有限公司", "주식회사"…) are also stripped so the short name is found.
Hits are shown to the panel as a question; they are not verdicts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Legal-form words that a bidder may drop when naming itself.
COMPANY_FORMS = (
    "company limited",
    "co ltd",
    "co limited",
    "corporation",
    "limited",
    "ltd",
    "inc",
    "llc",
    "gmbh",
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "集团",
    "公司",
    "주식회사",
    "유한회사",
    "㈜",
)
MIN_LENGTH = 3  # shorter normalised identities would match by chance
CONTEXT = 30


@dataclass(frozen=True)
class Identity:
    kind: str  # "name" | "registration_number" | "alias"
    value: str


@dataclass(frozen=True)
class Hit:
    kind: str
    value: str
    context: str  # a short excerpt of the original text around the hit


def _is_kept(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LN"  # letters and digits of any script


def normalise(text: str) -> tuple[str, list[int]]:
    """The matchable form of `text` and, for each of its characters, the index in `text`."""
    folded, positions = [], []
    for index, char in enumerate(text):
        for piece in unicodedata.normalize("NFKC", char).casefold():
            if _is_kept(piece):
                folded.append(piece)
                positions.append(index)
    return "".join(folded), positions


def _without_company_forms(name: str) -> str:
    """`name` (normalised) without legal-form words at either end, e.g. "co ltd"."""
    forms = sorted((normalise(form)[0] for form in COMPANY_FORMS), key=len, reverse=True)
    changed = True
    while changed:
        changed = False
        for form in forms:
            if name.endswith(form) and len(name) > len(form):
                name, changed = name[: -len(form)], True
            elif name.startswith(form) and len(name) > len(form):
                name, changed = name[len(form) :], True
    return name


def variants(identity: Identity) -> set[str]:
    """Normalised forms to look for: the full value and, for names, the value without
    its legal-form words."""
    full, _ = normalise(identity.value)
    found = {full}
    if identity.kind in ("name", "alias"):
        found.add(_without_company_forms(full))
    return {v for v in found if len(v) >= MIN_LENGTH}


def scan_text(text: str, identities: Iterable[Identity]) -> list[Hit]:
    """Every place where one of `identities` appears in `text` (one hit per identity
    and position, in text order)."""
    haystack, positions = normalise(text)
    hits: dict[tuple[str, str, int], Hit] = {}
    for identity in identities:
        for needle in sorted(variants(identity), key=len, reverse=True):
            start = haystack.find(needle)
            while start != -1:
                first = positions[start]
                last = positions[start + len(needle) - 1]
                key = (identity.kind, identity.value, first)
                if key not in hits:
                    excerpt = text[max(0, first - CONTEXT) : last + 1 + CONTEXT]
                    hits[key] = Hit(identity.kind, identity.value, " ".join(excerpt.split()))
                start = haystack.find(needle, start + 1)
    return [hits[key] for key in sorted(hits, key=lambda k: k[2])]


def bidder_identities(
    name: str, registration_number: str, aliases: Sequence[str] = ()
) -> list[Identity]:
    return [
        Identity("name", name),
        Identity("registration_number", registration_number),
        *(Identity("alias", alias) for alias in aliases),
    ]
