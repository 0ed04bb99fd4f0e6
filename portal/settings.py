"""Settings, read from the environment only (see .env.example for every variable).

Development and tests set DJANGO_DEBUG=1; production leaves it unset and must provide
DJANGO_SECRET_KEY, or the process refuses to start.
"""

import logging
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "dev-only-insecure-key-never-use-this-in-production"  # noqa: S105
    else:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")

PORTAL_BASE_DOMAIN = env("PORTAL_BASE_DOMAIN", default="localhost")
# Hosts that serve the public schema (operator console, operator API, admin) besides the
# base domain itself, e.g. the load balancer's health-check address.
PORTAL_PUBLIC_HOSTS = [PORTAL_BASE_DOMAIN, *env.list("PORTAL_PUBLIC_HOSTS", default=["127.0.0.1"])]
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=[PORTAL_BASE_DOMAIN, f".{PORTAL_BASE_DOMAIN}", "127.0.0.1"]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Scheme used in links we send by e-mail (invitations).
PORTAL_URL_SCHEME = env("PORTAL_URL_SCHEME", default="http" if DEBUG else "https")
PORTAL_PORT = env("PORTAL_PORT", default=env("WEB_PORT", default=""))

SHARED_APPS = [
    "django_tenants",  # first: its migrate command replaces Django's
    "tenants",
    "broker.sync",
    "broker.dlq",
    "broker.activity",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_celery_beat",
    "django_prometheus",
    "portal",
]
# Only the broker lives in tenant schemas: every table here is created again per tenant.
TENANT_APPS = ["broker"]
# `migrate_schemas --executor=multiprocessing` runs this many schemas at once.
TENANT_MULTIPROCESSING_MAX_PROCESSES = env.int("TENANT_MIGRATE_PROCESSES", default=2)
# The migrate run in each schema: returns at once when the schema has every migration.
TENANT_BASE_MIGRATE_COMMAND = "tenants.migrate.Command"
# The executors of migrate_schemas, visiting only the schemas with a migration to apply.
GET_EXECUTOR_FUNCTION = "tenants.migrate.get_executor"
INSTALLED_APPS = SHARED_APPS + [a for a in TENANT_APPS if a not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "portal.urls_public"
ROOT_URLCONF = "portal.urls_tenants"
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
TENANT_LIMIT_SET_CALLS = True
AUTH_USER_MODEL = "tenants.User"

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Before the host routing: a request for an unknown host has a request id too.
    "portal.middleware.RequestIdMiddleware",
    "portal.middleware.TenantHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.LogUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Content-Security-Policy on every response (django-csp): scripts only from our own static
# files (no inline script, no eval), nothing from another origin. Styles may be inline: the
# Swagger UI page carries a <style> block and style attributes are harmless without script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    }
}

# /metrics (portal/observability/metrics.py) answers loopback and private addresses, or this bearer token.
# Requests that came through a proxy (X-Forwarded-For) need the token.
METRICS_TOKEN = env("METRICS_TOKEN", default="")

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
                "portal.pages.context_processors.portal",
                "portal.pages.context_deadletters.dlq_banner",
            ]
        },
    }
]
WSGI_APPLICATION = "portal.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://portal@127.0.0.1:54329/portal")}
# django-tenants' backend with a faster table list (portal/db/base.py).
DATABASES["default"]["ENGINE"] = "portal.db"
# A connection per serving thread, kept for its next request: gunicorn's fixed thread pools
# bound the total (WEB_WORKERS × WEB_THREADS ≤ WEB_DB_MAX_CONNECTIONS, portal/gunicorn_conf.py).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:63799/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Cache keys carry the tenant schema (django-tenants prefixes each key with it).
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# django-axes: lock a username+IP pair after repeated failures.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Our login form and token endpoint both call authenticate(username=<email>).
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.api.auth_views.lockout_response"
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# Numbers in pages are grouped as the reader's language writes them (1,000,000 or 1.000.000;
# LocaleMiddleware picks the language from Accept-Language). Numbers a machine reads
# (progress values, input values) are written with |unlocalize.
USE_THOUSAND_SEPARATOR = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="portal@localhost")
INVITATION_TTL = timedelta(days=env.int("INVITATION_TTL_DAYS", default=7))

