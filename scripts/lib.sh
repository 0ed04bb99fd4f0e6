#!/usr/bin/env bash
# Shared bootstrap helpers for scripts/run.sh, test.sh, lint.sh and bench.sh.
#
# Source it, do not execute it:   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Every service (PostgreSQL, Redis, moto server) is started only when it is not already
# reachable, and stop_started stops only what this shell started. Point DATABASE_URL,
# REDIS_URL or AWS_ENDPOINT_URL at existing services to skip starting them at all.
#
# Environment knobs (defaults in brackets):
#   PG_PORT [54329]  REDIS_PORT [63799]  MOTO_PORT [45660]  WEB_PORT [8000]  WEB_HOST [127.0.0.1]
#   PORTAL_BASE_DOMAIN [localhost]  PG_FAST [0] (fsync=off & co., set by test.sh/bench.sh)
#   PYTHON [python3] (used to create .venv)
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VAR_DIR="$PROJECT_ROOT/var"
PG_DATA="$VAR_DIR/pg"
RUN_DIR="$VAR_DIR/run"
PG_SOCKET_DIR="$RUN_DIR/pg"
LOG_DIR="$VAR_DIR/log"
REDIS_DIR="$VAR_DIR/redis"
MAIL_DIR="$VAR_DIR/mail"
EXPORT_DIR="$VAR_DIR/exports"
VENV="$PROJECT_ROOT/.venv"

export PG_PORT="${PG_PORT:-54329}"
export REDIS_PORT="${REDIS_PORT:-63799}"
export MOTO_PORT="${MOTO_PORT:-45660}"
# Not exported here: settings derive PORTAL_PORT from WEB_PORT, so only run.sh exports it
# (tests must not depend on the dev server's port).
WEB_PORT="${WEB_PORT:-8000}"
WEB_HOST="${WEB_HOST:-127.0.0.1}"
export PORTAL_BASE_DOMAIN="${PORTAL_BASE_DOMAIN:-localhost}"

export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-portal.settings}"
export EMAIL_FILE_PATH="${EMAIL_FILE_PATH:-$MAIL_DIR}"
export OFFBOARD_EXPORT_DIR="${OFFBOARD_EXPORT_DIR:-$EXPORT_DIR}"
export PYTHONUNBUFFERED=1

mkdir -p "$VAR_DIR" "$RUN_DIR" "$LOG_DIR" "$REDIS_DIR" "$MAIL_DIR" "$EXPORT_DIR"

# What this shell started, in start order. Entries: "postgres", "redis", "moto:<pid>",
# "app:<pid>:<name>". stop_started walks it backwards.
_STARTED=()
# Background application processes (pid -> name), for run.sh's wait loop.
APP_PIDS=()
declare -A APP_NAMES=()
_CLEANED_UP=0

# ---------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------
if [[ -t 1 ]]; then
    _C_B=$'\e[1m' _C_G=$'\e[32m' _C_Y=$'\e[33m' _C_R=$'\e[31m' _C_0=$'\e[0m'
else
    _C_B='' _C_G='' _C_Y='' _C_R='' _C_0=''
fi
log() { printf '%s==>%s %s\n' "$_C_B$_C_G" "$_C_0" "$*"; }
warn() { printf '%swarning:%s %s\n' "$_C_B$_C_Y" "$_C_0" "$*" >&2; }
die() {
    printf '%serror:%s %s\n' "$_C_B$_C_R" "$_C_0" "$*" >&2
    exit 1
}

# Run a command as root: directly when root, via sudo when available.
_as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (not root and no sudo)"
    fi
}

# 0 when pid exists and is not a zombie.
_pid_alive() {
    local pid="$1" stat
    [[ -n "$pid" ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != "Z" ]]
}

# _wait_gone PID SECONDS: 0 when the process is gone within the delay.
_wait_gone() {
    local pid="$1" tries=$(($2 * 10))
    while ((tries-- > 0)); do
        _pid_alive "$pid" || return 0
        sleep 0.1
    done
    ! _pid_alive "$pid"
}

