"""Property tests: validation never crashes, and a valid template always maps and renders."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.tender_templates import (
    BUILTIN_KEYS,
    LOCALES,
    TemplateError,
    TemplateValidationError,
    builtin_template,
    load_template,
    render_body,
    sample_context,
    to_scoring_config,
    validate_template,
    validate_text,
)
from tests.tender_templates.helpers import builtin_doc, tender_values_for

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
YAMLISH = st.text(
    alphabet=st.sampled_from([*":-[]{}\"'|>&*!#%@,?\n \t0123456789.abkxyz_", "é", "中", "\u00a0"]),
    max_size=12,
)
# Values a YAML document can hold once parsed (plus a few it cannot, from Python callers).
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["0", "-0.05", "30", "0.5", "price", "lowest_wins", "{{ tender.title }}"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _check_errors(errors: Any) -> None:
    assert isinstance(errors, list)
    for error in errors:
        assert isinstance(error, TemplateError)
        assert isinstance(error.path, str) and isinstance(error.message, str) and error.message


def _valid_means_usable(doc: dict[str, Any]) -> None:
    """A template without errors maps onto a scoring file and renders in every locale."""
    config = to_scoring_config(doc, tender_values_for(doc))
    assert config["bids"] == []
    for locale in LOCALES:
        assert isinstance(render_body(doc, sample_context(doc["category"]), locale), str)


@SETTINGS
@given(
    key=st.sampled_from(BUILTIN_KEYS),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 8), YAMLISH), min_size=1, max_size=4),
)
def test_validate_text_never_crashes_on_mutated_text(key, edits):
    text = builtin_template(key)
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut :]
    errors = validate_text(text)
    _check_errors(errors)
    if not errors:
        _valid_means_usable(load_template(text))


def _paths(doc: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*path, i))
    return out


@SETTINGS
@given(
    key=st.sampled_from(BUILTIN_KEYS),
    data=st.data(),
    mutations=st.integers(1, 3),
)
def test_validate_template_never_crashes_on_mutated_documents(key, data, mutations):
    doc = builtin_doc(key)
    for _ in range(mutations):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if data.draw(st.booleans()):
            parent[path[-1]] = data.draw(VALUES)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    before = copy.deepcopy(doc)
    try:
        errors = validate_template(doc)
    except TemplateValidationError as exc:  # pragma: no cover - would be a bug
        raise AssertionError(f"validate_template raised: {exc}") from exc
    _check_errors(errors)
    assert doc == before or doc != doc  # validation does not change the document (NaN aside)
    if not errors:
        _valid_means_usable(doc)


@SETTINGS
@given(doc=VALUES)
def test_validate_template_never_crashes_on_arbitrary_values(doc):
    _check_errors(validate_template(doc))


@SETTINGS
@given(
    body=st.text(alphabet=st.sampled_from(list("{}%#|.()[]'\"<>*-_ \nabtlosx0123")), max_size=60)
)
def test_any_body_is_either_an_error_or_safe_html(body):
    doc = builtin_doc("goods")
    doc["body"] = "{{ tender.title }} " + body if body.strip() else "x"
    errors = validate_template(doc)
    _check_errors(errors)
    if not errors:
        html = render_body(doc, sample_context(), "en")
        assert "<script" not in html and '<a href="javascript' not in html
