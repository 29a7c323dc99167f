"""Runproof settings: one module, read from environment variables.

Two modes:
- embedded (the default): SQLite and a server-less Celery broker under ./var, a
  generated SECRET_KEY kept in ./var/secret_key, plain HTTP on 127.0.0.1.
- production (RUNPROOF_MODE=production): SECRET_KEY and ALLOWED_HOSTS required,
  HTTPS-only cookies with the __Host- prefix, HSTS and an SSL redirect.
  `manage.py check --deploy` reports no issue with these settings.

Services are chosen by DATABASE_URL and CELERY_BROKER_URL in either mode.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# ---------------------------------------------------------------------------
# Mode and secrets
# ---------------------------------------------------------------------------
RUNPROOF_MODE = env.str("RUNPROOF_MODE", default="embedded")
if RUNPROOF_MODE not in {"embedded", "production"}:
    raise ImproperlyConfigured("RUNPROOF_MODE must be 'embedded' or 'production'.")
PRODUCTION = RUNPROOF_MODE == "production"

VAR_DIR = Path(env.str("RUNPROOF_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)


def _embedded_secret_key() -> str:
    """One key per installation, generated on first use and kept out of git (./var is ignored).

    Generated once, never per process: every process (web, worker) must sign with the same key.
    """
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


if "SECRET_KEY" in env:
    SECRET_KEY = env.str("SECRET_KEY")
elif PRODUCTION:
    raise ImproperlyConfigured("SECRET_KEY is required when RUNPROOF_MODE=production.")
else:
    SECRET_KEY = _embedded_secret_key()

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"],
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is required when RUNPROOF_MODE=production."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# ---------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",  # built-in widget templates, for FORM_RENDERER below
    "django_htmx",
    "template_partials",
    "django_tables2",
    "django_filters",
    "rest_framework",
    "drf_spectacular",
    "csp",
    "axes",
    # Ours, in their dependency order (import-linter checks it in `make lint`).
    "audit",
    "inventory",
    "sources",
    "governance",
    "reviews",
]
# Demo data, the benchmark and test fakes: a production install leaves them out.
if not PRODUCTION:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "inventory.middleware.RequestContextMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "inventory.middleware.SessionIdleTimeoutMiddleware",
    "inventory.middleware.NoStoreForSignedInMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it answers locked-out logins with 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "csp.context_processors.nonce",
                "inventory.context_processors.roles",
            ],
        },
    },
]

# Widgets render through TEMPLATES, so project templates can define widgets (LookupInput).
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'runproof.sqlite3'}"
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the Celery worker write to the same file: WAL lets readers go on
    # while one writes, IMMEDIATE takes the write lock at BEGIN so two writers queue on the
    # busy timeout instead of failing on a lock upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Services own their transactions, so on_commit work fires when the service returns.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------
# Authentication and sessions
# ---------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out (username, IP) pair is refused before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    # ASVS 6.2.1 recommends 15; 12 is the floor here, and the demo accounts meet it.
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Inactivity timeout (ASVS 7.3.1) and absolute lifetime (7.3.2).
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Login throttling that cools off by itself: lock a (username, IP) pair, never a username
# alone, so nobody can lock a colleague out from elsewhere (ASVS 6.1.1, 6.3.1).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# ---------------------------------------------------------------------------
# Security headers
# ---------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

if PRODUCTION:
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    if env.bool("BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
else:
    # Embedded mode serves plain HTTP on loopback; HSTS there would pin the browser to HTTPS
    # for 127.0.0.1. The header is still tested: see tests/test_security_headers.py.
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# ---------------------------------------------------------------------------
# Static files
# ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Embedded mode serves static files straight from the source folders (no collectstatic step).
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# ---------------------------------------------------------------------------
# Internationalisation
# ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------
# The default broker needs no server: kombu's filesystem transport under ./var/broker.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Broadcast/control exchanges; kombu's default is ./control in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Must exceed the longest task, or Redis redelivers a task that is still running
    # (https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900)
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Results live in the database rows the tasks write (SyncRun and the like), not in a backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# Tasks are idempotent, so a task whose worker died is redelivered rather than lost
# (https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-time-limit
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# All periodic schedules live here, one place (crontab.guru explains each cron).
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # https://crontab.guru/#7_*_*_*_* : hourly, off the hour.
    "audit-checkpoint": {
        "task": "audit.tasks.audit_checkpoint",
        "schedule": crontab(minute="7"),
    },
    # https://crontab.guru/#23_3_*_*_* : daily at 03:23, history beyond its retention.
    "field-history-prune": {
        "task": "inventory.tasks.field_history_prune",
        "schedule": crontab(minute="23", hour="3"),
    },
    # Every 30 s: recount the dashboard summary of teams a large write marked.
    "summary-refresh": {
        "task": "inventory.tasks.summary_refresh",
        "schedule": 30.0,
    },
    # https://crontab.guru/#41_2_*_*_* : daily at 02:41, recount everything, report drift.
    "summary-rebuild": {
        "task": "inventory.tasks.summary_rebuild",
        "schedule": crontab(minute="41", hour="2"),
    },
    # Every 30 s: scheduled syncs that are due, and the reconciler (lost or dead runs).
    "sync-tick": {
        "task": "sources.tasks.sync_tick",
        "schedule": 30.0,
    },
    # Every 15 s: findings for the objects that change notices name (a broker message
    # lost after a push or sync batch is made up here: the notices are the record).
    "detect-changes": {
        "task": "governance.tasks.detect_changes",
        "schedule": 15.0,
    },
    # Every 60 s: notification emails not yet sent (the message asked for when the rows
    # committed was lost, or a send failed: the unemailed rows are the record).
    "notification-emails": {
        "task": "governance.tasks.send_notification_emails",
        "schedule": 60.0,
    },
    # https://crontab.guru/#17_1_*_*_* : daily at 01:17, detection over everything
    # (time-based kinds open and resolve as time passes).
    "detect-all": {
        "task": "governance.tasks.detect_all",
        "schedule": crontab(minute="17", hour="1"),
    },
    # https://crontab.guru/#47_*_*_*_* : hourly, the kinds that move with the clock alone.
    "detect-time-based": {
        "task": "governance.tasks.detect_time_based",
        "schedule": crontab(minute="47"),
    },
    # https://crontab.guru/#7_1_*_*_* : daily at 01:07, every risk tier (expired overrides),
    # before the nightly detection reads them for severities.
    "tiers-recompute": {
        "task": "governance.tasks_tiers.recompute_tiers",
        "schedule": crontab(minute="7", hour="1"),
    },
}
# Longest a committee's tier override may last (governance.tiers).
TIER_OVERRIDE_MAX_DAYS = env.int("TIER_OVERRIDE_MAX_DAYS", default=365)

# ---------------------------------------------------------------------------
# Detection of findings (governance.detection, governance.detection_runner)
# ---------------------------------------------------------------------------
# change outside window: source-recorded version or endpoint changes this recent count.
DETECTION_CHANGE_DAYS = env.int("RUNPROOF_DETECTION_CHANGE_DAYS", default=30)
# deprecated in use: calls within this many hours.
DETECTION_DEPRECATED_HOURS = env.int("RUNPROOF_DETECTION_DEPRECATED_HOURS", default=24)
# ... and one severity step higher once deprecated longer than this many days.
DETECTION_DEPRECATED_GRACE_DAYS = env.int(
    "RUNPROOF_DETECTION_DEPRECATED_GRACE_DAYS", default=14
)
# The change consumer also looks at retired, withdrawn or deprecated deployments called
# or seen this recently (spans to a known deployment write no change notice).
DETECTION_RECENT_SECONDS = env.int("RUNPROOF_DETECTION_RECENT_SECONDS", default=120)
# Notices claimed per batch, and batches per consumer run (the rest waits for the next).
DETECTION_NOTICE_BATCH = env.int("RUNPROOF_DETECTION_NOTICE_BATCH", default=500)
DETECTION_MAX_BATCHES = env.int("RUNPROOF_DETECTION_MAX_BATCHES", default=20)
# Ask the change consumer to run as soon as a transaction that announced changes
# commits (inventory.history.announce); the 15 s beat entry runs it anyway.
DETECTION_WAKE_ON_ANNOUNCE = env.bool(
    "RUNPROOF_DETECTION_WAKE_ON_ANNOUNCE", default=True
)

# ---------------------------------------------------------------------------
# History of governed fields and the change queue (inventory.history)
# ---------------------------------------------------------------------------
# Rows older than this are pruned, except each (object, field)'s latest, always kept.
FIELD_HISTORY_RETENTION_DAYS = env.int(
    "RUNPROOF_FIELD_HISTORY_RETENTION_DAYS", default=730
)
# Consumed change notices are kept this long (for looking into what governance did).
CHANGE_NOTICE_RETENTION_DAYS = env.int(
    "RUNPROOF_CHANGE_NOTICE_RETENTION_DAYS", default=7
)
# A claimed notice not consumed within this long is claimable again (its consumer died).
CHANGE_NOTICE_LEASE_SECONDS = env.int(
    "RUNPROOF_CHANGE_NOTICE_LEASE_SECONDS", default=300
)

# ---------------------------------------------------------------------------
# Syncs (sources.sync)
# ---------------------------------------------------------------------------
SYNC_BATCH_SIZE = env.int("RUNPROOF_SYNC_BATCH_SIZE", default=1000)
# A running run whose heartbeat is older than this is presumed dead and run again.
SYNC_LEASE_SECONDS = env.int("RUNPROOF_SYNC_LEASE_SECONDS", default=300)
# A queued run the broker has not started after this long is sent again.
SYNC_RESEND_AFTER_SECONDS = env.int("RUNPROOF_SYNC_RESEND_AFTER_SECONDS", default=120)
SYNC_MAX_RETRIES = env.int("RUNPROOF_SYNC_MAX_RETRIES", default=5)
SYNC_RETRY_BASE_SECONDS = env.int("RUNPROOF_SYNC_RETRY_BASE_SECONDS", default=30)
SYNC_RETRY_MAX_SECONDS = env.int("RUNPROOF_SYNC_RETRY_MAX_SECONDS", default=1800)
# A run whose worker died this many times (out of memory, killed) fails instead of being
# re-queued again, and frees its source.
SYNC_MAX_ATTEMPTS = env.int("RUNPROOF_SYNC_MAX_ATTEMPTS", default=3)
# After a run that wrote at least this many rows, on PostgreSQL with autovacuum off (on
# the server or for the table): VACUUM (ANALYZE) the tables it wrote. 0 never does.
SYNC_VACUUM_AFTER_ROWS = env.int("RUNPROOF_SYNC_VACUUM_AFTER_ROWS", default=10_000)
# A run does not rewrite rows the source reports unchanged, except their `seen_at` (what
# the silent rule reads) once it is this many hours old (at most a quarter of the policy's
# silent window): an unchanged row is written once in that time, not on every run.
SYNC_SEEN_REFRESH_HOURS = env.float("RUNPROOF_SYNC_SEEN_REFRESH_HOURS", default=6.0)
# An uploaded JSON file is first read in a child process (sources/sync/upload_guard.py):
# nesting deeper than this is refused by a byte scan before any parser sees it, and the
# child may use this much memory (MB, above what the worker holds) and CPU time (s).
SYNC_UPLOAD_MAX_JSON_DEPTH = env.int("RUNPROOF_SYNC_UPLOAD_MAX_JSON_DEPTH", default=512)
SYNC_PARSE_MEMORY_MB = env.int("RUNPROOF_SYNC_PARSE_MEMORY_MB", default=2048)
SYNC_PARSE_CPU_SECONDS = env.int("RUNPROOF_SYNC_PARSE_CPU_SECONDS", default=600)
# Timeout for each HTTP call a connector makes to its source.
SYNC_HTTP_TIMEOUT = env.float("RUNPROOF_SYNC_HTTP_TIMEOUT", default=30.0)
# Source secrets are encrypted with this Fernet key, or one derived from SECRET_KEY.
RUNPROOF_SECRETS_KEY = env.str("RUNPROOF_SECRETS_KEY", default="")
# Uploaded source files (kubectl exports, credential reports) and their size limit.
MEDIA_ROOT = Path(env.str("RUNPROOF_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # never served: uploads are read by the sync only
SOURCE_UPLOAD_MAX_BYTES = env.int(
    "RUNPROOF_SOURCE_UPLOAD_MAX_BYTES", default=512 * 1024 * 1024
)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# OTLP/HTTP receiver (/v1/traces): body limits before and after inflating.
OTLP_MAX_BODY_BYTES = env.int("RUNPROOF_OTLP_MAX_BODY_BYTES", default=8 * 1024 * 1024)
OTLP_MAX_INFLATED_BYTES = env.int(
    "RUNPROOF_OTLP_MAX_INFLATED_BYTES", default=32 * 1024 * 1024
)

# ---------------------------------------------------------------------------
# Behaviour findings (governance.detectors.behaviour)
# ---------------------------------------------------------------------------
# Out of bounds judges each hour of usage within this many hours before the run.
FINDINGS_BOUNDS_WINDOW_HOURS = env.int(
    "RUNPROOF_FINDINGS_BOUNDS_WINDOW_HOURS", default=24
)
# Third-party exposure counts calls by a third-party identity within this many days.
FINDINGS_THIRD_PARTY_SEEN_DAYS = env.int(
    "RUNPROOF_FINDINGS_THIRD_PARTY_SEEN_DAYS", default=30
)
# A detection run moves an unchanged finding's "last seen" only once it is this many
# minutes old: runs close together (the hourly time-based run, a full run after it, a
# re-run) then rewrite no row they did not change. Every run that changes a finding
# still moves it. Its last seen is the last run that confirmed it, to within this.
FINDINGS_SEEN_REFRESH_MINUTES = env.int(
    "RUNPROOF_FINDINGS_SEEN_REFRESH_MINUTES", default=60
)
# Threads a full detection run uses on PostgreSQL, each taking the next chunk of subject
# ids (of any type) when done with one: one waits for the database while another builds
# rows.
FINDINGS_DETECT_THREADS = env.int("RUNPROOF_FINDINGS_DETECT_THREADS", default=2)
# A chunk of a full run with no finding of an identity rule's kind yet (a first run)
# opens its findings in one INSERT … SELECT on PostgreSQL instead of building each in
# Python (governance.detectors.identities_sql); off, every chunk goes through Python.
FINDINGS_OPEN_IN_SQL = env.bool("RUNPROOF_FINDINGS_OPEN_IN_SQL", default=True)
# Identity providers that are third parties themselves (their keys are external).
FINDINGS_EXTERNAL_PROVIDERS = env.list(
    "RUNPROOF_FINDINGS_EXTERNAL_PROVIDERS",
    default=["external", "openai", "anthropic", "cohere", "mistral", "huggingface"],
)

# ---------------------------------------------------------------------------
# REST API
# ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "inventory.api.authentication.BearerTokenAuthentication"
    ],
    "DEFAULT_PERMISSION_CLASSES": ["inventory.api.permissions.HasReadScope"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "inventory.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["inventory.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "inventory.api.schema.RunproofAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "inventory.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Runproof API",
    "DESCRIPTION": "What is running, who can invoke it, and how quickly it can be withdrawn.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Choice sets that share a field name with another's get their own enum names.
    "ENUM_NAME_OVERRIDES": {
        "FindingKindEnum": "governance.models.Finding.Kind",
        "FindingStatusEnum": "governance.models.Finding.Status",
    },
}

# ---------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    # A refused request (403, 400, 404) is one line, not a traceback (config/logging.py):
    # on the loggers Django writes them to, and on the handler for django.security.<kind>.
    "filters": {"one_line_client_errors": {"()": "config.logging.OneLineClientErrors"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["one_line_client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "django.request": {"filters": ["one_line_client_errors"]},
        "django.security": {"filters": ["one_line_client_errors"]},
    },
}

# django-filter: what an unset choice filter reads as.
FILTERS_EMPTY_CHOICE_LABEL = "Any"

# Runproof's own knobs.
RUNPROOF_PAGE_SIZE = 50
# Key for the HMAC that signs audit-chain checkpoints; defaults to one derived from SECRET_KEY.
AUDIT_CHECKPOINT_KEY = env.str("AUDIT_CHECKPOINT_KEY", default="")
# Each signed checkpoint is also appended here, outside the database; in production point it
# at storage the database's administrators cannot rewrite (another host, a WORM mount).
# Empty turns the copy off.
AUDIT_CHECKPOINT_FILE = env.str(
    "AUDIT_CHECKPOINT_FILE", default=str(VAR_DIR / "audit-checkpoints.jsonl")
)

# ---------------------------------------------------------------------------
# Findings, notifications (governance.detection, governance.notifications)
# ---------------------------------------------------------------------------
# Email: files under var/mail in the embedded default (one file per run of the sending task,
# governance.notifications.email_pending); set EMAIL_BACKEND (smtp) in production.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="runproof@localhost")
# The address links in emails start with.
RUNPROOF_BASE_URL = env.str("RUNPROOF_BASE_URL", default="http://127.0.0.1:8000")
# The longest a risk acceptance may last (governance.services_findings), in days.
FINDING_ACCEPTANCE_MAX_DAYS = env.int("FINDING_ACCEPTANCE_MAX_DAYS", default=365)