# --- Security (production values unless DEBUG) ---
# Secure-only cookies unless DEBUG; `make run` (plain http on this machine) turns them off.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Largest request body read into memory (API JSON and forms alike): 413 above it. The biggest
# object we store (an event type's schema) is capped well below DynamoDB's 400 KB item.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_DATA_UPLOAD_MAX_BYTES", default=1024 * 1024)

# --- API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.auth.TenantJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Deny by default: every view names its own permission classes.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    # JSON with limits: depth, NUL and lone surrogates, overflowing numbers, body size.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # `?format=` empty is a 404 like an unknown format (the schema's enum), not ignored.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.api.StrictFormatNegotiation",
    "DEFAULT_FILTER_BACKENDS": [
        "core.filters.StrictFilterBackend",
        "core.filters.StrictOrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.TenantApiThrottle"],
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    # One tag per resource, error responses of every operation (portal/api/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "portal.api.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# One caller (user or address) may use at most this share of its tenant's API budget per
# minute (`api_requests_per_minute`), so one client cannot spend everyone's (core/throttling.py).
API_THROTTLE_CALLER_SHARE = env.float("API_THROTTLE_CALLER_SHARE", default=0.5)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=1)),
    "SIGNING_KEY": env("JWT_SIGNING_KEY", default=SECRET_KEY),
    "ALGORITHM": "HS256",
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Event broker control plane API",
    "DESCRIPTION": (
        "The control plane of a multi-tenant serverless event broker.\n\n"
        "**Two APIs, one per host.** The operator API (tiers, tenants, sync, dead-letter "
        "quarantine) answers on the public host; each tenant's API (producers and their API "
        "keys, consumers, subscriptions with payload filters, event types, deliveries, dead "
        "letters and replays, members, audit log) answers on `<slug>.<base domain>`.\n\n"
        "**Authentication.** `POST /api/v1/auth/token/` with e-mail and password on the host "
        "you want to act on; send the access token as `Authorization: Bearer <token>`. A token "
        "minted on one host is refused on every other.\n\n"
        "**Roles.** Operators do everything on the public host, support staff read; on a "
        "tenant host viewers read, developers and admins write, admins manage members.\n\n"
        '**Errors** share one shape, `{"error": {"code", "message", "fields"}}`: '
        "400 invalid input (`fields` says where), 401 no or bad token, 403 role, 404 unknown "
        "or another tenant's object, 409 conflict with the object's state, 429 over the "
        "tenant's API budget (`Retry-After`).\n\n"
        "**Changes** are versioned, audited and mirrored to DynamoDB by the relay; "
        "`GET /api/v1/sync-status/` says where each object stands. POSTs take an "
        "`Idempotency-Key` header.\n\n"
        "The `seed` group holds the endpoints of the original control-plane "
        "contract (`/tenants`, `/onboarding`, `/delete`, `/tenant-info`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "TAGS": [
        {"name": "auth", "description": "Tokens bound to the host that minted them."},
        {"name": "tiers", "description": "Tiers and their quotas (operators)."},
        {"name": "tenants", "description": "Onboarding, lifecycle, quota overrides (operators)."},
        {"name": "sync", "description": "DynamoDB sync state, resync and reconcile jobs."},
        {"name": "producers", "description": "Event sources and their API keys."},
        {"name": "consumers", "description": "Delivery endpoints (https or sqs)."},
        {"name": "subscriptions", "description": "Which events reach which consumer."},
        {"name": "event-types", "description": "Registered event types and their schemas."},
        {"name": "deliveries", "description": "Delivery log, attempts, resend, test events."},
        {"name": "dead-letters", "description": "Failed deliveries and their replay."},
        {"name": "replay-jobs", "description": "Progress of dead-letter replays."},
        {"name": "members", "description": "Tenant members and their roles."},
        {"name": "audit-events", "description": "Every configuration change."},
        {"name": "seed", "description": "Seed-compatible: the original control-plane contract."},
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several fields are called `kind`: name each choice set.
    "ENUM_NAME_OVERRIDES": {
        "EndpointKindEnum": "broker.models.Kind",
        "SyncJobKindEnum": "broker.sync.models.SyncJobKind",
        "ConsumerAuthEnum": "broker.models.ConsumerAuth",
        # ... and several `status`.
        "TenantStatusEnum": "tenants.models.TenantStatus",
        "SyncJobStatusEnum": "broker.sync.models.SyncJobStatus",
        "DeadLetterStatusEnum": "broker.deadletters.models.LetterStatus",
        "ReplayJobStatusEnum": "broker.deadletters.models.JobStatus",
        "QuarantineStatusEnum": "broker.dlq.models.QuarantineStatus",
    },
}

