"""Configuration. Everything environment-specific comes from environment variables.

The development defaults are embedded so `make run` works on a laptop with no servers:
SQLite under `instance/`, an in-process Redis stand-in (fakeredis), RQ jobs run inline,
e-mail written to files under `instance/mail/`. Production refuses to start with them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("FAIRBID_INSTANCE_DIR", BASE_DIR / "instance"))

# SHA-256 of secret keys that were published in this repository (the former development
# and testing defaults): a key anyone can read signs sessions anyone can forge, so no mode
# accepts one.
PUBLISHED_SECRET_KEYS = frozenset(
    {
        "3ca0cf5437e8f9a9486d99fa5c213e42aacc452dd0253f35ec37b485665ac679",
        "58b55a68b5a8fb0bec4c2e18c6253f680dc889a4a825e2d970e523d0692ce94b",
    }
)


def is_published_secret(value: str | bytes) -> bool:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return hashlib.sha256(raw).hexdigest() in PUBLISHED_SECRET_KEYS


def normalise_database_url(url: str) -> str:
    # psycopg 3 is the driver; accept the bare scheme people paste from hosting panels.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def public_url_problem(url: str) -> str | None:
    """Why `url` cannot be the site's public address (None when it can)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return "it must be an http(s) URL with a host name"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "it must have no query, fragment or credentials"
    return None


def _list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


