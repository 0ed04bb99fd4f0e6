#!/usr/bin/env bash
# `make bench`: same services as `make test` (PG_FAST=0 to benchmark with fsync on), then
# bench/onboarding.py with the given arguments.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROJECT_ROOT"
install_cleanup_trap

ensure_packages
ensure_venv
PG_FAST="${PG_FAST:-1}" start_postgres
start_redis
start_moto

export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-bench-only-key}"

rc=0
"$VENV/bin/python" bench/onboarding.py "$@" || rc=$?
exit "$rc"
