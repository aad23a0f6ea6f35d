"""Settings, read from environment variables (documented in README.md, "Configuration").

Defaults give the embedded mode of `make run`: SQLite and a file-system Celery broker under
VAR_DIR, so nothing needs installing. DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
# Local state of the embedded mode: the SQLite file, the file-system broker, beat's schedule.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

_DEV_SECRET_KEY = "insecure-dev-key-only-for-debug-mode"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (production mode).")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "accounts",
    "incidents",
    "stability",
    "service_levels",
    "demo",
    "django_htmx",
    "web",
]

MIDDLEWARE = [
    # Before the webhook shortcut: a plain-HTTP webhook POST is redirected too (308, method and body kept).
    "web.middleware.HttpsRedirect",
    "stability.middleware.WebhookShortcut",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "web.middleware.ReaderTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a sign-in refused by django-axes into the lockout page (accounts/guessing.py).
    "axes.middleware.AxesMiddleware",
    "config.api.StorableInputMiddleware",
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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'stability.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One writer at a time: wait for the lock instead of failing while the worker writes.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "accounts.guessing.SignInGuard",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# The web app's sign-in page; after it, the home page of the reader's role.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
# Periods (months, weeks) are cut in this zone; timestamps are stored in UTC.
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"  # collectstatic writes here; whitenoise serves it
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # HTTPS in production unless SECURE_COOKIES=false says it is served over plain HTTP. The redirect
    # (web.middleware.HttpsRedirect) keeps a POST a POST (308): configure senders with https URLs.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SESSION_COOKIE_SECURE)
    # HSTS only where HTTPS is enforced; includeSubDomains covers the tracker's own host's subdomains.
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if SECURE_SSL_REDIRECT else 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    # The header a TLS-terminating proxy sets (its value "https" marks a secure request); empty: no proxy.
    # Only trust it behind a proxy that overwrites it, or a client could claim HTTPS.
    _proxy_header = env.str("SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto")
    if _proxy_header:
        SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
# Load balancers probe these over plain HTTP; every other path, webhooks included, is redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Content-Security-Policy (django-csp): scripts and styles come from the app only. The report's
# stylesheet and its server-drawn SVG charts carry a per-request nonce (web/templatetags/csp_nonce.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Guessing limits (accounts/guessing.py). Sign-in: django-axes locks an account from one address after
# SIGNIN_FAILURES_PER_ACCOUNT failures, and an address after SIGNIN_FAILURES_PER_ADDRESS failures on any
# accounts, until SIGNIN_LOCKOUT_MINUTES after the last counted failure (or an admin deletes the attempts).
# Bearer tokens (API and webhooks): after TOKEN_FAILURES_PER_ADDRESS wrong tokens from an address in a
# TOKEN_FAILURE_WINDOW_SECONDS window, 429 with Retry-After until the window ends.
SIGNIN_FAILURES_PER_ACCOUNT = env.int("SIGNIN_FAILURES_PER_ACCOUNT", default=5)
SIGNIN_FAILURES_PER_ADDRESS = env.int("SIGNIN_FAILURES_PER_ADDRESS", default=20)
SIGNIN_LOCKOUT_MINUTES = env.int("SIGNIN_LOCKOUT_MINUTES", default=15)
TOKEN_FAILURES_PER_ADDRESS = env.int("TOKEN_FAILURES_PER_ADDRESS", default=20)
TOKEN_FAILURE_WINDOW_SECONDS = env.int("TOKEN_FAILURE_WINDOW_SECONDS", default=15 * 60)
# Proxies in front of the app that append to X-Forwarded-For: the client is the address the outermost
# one saw. 0: the client is REMOTE_ADDR (behind an unconfigured proxy every client shares its address).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# GET /metrics (stability.exposition, docs/metrics-endpoint.md): open to clients in these networks (CIDR;
# the client address as above), else to `Authorization: Bearer METRICS_TOKEN`; empty token: networks only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = [
    n.strip() for n in env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"]) if n.strip()
]
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network (CIDR).") from None
AXES_HANDLER = "accounts.guessing.SignInAttempts"
AXES_FAILURE_LIMIT = SIGNIN_FAILURES_PER_ACCOUNT
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_COOLOFF_TIME = timedelta(minutes=SIGNIN_LOCKOUT_MINUTES)
# A locked-out guesser's further tries do not push the end of the lockout back.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "accounts.guessing.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.guessing.signin_lockout_response"
# Wrong-token counts are shared by every web process through Redis when it is configured (below).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "guessing": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "guessing"},
}

REST_FRAMEWORK = {
    # Bearer first: its WWW-Authenticate header makes anonymous requests 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    # DRF's parsers, refusing too-deep JSON and strings PostgreSQL cannot store with a 400 (config/api.py).
    "DEFAULT_PARSER_CLASSES": ["config.api.JSONParser", "config.api.FormParser", "config.api.MultiPartParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "COERCE_DECIMAL_TO_STRING": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Stability Tracker API",
    "DESCRIPTION": "Incidents with A-D severity, time to recover, and the figures of the "
    "monthly stability report. Authenticate with `Authorization: Bearer <token>` "
    "(`manage.py create_api_token USERNAME`).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "integrationToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "An integration's token (`manage.py create_integration`), for the webhooks only.",
            }
        }
    },
    "ENUM_NAME_OVERRIDES": {
        "LevelEnum": "incidents.models.Level",
        "TierEnum": "incidents.models.Tier",
        "IncidentStatusEnum": "incidents.models.Status",
        "DetectionSourceEnum": "incidents.models.DetectionSource",
        "CauseCategoryEnum": "incidents.models.CauseCategory",
        "RoleEnum": "accounts.models.Role",
        "IntegrationKindEnum": "stability.models.Integration.Kind",
        "AlertStatusEnum": "stability.models.AlertOccurrence.Status",
        "AlertActivityKindEnum": "stability.models.AlertActivity.Kind",
        "AlertExclusionEnum": "stability.models.AlertOccurrence.Exclusion",
        "TimelineEntryKindEnum": "incidents.models.TimelineEntry.Kind",
        "ActionItemKindEnum": "incidents.models.ActionItem.Kind",
        "ActionItemStatusEnum": "incidents.models.ActionItem.Status",
        "ActionItemPriorityEnum": "incidents.models.ActionItem.Priority",
        "ActionItemTransitionEnum": "incidents.services.ItemTransition.choices",
        "NotificationChannelKindEnum": "stability.models.NotificationChannel.Kind",
        "NotificationStatusEnum": "stability.models.Notification.Status",
        "NotificationEventEnum": "stability.models.Event",
    },
}

# Celery: Redis when REDIS_URL is set, else an embedded file-system broker (one machine only).
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CACHES["guessing"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "st:guess",
    }
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
# Local hour of the 1st at which the previous month's report goes out, and of the Monday at which the
# previous ISO week's does.
MONTHLY_REPORT_HOUR = env.int("MONTHLY_REPORT_HOUR", default=9)
WEEKLY_REPORT_HOUR = env.int("WEEKLY_REPORT_HOUR", default=9)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "reevaluate-unrecovered-incidents": {
        "task": "incidents.tasks.reevaluate_unrecovered_incidents",
        "schedule": timedelta(minutes=1),
        # A backlog of missed runs is useless: the next run sees the same state.
        "options": {"expires": 55},
    },
    # Reminders and unfollowed-alert notices (docs/reminders.md): a sweep over the database's state,
    # so a run missed while beat or the workers were down is caught up by the next one.
    "sweep-reminders": {
        "task": "stability.tasks.sweep_reminders",
        "schedule": crontab(minute="*"),
        "options": {"expires": 55},
    },
    # The follow-up day counts (stability.follow_up.refresh_day_counts, their only writer) kept current.
    "day-counts-refresh": {
        "task": "stability.tasks.day_counts_refresh",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 290},
    },
    # Service levels (docs/service-levels.md): the finished days not yet measured, pulled from Prometheus.
    # On the deliveries queue: it waits on other servers, like the posts to robots.
    "pull-service-levels": {
        "task": "service_levels.tasks.pull_service_levels",
        "schedule": crontab(minute=10),
        "options": {"expires": 3000, "queue": "deliveries"},
    },
    # The previous month's report to each team's managers and chat channels (docs/report.md), on the 1st
    # at MONTHLY_REPORT_HOUR local (CELERY_TIMEZONE). Recorded once per key, so a doubled beat sends once;
    # a run held up while the workers were down still goes out that day, not later.
    "monthly-reports": {
        "task": "stability.tasks.send_monthly_reports",
        "schedule": crontab(minute=0, hour=MONTHLY_REPORT_HOUR, day_of_month=1),
        "options": {"expires": 12 * 3600},
    },
    # The previous ISO week's report, the same way, on Mondays at WEEKLY_REPORT_HOUR local.
    "weekly-reports": {
        "task": "stability.tasks.send_weekly_reports",
        "schedule": crontab(minute=0, hour=WEEKLY_REPORT_HOUR, day_of_week=1),
        "options": {"expires": 12 * 3600},
    },
}

# Alert ingestion (stability.ingestion) and the 5-minute follow-up rate (docs/metrics.md).
INGEST_MAX_BODY_BYTES = env.int("INGEST_MAX_BODY_BYTES", default=5 * 1024 * 1024)
INGEST_RATE_LIMIT_PER_MINUTE = env.int("INGEST_RATE_LIMIT_PER_MINUTE", default=120_000)
INGEST_CONFIG_TTL = env.float("INGEST_CONFIG_TTL", default=5.0)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(INGEST_MAX_BODY_BYTES + 1, 2_621_440)
FOLLOW_UP_WINDOW_SECONDS = env.int("FOLLOW_UP_WINDOW_SECONDS", default=300)
# Off by default: exclude occurrences the source resolved within this many seconds with no follow-up.
FOLLOW_UP_FLAPPING_SECONDS = env.int("FOLLOW_UP_FLAPPING_SECONDS", default=0)

# Service levels (docs/service-levels.md): each hourly pull retries the days without a measured value
# among this many finished days before today.
SERVICE_LEVELS_RETRY_DAYS = env.int("SERVICE_LEVELS_RETRY_DAYS", default=3)

# Currency of funds_loss (资损) amounts.
CURRENCY = env.str("CURRENCY", default="CNY")

# How far in the future a timestamp may lie (clock skew between reporters).
FUTURE_TOLERANCE = timedelta(minutes=5)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # WeasyPrint logs every layout step of every PDF at INFO; its warnings still show.
    "loggers": {"weasyprint": {"level": "WARNING"}, "fontTools": {"level": "WARNING"}},
}

# The health score (健康分) of docs/metrics.md, 0..1000: the most points of each term, and the
# points an incident of each level takes off the incidents term. Reports state the values used.
HEALTH_SCORE = {
    "weights": {"incidents": 400, "follow_up": 250, "closed_loop": 200, "recovery": 150},
    "penalties": {"A": 400, "B": 200, "C": 50, "D": 10},
}

# Links in notifications point back here (docs/reminders.md).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# Mail: EMAIL_URL (django-environ: smtp://user:pass@host:587, smtp+tls://..., consolemail://); without
# it, mail is printed to the console in debug mode (so `make run` shows reminders) and sent to a local
# SMTP server in production.
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Stability Tracker <stability@localhost>")
# A mail server that accepts the connection and then says nothing must not hold a delivery (and its
# lease, kept alive by the heartbeat) for ever: after this many seconds the outcome is recorded as unknown.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# Reminders of action items and notices of unfollowed alerts (stability.reminders, docs/reminders.md).
# Each team may override the item policy (days before, escalation, quiet hours) in a ReminderPolicy row.
REMINDER_DAYS_BEFORE = env.list("REMINDER_DAYS_BEFORE", cast=int, default=[3, 1])
REMINDER_ESCALATE_AFTER_DAYS = env.int("REMINDER_ESCALATE_AFTER_DAYS", default=3)
REMINDER_ESCALATE_EVERY_DAYS = env.int("REMINDER_ESCALATE_EVERY_DAYS", default=7)
# Local wall-clock times (TIME_ZONE); chat messages recorded inside [start, end) wait for the end.
REMINDER_QUIET_HOURS_START = env.str("REMINDER_QUIET_HOURS_START", default="22:00")
REMINDER_QUIET_HOURS_END = env.str("REMINDER_QUIET_HOURS_END", default="08:00")
# Weekly digest per person: ISO weekday (1 = Monday) and local hour; recorded up to a day late.
REMINDER_DIGEST_WEEKDAY = env.int("REMINDER_DIGEST_WEEKDAY", default=1)
REMINDER_DIGEST_HOUR = env.int("REMINDER_DIGEST_HOUR", default=9)
# Chat robots (WeCom, DingTalk: 20 a minute): messages a minute per channel, entries per message.
REMINDER_CHAT_MESSAGES_PER_MINUTE = env.int("REMINDER_CHAT_MESSAGES_PER_MINUTE", default=20)
REMINDER_CHAT_ENTRIES_PER_MESSAGE = env.int("REMINDER_CHAT_ENTRIES_PER_MESSAGE", default=20)
# Unfollowed alerts: the team's channels once the follow-up window has passed, its managers after
# this many seconds; alerts received longer ago than the look-back are never paged about.
REMINDER_ALERT_ESCALATE_AFTER_SECONDS = env.int("REMINDER_ALERT_ESCALATE_AFTER_SECONDS", default=15 * 60)
REMINDER_ALERT_LOOKBACK_SECONDS = env.int("REMINDER_ALERT_LOOKBACK_SECONDS", default=24 * 3600)
# Delivery: attempts before a notification is failed, first retry delay (doubling, at most 1 h),
# how long a worker's claim holds without a heartbeat before another may take the notification over,
# HTTP timeout.
REMINDER_MAX_ATTEMPTS = env.int("REMINDER_MAX_ATTEMPTS", default=5)
REMINDER_RETRY_BACKOFF_SECONDS = env.int("REMINDER_RETRY_BACKOFF_SECONDS", default=30)
REMINDER_CLAIM_LEASE_SECONDS = env.int("REMINDER_CLAIM_LEASE_SECONDS", default=60)
# A live sender renews its lease this often; a dead one's claims come free a lease after its last beat.
REMINDER_CLAIM_HEARTBEAT_SECONDS = env.float("REMINDER_CLAIM_HEARTBEAT_SECONDS", default=15.0)
REMINDER_HTTP_TIMEOUT_SECONDS = env.float("REMINDER_HTTP_TIMEOUT_SECONDS", default=10.0)
# A channel's test message (settings page, API) is sent while the administrator waits: a short timeout,
# and at most one per channel this often, so the button cannot hammer a receiver.
CHANNEL_TEST_TIMEOUT_SECONDS = env.float("CHANNEL_TEST_TIMEOUT_SECONDS", default=5.0)
CHANNEL_TEST_INTERVAL_SECONDS = env.int("CHANNEL_TEST_INTERVAL_SECONDS", default=10)
