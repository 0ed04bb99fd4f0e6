#!/usr/bin/env bash
# `make lint`: ruff (lint + format check) and a check that no model change lacks a migration.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROJECT_ROOT"
install_cleanup_trap

ensure_venv
log "ruff check"
"$VENV/bin/ruff" check .
log "import contracts"
"$VENV/bin/lint-imports"
log "ruff format --check"
"$VENV/bin/ruff" format --check .

# makemigrations checks migration history against the database: give it one.
ensure_packages
start_postgres
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-lint-only-key}"
log "makemigrations --check"
"$VENV/bin/python" manage.py makemigrations --check --dry-run
