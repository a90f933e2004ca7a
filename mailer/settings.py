"""Settings, all driven by environment variables (see the table in README.md).

A bad value fails at start with a message that names the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from mailer import guardrails

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def env(name: str, default: str = "") -> str:
    """The variable's value; unset and empty both mean the default."""
    return os.environ.get(name) or default


def envbool(name: str, default: str = "False") -> bool:
    value = env(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: str) -> int:
    value = env(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envfloat(name: str, default: str) -> float:
    value = env(name, default)
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG")
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-debug-only-key"
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
BEHIND_PROXY = envbool("BEHIND_PROXY")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "django_tables2",
    "django_filters",
    "crispy_forms",
    "crispy_bootstrap5",
    "template_partials",
    "social_django",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    # Before accounts: its permissions must exist when the roles are synced after migrate.
    "axes",
    "mailer",
    "engine",
    "accounts",
    "dashboard",
    # The gateway's local stand-in (manage.py fake_provider), for the demo, tests and benchmarks.
    "standin",
]

MIDDLEWARE = [
    # Outermost, so every log line of a request carries its request id and its time is measured.
    "mailer.logging.RequestContextMiddleware",
    "mailer.monitoring.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the switcher's cookie, else the browser's Accept-Language, else LANGUAGE_CODE.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Sign-in (accounts): every page needs a login except the views marked @login_not_required (the
    # probes, the sign-in pages; DRF marks the API's views), and a refused single sign-on lands on
    # the refusal page instead of a 500.
    "accounts.middleware.LoginRequiredMiddleware",
    # The signed-in user's time zone and language (accounts.models.Profile).
    "accounts.middleware.UserPreferencesMiddleware",
    "social_django.middleware.SocialAuthExceptionMiddleware",
    # Last, as django-axes asks: turns a sign-in refused for lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mailer.urls"
WSGI_APPLICATION = "mailer.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.tz",
            ],
        },
    },
]

# Database: DATABASE_URL, or a SQLite file under var/.
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'mailer.sqlite3'}")
try:
    # A web process keeps its connection between requests (a minute at most; on PostgreSQL checked
    # before reuse): opening one for each was half of a click's time (bench/clicks.py).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as e:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {e}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web and worker are several processes on one file: WAL lets readers go on while one writes,
    # and IMMEDIATE transactions wait for the write lock (busy timeout) instead of failing with
    # "database is locked" when a read turns into a write.
    # Tests use a file too: worker processes and threads in the engine tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # The busy timeout (seconds) can be set in the URL: sqlite:///var/mailer.sqlite3?timeout=60.
    # Django's backend, its writers taking turns (a waiting web write goes before the engine's
    # next transaction): mailer/backends/sqlite3.
    DATABASES["default"]["ENGINE"] = "mailer.backends.sqlite3"
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **DATABASES["default"].get("OPTIONS", {}),
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username or address before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"

# Sign-in: local accounts always; Auth0 single sign-on when all three AUTH0_* variables are set.
AUTH0_DOMAIN = env("AUTH0_DOMAIN").removeprefix("https://").rstrip("/")
AUTH0_CLIENT_ID = env("AUTH0_CLIENT_ID")
AUTH0_CLIENT_SECRET = env("AUTH0_CLIENT_SECRET")
_auth0 = {
    "AUTH0_DOMAIN": AUTH0_DOMAIN,
    "AUTH0_CLIENT_ID": AUTH0_CLIENT_ID,
    "AUTH0_CLIENT_SECRET": AUTH0_CLIENT_SECRET,
}
if any(_auth0.values()) and not all(_auth0.values()):
    _missing = ", ".join(name for name, value in _auth0.items() if not value)
    raise ImproperlyConfigured(
        f"Auth0 sign-in needs AUTH0_DOMAIN, AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET; {_missing} unset"
    )
