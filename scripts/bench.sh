#!/usr/bin/env bash
# `make bench`: same services as `make test` (PG_FAST=0 to benchmark with fsync on), then the
# benchmarks: `make bench` runs all of them; `make bench ARGS="sync --quick"` runs one, with
# its arguments (see bench/README.md). The terminal gets the figures; log lines go to
# var/log/bench-<name>.log (the benchmark's own, its worker's and web server's).
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

export EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend
benches=(onboarding sync load dataplane ratelimit ordered replay console configcode)
if [[ $# -gt 0 && -f "bench/$1.py" ]]; then
    benches=("$1")
    shift
fi
rc=0
for name in "${benches[@]}"; do
    log "bench/$name.py $*"
    "$VENV/bin/python" "bench/$name.py" "$@" || rc=$?
done
exit "$rc"