# --- Celery ---
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic jobs (django-celery-beat installs them in its tables on start). The relay also runs
# after every commit; this run catches what a crash between commit and enqueue would lose.
CELERY_BEAT_SCHEDULE = {
    # Provisioning and offboarding runs idle for TENANT_RESUME_AFTER_SECONDS are re-queued.
    "tenant-lifecycle-resume": {
        "task": "tenants.tasks.tenant_lifecycle_resume",
        "schedule": env.float("TENANT_RESUME_INTERVAL_SECONDS", default=60.0),
    },
    "relay-outbox": {
        "task": "broker.sync.tasks.relay_tick",
        "schedule": env.float("RELAY_INTERVAL_SECONDS", default=10.0),
        "kwargs": {"jitter_seconds": env.float("RELAY_JITTER_SECONDS", default=3.0)},
    },
    "reconcile-all": {
        "task": "broker.sync.tasks.reconcile_tick",
        "schedule": env.float("RECONCILE_INTERVAL_SECONDS", default=3600.0),
        "kwargs": {"jitter_seconds": 300},
    },
    "expire-api-keys": {
        "task": "broker.tasks.expire_api_keys",
        "schedule": 60.0,
    },
    # Dead letters (broker/deadletters): the ingest also kicks itself while the DLQ is full.
    "dlq-ingest": {
        "task": "broker.deadletters.tasks.dlq_ingest_tick",
        "schedule": env.float("DLQ_INGEST_INTERVAL_SECONDS", default=10.0),
        "kwargs": {"jitter_seconds": env.float("DLQ_INGEST_JITTER_SECONDS", default=3.0)},
    },
    # Re-queues replay jobs whose worker died (a running job's own task returns at once).
    "replay-resume": {
        "task": "broker.deadletters.tasks.replay_jobs_resume",
        "schedule": env.float("REPLAY_RESUME_INTERVAL_SECONDS", default=60.0),
    },
    "dlq-alerts": {
        "task": "broker.deadletters.tasks.dlq_alerts_tick",
        "schedule": 60.0,
        "kwargs": {"jitter_seconds": 10},
    },
    "dlq-retention": {
        "task": "broker.deadletters.tasks.dlq_retention_tick",
        "schedule": 3600.0,
        "kwargs": {"jitter_seconds": 300},
    },
    # The console's delivery figures (broker/activity): each tenant's last hour, read from the
    # data plane's counters into PostgreSQL, so a page view never calls DynamoDB.
    "activity-refresh": {
        "task": "broker.activity.tasks.activity_refresh_tick",
        "schedule": env.float("ACTIVITY_INTERVAL_SECONDS", default=60.0),
        "kwargs": {"jitter_seconds": env.float("ACTIVITY_JITTER_SECONDS", default=10.0)},
    },
    # Endpoint auto-disable (broker/deliveries): consumers failing without a success.
    "auto-disable-consumers": {
        "task": "broker.deliveries.tasks.auto_disable_tick",
        "schedule": env.float("CONSUMER_AUTO_DISABLE_INTERVAL_SECONDS", default=900.0),
    },
}

