#!/usr/bin/env bash
# `make run`: local development stack. Starts PostgreSQL, Redis and the moto server (unless
# DATABASE_URL / REDIS_URL / AWS_ENDPOINT_URL point elsewhere), migrates, creates the config
# table, deploys the data plane's stack (deploy/template.yaml, by CloudFormation), seeds the
# demo tenants, then runs web + Celery worker + beat + the data plane until Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROJECT_ROOT"
install_cleanup_trap

ensure_packages
ensure_venv

# Refuse to start on a port that is already taken (e.g. a web server left from another run).
if _http_ok "http://127.0.0.1:$WEB_PORT/" || { command -v ss >/dev/null 2>&1 &&
    ss -Hltn "sport = :$WEB_PORT" 2>/dev/null | grep -q .; }; then
    die "port $WEB_PORT is already in use: stop that process or set WEB_PORT"
fi

start_postgres
start_redis
start_moto

export WEB_PORT WEB_HOST
# --- web server mode ---------------------------------------------------------------------
# Default: the way production serves it: gunicorn (portal/gunicorn_conf.py: gthread workers,
# at most WEB_WORKERS × WEB_THREADS database connections, checked against
# WEB_DB_MAX_CONNECTIONS), DEBUG off, static files collected and served by whitenoise; plain
# http on this machine. `make run DEV=1` (or RUN_MODE=dev): runserver with autoreload, DEBUG on.
RUN_MODE="${RUN_MODE:-$([[ "${DEV:-}" == 1 ]] && echo dev || echo prod)}"
# One key per checkout, kept in var/, in both modes: secrets stored encrypted under it stay
# readable when switching between `make run` and `make run DEV=1`.
if [[ -z "${DJANGO_SECRET_KEY:-}" ]]; then
    mkdir -p "$VAR_DIR"
    [[ -s "$VAR_DIR/secret-key" ]] ||
        (umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$VAR_DIR/secret-key")
    DJANGO_SECRET_KEY="$(cat "$VAR_DIR/secret-key")"
    export DJANGO_SECRET_KEY
fi
if [[ "$RUN_MODE" == dev ]]; then
    export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
else
    export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"
    # No TLS on this machine: no https redirect, HSTS or secure-only cookies; http links.
    export DJANGO_SECURE_SSL_REDIRECT="${DJANGO_SECURE_SSL_REDIRECT:-0}"
    export DJANGO_SECURE_HSTS_SECONDS="${DJANGO_SECURE_HSTS_SECONDS:-0}"
    export DJANGO_SECURE_COOKIES="${DJANGO_SECURE_COOKIES:-0}"
    export PORTAL_URL_SCHEME="${PORTAL_URL_SCHEME:-http}"
fi
# --- end web server mode -----------------------------------------------------------------
export EMAIL_BACKEND="${EMAIL_BACKEND:-django.core.mail.backends.filebased.EmailBackend}"

# --- data plane (issue 10): ports and the private targets the demo consumers use ----------
# Consumers may call 127.0.0.1:8200-8299 over plain http (the demo receiver); checked when
# seed_demo saves them and again by the egress at delivery time.
export INGRESS_PORT="${INGRESS_PORT:-8100}" RECEIVER_PORT="${RECEIVER_PORT:-8200}"
export CONSUMER_PRIVATE_TARGETS="${CONSUMER_PRIVATE_TARGETS-127.0.0.1:8200-8299}"
export DEMO_DIR="$VAR_DIR/demo" # seed_demo writes the demo API keys and receiver secrets here
# Every invocation is a process here: two pollers a shared queue (the least AWS takes) keep the
# machine's load sane; the stack's default is 10.
export POOL_QUEUE_MAX_CONCURRENCY="${POOL_QUEUE_MAX_CONCURRENCY:-2}"
for port in "$INGRESS_PORT" "$RECEIVER_PORT"; do
    if command -v ss >/dev/null 2>&1 && ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
        die "port $port is already in use (INGRESS_PORT / RECEIVER_PORT)"
    fi
done
# --- end data plane ----------------------------------------------------------------------

PY="$VENV/bin/python"
log "migrating (migrate_schemas)"
"$PY" manage.py migrate_schemas --noinput
log "creating the config table (bootstrap_aws)"
"$PY" manage.py bootstrap_aws
# The data plane's resources, from the template: tables, DLQ, shared queues and their
# mappings, functions and roles; its outputs (function ARNs, ...) become the portal's settings.
deploy_stack
log "seeding demo data"
"$PY" manage.py seed_demo
log "writing the configuration to DynamoDB (the moto server starts empty)"
"$PY" manage.py sync_dynamodb

log "starting web, worker and beat (logs in var/log/)"
: >"$LOG_DIR/web.log"; : >"$LOG_DIR/worker.log"; : >"$LOG_DIR/beat.log"
if [[ "$RUN_MODE" == dev ]]; then
    start_bg web "$LOG_DIR/web.log" "$PY" manage.py runserver "$WEB_HOST:$WEB_PORT"
else
    log "collecting static files (served by whitenoise)"
    "$PY" manage.py collectstatic --noinput -v 0
    start_bg web "$LOG_DIR/web.log" \
        "$VENV/bin/gunicorn" -c python:portal.gunicorn_conf portal.wsgi
fi
start_bg worker "$LOG_DIR/worker.log" \
    "$VENV/bin/celery" -A portal worker -l info --concurrency 2
start_bg beat "$LOG_DIR/beat.log" \
    "$VENV/bin/celery" -A portal beat -l info \
    --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile=

# --- data plane: the local runner (the stack's functions, polled through their event source
# mappings) and the demo receiver ------------------------------------------------------------
log "starting the data plane: runner on :$INGRESS_PORT, demo receiver on :$RECEIVER_PORT"
: >"$LOG_DIR/runner.log"; : >"$LOG_DIR/receiver.log"
start_bg runner "$LOG_DIR/runner.log" "$PY" -m broker.functions.runner
runner_pid="$BG_PID"
start_bg receiver "$LOG_DIR/receiver.log" \
    env RECEIVER_SIGNING_SECRET_FILE="$DEMO_DIR/receiver-secrets" "$PY" -m broker.functions.demo_receiver
tries=300
until _http_ok "http://127.0.0.1:$INGRESS_PORT/_local/health"; do
    if ! _pid_alive "$runner_pid"; then
        tail -n 30 "$LOG_DIR/runner.log" >&2 || true
        die "the data plane runner exited during startup, see var/log/runner.log"
    fi
    if ((tries-- <= 0)); then
        warn "the runner did not answer within 30 s (see var/log/runner.log)"
        break
    fi
    sleep 0.1
done
# --- end data plane ----------------------------------------------------------------------

# Wait for the web server to answer /healthz (200 once PostgreSQL, Redis and AWS answer).
web_pid="${APP_PIDS[0]}"
case "$WEB_HOST" in
    0.0.0.0 | :: | "[::]" | localhost | 127.0.0.1) health_url="http://127.0.0.1:$WEB_PORT/healthz" ;;
    *) health_url="http://$WEB_HOST:$WEB_PORT/healthz" ;;
