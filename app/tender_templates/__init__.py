"""Tender templates: YAML documents that define a kind of tender (pure: no Flask, no SQLAlchemy).

A template gives the category and award direction, the commercial fields a bid carries, the
qualification documents, compliance rules, the price-scoring method and its parameters, the
commercial and technical criteria, the aggregation rule, schedule minimums and the tender
document's Markdown body with ``{{ placeholders }}``.  Its vocabulary (method, parameter,
criterion-rule and compliance-rule names) is the evaluation scoring file's, so that
``to_scoring_config`` maps a template onto a scoring file directly.

- ``BUILTIN_KEYS`` / ``builtin_template(key)``: the four built-in templates' YAML text.
- ``load_template(text)``: parse YAML text (raises ``TemplateValidationError``).
- ``validate_template(doc)`` / ``validate_text(text)``: every ``TemplateError`` (path, message).
- ``to_scoring_config(doc, tender_values)``: the input part of an evaluation scoring file.
- ``render_body(doc, context, locale)``: the tender document body as safe HTML;
  ``sample_context()`` gives preview data; ``PLACEHOLDERS`` documents the vocabulary.
- ``schema()``: the template JSON Schema (``template.schema.json``).
"""

from __future__ import annotations

from importlib.resources import files

from app.tender_templates.errors import TemplateError, TemplateRenderError, TemplateValidationError
from app.tender_templates.rendering import (
    LOCALES,
    PLACEHOLDERS,
    SUBMISSION_DAYS_MIN,
    build_namespace,
    default_submission_days,
    format_datetime,
    format_money,
    normalize_locale,
    placeholder_problems,
    price_method_text,
    render_body,
    render_markdown,
    sample_context,
)
from app.tender_templates.validation import (
    FORMAT,
    MAX_TEMPLATE_CHARS,
    apply_defaults,
    load_template,
    schema,
    to_scoring_config,
    validate_template,
    validate_text,
)

BUILTIN_KEYS: tuple[str, ...] = ("goods", "works", "services", "asset_sale")


def builtin_template(key: str) -> str:
    """The YAML text of a built-in template (``goods``, ``works``, ``services``, ``asset_sale``)."""
    if key not in BUILTIN_KEYS:
        raise KeyError(f"no built-in template {key!r}; there are: {', '.join(BUILTIN_KEYS)}")
    return files(__name__).joinpath("builtin").joinpath(f"{key}.yaml").read_text("utf-8")


__all__ = [
    "BUILTIN_KEYS",
    "FORMAT",
    "LOCALES",
    "MAX_TEMPLATE_CHARS",
    "PLACEHOLDERS",
    "SUBMISSION_DAYS_MIN",
    "TemplateError",
    "TemplateRenderError",
    "TemplateValidationError",
    "apply_defaults",
    "build_namespace",
    "builtin_template",
    "default_submission_days",
    "format_datetime",
    "format_money",
    "load_template",
    "normalize_locale",
    "placeholder_problems",
    "price_method_text",
    "render_body",
    "render_markdown",
    "sample_context",
    "schema",
    "to_scoring_config",
    "validate_template",
    "validate_text",
]