# --- AWS (moto server in development, the default credential chain in production) ---
AWS_ENDPOINT_URL = env("AWS_ENDPOINT_URL", default=None) or None
AWS_REGION = env("AWS_DEFAULT_REGION", default="eu-west-1")
AWS_ACCOUNT_ID = env("AWS_ACCOUNT_ID", default="123456789012")
DYNAMODB_CONFIG_TABLE = env("DYNAMODB_CONFIG_TABLE", default="broker-config")
# Items per page of the reconciler's Scan of that table (broker/sync/dynamo.py, scan_all).
RECONCILE_SCAN_PAGE_SIZE = env.int("RECONCILE_SCAN_PAGE_SIZE", default=1000)
SQS_QUEUE_PREFIX = env("SQS_QUEUE_PREFIX", default="broker")
# The data plane's own tables (broker/functions/shared/records.py): counters and delivery
# records the portal charts, and the egress idempotency records.
DATAPLANE_TABLE = env("DATAPLANE_TABLE", default="broker-dataplane")
IDEMPOTENCY_TABLE = env("IDEMPOTENCY_TABLE", default="broker-idempotency")
# The data plane's stack (deploy/template.yaml), deployed before the portal runs: its outputs
# fill these (docs/data-plane.md, "Deploying"). Provisioning maps silo queues to the egress
# and SQS producers' source queues to the SQS producer function; without the ARNs those
# mappings fail, visibly (the tenant's sync status), never silently.
EGRESS_FUNCTION_ARN = env("EGRESS_FUNCTION_ARN", default="")
SQS_PRODUCER_FUNCTION_ARN = env("SQS_PRODUCER_FUNCTION_ARN", default="")
# Silo queues: the visibility timeout (six times the egress's 60 s timeout, as the template's
# shared queues) and the redrive's receive count, a safety net independent of retry attempts.
DELIVERY_VISIBILITY_TIMEOUT = env.int("DELIVERY_VISIBILITY_TIMEOUT", default=360)
DELIVERY_REDRIVE_MAX_RECEIVE_COUNT = env.int("DELIVERY_REDRIVE_MAX_RECEIVE_COUNT", default=10)
# Tenants' own queues (SQS producers' sources, SQS consumers' targets) must be named with this
# prefix: the functions' roles allow no other tenant queue (template parameter TenantQueuePrefix).
TENANT_QUEUE_PREFIX = env("TENANT_QUEUE_PREFIX", default="tenant-")
# Pool tenants get a shuffle-shard of SHUFFLE_SHARD_SIZE of the SHARED_DELIVERY_QUEUES queues.
SHARED_DELIVERY_QUEUES = env.int("SHARED_DELIVERY_QUEUES", default=8)
SHUFFLE_SHARD_SIZE = env.int("SHUFFLE_SHARD_SIZE", default=2)
# Ordered subscriptions of pool tenants share SHARED_ORDERED_QUEUES FIFO queues (the template's
# OrderedQueueCount); a key maps to one by a hash. Silo tenants get a FIFO queue of their own,
# whose redrive receive count is high: an ordered delivery waits by its visibility.
SHARED_ORDERED_QUEUES = env.int("SHARED_ORDERED_QUEUES", default=4)
ORDERED_REDRIVE_MAX_RECEIVE_COUNT = env.int("ORDERED_REDRIVE_MAX_RECEIVE_COUNT", default=1000)
# The activity job re-reads a minute's counters until it is this old, then keeps its figures
# (broker/activity/services.py); the console calls figures older than ACTIVITY_STALE_SECONDS
# stale (the job is not running, or failing).
ACTIVITY_SETTLE_MINUTES = env.int("ACTIVITY_SETTLE_MINUTES", default=5)
# The activity job runs as this many tasks, each over the tenants whose id modulo it is its
# number (broker/activity/services.py).
ACTIVITY_SHARDS = env.int("ACTIVITY_SHARDS", default=4)
ACTIVITY_STALE_SECONDS = env.int("ACTIVITY_STALE_SECONDS", default=180)
# Tombstones stay in DynamoDB this long before DynamoDB's TTL removes them.
TOMBSTONE_TTL = timedelta(days=env.int("TOMBSTONE_TTL_DAYS", default=30))

# A relay write that failed is retried after an exponential backoff capped at this.
SYNC_RELAY_MAX_BACKOFF_SECONDS = env.float("SYNC_RELAY_MAX_BACKOFF_SECONDS", default=300.0)

