"""PDF documents (tender documents, addenda, records) rendered with WeasyPrint, offline.

Templates live in ``templates/pdf/`` (HTML + CSS).  WeasyPrint would fetch whatever a
document links to: ``file:`` URLs (``<img src="file:///etc/passwd">``, a stylesheet, an
``<a rel="attachment">`` that embeds the file in the PDF) or internal hosts over HTTP.  Parts
of our documents come from users (tender template bodies written by trading-centre staff), so
rendering goes through :class:`RestrictedURLFetcher`, which serves only

- ``data:`` URLs, and
- internal resources named explicitly: ``fairbid:<name>`` URLs looked up in a mapping of
  name to bytes or file path: the templates' own (``fairbid:css/document.css``, see
  :func:`document_resources`) plus any ``resources`` the caller adds, e.g.
  ``{"img/centre-logo.png": logo_bytes}``;

and refuses everything else (``file:``, ``http(s):``, ``ftp:``, unknown names) with
:class:`ResourceRefused`, without opening anything.  With ``strict=True`` (the default) the
first refused URL stops rendering and the error propagates; with ``strict=False`` the
resource is left out (WeasyPrint renders without it), the refusal is logged and reported to
``on_refused``.

Fonts: the document stylesheet asks for Noto Sans CJK (SC, KR, ...), which covers Latin,
Hangul and Han.  On Debian it is the ``fonts-noto-cjk`` package, which ``make system-deps``
installs with Pango and fontconfig; without it Korean and Chinese text renders with whatever
fontconfig substitutes, possibly as empty boxes.  Fonts are found through fontconfig, not
through the URL fetcher.

No Flask needed: pass translations (e.g. Flask-Babel's ``get_translations()``) to
:func:`render_document_html`, or render ``pdf/document.html`` with Flask's
``render_template`` (the template only uses ``_()``) and call :func:`render_pdf`.
Rendering takes seconds for long documents: do it in a worker.
"""

from __future__ import annotations

import base64
import functools
import gettext
import logging
import mimetypes
import urllib.parse
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from weasyprint import CSS, HTML, Attachment
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

__all__ = [
    "DOCUMENT_STYLESHEET",
    "DOCUMENT_TEMPLATE",
    "RESOURCE_SCHEME",
    "TEMPLATES_DIR",
    "PdfAttachment",
    "PdfError",
    "ResourceRefused",
    "ResourceUnavailable",
    "RestrictedURLFetcher",
    "document_resources",
    "render_document_html",
    "render_document_pdf",
    "render_pdf",
]

logger = logging.getLogger(__name__)

RESOURCE_SCHEME = "fairbid"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
DOCUMENT_TEMPLATE = "pdf/document.html"
DOCUMENT_STYLESHEET = "css/document.css"
"""The resource name the document template links as ``fairbid:css/document.css``."""

Resource = bytes | Path


class PdfError(Exception):
    """Base class of the errors raised while rendering a PDF."""


