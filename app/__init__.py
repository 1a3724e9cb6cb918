"""Fairbid: the Flask application factory."""

from __future__ import annotations

import logging
import os

from apiflask import APIFlask
from flask import Blueprint, Flask

import config as config_module


def create_app(config: type | None = None, **overrides) -> Flask:
    config = config or config_module.config_from_env()
    config.check()
    app = APIFlask(
        __name__,
        title="Fairbid API",
        version="v1",
        spec_path="/api/v1/openapi.json",
        docs_path=None,
        json_errors=False,
        template_folder=str(config_module.BASE_DIR / "templates"),
        static_folder=str(config_module.BASE_DIR / "app" / "static"),
        instance_path=str(overrides.get("INSTANCE_DIR", config.INSTANCE_DIR)),
    )
    # Before any blueprint adds its rules: every `<int:...>` route is bounded to what an id holds.
    from app.core.urls import BoundedIntConverter

    app.url_map.converters["int"] = BoundedIntConverter
    app.config.from_object(config)
    app.config.update(overrides)
    os.makedirs(app.instance_path, exist_ok=True)
    from app.core.instance_secret import ensure_secret_key
    from app.core.urls import configure_public_url

    ensure_secret_key(app)
    # Right around Flask, inside the trusted-host check and ProxyFix that
    # configure_public_url puts around it: signed-out visitors' stored pages (issue 18).
    from app.core.page_cache import install as install_page_layer

    install_page_layer(app)
    configure_public_url(app)
    logging.basicConfig(level=logging.INFO)
    for noisy in ("alembic.runtime.plugins", "weasyprint", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from app import (
        cli,
        errors,
        events,
        i18n,
        models,  # noqa: F401  (the whole schema)
        security_headers,
        web,
    )
    from app.core import sqlite  # noqa: F401  (engine hooks)
    from app.core.request_hooks import LeanSessionInterface, skip_limiter_where_no_limit_applies
    from app.extensions import csrf, db, limiter, login_manager, mail, migrate, redis_client

    _configure_database(app)
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(config_module.BASE_DIR / "migrations"), render_as_batch=True
    )
    redis_client.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    skip_limiter_where_no_limit_applies(app, limiter)
    app.session_interface = LeanSessionInterface()
    csrf.init_app(app)
    mail.init_app(app)
    login_manager.init_app(app)
    i18n.init_app(app)
    security_headers.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    events.init_app(app)
    cli.init_app(app)
    _register_blueprints(app)
    _complete_api_spec(app)
    _connect_stages()
    if app.config.get("CLOCK_IN_PROCESS"):
        # `make run`: the clock ticks in the web process (embedded defaults only).
        from app.clock.cli import start_in_process

        start_in_process(app)
    return app


def _complete_api_spec(app: APIFlask) -> None:
    from app.api.spec import complete_spec

    app.spec_processor(lambda spec: complete_spec(app, spec))


def _connect_stages() -> None:
    """The lifecycle's forward links, made here explicitly: a later stage answers an earlier
    stage's signal (connecting the same receiver again is a no-op). Publishing a tender runs
    its key ceremony; cancelling a public tender publishes its signed cancellation notice;
    finalising an evaluation requests its signed record; panels ask the
    evaluation stage whether scoring has locked and tell it when a seat is vacated."""
    from app.custody.operations import key_ceremony_on_publication
    from app.evaluations.operations import follow_vacated_seat
    from app.evaluations.queries import scoring_has_locked
    from app.evaluations.signals import evaluation_finalised
    from app.opening.signals import tender_opened
    from app.panels.operations import panel_people
    from app.panels.signals import scoring_lock_asked, seat_vacated
    from app.records.operations import request_record_on_finalise
    from app.results.operations import reevaluate_on_order, sign_cancellation_notice
    from app.supervision.flag_jobs import screen_on_opening
    from app.tenders.signals import (
        people_involved_asked,
        reevaluation_ordered,
        tender_cancelled,
        tender_publishing,
    )
    from app.tenders.suspension import install_guard

    tender_publishing.connect(key_ceremony_on_publication)
    tender_cancelled.connect(sign_cancellation_notice)
    tender_opened.connect(screen_on_opening)
    people_involved_asked.connect(panel_people)
    reevaluation_ordered.connect(reevaluate_on_order)
    install_guard()
    evaluation_finalised.connect(request_record_on_finalise)
    scoring_lock_asked.connect(scoring_has_locked)
    seat_vacated.connect(follow_vacated_seat)


def _configure_database(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        os.makedirs(app.instance_path, exist_ok=True)
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
        options.setdefault("connect_args", {"timeout": 15})
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _register_blueprints(app: Flask) -> None:
    from app.accounts.views import bp as accounts_bp
    from app.admin.views import bp as admin_bp
    from app.api import bp as api_bp
    from app.bidder.views import bp as bidder_bp
    from app.bids.views import bp as bids_bp
    from app.clock.views import bp as clock_bp
    from app.companies.views import bp as companies_bp
    from app.custody.views import bp as custody_bp
    from app.evaluations.scoring_views import bp as scoring_bp
    from app.evaluations.views import bp as evaluations_bp
    from app.extensions import csrf
    from app.main.guide import bp as guide_bp
    from app.main.views import bp as main_bp
    from app.opening.views import bp as opening_bp
    from app.panels.views import bp as panels_bp
    from app.portal.views import bp as portal_bp
    from app.records.views import bp as records_bp
    from app.results.views import bp as results_bp
    from app.supervision.flag_views import bp as supervision_flags_bp
    from app.supervision.views import bp as supervision_bp
    from app.tenders.views import bp as tenders_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(guide_bp)
    # Third-party CSS installed from the npm registry at setup, not committed.
    app.register_blueprint(
        Blueprint(
            "vendor",
            __name__,
            static_folder=str(
                config_module.BASE_DIR / "node_modules" / "@picocss" / "pico" / "css"
            ),
            static_url_path="/vendor/pico",
        )
    )
    app.register_blueprint(accounts_bp)
    app.register_blueprint(companies_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(supervision_bp)
    app.register_blueprint(supervision_flags_bp)
    app.register_blueprint(tenders_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(bidder_bp)
    app.register_blueprint(bids_bp)
    app.register_blueprint(custody_bp)
    app.register_blueprint(opening_bp)
    app.register_blueprint(panels_bp)
    app.register_blueprint(evaluations_bp)
    app.register_blueprint(scoring_bp)
    app.register_blueprint(records_bp)
    app.register_blueprint(results_bp)
    app.register_blueprint(clock_bp)
    # The API authenticates with bearer tokens only, never with the session cookie, so
    # cross-site request forgery has nothing to ride on.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    # APIFlask documents only the API; HTML blueprints stay out of the OpenAPI document.
    for blueprint in app.blueprints.values():
        if blueprint is not api_bp:
            blueprint.enable_openapi = False