# Broker configuration.
# How long a POST's Idempotency-Key is remembered (core/idempotency.py).
IDEMPOTENCY_TTL_SECONDS = env.int("IDEMPOTENCY_TTL_SECONDS", default=24 * 3600)
# Secrets at rest (broker/secrets.py): KMS envelope encryption when a key id is set, else
# Fernet with these keys (comma-separated, first one encrypts) or a key derived from SECRET_KEY.
SECRETS_KMS_KEY_ID = env("SECRETS_KMS_KEY_ID", default="")
SECRETS_FERNET_KEYS = env.list("SECRETS_FERNET_KEYS", default=[])
# A rotated producer API key (and a consumer signing secret) stays valid this long.
API_KEY_ROTATION_GRACE_SECONDS = env.int("API_KEY_ROTATION_GRACE_SECONDS", default=24 * 3600)
SIGNING_SECRET_ROTATION_GRACE_SECONDS = env.int(
    "SIGNING_SECRET_ROTATION_GRACE_SECONDS", default=24 * 3600
)
# Consumer URLs must be https; these hosts may use plain http (development receivers only).
CONSUMER_HTTP_ALLOWED_HOSTS = frozenset(env.list("CONSUMER_HTTP_ALLOWED_HOSTS", default=[]))
# A consumer whose deliveries all fail for this long, without one success, is disabled and its
# tenant's admins e-mailed (Svix does it after five days).
CONSUMER_AUTO_DISABLE_AFTER_HOURS = env.float("CONSUMER_AUTO_DISABLE_AFTER_HOURS", default=120.0)
# Private `host:port` or `host:first-last` targets a consumer may use despite the SSRF rules
# (plain http allowed; metadata addresses never): a demo receiver, an in-VPC service. The
# egress reads the same variable (broker/functions/settings.py). Empty by default.
CONSUMER_PRIVATE_TARGETS = tuple(env.list("CONSUMER_PRIVATE_TARGETS", default=[]))
# Dead letters (docs/dead-letters.md): long poll of the central DLQ per receive, the most
# letters one replay may select, how long a replay job waits for AWS before it fails.
DLQ_RECEIVE_WAIT_SECONDS = env.int("DLQ_RECEIVE_WAIT_SECONDS", default=2)
DLQ_INGEST_MAX_BATCHES = env.int("DLQ_INGEST_MAX_BATCHES", default=50)
REPLAY_MAX_SELECTION = env.int("REPLAY_MAX_SELECTION", default=100_000)
REPLAY_AWS_MAX_WAIT_SECONDS = env.int("REPLAY_AWS_MAX_WAIT_SECONDS", default=600)
OFFBOARD_EXPORT_DIR = env("OFFBOARD_EXPORT_DIR", default=str(BASE_DIR / "var" / "exports"))
# Provisioning and offboarding retry a failed step with exponential backoff (full jitter),
# then stop: provisioning as `failed`, offboarding with its error, for an operator to act.
TENANT_LIFECYCLE_MAX_RETRIES = env.int("TENANT_LIFECYCLE_MAX_RETRIES", default=5)
TENANT_LIFECYCLE_RETRY_BACKOFF_SECONDS = env.int(
    "TENANT_LIFECYCLE_RETRY_BACKOFF_SECONDS", default=5
)
TENANT_LIFECYCLE_RETRY_BACKOFF_MAX_SECONDS = env.int(
    "TENANT_LIFECYCLE_RETRY_BACKOFF_MAX_SECONDS", default=300
)
# A provisioning or offboarding run idle for longer is re-queued (its worker died).
TENANT_RESUME_AFTER_SECONDS = env.float("TENANT_RESUME_AFTER_SECONDS", default=600.0)

# Structured logs: one JSON object a line (LOG_FORMAT=plain for a terminal), each with the
# request id, tenant schema and user, secrets masked (core/logging.py), web and worker; gunicorn
# writes its own lines in the same format (portal/gunicorn_conf.py).
LOG_FORMAT = env("LOG_FORMAT", default="json")
# Python's warnings go through logging (logger `py.warnings`) as JSON lines too, instead of
# plain text on stderr between them.
logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "core.logging.json_formatter"},
        "plain": {"()": "core.logging.plain_formatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "botocore": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
