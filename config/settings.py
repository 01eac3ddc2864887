"""Project settings. Every knob is read from the environment through the typed
helpers in ``config.env``; the defaults make up the *embedded* mode (SQLite,
a filesystem broker, everything under ``var/``), which needs no server at all.
"""
from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE

from config.env import envbool, envfloat, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("AIGC_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = envstr("DATABASE_URL", "")
# Embedded mode: no DATABASE_URL, so SQLite under var/ and a generated secret.
EMBEDDED = not DATABASE_URL


def _secret_key() -> str:
    key = envstr("SECRET_KEY", "")
    if key:
        return key
    if not EMBEDDED:
        raise RuntimeError(
            "SECRET_KEY must be set when DATABASE_URL points at a real database "
            "(only the embedded SQLite mode generates one)."
        )
    path = VAR_DIR / "secret_key"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(50))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "axes",  # staff login throttling (failed attempts per IP and per user)
    "corsheaders",  # CORS for the widget endpoints (origins per widget key)
    "csp",  # Content-Security-Policy header (CONTENT_SECURITY_POLICY below)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets from the package, no CDN
    "apps.common",
    "apps.support",
    "apps.sentiment",
    "apps.recommend",
]

MIDDLEWARE = [
    "apps.common.metrics.RequestMetricsMiddleware",  # first: times the whole answer
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.common.timezones.TimezoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.common.middleware.ServiceUnavailableMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
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
                "apps.common.timezones.context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL or f"sqlite:///{VAR_DIR / 'aigc.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so a real worker subprocess sees what a test wrote.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # IMMEDIATE: a transaction takes the write lock when it begins, so it waits (up to the
    # timeout) for a worker's write instead of failing at once with "database is locked"
    # when it upgrades from reading to writing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses while an IP or user is locked out
    "django.contrib.auth.backends.ModelBackend",
]
# Staff login throttling (django-axes): the AXES_FAILURE_LIMIT-th wrong password from one IP, or for one
# user name, and every attempt after it for AXES_COOLOFF_TIME, answer 429 (so 10 mistakes are answered
# normally, the 11th is refused). The IP is the one client_ip() trusts.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 11)
AXES_COOLOFF_TIME = timedelta(seconds=envint("AXES_COOLOFF_S", 15 * 60))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_CLIENT_IP_CALLABLE = "apps.common.client_ip.client_ip_or_none"
AXES_HTTP_RESPONSE_CODE = 429
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its start-up banner would land in every manage.py output
AXES_LOCKOUT_CALLABLE = "apps.common.views.login_locked_out"

# CORS (django-cors-headers): no URL is open by setting; the widget's keys allow their own origins
# (apps/support/widget_cors.py answers check_request_enabled).
CORS_URLS_REGEX = r"^$"
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_HEADERS = ["Content-Type", "X-Visitor-Id", "Accept"]
CORS_EXPOSE_HEADERS = ["Retry-After"]
CORS_PREFLIGHT_MAX_AGE = 600
CORS_ALLOW_CREDENTIALS = False

# Content-Security-Policy (django-csp) on every answer: scripts only from this origin (or with the
# request's nonce: {{ request.csp_nonce }}), no eval, no plugins, no framing, forms post here only.
# Inline style attributes are allowed (style injection cannot run script). No inline event handler
# is left in any template (tests/apps/common/test_staff_ui.py keeps it so).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Reverse proxies whose X-Forwarded-For is believed (addresses or networks): apps/common/client_ip.py.
AIGC_TRUSTED_PROXIES = envlist("AIGC_TRUSTED_PROXIES", [])

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One date format across the suite ("6 Dec 2026, 14:05"), whatever the locale says.
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
NODE_MODULES = BASE_DIR / "node_modules"
# Front-end libraries come from npm at set-up time and are served from there.
STATICFILES_DIRS = [
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/chartjs", NODE_MODULES / "chart.js" / "dist"),
    ("vendor/lucide", NODE_MODULES / "lucide-static" / "icons"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Request bodies: uploads above this are refused with 413 before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = envint("FILE_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
AIGC_MAX_UPLOAD_BYTES = envint("AIGC_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)

# Served over HTTPS (directly, or behind a TLS-terminating proxy listed in AIGC_TRUSTED_PROXIES, which
# sets X-Forwarded-Proto): redirect plain HTTP, send HSTS, Secure cookies. Off by default so the embedded
# localhost mode and the test suites run over plain HTTP. `manage.py check --deploy` is clean with it on.
AIGC_HTTPS = envbool("AIGC_HTTPS", False)
SECURE_SSL_REDIRECT = AIGC_HTTPS
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if AIGC_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", AIGC_HTTPS)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", AIGC_HTTPS)
if AIGC_HTTPS and envlist("AIGC_TRUSTED_PROXIES", []):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

SESSION_COOKIE_HTTPONLY = True
# Secure (HTTPS-only) cookies outside debug and the embedded localhost mode; SECURE_COOKIES=1/0 overrides.
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", AIGC_HTTPS or (not DEBUG and not EMBEDDED))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.common.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.common.auth.HasAppScope"],
    # The project's one JSON parser (depth limit, no lone surrogates or NUL): apps/common/jsonparse.py.
    "DEFAULT_PARSER_CLASSES": [
        "apps.common.jsonparse.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.common.api.exception_handler",
    # Per API token (apps/common/throttles.py): 429 with Retry-After past the rate.
    "DEFAULT_THROTTLE_CLASSES": ["apps.common.throttles.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": envstr("AIGC_API_RATE", "1200/min")},
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AIGC suite API",
    "DESCRIPTION": "Support chatbot, financial-news sentiment monitor and recommender.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Row ids in URLs (apps/common/converters.py): an integer; the fuzzer also tries huge and negative ones.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer"}},
    "ENUM_NAME_OVERRIDES": {"BucketSizeEnum": "apps.sentiment.models.BucketSize"},
}