AUTH0_ENABLED = all(_auth0.values())
# Lower-cased; with both empty nobody is admitted through Auth0 (see README, "Sign-in and roles").
AUTH0_ALLOWED_DOMAINS = [d.lower().lstrip("@") for d in envlist("AUTH0_ALLOWED_DOMAINS")]
AUTH0_ALLOWED_EMAILS = [e.lower() for e in envlist("AUTH0_ALLOWED_EMAILS")]
if AUTH0_ENABLED:
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "social_core.backends.auth0.Auth0OAuth2"]
SOCIAL_AUTH_AUTH0_DOMAIN = AUTH0_DOMAIN
SOCIAL_AUTH_AUTH0_KEY = AUTH0_CLIENT_ID
SOCIAL_AUTH_AUTH0_SECRET = AUTH0_CLIENT_SECRET
# A CA to trust for Auth0's certificate instead of the system's (the local stand-in, see
# docs/security.md; a TLS-inspecting proxy). social-core hands it to requests as `verify` for the
# token and JWKS requests alike.
AUTH0_CA_BUNDLE = env("AUTH0_CA_BUNDLE")
if AUTH0_CA_BUNDLE and not Path(AUTH0_CA_BUNDLE).is_file():
    raise ImproperlyConfigured(f"AUTH0_CA_BUNDLE must be a PEM file; {AUTH0_CA_BUNDLE!r} is not a file")
SOCIAL_AUTH_AUTH0_VERIFY_SSL = AUTH0_CA_BUNDLE or True
# Exactly the OpenID scopes whose claims we read (SCOPE is otherwise added to the backend's defaults).
SOCIAL_AUTH_AUTH0_SCOPE = ["openid", "profile", "email"]
SOCIAL_AUTH_AUTH0_IGNORE_DEFAULT_SCOPE = True
SOCIAL_AUTH_LOGIN_ERROR_URL = "/accounts/refused/"
# The default (DEBUG) would turn a refusal into a traceback in development instead of the refusal page.
SOCIAL_AUTH_RAISE_EXCEPTIONS = False
# social-auth-app-django 8 stores UserSocialAuth.extra_data in Django's JSONField on every database,
# so the old SOCIAL_AUTH_JSONFIELD_ENABLED / POSTGRES_JSONFIELD switches are not needed.
# Names from Auth0 may refresh the profile on each login; the username and email an admin sees stay put.
SOCIAL_AUTH_PROTECTED_USER_FIELDS = ["username", "email"]
SOCIAL_AUTH_FORCE_EMAIL_LOWERCASE = True
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_names",
    "social_core.pipeline.social_auth.social_uid",
    "accounts.pipeline.require_allowed_email",
    "social_core.pipeline.social_auth.social_user",
    "accounts.pipeline.refuse_barred",
    "accounts.pipeline.associate_by_verified_email",
    "social_core.pipeline.user.get_username",
    "accounts.pipeline.create_viewer",
    "social_core.pipeline.social_auth.associate_user",
    "social_core.pipeline.social_auth.load_extra_data",
    "social_core.pipeline.user.user_details",
)

# Russian and English (locale/): each user gets their browser's language unless they chose one
# with the switcher (a cookie); LANGUAGE_CODE is for everyone else and the daily report.
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LANGUAGE_CODE = env("LANGUAGE_CODE", "ru")
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(
        f"LANGUAGE_CODE must be one of {', '.join(dict(LANGUAGES))}, not {LANGUAGE_CODE!r}"
    )