def _database_url(default: str) -> str:
    return normalise_database_url(os.environ.get("DATABASE_URL") or default)


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    ENV_NAME = "base"
    # Empty outside production: a random key is generated on first run into
    # <instance>/secret_key (mode 0600) and reused after (app/core/instance_secret.py).
    SECRET_KEY = os.environ.get("SECRET_KEY", "")
    INSTANCE_DIR = INSTANCE_DIR
    SQLALCHEMY_DATABASE_URI = _database_url(f"sqlite:///{INSTANCE_DIR / 'fairbid.db'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # Empty means the in-process stand-in (fakeredis) and inline jobs.
    REDIS_URL = os.environ.get("REDIS_URL", "")
    RQ_QUEUE = os.environ.get("FAIRBID_RQ_QUEUE", "fairbid")

    # Requests: 16 MiB for forms; bid uploads get their own streamed limits later.
    MAX_CONTENT_LENGTH = int(os.environ.get("FAIRBID_MAX_CONTENT_LENGTH", 64 * 1024 * 1024))
    MAX_FORM_MEMORY_SIZE = 512 * 1024
    # JSON request bodies (the API): at most this many bytes and this many levels of nesting
    # (a deeper body answers 400 before any parser recurses into it; a larger one 413).
    MAX_JSON_BYTES = int(os.environ.get("FAIRBID_MAX_JSON_BYTES", 1024 * 1024))
    MAX_JSON_DEPTH = 32

    # Sessions and cookies.
    SESSION_COOKIE_NAME = "fairbid_session"
    # The site's public address: every link in mail, PDFs, feeds and OCDS is built on it,
    # never on the request's Host header; requests for any other host are refused (400),
    # except for FAIRBID_TRUSTED_HOSTS (comma-separated; ".example.gov" takes subdomains).
    PUBLIC_URL = os.environ.get("FAIRBID_PUBLIC_URL", "")
    EXTRA_TRUSTED_HOSTS = _list("FAIRBID_TRUSTED_HOSTS")
    DEFAULT_TRUSTED_HOSTS: tuple[str, ...] = ()
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host (ProxyFix).
    # 0: the headers are ignored and the client address is the connection's.
    PROXY_COUNT = int(os.environ.get("FAIRBID_PROXY_COUNT", 0))
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("FAIRBID_SECURE_COOKIES", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    PERMANENT_SESSION_LIFETIME = 8 * 3600
    FORCE_HTTPS = _bool("FAIRBID_FORCE_HTTPS", False)

    # Forms.
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = 8 * 3600

    # i18n.
    LANGUAGES = ("en", "ko", "zh_Hans")
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = os.environ.get("FAIRBID_TIMEZONE", "Asia/Shanghai")
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "app" / "translations")
    FAIRBID_CURRENCY = os.environ.get("FAIRBID_CURRENCY", "CNY")

    # Rate limits (Flask-Limiter; Redis when REDIS_URL is set).
    # Sign-in attempts per client address; and one limit per account, whatever the address,
    # shared by every entry point that checks a password, TOTP code or key passphrase
    # (app/accounts/limits.py).
    RATELIMIT_LOGIN = os.environ.get("FAIRBID_RATELIMIT_LOGIN", "30 per minute")
    RATELIMIT_LOGIN_ACCOUNT = os.environ.get("FAIRBID_RATELIMIT_LOGIN_ACCOUNT", "10 per 5 minutes")
    RATELIMIT_RESET = os.environ.get("FAIRBID_RATELIMIT_RESET", "5 per hour")
    RATELIMIT_SIGNUP = os.environ.get("FAIRBID_RATELIMIT_SIGNUP", "20 per hour")
    # Envelope submissions and resumable-upload starts, per account or API token (chunks of
    # an upload are not counted).
    RATELIMIT_BID_UPLOAD = os.environ.get("FAIRBID_RATELIMIT_BID_UPLOAD", "60 per minute")
    RATELIMIT_HEADERS_ENABLED = True

    # E-mail (Flask-Mailman). File backend by default, SMTP when MAIL_SERVER is set.
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", 587))
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD", "")
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", True)
    MAIL_BACKEND = "smtp" if MAIL_SERVER else os.environ.get("MAIL_BACKEND", "file")
    MAIL_FILE_PATH = str(INSTANCE_DIR / "mail")
    MAIL_DEFAULT_SENDER = os.environ.get(
        "MAIL_DEFAULT_SENDER", "Fairbid <no-reply@fairbid.example>"
    )

    # Accounts.
    EMAIL_TOKEN_MAX_AGE = 2 * 24 * 3600
    RESET_TOKEN_MAX_AGE = 3600
    API_TOKEN_DAYS = int(os.environ.get("FAIRBID_API_TOKEN_DAYS", 90))
    TOTP_ISSUER = os.environ.get("FAIRBID_TOTP_ISSUER", "Fairbid")
    # TOTP secrets are stored under AES-256-GCM with a key derived (HKDF) from this, or from
    # SECRET_KEY when it is unset; the previous keys still open secrets during a rotation.
    FAIRBID_TOTP_KEY = os.environ.get("FAIRBID_TOTP_KEY", "")
    FAIRBID_TOTP_PREVIOUS_KEYS = _list("FAIRBID_TOTP_PREVIOUS_KEYS")
    # A TOTP enrolment started at first sign-in stays open this long (kept in the database).
    TOTP_ENROLMENT_SECONDS = 900
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 65536  # KiB
    # Sign-ins checked at once per process (each holds a database connection for two short
    # reads around its argon2 turn); the others wait their turn holding none, at most
    # SIGN_IN_QUEUE_SECONDS, then get a 503 "try again". 0: no limit.
    SIGN_IN_CONCURRENCY = int(os.environ.get("FAIRBID_SIGN_IN_CONCURRENCY", 4))
    SIGN_IN_QUEUE_SECONDS = 60
    # Argon2id locking each custodian's private key (bidding.keys.KdfParams; RFC 9106's
    # second option). The parameters travel in the locked key, so changing them here affects
    # new keys only.
    CUSTODIAN_KEY_KDF = {"iterations": 3, "lanes": 4, "memory_cost": 65536}

    # Tendering rules (China's regulations as configurable defaults).
    SUBMISSION_DAYS_MIN = {"works": 20, "goods": 20, "services": 20, "asset_sale": 20}
    ADDENDUM_MIN_DAYS = int(os.environ.get("FAIRBID_ADDENDUM_MIN_DAYS", 15))
    BID_BOND_MAX_PERCENT = int(os.environ.get("FAIRBID_BID_BOND_MAX_PERCENT", 2))
    # An expert who sat on a panel for a procuring entity is not drawn for it again within
    # this many days (counted from that panel's draw).
    PANEL_COOLDOWN_DAYS = int(os.environ.get("FAIRBID_PANEL_COOLDOWN_DAYS", 180))
    MAX_ATTACHMENT_SIZE = int(os.environ.get("FAIRBID_MAX_ATTACHMENT_SIZE", 50 * 1024 * 1024))
    BLOB_DIR = os.environ.get("FAIRBID_BLOB_DIR", "")  # default: <instance>/blobs

    # Sealed bids. Envelopes stream to the blob store under this cap (bytes); the browser
    # uploads them in chunks of UPLOAD_CHUNK_SIZE (resumable).
    MAX_ENVELOPE_SIZE = int(os.environ.get("FAIRBID_MAX_ENVELOPE_SIZE", 1024 * 1024 * 1024))
    UPLOAD_CHUNK_SIZE = int(os.environ.get("FAIRBID_UPLOAD_CHUNK_SIZE", 1024 * 1024))
    # The platform's Ed25519 receipt key: a PEM file mounted in production; in development
    # and tests generated on first use under PLATFORM_KEY_DIR (default <instance>/keys).
    FAIRBID_PLATFORM_KEY = os.environ.get("FAIRBID_PLATFORM_KEY", "")
    PLATFORM_KEY_DIR = os.environ.get("FAIRBID_PLATFORM_KEY_DIR", "")
    # PDF signing (app/records/signing.py): the platform's document-signing key, certificate
    # and chain, and the CA that issues panel members' certificates (PEM files). Development
    # and tests generate a development CA and certificate under PLATFORM_KEY_DIR instead.
    # FAIRBID_TSA_URL: an RFC 3161 time-stamping authority (optional, any environment).
    FAIRBID_SIGNING_KEY = os.environ.get("FAIRBID_SIGNING_KEY", "")
    FAIRBID_SIGNING_CERT = os.environ.get("FAIRBID_SIGNING_CERT", "")
    FAIRBID_SIGNING_CHAIN = os.environ.get("FAIRBID_SIGNING_CHAIN", "")
    FAIRBID_SIGNING_CA_CERT = os.environ.get("FAIRBID_SIGNING_CA_CERT", "")
    FAIRBID_SIGNING_CA_KEY = os.environ.get("FAIRBID_SIGNING_CA_KEY", "")
    FAIRBID_TSA_URL = os.environ.get("FAIRBID_TSA_URL", "")
    # An envelope whose last byte was stored before the deadline may still be checked and
    # committed for a moment after it; the sealing record waits this long, and acceptance
    # after it is refused (so no bid joins after the record). Kept well inside
    # CLOCK_SEALING_LATE_SECONDS: with a tick every CLOCK_SECONDS the record is made within
    # a minute of the deadline.
    SEALING_GRACE_SECONDS = int(os.environ.get("FAIRBID_SEALING_GRACE_SECONDS", 30))
    PORTAL_CACHE_SECONDS = int(os.environ.get("FAIRBID_PORTAL_CACHE_SECONDS", 300))
    # Rendered rows of the announcement list kept per worker, by content (app.portal.rows):
    # at most this many (~1.5 kB each).
    PORTAL_ROW_CACHE_SIZE = int(os.environ.get("FAIRBID_PORTAL_ROW_CACHE_SIZE", 4096))
    # The public tender page polls its status (close, sealing record) this often, until sealed.
    PORTAL_STATUS_POLL_SECONDS = float(os.environ.get("FAIRBID_PORTAL_STATUS_POLL_SECONDS", 5))

    # Opening ceremony.
    OPENING_OBJECTION_MINUTES = int(os.environ.get("FAIRBID_OPENING_OBJECTION_MINUTES", 30))

    # Live pages (server-sent events, app/events.py): how long one stream lasts before the
    # browser reconnects, the keep-alive comment interval, and concurrent streams per address.
    EVENT_STREAM_SECONDS = int(os.environ.get("FAIRBID_EVENT_STREAM_SECONDS", 120))
    EVENT_STREAM_KEEPALIVE_SECONDS = 15
    EVENT_STREAMS_PER_ADDRESS = int(os.environ.get("FAIRBID_EVENT_STREAMS_PER_ADDRESS", 20))

    # Evaluation: days a bidder has to justify an abnormally low price; technical PDFs
    # larger than this are kept as sent (not rewritten without metadata) and flagged.
    LOW_PRICE_JUSTIFICATION_DAYS = int(os.environ.get("FAIRBID_LOW_PRICE_JUSTIFICATION_DAYS", 3))
    EVALUATION_PDF_REWRITE_MAX = int(
        os.environ.get("FAIRBID_EVALUATION_PDF_REWRITE_MAX", 200 * 1024 * 1024)
    )

    # Results: days bidders have to object to the candidates notice.
    FAIRBID_OBJECTION_DAYS = int(os.environ.get("FAIRBID_OBJECTION_DAYS", 3))

    # The clock (app/clock): `flask clock` ticks every CLOCK_SECONDS; with CLOCK_IN_PROCESS
    # (`make run`) the web process ticks in a thread. Overdue alerts fire this long after
    # their step was due; links in its e-mails start with FAIRBID_BASE_URL.
    CLOCK_SECONDS = float(os.environ.get("FAIRBID_CLOCK_SECONDS", 15))
    CLOCK_IN_PROCESS = os.environ.get("FAIRBID_CLOCK_IN_PROCESS", "") == "1"
    DEMO_CLOSING_MINUTES = int(os.environ.get("FAIRBID_DEMO_CLOSING_MINUTES", 5))
    CLOCK_SEALING_LATE_SECONDS = int(os.environ.get("FAIRBID_CLOCK_SEALING_LATE_SECONDS", 60))
    CLOCK_OPENING_OVERDUE_MINUTES = int(os.environ.get("FAIRBID_CLOCK_OPENING_OVERDUE_MINUTES", 30))
    CLOCK_CANDIDATES_OVERDUE_DAYS = int(os.environ.get("FAIRBID_CLOCK_CANDIDATES_OVERDUE_DAYS", 3))
    CLOCK_AWARD_OVERDUE_DAYS = int(os.environ.get("FAIRBID_CLOCK_AWARD_OVERDUE_DAYS", 5))
    CLOCK_OBJECTION_ANSWER_DAYS = int(os.environ.get("FAIRBID_CLOCK_OBJECTION_ANSWER_DAYS", 3))
    # Remind registered companies without a bid this many hours before the deadline (0: off).
    CLOCK_BID_REMINDER_HOURS = int(os.environ.get("FAIRBID_CLOCK_BID_REMINDER_HOURS", 0))
    # Remind experts whose score sheet is not locked this many hours before the evaluation
    # period ends (0: off); remind a company's users when a certificate expires within each
    # of these days (comma-separated; empty: off).
    CLOCK_SHEET_REMINDER_HOURS = int(os.environ.get("FAIRBID_CLOCK_SHEET_REMINDER_HOURS", 24))
    CLOCK_CERTIFICATE_REMINDER_DAYS = os.environ.get(
        "FAIRBID_CLOCK_CERTIFICATE_REMINDER_DAYS", "30,7"
    )
    # A window that closed more than this many hours before the tick (a first deployment, a
    # clock down for days) is recorded as done without telling anyone.
    CLOCK_CATCH_UP_HOURS = int(os.environ.get("FAIRBID_CLOCK_CATCH_UP_HOURS", 24))
    FAIRBID_BASE_URL = os.environ.get("FAIRBID_BASE_URL", "http://127.0.0.1:5000/")
    # The clock signs the audit chain's head at each tender milestone and, while the chain
    # moves, at least this often (minutes).
    AUDIT_CHECKPOINT_MINUTES = int(os.environ.get("FAIRBID_AUDIT_CHECKPOINT_MINUTES", 5))

    # Red flags for supervisors (app/supervision/flags.py; README "Red flags"): thresholds
    # overriding the documented defaults, as JSON {"screens": {...}, "sources": {...},
    # "market": {...}}; the nightly run over history from this hour (UTC) once a day.
    SUPERVISION_FLAG_THRESHOLDS = json.loads(os.environ.get("FAIRBID_FLAG_THRESHOLDS") or "{}")
    SUPERVISION_FLAGS_HOUR = int(os.environ.get("FAIRBID_FLAGS_HOUR", 2))
    SUPERVISION_FLAGS_NIGHTLY = os.environ.get("FAIRBID_FLAGS_NIGHTLY", "1") != "0"

    # Open data (OCDS).
    # ocid = "<prefix>-<centre code>-<reference>"; register a real prefix with the OCP.
    OCDS_PREFIX = os.environ.get(
        "FAIRBID_OCID_PREFIX", os.environ.get("FAIRBID_OCDS_PREFIX", "ocds-fairbid")
    )
    OCDS_PUBLISHER_NAME = os.environ.get("FAIRBID_OCDS_PUBLISHER", "Fairbid")

    # API (APIFlask).
    OPENAPI_VERSION = "3.1.0"
    INFO = {"description": "Fairbid JSON API. Authenticate with `Authorization: Bearer TOKEN`."}

    @classmethod
    def check(cls) -> None:
        """Refuse configurations that must never run (overridden in production)."""


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    PUBLIC_URL = os.environ.get("FAIRBID_PUBLIC_URL", "http://127.0.0.1:5000")
    DEFAULT_TRUSTED_HOSTS = ("127.0.0.1", "localhost")


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    PUBLIC_URL = os.environ.get("FAIRBID_PUBLIC_URL", "http://localhost")
    DEFAULT_TRUSTED_HOSTS = ("localhost", "127.0.0.1")
    WTF_CSRF_ENABLED = False
    CLOCK_IN_PROCESS = False  # tests tick explicitly
    MAIL_BACKEND = "locmem"
    # Cheap hashes keep the suite fast; production uses argon2-cffi's defaults.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 1024
    CUSTODIAN_KEY_KDF = {"iterations": 1, "lanes": 1, "memory_cost": 64}
    RATELIMIT_LOGIN = "20 per minute"
    RATELIMIT_LOGIN_ACCOUNT = "5 per minute"


# PDF signing in production: the platform's key, certificate and chain, and the CA that
# issues panel members' certificates (app/records/signing.py).
SIGNING_SETTINGS = (
    "FAIRBID_SIGNING_KEY",
    "FAIRBID_SIGNING_CERT",
    "FAIRBID_SIGNING_CHAIN",
    "FAIRBID_SIGNING_CA_CERT",
    "FAIRBID_SIGNING_CA_KEY",
)


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    FORCE_HTTPS = _bool("FAIRBID_FORCE_HTTPS", True)

    @classmethod
    def check(cls) -> None:
        problems = []
        if len(cls.SECRET_KEY) < 32 or is_published_secret(cls.SECRET_KEY):
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if not cls.PUBLIC_URL or public_url_problem(cls.PUBLIC_URL):
            problems.append(
                "FAIRBID_PUBLIC_URL must be the site's public address, e.g. https://bids.example.gov"
            )
        if not os.environ.get("DATABASE_URL"):
            problems.append("DATABASE_URL must point at PostgreSQL")
        if not cls.REDIS_URL:
            problems.append("REDIS_URL must point at a Redis server")
        if not os.environ.get("FAIRBID_PLATFORM_KEY"):
            problems.append("FAIRBID_PLATFORM_KEY must name the Ed25519 key that signs receipts")
        missing = [name for name in SIGNING_SETTINGS if not os.environ.get(name)]
        if missing:
            problems.append(
                f"{', '.join(missing)} must name the PEM files that sign evaluation records "
                "and issue panel members' certificates"
            )
        if problems:
            raise RuntimeError("Refusing to start in production: " + "; ".join(problems))


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    name = os.environ.get("FAIRBID_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"FAIRBID_ENV must be one of {sorted(CONFIGS)}, not {name!r}") from None
