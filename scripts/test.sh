#!/usr/bin/env bash
# `make test`: start PostgreSQL (fast, unsafe settings), Redis and the moto server unless the
# environment points at existing ones, run pytest with the given arguments, stop what we started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROJECT_ROOT"
install_cleanup_trap

ensure_packages chromium
ensure_venv
PG_FAST=1 start_postgres
start_redis
start_moto

# Development-style settings (plain-http cookies, no SSL redirect); pytest-django still runs
# the tests with DEBUG off.
export DJANGO_DEBUG=1
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-test-only-key-not-secret-at-least-32-bytes}"

rc=0
"$VENV/bin/python" -m pytest "$@" || rc=$?
exit "$rc"