LOCALE_PATHS = [BASE_DIR / "locale"]
# Date and number formats of each language (mailer/formats/<lang>/formats.py).
FORMAT_MODULE_PATH = ["mailer.formats"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
# 12 400 in Russian, 12,400 in English, on every page alike (ids are shown with |unlocalize).
USE_THOUSAND_SEPARATOR = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Password guessing (django-axes, see docs/security.md), two locks, both lasting LOGIN_LOCKOUT_MINUTES
# after the last failure or until an admin unlocks (the Users page). After LOGIN_FAILURE_LIMIT failed
# sign-ins within that time, that username is refused from that address: colleagues behind the same
# address are not, nor the same person elsewhere. After LOGIN_ADDRESS_FAILURE_LIMIT failures from one
# address, each username counting for LOGIN_FAILURE_LIMIT at most (so spread over several usernames:
# password spraying), that address is refused for every username (accounts.lockout). Counted on the
# product's login page and the Django admin's alike; API tokens never pass through it.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", "10")
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", "15"))
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME <= timedelta(0):
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be 1 or more")
LOGIN_ADDRESS_FAILURE_LIMIT = envint("LOGIN_ADDRESS_FAILURE_LIMIT", "100")
if LOGIN_ADDRESS_FAILURE_LIMIT <= AXES_FAILURE_LIMIT:
    # Otherwise one person's failures alone would lock everyone behind their address out.
    raise ImproperlyConfigured("LOGIN_ADDRESS_FAILURE_LIMIT must be more than LOGIN_FAILURE_LIMIT")
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "accounts.lockout.LockoutHandler"
AXES_USERNAME_CALLABLE = "accounts.lockout.attempted_username"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out"
# Not reset by a success: failures expire on their own (LOGIN_LOCKOUT_MINUTES after the last one)
# or by an admin's unlock, and count for the address limit until then.
AXES_RESET_ON_SUCCESS = False
AXES_USERNAME_FORM_FIELD = "username"
# Log failures with the username and the address (axes masks both by default); never the password,
# which axes always masks.
AXES_SENSITIVE_PARAMETERS: list[str] = []

# Security: on by default when DEBUG is off; SECURE_SSL_REDIRECT is for deployments behind TLS.
SESSION_COOKIE_HTTPONLY = True
# Cookies travel over HTTPS only whenever the service is served over HTTPS.
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", str(SITE_URL.startswith("https://")))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "False")
# The probes and Prometheus talk plain HTTP to the pod, not through the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp): scripts, styles and everything else from
# this server only, no inline script anywhere. Inline style *attributes* (progress bar widths) may
# stay: they cannot run code. The API docs pages widen style-src for their bundles (mailer/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    }
}

# UI packages
CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"
# The bootstrap 5 template, with rows rendered in Python (dashboard/templatetags/dashboard_tables.py).
DJANGO_TABLES2_TEMPLATE = "dashboard/table.html"

# REST API (mailer/api). Token or session auth; every view also checks the role's model permissions.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that an anonymous request gets 401 with `WWW-Authenticate: Bearer`.
        "mailer.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "mailer.api.permissions.ModelPermissions",
    ],
    "DEFAULT_PAGINATION_CLASS": "mailer.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mailer.api.errors.exception_handler",
    # JSON only (the CSV import takes a multipart upload): nested filter/window don't fit a form.
    "DEFAULT_PARSER_CLASSES": ["mailer.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mailer API",
    "DESCRIPTION": "Clients, mailings and their statistics. See docs/api.md for a walk-through.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs pages are behind login too: nothing is reachable anonymously.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": [
        "mailer.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MailingStateEnum": "mailer.models.MailingState",
        "MessageStatusEnum": "mailer.models.MessageStatus",
        "ImportStateEnum": "mailer.models.ImportState",
        "DeliveryStatusEnum": "mailer.models.DeliveryStatus",
    },
}

# The SMS gateway
MAILER_PROVIDER_URL = env("MAILER_PROVIDER_URL", "http://127.0.0.1:8001").rstrip("/")
MAILER_PROVIDER_TOKEN = env("MAILER_PROVIDER_TOKEN")
if not MAILER_PROVIDER_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("MAILER_PROVIDER_URL must start with http:// or https://")

# The sending engine (see engine/delivery.py and docs/engine.md).
MAILER_IMPORT_MAX_MB = envint("MAILER_IMPORT_MAX_MB", "50")  # client CSV files, UI and API alike
# A client file has a handful of columns and lines of a few dozen bytes: a file past either cap is
# refused as it is read, before the reader holds (and csv splits) one huge line (mailer/importing.py).
MAILER_IMPORT_MAX_COLUMNS = envint("MAILER_IMPORT_MAX_COLUMNS", "50")
MAILER_IMPORT_MAX_LINE = envint("MAILER_IMPORT_MAX_LINE", "65536")  # bytes
if MAILER_IMPORT_MAX_COLUMNS < 1 or MAILER_IMPORT_MAX_LINE < 1:
    raise ImproperlyConfigured("MAILER_IMPORT_MAX_COLUMNS and MAILER_IMPORT_MAX_LINE must be 1 or more")
