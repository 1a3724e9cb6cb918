from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, current_app, has_request_context, request, url_for
from werkzeug.exceptions import BadRequest, SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wsgi import get_host

from config import public_url_problem

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def safe_next(target: str | None, default: str) -> str:
    """A local path to go back to, never another site (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


def configure_public_url(app: Flask) -> None:
    """Links leave the site built on PUBLIC_URL, and only its host (plus the configured
    extras) is served: a forged Host header gets 400, never a link to another site."""
    url = app.config.get("PUBLIC_URL") or ""
    problem = public_url_problem(url) if url else "it is not set"
    if problem:
        raise RuntimeError(f"Refusing to start: FAIRBID_PUBLIC_URL is not usable ({problem})")
    parts = urlsplit(url)
    # Flask builds URLs outside a request (jobs, commands) from these.
    app.config["SERVER_NAME"] = parts.netloc
    app.config["PREFERRED_URL_SCHEME"] = parts.scheme
    app.config["APPLICATION_ROOT"] = parts.path.rstrip("/") or "/"
    if app.config.get("TRUSTED_HOSTS") is None:
        app.config["TRUSTED_HOSTS"] = list(
            dict.fromkeys(
                [
                    parts.hostname,
                    *app.config.get("DEFAULT_TRUSTED_HOSTS", ()),
                    *app.config.get("EXTRA_TRUSTED_HOSTS", ()),
                ]
            )
        )
    app.wsgi_app = _TrustedHostsOnly(app.wsgi_app, app.config["TRUSTED_HOSTS"])
    count = int(app.config.get("PROXY_COUNT") or 0)
    if count > 0:
        # Only then are X-Forwarded-For/-Proto/-Host believed, and only `count` hops of them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)


class _TrustedHostsOnly:
    """Answers 400 to a request for a host the site does not serve, before the app runs
    (Flask would otherwise reach its error page with no URL adapter)."""

    def __init__(self, wsgi_app: WSGIApplication, trusted: list[str]) -> None:
        self.wsgi_app = wsgi_app
        self.trusted = trusted

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            get_host(environ, self.trusted)
        except SecurityError:
            return BadRequest("Unknown host.")(environ, start_response)
        return self.wsgi_app(environ, start_response)


def public_url(endpoint: str, **values: object) -> str:
    """The absolute URL of `endpoint` on the configured public address, whatever Host the
    current request (if any) came with. For e-mail, PDFs, feeds and OCDS."""
    parts = urlsplit(current_app.config["PUBLIC_URL"])
    path = url_for(endpoint, _external=False, **values)
    if has_request_context():
        # url_for gave the request's script root; the public address's path replaces it.
        root = request.script_root
        if root and path.startswith(root):
            path = path[len(root) :]
        path = parts.path.rstrip("/") + path
    # Outside a request the path already starts with APPLICATION_ROOT, the public path.
    return f"{parts.scheme}://{parts.netloc}{path}"


# The largest id any route takes: ids are INTEGER columns, 32-bit on PostgreSQL (bids'
# BigInteger ids will not pass it for a long time). A larger number reached the database as
# an OverflowError (SQLite, beyond 64 bits) or "integer out of range" (PostgreSQL): a 500.
MAX_ROUTE_INT = 2**31 - 1


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` for every route: like werkzeug's, but a number beyond what an id column
    holds does not match, so the address answers 404 (registered as `int` in the app
    factory)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ROUTE_INT)
        super().__init__(map, *args, **kwargs)