esac
tries=600
until _http_ok "$health_url"; do
    if ! _pid_alive "$web_pid"; then
        tail -n 30 "$LOG_DIR/web.log" >&2 || true
        die "the web server exited during startup, see var/log/web.log"
    fi
    if ((tries-- <= 0)); then
        warn "$health_url did not answer 200 within 60 s (see var/log/web.log)"
        break
    fi
    sleep 0.1
done

base="http://$PORTAL_BASE_DOMAIN:$WEB_PORT"
cat <<BANNER

${_C_B}================================================================================${_C_0}
 ${_C_B}Event broker portal is running${_C_0}

   Operator console   $base/
   Django admin       $base/admin/
   API docs           $base/api/docs/
   Demo tenant        http://demo.$PORTAL_BASE_DOMAIN:$WEB_PORT/
   Health             $base/healthz

   PostgreSQL         ${DATABASE_URL}
   Redis              ${REDIS_URL}
   AWS (moto)         ${AWS_ENDPOINT_URL}  (dashboard: ${AWS_ENDPOINT_URL}/moto-api/)

   Logs               $LOG_DIR/{web,worker,beat,moto,postgres,redis}.log
   Outgoing e-mail    $EMAIL_FILE_PATH/
   Offboard exports   $OFFBOARD_EXPORT_DIR/

   Logins: printed by seed_demo above.        ${_C_B}Ctrl-C to stop.${_C_0}
${_C_B}================================================================================${_C_0}

BANNER
# The data plane's stack in the emulator: its resources and every event source mapping (the
# shared queues' from the template, the silo tenant's from provisioning).
"$PY" -m broker.functions.local.stack describe 2>/dev/null | sed 's/^/ /' || true

# --- data plane (issue 10): how to send an event end to end ------------------------------
cat <<DATAPLANE
 ${_C_B}Data plane${_C_0} (logs: $LOG_DIR/{runner,receiver}.log)
   Ingress            http://127.0.0.1:$INGRESS_PORT/v1/events   (the stack's ingress function)
   Demo receiver      http://127.0.0.1:$RECEIVER_PORT/             (what the demo consumers got, signatures checked)
   Send an event (demo tenant, producer web-shop; key in $DEMO_DIR/api-key):

     curl -sS -X POST http://127.0.0.1:$INGRESS_PORT/v1/events \\
       -H "Authorization: Bearer \$(cat $DEMO_DIR/api-key)" -H 'Content-Type: application/json' \\
       -d '{"type": "order.created", "data": {"order_id": "A-1001", "total": 42.5}}'

   It reaches demo-receiver (page above), the warehouse SQS queue, order-ledger (an ordered
   subscription: one order_id's events arrive in the order sent), and always-failing, whose
   attempts fail (its /fail path answers 503) until the event lands in the dead-letter queue.
   The dedicated tenant silo: the same with \$(cat $DEMO_DIR/silo-api-key); its event goes
   through its own delivery queue, mapped to the egress by provisioning (list above).
${_C_B}================================================================================${_C_0}

DATAPLANE
# --- end data plane ----------------------------------------------------------------------

# Run until one of the processes exits (or Ctrl-C, handled by the trap).
while :; do
    died="" status=0
    wait -n -p died "${APP_PIDS[@]}" || status=$?
    if [[ -n "$died" ]]; then
        name="${APP_NAMES[$died]:-pid $died}"
        printf '\n' >&2
        tail -n 20 "$LOG_DIR/$name.log" >&2 2>/dev/null || true
        die "$name (pid $died) exited with status $status, see var/log/$name.log; stopping everything"
    fi
    # wait returned without a pid: nothing left to wait for.
    ((${#APP_PIDS[@]})) || break
    for pid in "${APP_PIDS[@]}"; do
        _pid_alive "$pid" && continue 2
    done
    die "all application processes exited"
done