# Phones a user may send tests to in an hour (engine.testsends); 0: no limit.
# The time zone of a client given none (a blank cell of an import, a form or API call without one).
MAILER_DEFAULT_CLIENT_TIMEZONE = env("MAILER_DEFAULT_CLIENT_TIMEZONE", "Europe/Moscow")
try:
    zoneinfo.ZoneInfo(MAILER_DEFAULT_CLIENT_TIMEZONE)
except (ValueError, zoneinfo.ZoneInfoNotFoundError):
    raise ImproperlyConfigured(
        f"MAILER_DEFAULT_CLIENT_TIMEZONE must be an IANA time zone, not {MAILER_DEFAULT_CLIENT_TIMEZONE!r}"
    ) from None

MAILER_TEST_SEND_LIMIT = envint("MAILER_TEST_SEND_LIMIT", "20")
if MAILER_TEST_SEND_LIMIT < 0:
    raise ImproperlyConfigured("MAILER_TEST_SEND_LIMIT must be 0 (no limit) or more")
# The most SMS parts a mailing's text may take (mailer/sms.py); 0 = no cap.
MAILER_MAX_PARTS = envint("MAILER_MAX_PARTS", "0")
if MAILER_MAX_PARTS < 0:
    raise ImproperlyConfigured("MAILER_MAX_PARTS must be 0 (no cap) or more")
# Links in texts (README "A link of their own, and clicks"): each address is sent as
# MAILER_LINK_BASE/<code>, whose GET /l/<code> counts the click and redirects to it.
MAILER_LINK_BASE = env("MAILER_LINK_BASE", f"{SITE_URL}/l").rstrip("/")
if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", MAILER_LINK_BASE):
    raise ImproperlyConfigured(f"MAILER_LINK_BASE must be an http(s) address, not {MAILER_LINK_BASE!r}")
# Where the web writes clicks down for a sender to count (mailer/links.py), so that a burst of
# clicks never queues on a lock: on SQLite a directory under var/ by default (a click never waits
# for the engine's write lock); "database" (PostgreSQL's default): a table, one insert per click;
# empty: each click counted at once.
MAILER_CLICK_SPOOL = os.environ.get(
    "MAILER_CLICK_SPOOL",
    str(VAR_DIR / "clicks") if DATABASES["default"]["ENGINE"].endswith("sqlite3") else "database",
)
# Delivery receipts (README "Delivery receipts"): POST /api/v1/gateway/receipts/ takes them with
# `Authorization: Bearer <MAILER_RECEIPT_TOKEN>` (unset: the door is shut); MAILER_RECEIPT_SPOOL
# says where the web writes them down for a sender to apply, as MAILER_CLICK_SPOOL does for clicks.
MAILER_RECEIPT_TOKEN = env("MAILER_RECEIPT_TOKEN", "")
MAILER_RECEIPT_SPOOL = os.environ.get(
    "MAILER_RECEIPT_SPOOL",
    str(VAR_DIR / "receipts") if DATABASES["default"]["ENGINE"].endswith("sqlite3") else "database",
)
if MAILER_RECEIPT_SPOOL not in ("", "database") and MAILER_RECEIPT_SPOOL == MAILER_CLICK_SPOOL:
    raise ImproperlyConfigured("MAILER_RECEIPT_SPOOL and MAILER_CLICK_SPOOL must be different directories")
# A phone whose last this many messages came back undelivered is left out of later audiences; 0: never.
MAILER_UNDELIVERED_LIMIT = envint("MAILER_UNDELIVERED_LIMIT", "3")
if MAILER_UNDELIVERED_LIMIT < 0:
    raise ImproperlyConfigured("MAILER_UNDELIVERED_LIMIT must be 0 (off) or more")
