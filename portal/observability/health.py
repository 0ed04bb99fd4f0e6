import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from core import aws


def _check(fn) -> dict:
    try:
        fn()
    except Exception as exc:  # a health check reports, it never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis():
    redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()


def _aws():
    aws.dynamodb().describe_table(TableName=settings.DYNAMODB_CONFIG_TABLE)


def healthz(request):
    """Reachability of PostgreSQL, Redis and AWS: 200 when all answer, else 503."""
    checks = {"database": _check(_database), "redis": _check(_redis), "aws": _check(_aws)}
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
