"""Database backend: django-tenants' PostgreSQL backend with a catalog query that stays fast
with thousands of schemas (see base.py)."""