# Cache (rate limits, throttles): Redis when CACHE_URL says so, else files under var/
# so that several processes (web workers) share counters.
CACHE_URL = envstr("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL.startswith("redis")
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}
    )
}

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A task whose worker dies unacknowledged is redelivered after this long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600),
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True  # outcomes live on Job rows, not in a result backend
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Training can be routed to GPU workers; delivery never waits behind training.
CELERY_TASK_ROUTES = {
    "apps.*.tasks.train_*": {"queue": "train"},
    "apps.*.tasks.deliver_*": {"queue": "deliver"},
}
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 6 * 3600)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Schedules name tasks by string; each app may add entries in its AppConfig.ready().
CELERY_BEAT_SCHEDULE: dict = {
    "resend-unsent-jobs": {"task": "apps.common.tasks.resend_unsent_jobs", "schedule": 60.0},
    "recover-orphaned-jobs": {"task": "apps.common.tasks.recover_orphaned_jobs", "schedule": 30.0},
    "prune-finished-jobs": {"task": "apps.common.tasks.prune_finished_jobs", "schedule": 3600.0},
}
# A guard, not the fix for a leak: a pool process past this resident size (KB) is replaced
# after its current task, so one that grows (a new kernel per input shape, fragments)
# cannot take the machine's memory over a week.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = envint("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 2_000_000)
# Ctrl-C / SIGTERM: wait this long for running tasks, then stop them (cold) so the worker exits in
# seconds; acks_late + reject_on_worker_lost put their messages back and the Job rows are re-sent.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = envfloat("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", 2.0)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Engine --------------------------------------------------------------------
AIGC_ARTIFACTS_DIR = Path(envstr("AIGC_ARTIFACTS_DIR", str(VAR_DIR / "artifacts")))
AIGC_DEVICE = envstr("AIGC_DEVICE", "auto")  # auto | cpu | cuda
# Versions kept per model name (a fine-tuned classifier is ~88 MB); the promoted one is never removed.
AIGC_KEEP_VERSIONS = envint("AIGC_KEEP_VERSIONS", 5)
AIGC_SEED = envint("AIGC_SEED", 1234)
# Outbound HTTP (webhooks, feeds, LLM): loopback/private targets only when allowed.
AIGC_ALLOW_PRIVATE_URLS = envbool("AIGC_ALLOW_PRIVATE_URLS", False)
# This site's public address (https://host): links in outbound messages (webhook payloads) are absolute.
AIGC_PUBLIC_URL = envstr("AIGC_PUBLIC_URL", "")
AIGC_HTTP_TIMEOUT = envint("AIGC_HTTP_TIMEOUT", 10)
# After a webhook secret is rotated, the previous one keeps signing (beside the new) this long.
AIGC_WEBHOOK_SECRET_GRACE_S = envint("AIGC_WEBHOOK_SECRET_GRACE_S", 24 * 3600)
# Seconds after which a worker that has not written a heartbeat counts as gone.
AIGC_WORKER_STALE_AFTER = envint("AIGC_WORKER_STALE_AFTER", 60)
# Seconds after which a queued job whose message no worker took is published again
# (a broker restarted without persistence loses what it held).
AIGC_JOB_REQUEUE_AFTER = envint("AIGC_JOB_REQUEUE_AFTER", 120)
# Retention: finished Job rows and webhook DeliveryAttempt rows older than this are pruned hourly.
AIGC_JOB_RETENTION_DAYS = envint("AIGC_JOB_RETENTION_DAYS", 14)
AIGC_DELIVERY_ATTEMPT_RETENTION_DAYS = envint("AIGC_DELIVERY_ATTEMPT_RETENTION_DAYS", 30)
# Backpressure: with more news items than this waiting for classification, ingest answers 429.
AIGC_INGEST_PENDING_LIMIT = envint("AIGC_INGEST_PENDING_LIMIT", 20000)
# Classification is single-flight: a queued job waits this long (from its creation) before it
# runs, so a burst of ingest calls lands in one job; one run drains for at most MAX_RUN_S.
AIGC_CLASSIFY_DEBOUNCE_S = envfloat("AIGC_CLASSIFY_DEBOUNCE_S", 1.0)
AIGC_CLASSIFY_MAX_RUN_S = envint("AIGC_CLASSIFY_MAX_RUN_S", 60)
# During a long drain the alert rules are evaluated at most this often (and once at the end).
AIGC_ALERT_EVAL_INTERVAL_S = envfloat("AIGC_ALERT_EVAL_INTERVAL_S", 5.0)

# Management commands that `manage.py demo` runs, in order (apps add theirs).
AIGC_DEMO_COMMANDS = envlist("AIGC_DEMO_COMMANDS", ["support_demo", "sentiment_demo", "recommend_demo"])

SUPPORT_LLM_URL = envstr("SUPPORT_LLM_URL", "")
# "lm": the widget's replies are written by the in-house language model (streamed token by
# token); empty: the composed reply (template / KB passages), phrased by the LLM if set above.
SUPPORT_REPLY_GENERATOR = envstr("SUPPORT_REPLY_GENERATOR", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}
