"""Rendering a body: placeholders, escaping, the sandbox, Markdown to safe HTML, locales."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app.tender_templates import (
    PLACEHOLDERS,
    TemplateRenderError,
    format_datetime,
    format_money,
    normalize_locale,
    placeholder_problems,
    render_body,
    render_markdown,
    sample_context,
    validate_template,
)
from tests.tender_templates.helpers import builtin_doc


def with_body(body, key: str = "goods"):
    doc = builtin_doc(key)
    doc["body"] = body
    return doc


def render(body, context=None, locale: str = "en", key: str = "goods") -> str:
    doc = with_body(body, key)
    return render_body(doc, sample_context() if context is None else context, locale)


def test_placeholders_are_filled_in():
    html = render("# {{ tender.title }}\n\nRef. {{ tender.reference }}, {{ tender.budget }}.")
    assert html == (
        "<h1>Supply of teaching equipment for municipal secondary schools</h1>\n"
        "<p>Ref. FB-2025-GP-0042, CNY 2,140,000.00.</p>\n"
    )


def test_raw_html_in_the_body_is_escaped_not_passed_through():
    body = (
        '<script>alert("x")</script>\n\n'
        '<b onclick="steal()">bold</b> and <img src=x onerror=alert(1)>\n\n'
        "[click](javascript:alert(1)) [ok](https://example.org/a?b=1&c=2)"
    )
    doc = with_body(body)
    assert validate_template(doc) == []
    html = render_body(doc, sample_context(), "en")
    assert "<script" not in html and "<b " not in html and "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;b onclick=&quot;steal()&quot;&gt;bold&lt;/b&gt;" in html
    assert 'href="javascript' not in html
    assert '<a href="https://example.org/a?b=1&amp;c=2">ok</a>' in html


def test_values_are_text_not_markdown_or_html():
    context = sample_context()
    context["tender"]["title"] = "1. <img src=x onerror=alert(1)> *big* | [x](javascript:y) &amp;"
    html = render("{{ tender.title }}\n\n| a |\n|---|\n| {{ tender.title }} |", context)
    assert "<img" not in html and "<em>" not in html and "<ol" not in html and "<a " not in html
    text = "1. &lt;img src=x onerror=alert(1)&gt; *big* | [x](javascript:y) &amp;amp;"
    assert f"<p>{text}</p>" in html
    assert f"<td>{text}</td>" in html  # the | does not split the cell


def test_newlines_in_values_cannot_start_blocks():
    context = sample_context()
    context["tender"]["title"] = "Title\n# Heading\n\n- item"
    html = render("{{ tender.title }}", context)
    assert html == "<p>Title # Heading - item</p>\n"


def test_tables_are_enabled_and_lists_render_as_tables():
    html = render("{{ lots }}\n\n{{ commercial_fields }}\n\n{{ technical_criteria }}")
    assert html.count("<table>") == 3
    assert "<td>Lot 2: classroom multimedia</td>" in html
    assert "<td>at most the ceiling price</td>" in html
    assert "<td>1 to 90</td>" in html  # delivery_days bounds
    assert "<td>one of: domestic, imported</td>" in html


def test_loops_and_conditions():
    body = (
        "{% for lot in lots %}\n"
        "- {{ loop.index }}/{{ loop.length }}: {{ lot.title }} ({{ lot.ceiling_price }})\n"
        "{% endfor %}\n\n"
        "{% if tender.lot_count > 1 and not tender.reserve_price %}several{% else %}one"
        "{% endif %}"
    )
    html = render(body)
    assert "<li>1/2: Lot 1: laboratory equipment (CNY 1,250,000.00)</li>" in html
    assert "<p>several</p>" in html


def test_every_placeholder_of_the_vocabulary_renders():
    scalars = [name for name in PLACEHOLDERS if "[]" not in name]
    loops = {}
    for name in PLACEHOLDERS:
        if "[]." in name:
            head, attr = name.split("[].")
            loops.setdefault(head, []).append(attr)
    body = "\n\n".join(f"{name}: {{{{ {name} }}}}" for name in scalars)
    for head, attrs in loops.items():
        cells = " ".join(f"{{{{ x.{a} }}}}" for a in attrs)
        body += f"\n\n{{% for x in {head} %}}\n{cells}\n{{% endfor %}}"
    for key in ("goods", "services", "asset_sale"):
        doc = with_body(body, key)
        assert validate_template(doc) == []
        for locale in ("en", "ko", "zh_Hans"):
            html = render_body(doc, sample_context(doc["category"]), locale)
            assert "{{" not in html


def test_missing_values_render_as_a_dash():
    html = render("{{ tender.budget }} / {{ contact.phone }} / {{ schedule.opening }}", {})
    assert html == "<p>— / — / —</p>\n"
    assert "<p>None</p>" in render("{{ lots }}", {})


def test_a_comparison_with_a_missing_value_is_a_render_error():
    with pytest.raises(TemplateRenderError) as caught:
        render("{% if custodians.count > 3 %}many{% endif %}", {})
    [error] = caught.value.errors
    assert error.path == "body"
    assert error.message.startswith("cannot render: ")


def test_unknown_placeholder_is_an_error_not_a_crash():
    doc = with_body("Hello {{ tender.titel }}")
    [error] = validate_template(doc)
    assert (error.path, error.message) == (
        "body",
        "unknown placeholder 'tender.titel' (line 1 of the body)",
    )
    with pytest.raises(TemplateRenderError) as caught:
        render_body(doc, sample_context(), "en")
    assert [str(e) for e in caught.value.errors] == [
        "body: unknown placeholder 'tender.titel' (line 1 of the body)"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ range(10**9) }}", "a call is not allowed"),
        ("{{ lots.pop() }}", "a call is not allowed"),
        ("{{ 9 ** 9 ** 9 }}", "arithmetic is not allowed"),
        ("{{ 'x' * 1000000000 }}", "arithmetic is not allowed"),
        ("{% set x = tender %}", "{% set %} is not allowed"),
        ("{% macro m() %}{% endmacro %}", "{% macro %} is not allowed"),
        ("{% extends 'base.html' %}", "{% extends %} is not allowed"),
        ("{% import 'x' as y %}", "{% import %} is not allowed"),
        ("{{ tender.title if true }}", "an inline if-expression is not allowed"),
        ("{{ tender.title is defined }}", "a test (is ...) is not allowed"),
        ("{{ tender }}", "'tender' is a group, not a placeholder: use one of tender.title,"),
        ("{% for t in tender %}{% endfor %}", "'tender' is not a list to loop over"),
        ("{{ tender.title.upper }}", "unknown placeholder 'tender.title.upper'"),
        ("{{ tender['__class__'] }}", "unknown placeholder 'tender['__class__']'"),
        ("{{ lot.title }}", "unknown placeholder 'lot'"),
        ("{% for lot in lots %}{% endfor %}{{ lot.title }}", "unknown placeholder 'lot'"),
        ("{{ tender.title", "placeholder syntax error: unexpected end of template"),
    ],
)
def test_only_placeholders_if_and_for_are_allowed(body, message):
    [problem] = placeholder_problems(body)
    assert problem.startswith(message)


def test_constant_subscripts_and_comments_are_allowed():
    body = "{# a note for editors #}{{ lots[0].title }} / {{ tender['reference'] }}"
    assert placeholder_problems(body) == []
    assert render(body) == "<p>Lot 1: laboratory equipment / FB-2025-GP-0042</p>\n"


def test_body_per_language_with_english_fallback():
    body = {"en": "# Invitation {{ tender.reference }}", "ko": "# 입찰 공고 {{ tender.reference }}"}
    doc = with_body(body)
    assert validate_template(doc) == []
    assert render_body(doc, sample_context(), "ko") == "<h1>입찰 공고 FB-2025-GP-0042</h1>\n"
    assert render_body(doc, sample_context(), "zh_Hans") == (
        "<h1>Invitation FB-2025-GP-0042</h1>\n"
    )
    doc["body"]["ko"] = "{{ nope }}"
    assert [(e.path, e.message) for e in validate_template(doc)] == [
        ("body.ko", "unknown placeholder 'nope' (line 1 of the body)")
    ]


def test_render_markdown_gives_the_markdown_before_html():
    markdown = render_markdown(with_body("**{{ tender.reference }}**"), sample_context())
    assert markdown == "**FB\\-2025\\-GP\\-0042**"


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "en"),
        ("ko", "ko"),
        ("ko_KR", "ko"),
        ("zh_Hans", "zh_Hans"),
        ("zh-Hans", "zh_Hans"),
        ("zh_CN", "zh_Hans"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_normalize_locale(locale, expected):
    assert normalize_locale(locale) == expected


def test_format_money_and_dates():
    assert format_money(Decimal("1250000"), "CNY") == "CNY 1,250,000.00"
    assert format_money("1234.565") == "1,234.57"
    assert format_money(12) == "12.00"
    assert format_money(None) is None
    assert format_money("to be announced") == "to be announced"
    china = timezone(timedelta(hours=8))
    assert format_datetime(datetime(2025, 4, 1, 9, 0, tzinfo=china)) == (
        "2025-04-01 09:00 (UTC+08:00)"
    )
    assert format_datetime(datetime(2025, 4, 1, 9, 0, tzinfo=timezone(-timedelta(hours=3.5)))) == (
        "2025-04-01 09:00 (UTC-03:30)"
    )
    assert format_datetime(datetime(2025, 4, 1, 9, 0)) == "2025-04-01 09:00"
    assert format_datetime(date(2025, 4, 1)) == "2025-04-01"
    assert format_datetime("3 working days") == "3 working days"


@pytest.mark.parametrize("category", ["goods", "works", "services", "asset_sale"])
def test_sample_context_fits_its_category(category):
    context = sample_context(category)
    sale = category == "asset_sale"
    assert (context["tender"]["reserve_price"] is not None) is sale
    assert (context["tender"]["ceiling_price"] is None) is sale
    schedule = context["schedule"]
    days = 20  # the legal minimum for every category (README, "Legal periods")
    assert schedule["submission_deadline"] - schedule["publication"] >= timedelta(days=days)
    assert context["custodians"]["threshold"] <= context["custodians"]["count"]