# The guardrails (docs/engine.md "Consent, quiet hours and the frequency cap").
# An advertising mailing reaches only clients with consent on record (38-FZ art. 18).
MAILER_CONSENT_REQUIRED = envbool("MAILER_CONSENT_REQUIRED", "True")
# Client-local hours in which no advertising leaves (it waits until they end); set but empty: off.
MAILER_QUIET_HOURS = os.environ.get("MAILER_QUIET_HOURS", "22:00-09:00")
# How many advertising messages one client may get per local day and/or week; empty: no cap.
MAILER_FREQUENCY_CAP = env("MAILER_FREQUENCY_CAP", "")
try:
    guardrails.parse_hours(MAILER_QUIET_HOURS)
except ValueError as e:
    raise ImproperlyConfigured(f"MAILER_QUIET_HOURS: {e}") from None
try:
    guardrails.parse_cap(MAILER_FREQUENCY_CAP)
except ValueError as e:
    raise ImproperlyConfigured(f"MAILER_FREQUENCY_CAP: {e}") from None
# A mailing of more SMS than this (its parts times its audience) starts only once a second person
# approved it; 0: every mailing; empty (the default): no approval.
try:
    MAILER_APPROVAL_ABOVE = guardrails.parse_threshold(os.environ.get("MAILER_APPROVAL_ABOVE", ""))
except ValueError as e:
    raise ImproperlyConfigured(f"MAILER_APPROVAL_ABOVE: {e}") from None
# Message rows of mailings over for this many days are deleted (their counts stay); 0 = keep all.
MAILER_MESSAGE_RETENTION_DAYS = envint("MAILER_MESSAGE_RETENTION_DAYS", "0")
if MAILER_MESSAGE_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("MAILER_MESSAGE_RETENTION_DAYS must be 0 (keep all) or more")
MAILER_SENDERS = envint("MAILER_SENDERS", "2")  # sender processes per worker (per host)
# The senders' niceness (0-19): on a host they share with the web, a click or a page is answered
# first and the engine takes the CPU left over; elsewhere it changes nothing.
MAILER_SENDER_NICE = envint("MAILER_SENDER_NICE", "10")
if not 0 <= MAILER_SENDER_NICE <= 19:
    raise ImproperlyConfigured("MAILER_SENDER_NICE must be from 0 (as the web) to 19 (the lowest priority)")
MAILER_BATCH_SIZE = envint("MAILER_BATCH_SIZE", "500")  # messages claimed per round
MAILER_CONCURRENCY = envint("MAILER_CONCURRENCY", "64")  # requests in flight per worker
MAILER_REQUEST_TIMEOUT = envfloat("MAILER_REQUEST_TIMEOUT", "10")  # seconds, per request
MAILER_LEASE_SECONDS = envint("MAILER_LEASE_SECONDS", "60")  # a dead worker's claim is free after this
MAILER_MAX_ATTEMPTS = envint("MAILER_MAX_ATTEMPTS", "10")
MAILER_RETRY_BASE = envfloat("MAILER_RETRY_BASE", "2")  # first retry after ~this many seconds, doubling
MAILER_RETRY_MAX = envfloat("MAILER_RETRY_MAX", "300")  # longest wait between two attempts
MAILER_BREAKER_THRESHOLD = envint("MAILER_BREAKER_THRESHOLD", "5")  # failures in a row that open it
MAILER_BREAKER_SECONDS = envfloat("MAILER_BREAKER_SECONDS", "15")  # first open period, doubling
MAILER_RATE_LIMIT = envfloat("MAILER_RATE_LIMIT", "0")  # messages/s for all workers together; 0 = off
if MAILER_REQUEST_TIMEOUT * 2 >= MAILER_LEASE_SECONDS:
    raise ImproperlyConfigured("MAILER_LEASE_SECONDS must be more than twice MAILER_REQUEST_TIMEOUT")

