"""The error types of the tender-template package (no Flask, no SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TemplateError:
    """One thing wrong with a template: where (dotted ``path``) and what.

    ``path`` names the place in the YAML document with dots, list items by their 0-based
    index (``price.params.k``, ``technical_criteria.2.step``); it is ``""`` for the whole
    document (YAML syntax, not a mapping).  ``line`` is the 1-based line of the YAML text
    when the error came from text (``validate_text``) and the place could be found.
    """

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class TemplateValidationError(ValueError):
    """A template (or the values given with it) is not valid; ``errors`` lists every error."""

    def __init__(self, errors: Sequence[TemplateError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class TemplateRenderError(TemplateValidationError):
    """The body cannot be rendered (bad placeholder or construct); ``errors`` says why."""


def dotted(parts: Iterable[str | int]) -> str:
    """``["price", "params", "k"]`` -> ``price.params.k``; list indexes are written as numbers."""
    return ".".join(str(p) for p in parts)