class ResourceRefused(PdfError):
    """A document referred to a URL that PDF rendering never fetches."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"refused to fetch {_shorten(url)!r} while rendering a PDF: {reason}")


class ResourceUnavailable(PdfError):
    """An allowed internal resource could not be loaded."""


@dataclass(frozen=True, slots=True)
class PdfAttachment:
    """A file embedded in the PDF (PDF/A-3 associated file with ``pdf_variant="pdf/a-3b"``)."""

    name: str
    data: bytes | str
    description: str | None = None
    relationship: str = "Data"
    """PDF 2.0 AFRelationship: Data, Source, Alternative, Supplement or Unspecified."""


class RestrictedURLFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves ``data:`` URLs and named internal resources only.

    Every refusal is raised as :class:`ResourceRefused`, appended to :attr:`refused` and
    passed to ``on_refused``.  ``strict`` makes WeasyPrint stop at the first failure instead
    of leaving the resource out.
    """

    def __init__(
        self,
        resources: Mapping[str, Resource] | None = None,
        *,
        strict: bool = True,
        on_refused: Callable[[ResourceRefused], None] | None = None,
    ) -> None:
        # fetch() never calls the parent's (urllib) machinery; limit it to data: URLs anyway.
        super().__init__(
            allowed_protocols=frozenset({"data"}), allow_redirects=False, fail_on_errors=strict
        )
        self._resources = {_resource_name(name): value for name, value in (resources or {}).items()}
        self._on_refused = on_refused
        self.refused: list[ResourceRefused] = []

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        scheme = url.partition(":")[0].lower() if ":" in url else ""
        if scheme == "data":
            return _data_url(url)
        if scheme == RESOURCE_SCHEME:
            name = _resource_name(url)
            if name in self._resources:
                return self._load(url, name)
            raise self._refuse(url, f"no internal resource named {name!r} was provided")
        if scheme == "file":
            raise self._refuse(url, "local files are never read")
        if scheme in {"http", "https", "ftp"}:
            raise self._refuse(url, "the network is never used")
        raise self._refuse(url, f"{scheme or 'this kind of'} URLs are not allowed")

    def _load(self, url: str, name: str) -> URLFetcherResponse:
        resource = self._resources[name]
        try:
            body = resource.read_bytes() if isinstance(resource, Path) else bytes(resource)
        except OSError as error:
            raise ResourceUnavailable(f"internal resource {name!r} unreadable: {error}") from error
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body, {"Content-Type": media_type})

    def _refuse(self, url: str, reason: str) -> ResourceRefused:
        error = ResourceRefused(url, reason)
        self.refused.append(error)
        logger.warning("%s", error)
        if self._on_refused is not None:
            self._on_refused(error)
        return error


def render_pdf(
    html: str,
    *,
    base_url: str | None = None,
    stylesheets: Sequence[str] | None = None,
    resources: Mapping[str, Resource] | None = None,
    pdf_variant: str | None = None,
    attachments: Sequence[PdfAttachment] | None = None,
    strict: bool = True,
    on_refused: Callable[[ResourceRefused], None] | None = None,
) -> bytes:
    """The PDF of an HTML document, rendered without touching files or the network.

    ``stylesheets`` are CSS source texts applied after the document's own.  ``resources``
    maps names to the bytes or files served for ``fairbid:<name>`` URLs, in addition to
    :func:`document_resources` (so templates extending ``pdf/document.html`` need none).
    ``base_url``
    resolves relative links (whatever it resolves to still goes through the fetcher).
    ``pdf_variant`` is WeasyPrint's, e.g. ``"pdf/a-3b"``.  Raises :class:`ResourceRefused` for
    the first disallowed URL (``strict``), :class:`ResourceUnavailable` for an internal
    resource that can't be read.
    """
    # The PDF templates' own resources are always served; the caller's add to them.
    fetcher = RestrictedURLFetcher(
        {**document_resources(), **(resources or {})}, strict=strict, on_refused=on_refused
    )
    try:
        document = HTML(string=html, base_url=base_url, url_fetcher=fetcher)
        css = [
            CSS(string=text, base_url=base_url, url_fetcher=fetcher) for text in stylesheets or ()
        ]
        files = [
            Attachment(
                string=attachment.data,
                name=attachment.name,
                description=attachment.description,
                relationship=attachment.relationship,
                url_fetcher=fetcher,
            )
            for attachment in attachments or ()
        ]
        with warnings.catch_warnings():
            # WeasyPrint 70 never closes its sRGB profile when writing PDF/A (output intent
            # sRGB); the warning would otherwise surface, or fail tests run with -W error.
            warnings.filterwarnings(
                "ignore", r"unclosed file .*sRGB2014\.icc", category=ResourceWarning
            )
            finisher = _finish_pdfa if (pdf_variant or "").startswith("pdf/a") else None
            return document.write_pdf(
                stylesheets=css, pdf_variant=pdf_variant, attachments=files, finisher=finisher
            )
    except FatalURLFetchingError as fatal:
        # strict: WeasyPrint wraps the fetcher's exception to stop rendering; unwrap it.
        if isinstance(fatal.__cause__, PdfError):
            raise fatal.__cause__ from None
        raise ResourceUnavailable(f"{fatal}: {fatal.__cause__}") from fatal.__cause__