# django-q2 on the ORM broker: the database is the only moving part.
Q_CLUSTER = {
    "name": "mailer",
    "orm": "default",
    # Tasks other than sending (imports, reports, housekeeping): the senders are processes of
    # their own (engine/worker.py).
    "workers": 1,
    "timeout": 120,
    "retry": 180,  # longer than `timeout`, so a running task is never handed out twice
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 100,
    "poll": 1,
    "catch_up": False,
    "label": "Tasks",
}

# Operations: logs, metrics, health, the daily report (see docs/logging.md, docs/metrics.md).
LOG_FORMAT = env("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "mailer.logging.ContextFilter"}},
    "formatters": {
        "text": {
            "()": "mailer.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "mailer.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# /metrics: a bearer token and/or an IP allow-list; with neither, loopback only.
METRICS_TOKEN = env("METRICS_TOKEN")
METRICS_ALLOWED_IPS = envlist("METRICS_ALLOWED_IPS")
if BEHIND_PROXY and not (METRICS_TOKEN or METRICS_ALLOWED_IPS):
    # Behind a proxy on the same host every request comes from loopback, so loopback proves nothing.
    raise ImproperlyConfigured(
        "BEHIND_PROXY is on, so /metrics needs METRICS_TOKEN or METRICS_ALLOWED_IPS (a proxy on this "
        "host makes every request look like loopback); set one of them"
    )
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS must list addresses or networks, not {_network!r}"
        ) from None
# /readyz fails when no worker slot has beaten for this long (0 leaves workers out of readiness).
MAILER_READY_HEARTBEAT_SECONDS = envint("MAILER_READY_HEARTBEAT_SECONDS", "120")
if MAILER_READY_HEARTBEAT_SECONDS < 0:
    raise ImproperlyConfigured("MAILER_READY_HEARTBEAT_SECONDS must be 0 or more")

# Outgoing email (the daily report).
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "30")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "mailer@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The daily report: local time (TIME_ZONE) after which the day's report goes out, and to whom.
MAILER_REPORT_TIME = env("MAILER_REPORT_TIME", "08:00")
try:
    _hour, _minute = (int(part) for part in MAILER_REPORT_TIME.split(":"))
    if not (0 <= _hour < 24 and 0 <= _minute < 60) or len(MAILER_REPORT_TIME) != 5:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(f"MAILER_REPORT_TIME must be HH:MM, not {MAILER_REPORT_TIME!r}") from None
MAILER_REPORT_RECIPIENTS = envlist("MAILER_REPORT_RECIPIENTS")

# A secret left at an example's value is no secret: deploy/k8s/secret.yaml ships "change-me", and a
# deployment applied as it is would let anyone with the example read /metrics or forge sessions.
PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me", "replace-me", "replace_me", "django-insecure")
PLACEHOLDER_VALUES = frozenset({"secret", "password", "token", "example", "xxx", "todo", "placeholder"})


def placeholder_secrets(secrets: dict[str, str]) -> list[str]:
    """The names of the secrets in `secrets` whose value is a known placeholder."""
    return [
        name
        for name, value in secrets.items()
        if value
        and (
            value.strip().lower() in PLACEHOLDER_VALUES or any(m in value.lower() for m in PLACEHOLDER_MARKS)
        )
    ]


if not DEBUG and (
    _placeholders := placeholder_secrets(
        {
            "SECRET_KEY": SECRET_KEY,
            "METRICS_TOKEN": METRICS_TOKEN,
            "MAILER_PROVIDER_TOKEN": MAILER_PROVIDER_TOKEN,
            "AUTH0_CLIENT_SECRET": AUTH0_CLIENT_SECRET,
            "EMAIL_HOST_PASSWORD": EMAIL_HOST_PASSWORD,
            "DATABASE_URL (its password)": DATABASES["default"].get("PASSWORD") or "",
        }
    )
):
    raise ImproperlyConfigured(
        f"An example's placeholder (like 'change-me') is not a secret: set {', '.join(_placeholders)} "
        "to real secrets, or DEBUG=1 for development"
    )