# _http_ok URL [HOST_HEADER]: 0 when URL answers 2xx/3xx within 2 s.
_http_ok() {
    local url="$1" host="${2:-}"
    if command -v curl >/dev/null 2>&1; then
        if [[ -n "$host" ]]; then
            curl -fsS -o /dev/null --max-time 2 -H "Host: $host" "$url" 2>/dev/null
        else
            curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null
        fi
    else
        python3 - "$url" "$host" <<'PY' 2>/dev/null
import sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    req.add_header("Host", sys.argv[2])
urllib.request.urlopen(req, timeout=2)
PY
    fi
}

# ---------------------------------------------------------------------------------------
# System packages
# ---------------------------------------------------------------------------------------
_pkg_present() {
    local pkg="$1" f
    case "$pkg" in
        postgresql)
            for f in /usr/lib/postgresql/*/bin/initdb; do [[ -x "$f" ]] && return 0; done
            return 1
            ;;
        redis-server) [[ -x /usr/bin/redis-server ]] || command -v redis-server >/dev/null 2>&1 ;;
        chromium) [[ -x /usr/bin/chromium ]] ;;
        make) command -v make >/dev/null 2>&1 ;;
        curl) command -v curl >/dev/null 2>&1 ;;
        *) dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ;;
    esac
}

# ensure_packages [extra...]: apt-get install PostgreSQL, Redis and the extras if missing.
ensure_packages() {
    local pkg missing=()
    for pkg in postgresql redis-server "$@"; do
        _pkg_present "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "missing system packages (${missing[*]}) and no apt-get to install them"
    log "installing system packages: ${missing[*]}"
    # Wait for a concurrent apt/dpkg run instead of failing on its lock.
    _as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------------------
# Python virtualenv
# ---------------------------------------------------------------------------------------
ensure_venv() {
    local req="$PROJECT_ROOT/requirements.txt" stamp="$VENV/.requirements.sha256" sum
    [[ -f "$req" ]] || die "requirements.txt not found in $PROJECT_ROOT: cannot set up .venv"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating virtualenv in .venv"
        "${PYTHON:-python3}" -m venv "$VENV"
    fi
    sum="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$sum" ]]; then
        if [[ ! -f "$stamp" ]]; then
            "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        fi
        log "installing Python requirements into .venv"
        "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$req"
        printf '%s\n' "$sum" >"$stamp"
    fi
}

# ---------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------
_pg_bin_dir() {
    local d newest="" v best=-1
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] || continue
        v="$(basename "$(dirname "$d")")"
        [[ "$v" =~ ^[0-9]+$ ]] || continue
        if ((v > best)); then best=$v newest="$d"; fi
    done
    [[ -n "$newest" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (run ensure_packages)"
    printf '%s\n' "$newest"
}

# Run a PostgreSQL server binary; as the postgres user when we are root (it refuses root).
_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Make every directory from / down to $1 traversable by the postgres user (root only).
_pg_make_traversable() {
    local target="$1" path="" part
    local -a parts
    runuser -u postgres -- test -x "$target" 2>/dev/null && return 0
    IFS='/' read -r -a parts <<<"${target#/}"
    for part in "${parts[@]}"; do
        path="$path/$part"
        if ! runuser -u postgres -- test -x "$path" 2>/dev/null; then
            chmod o+x "$path"
        fi
    done
}

_pg_prepare_dirs() {
    mkdir -p "$PG_DATA" "$PG_SOCKET_DIR"
    chmod 700 "$PG_DATA"
    touch "$LOG_DIR/postgres.log"
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 ||
            die "running as root but no 'postgres' system user (install the postgresql package)"
        _pg_make_traversable "$VAR_DIR"
        local p
        for p in "$PG_DATA" "$PG_SOCKET_DIR" "$LOG_DIR/postgres.log"; do
            [[ "$(stat -c %U "$p")" == postgres ]] || chown -R postgres:postgres "$p"
        done
    fi
}

_psql() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

start_postgres() {
    if [[ -n "${DATABASE_URL:-}" ]]; then
        log "PostgreSQL: using DATABASE_URL from the environment"
        return 0
    fi
    PG_BIN="$(_pg_bin_dir)"
    _pg_prepare_dirs
    # Unix socket paths are limited to 107 bytes; fall back to /tmp for deep checkouts.
    local sockdir="$PG_SOCKET_DIR"
    if ((${#sockdir} > 90)); then
        sockdir="/tmp/portal-pg-$PG_PORT"
        mkdir -p "$sockdir"
        [[ $EUID -ne 0 ]] || chown postgres:postgres "$sockdir"
    fi

    if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
        log "PostgreSQL: initdb in var/pg"
        _pg "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust -U postgres --encoding=UTF8 \
            --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1 ||
            die "initdb failed, see $LOG_DIR/initdb.log"
    fi

    if _pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
        log "PostgreSQL: reusing the server already running on var/pg"
    else
        local opts="-p $PG_PORT -k '$sockdir' -c listen_addresses=127.0.0.1 -c max_connections=200"
        if [[ "${PG_FAST:-0}" == 1 ]]; then
            opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        fi
        log "PostgreSQL: starting on 127.0.0.1:$PG_PORT"
        if ! _pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOG_DIR/postgres.log" -o "$opts" \
            -w -t 60 start >/dev/null; then
            tail -n 20 "$LOG_DIR/postgres.log" >&2 || true
            die "PostgreSQL did not start (port $PG_PORT busy? set PG_PORT), see $LOG_DIR/postgres.log"
        fi
        _STARTED+=("postgres")
    fi

    # Role and database for the app. SUPERUSER so the test runner can create test databases
    # and django-tenants can create schemas.
    if [[ "$(_psql -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='portal'")" != 1 ]]; then
        _psql -d postgres -c "CREATE ROLE portal SUPERUSER LOGIN"
    fi
    if [[ "$(_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='portal'")" != 1 ]]; then
        _psql -d postgres -c "CREATE DATABASE portal OWNER portal ENCODING 'UTF8' TEMPLATE template0"
    fi
    export DATABASE_URL="postgres://portal@127.0.0.1:$PG_PORT/portal"
}

_stop_postgres() {
    PG_BIN="${PG_BIN:-$(_pg_bin_dir)}"
    _pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------
_redis_ping() {
    [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

start_redis() {
    if [[ -n "${REDIS_URL:-}" ]]; then
        log "Redis: using REDIS_URL from the environment"
        return 0
    fi
    if _redis_ping; then
        log "Redis: reusing the server already answering on 127.0.0.1:$REDIS_PORT"
    else
        log "Redis: starting on 127.0.0.1:$REDIS_PORT"
        rm -f "$RUN_DIR/redis.pid"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
            --daemonize yes --pidfile "$RUN_DIR/redis.pid" --save "" --appendonly no \
            --logfile "$LOG_DIR/redis.log" ||
            die "redis-server failed to start, see $LOG_DIR/redis.log"
        _STARTED+=("redis")
        local tries=100
        until _redis_ping; do
            ((tries-- > 0)) || die "Redis did not answer on port $REDIS_PORT, see $LOG_DIR/redis.log"
            sleep 0.1
        done
    fi
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

_stop_redis() {
    local pid=""
    [[ -f "$RUN_DIR/redis.pid" ]] && pid="$(cat "$RUN_DIR/redis.pid" 2>/dev/null || true)"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    if [[ -n "$pid" ]] && ! _wait_gone "$pid" 10; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/redis.pid"
}

# ---------------------------------------------------------------------------------------
# Background processes (moto server, web, celery)
# ---------------------------------------------------------------------------------------
# _spawn NAME LOGFILE CMD...: start CMD in the background in its own session (so the
# terminal's Ctrl-C reaches only this script, which then stops everything in order), record
# it for stop_started and leave its pid in BG_PID.
_spawn() {
    local name="$1" logfile="$2"
    shift 2
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" >>"$logfile" 2>&1 </dev/null &
    else
        "$@" >>"$logfile" 2>&1 </dev/null &
    fi
    BG_PID=$!
    _STARTED+=("app:$BG_PID:$name")
}

# start_bg NAME LOGFILE CMD...: like _spawn, and add it to APP_PIDS / APP_NAMES (the
# application processes that run.sh waits on).
start_bg() {
    _spawn "$@"
    APP_PIDS+=("$BG_PID")
    APP_NAMES[$BG_PID]="$1"
}

# Stop one background process: TERM, then KILL of its whole process group after a delay.
_stop_pid() {
    local pid="$1" grace="${2:-15}"
    _pid_alive "$pid" || {
        wait "$pid" 2>/dev/null || true
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    if ! _wait_gone "$pid" "$grace"; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    # Leftover children in the process group (e.g. celery pool processes).
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

start_moto() {
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        log "AWS: using AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL from the environment"
    else
        local url="http://127.0.0.1:$MOTO_PORT"
        if _http_ok "$url/moto-api/"; then
            log "moto: reusing the server already answering on $url"
        else
            [[ -x "$VENV/bin/moto_server" ]] || die "$VENV/bin/moto_server not found (moto[server] in requirements.txt?)"
            log "moto: starting on $url"
            # moto's server with its own SQS → Lambda invocation cut: the local runner is
            # Lambda's poller here (broker/functions/local/moto_server.py says why).
            _spawn moto "$LOG_DIR/moto.log" env PYTHONPATH="$PROJECT_ROOT" \
                "$VENV/bin/python" -m broker.functions.local.moto_server -H 127.0.0.1 -p "$MOTO_PORT"
            local pid=$BG_PID tries=300
            until _http_ok "$url/moto-api/"; do
                _pid_alive "$pid" || {
                    tail -n 20 "$LOG_DIR/moto.log" >&2 || true
                    die "moto server exited, see $LOG_DIR/moto.log"
                }
                ((tries-- > 0)) || die "moto server did not answer within 30 s, see $LOG_DIR/moto.log"
                sleep 0.1
            done
        fi
        export AWS_ENDPOINT_URL="$url"
    fi
    export MOTO_SERVER_URL="${MOTO_SERVER_URL:-$AWS_ENDPOINT_URL}"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
    export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-eu-west-1}"
}

# deploy_stack: deploys deploy/template.yaml into the AWS endpoint with CloudFormation (the
# one source of the data plane's resources) and exports its outputs (function ARNs, tables,
# the DLQ) as the settings the portal reads, also kept in var/stack.env.
deploy_stack() {
    log "deploying the data plane's stack (deploy/template.yaml) with CloudFormation"
    "$VENV/bin/python" -m broker.functions.local.stack deploy --env-file "$VAR_DIR/stack.env" ||
        die "the stack did not deploy"
    set -a
    # shellcheck disable=SC1091
    source "$VAR_DIR/stack.env"
    set +a
}

# ---------------------------------------------------------------------------------------
# Cleanup
# ---------------------------------------------------------------------------------------
# stop_started [SIGNAL]: stop, in reverse start order, only what this shell started.
# With a signal name (INT/TERM) it exits afterwards with 128+signo.
stop_started() {
    local rc=$?
    local sig="${1:-}"
    trap '' INT TERM # a second Ctrl-C must not interrupt the cleanup
    if ((_CLEANED_UP == 0)); then
        _CLEANED_UP=1
        local i entry pid name
        [[ -z "$sig" ]] || printf '\n'
        for ((i = ${#_STARTED[@]} - 1; i >= 0; i--)); do
            entry="${_STARTED[$i]}"
            case "$entry" in
                app:*)
                    pid="${entry#app:}" name="${pid#*:}" pid="${pid%%:*}"
                    log "stopping $name (pid $pid)"
                    _stop_pid "$pid" 20
                    ;;
                postgres) log "stopping PostgreSQL" && _stop_postgres ;;
                redis) log "stopping Redis" && _stop_redis ;;
            esac
        done
        _STARTED=()
    fi
    case "$sig" in
        INT) exit 130 ;;
        TERM) exit 143 ;;
    esac
    return "$rc"
}

# Install stop_started on EXIT, INT and TERM.
install_cleanup_trap() {
    trap 'stop_started' EXIT
    trap 'stop_started INT' INT
    trap 'stop_started TERM' TERM
}

# Stop services left running from var/ by an earlier run that was killed hard
# (used by `make clean`). Never touches anything outside var/.
stop_var_services() {
    if [[ -f "$PG_DATA/PG_VERSION" ]] && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
        PG_BIN="$(_pg_bin_dir)"
        if _pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
            log "stopping PostgreSQL on var/pg"
            _stop_postgres
        fi
    fi
    if [[ -f "$RUN_DIR/redis.pid" ]]; then
        local pid
        pid="$(cat "$RUN_DIR/redis.pid" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && _pid_alive "$pid" &&
            [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == *redis* ]]; then
            log "stopping Redis (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            _wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
}