def _finish_pdfa(document: Any, pdf: Any) -> None:
    """Keep a PDF/A file consistent where WeasyPrint 70 is not, before it is written:

    - each associated file once in the catalog's /AF (WeasyPrint lists every attachment
      twice: once from the EmbeddedFiles name tree, once from its file specification);
    - no /Producer in the document information dictionary: PDF/A wants every entry there
      equal to its XMP counterpart, and a signer updating the file (pyHanko writes its own
      producer in each) would otherwise make the two disagree. XMP keeps the producer.
    """
    associated = pdf.catalog.get("AF")
    if associated:
        unique: dict[str, Any] = {}
        for reference in associated:
            key = reference.decode() if isinstance(reference, bytes) else str(reference)
            unique.setdefault(key, reference)
        associated[:] = list(unique.values())
    pdf.info.pop("Producer", None)


# --- the generic document template -----------------------------------------------------------


def document_resources() -> dict[str, Resource]:
    """The internal resources of ``templates/pdf/``, which :func:`render_pdf` always serves:
    ``fairbid:css/document.css``."""
    return {DOCUMENT_STYLESHEET: TEMPLATES_DIR / "pdf" / "document.css"}


def render_document_html(
    context: Mapping[str, Any],
    *,
    template: str = DOCUMENT_TEMPLATE,
    translations: gettext.NullTranslations | None = None,
) -> str:
    """Render a ``templates/pdf/`` template outside Flask (autoescaped, with ``_()``).

    The document template takes: ``lang`` (BCP 47, default ``"en"``), ``title``,
    ``reference``, ``kind`` (e.g. "Addendum"), ``issuer``, ``issued_on`` (formatted),
    ``meta`` (list of (label, value)), ``body`` (sanitised HTML as ``markupsafe.Markup``;
    a plain str is escaped) and ``tables`` (each with ``caption``, ``columns``, ``rows``).
    """
    environment = _environment(translations or _NULL_TRANSLATIONS)
    return environment.get_template(template).render(context)


def render_document_pdf(
    context: Mapping[str, Any],
    *,
    translations: gettext.NullTranslations | None = None,
    pdf_variant: str | None = None,
    attachments: Sequence[PdfAttachment] | None = None,
    strict: bool = True,
    on_refused: Callable[[ResourceRefused], None] | None = None,
) -> bytes:
    """``pdf/document.html`` rendered with ``context`` (see :func:`render_document_html`)."""
    return render_pdf(
        render_document_html(context, translations=translations),
        pdf_variant=pdf_variant,
        attachments=attachments,
        strict=strict,
        on_refused=on_refused,
    )


_NULL_TRANSLATIONS = gettext.NullTranslations()


@functools.lru_cache(maxsize=16)
def _environment(translations: gettext.NullTranslations) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(default_for_string=True, default=True),
        extensions=["jinja2.ext.i18n"],
    )
    # newstyle, as Flask-Babel installs it: _("... %(name)s", name=value) escapes the values.
    environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    return environment


def _data_url(url: str) -> URLFetcherResponse:
    """Decode an RFC 2397 ``data:`` URL (as urllib's DataHandler does, without urllib)."""
    media_type, comma, payload = url.partition(":")[2].partition(",")
    if not comma:
        raise ValueError("malformed data: URL (no comma)")
    body = urllib.parse.unquote_to_bytes(payload)
    if media_type.lower().endswith(";base64"):
        body = base64.b64decode(body)
        media_type = media_type[: -len(";base64")]
    return URLFetcherResponse(url, body, {"Content-Type": media_type or "text/plain"})


def _resource_name(name_or_url: str) -> str:
    """``"fairbid:css/a.css#x"`` and ``"css/a.css"`` → ``"css/a.css"``."""
    name = name_or_url.partition("#")[0]
    prefix = f"{RESOURCE_SCHEME}:"
    if name.lower().startswith(prefix):
        name = name[len(prefix) :]
    return name.lstrip("/")


def _shorten(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else f"{url[:limit]}…"
