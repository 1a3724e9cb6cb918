"""Completes the generated OpenAPI document from what the views really answer, so clients
(and the schemathesis run in tests/drills/test_api_fuzz.py) can rely on it:

- every operation documents its success status: 201 for views that create (they return
  `..., 201`), else 200; JSON unless the view sends a file (`FILE_RESPONSES`);
- every operation behind `roles_required` documents 403 (the wrong role);
- operations under a rate limit document 429 (`too_many_attempts`).
"""

from __future__ import annotations

import inspect
import re

from flask import Flask
from flask_limiter.util import get_qualified_name

from app.api.schemas import ERROR_TEXTS
from app.extensions import limiter

# Views that send a file rather than JSON: endpoint -> media type of the 200 answer.
FILE_RESPONSES = {
    "api.platform_receipt_key": "application/x-pem-file",
    "api.platform_signing_ca": "application/x-pem-file",
    "api.platform_signing_crl": "application/pkix-crl",
    "api.tender_record_pdf": "application/pdf",
    "api.result_letter": "application/pdf",
    "api.scoring_document": "application/pdf",
    "api.download_document": "application/octet-stream",
}
_CREATED = re.compile(r"return .*,\s*201\b")
_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}
_FILE_SCHEMA = {"type": "string", "format": "binary"}
TOO_MANY = "Too many attempts (`too_many_attempts`): wait and retry."


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _error(text: str) -> dict:
    return {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


def complete_spec(app: Flask, spec: dict) -> dict:
    views = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                views[(_openapi_path(rule.rule), method.lower())] = rule.endpoint
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            endpoint = views.get((path, method))
            if endpoint is None:
                continue
            view = app.view_functions[endpoint]
            responses = operation.setdefault("responses", {})
            if not any(str(code).startswith("2") for code in responses):
                media = FILE_RESPONSES.get(endpoint)
                if media:
                    responses["200"] = {
                        "description": "The file.",
                        "content": {media: {"schema": _FILE_SCHEMA}},
                    }
                else:
                    source = inspect.getsource(inspect.unwrap(view))
                    status = "201" if _CREATED.search(source) else "200"
                    responses[status] = {
                        "description": "Successful response.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
            elif endpoint in FILE_RESPONSES and "200" in responses:
                responses["200"]["content"] = {FILE_RESPONSES[endpoint]: {"schema": _FILE_SCHEMA}}
            elif (
                "200" in responses
                and "201" not in responses
                and _CREATED.search(inspect.getsource(inspect.unwrap(view)))
            ):  # the framework's default 200 for a view that answers 201 (creates)
                responses["201"] = responses.pop("200")
            if getattr(view, "allowed_roles", None) and "403" not in responses:
                responses["403"] = _error(ERROR_TEXTS[403])
            if limiter.limit_manager.decorated_limits(get_qualified_name(view)):
                responses.setdefault("429", _error(TOO_MANY))
    return spec
