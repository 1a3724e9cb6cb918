"""The same per-request protections at a lower cost (issue 18: the app's /healthz floor was
0.33–0.40 of a bare Flask endpoint; bench/README.md has the profile).

- `SecurityHeaders`: flask-talisman with its per-view options and header values worked out
  once per endpoint instead of on every request (four option lookups and the CSP string
  rebuilt per request). Same headers, same per-view overrides; a CSP nonce, if ever
  configured, is still made per request (then nothing is cached).
- `LeanSessionInterface`: Flask's signed-cookie sessions with one serializer per key set
  instead of a new one per request, and no serializer at all for a request without a
  session cookie (it gets a new empty session either way).
- `skip_limiter_where_no_limit_applies`: Flask-Limiter's before-request pass resolves the
  limits of every request; for an endpoint no limit applies to (no default, application,
  meta, blueprint or fallback limit, the view not decorated, no runtime hint) it finds none.
  That pass is skipped for those endpoints only; decorated views still check their limits
  in their decorator, and any configured default limit turns the pass back on.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_qualified_name
from flask_talisman import Talisman
from werkzeug.datastructures import Headers


class SecurityHeaders(Talisman):
    """Talisman, memoised per endpoint (the options depend only on the view)."""

    def init_app(self, app: Flask, **kwargs: Any) -> None:
        self._options: dict[str | None, dict] = {}
        self._headers: dict[tuple[str | None, bool], list[tuple[str, str]]] = {}
        super().init_app(app, **kwargs)

    def _get_local_options(self) -> dict:
        endpoint = request.endpoint
        options = self._options.get(endpoint)
        if options is None:
            options = super()._get_local_options()
            self._options[endpoint] = options
        return options

    def _set_response_headers(self, response):
        options = self._get_local_options()
        if options["content_security_policy"] and options["content_security_policy_nonce_in"]:
            return super()._set_response_headers(response)  # a nonce per request
        # Talisman sends HSTS only on a request that arrived over HTTPS (or says it did).
        secure = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
        key = (request.endpoint, secure)
        headers = self._headers.get(key)
        if headers is None:
            scratch = SimpleNamespace(headers=Headers())
            super()._set_response_headers(scratch)
            headers = self._headers[key] = list(scratch.headers.items())
        target = response.headers
        for name, value in headers:
            target[name] = value
        return response


class LeanSessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions as Flask makes them; the serializer is made once per keys."""

    def get_signing_serializer(self, app: Flask):
        if not app.secret_key:
            return None
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = app.extensions.get("fairbid_session_serializer")
        if cached is None or cached[0] != keys:
            cached = (keys, super().get_signing_serializer(app))
            app.extensions["fairbid_session_serializer"] = cached
        return cached[1]

    def open_session(self, app: Flask, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()  # what Flask answers without a cookie
        return super().open_session(app, request)


# app.extensions[NO_LIMIT_APPLIES](endpoint): see skip_limiter_where_no_limit_applies.
NO_LIMIT_APPLIES = "fairbid_no_limit_applies"


def skip_limiter_where_no_limit_applies(app: Flask, limiter: Limiter) -> None:
    """Replace the limiter's before-request hook by one that runs it unless no limit can
    apply to the request's endpoint (see the module's docstring)."""
    hooks = app.before_request_funcs.setdefault(None, [])
    check = limiter._check_request_limit
    unlimited: dict[str, bool] = {}

    def no_limit_applies(endpoint: str | None) -> bool:
        """Whether no rate limit can apply to a request of `endpoint` (then the limiter's
        pass finds none). Also asked by the signed-out page layer (app.core.page_cache)."""
        if endpoint is None or _limits_configured(limiter):
            return False
        free = unlimited.get(endpoint)
        if free is None:
            view = app.view_functions.get(endpoint)
            free = unlimited[endpoint] = view is not None and (
                get_qualified_name(view) not in limiter._marked_for_limiting
            )
        return free and not limiter.limit_manager.has_hints(endpoint)

    app.extensions[NO_LIMIT_APPLIES] = no_limit_applies

    def limiter_before_request() -> None:
        if no_limit_applies(request.endpoint):
            return None
        return check()

    for index, hook in enumerate(hooks):
        if hook == check:
            hooks[index] = limiter_before_request
            return
    raise RuntimeError("Flask-Limiter's before-request hook was not found")


def _limits_configured(limiter: Limiter) -> bool:
    """Limits that apply beyond decorated views: then every request goes through the pass."""
    manager = limiter.limit_manager
    return bool(
        manager._default_limits
        or manager._application_limits
        or manager._blueprint_limits
        or limiter._meta_limits
        or limiter._in_memory_fallback
    )
