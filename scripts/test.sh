#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script and nothing else).
#
# 1. makes sure a PostgreSQL server answers on 127.0.0.1:5432 (starts the machine's cluster, or
#    creates a throwaway one) — each test then creates and drops its own database;
# 2. checks formatting, lints (warnings are errors) and dependency hygiene (no unused
#    dependencies, no parquet in the HTTP API);
# 3. runs every test of the workspace (unit, contract, HTTP, CLI, property) and the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST_ADDR=127.0.0.1
PGPORT_NUM=5432
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@${PGHOST_ADDR}:${PGPORT_NUM}/postgres}"

pg_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT_NUM"
    else
        (exec 3<>"/dev/tcp/$PGHOST_ADDR/$PGPORT_NUM") 2>/dev/null
    fi
}

pg_bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

provision_postgres() {
    if pg_ready; then
        echo "postgres: already running on $PGHOST_ADDR:$PGPORT_NUM"
        return
    fi
    if [ -z "$(pg_bin_dir)" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "postgres: not installed, installing from Debian's packages"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    if command -v pg_lsclusters >/dev/null 2>&1 && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
        local version cluster
        read -r version cluster _ < <(pg_lsclusters -h | head -n 1)
        echo "postgres: starting cluster $version/$cluster"
        pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
    fi
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
    if pg_ready; then return; fi

    # No usable cluster: create a throwaway one with trust auth, owned by the postgres user.
    local bin datadir
    bin="$(pg_bin_dir)"
    if [ -z "$bin" ]; then
        echo "postgres: no server binaries found and none could be installed" >&2
        exit 1
    fi
    datadir="$(mktemp -d /tmp/fbc-pg.XXXXXX)"
    echo "postgres: creating a throwaway cluster in $datadir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$datadir"
        run_as_pg() { su postgres -s /bin/sh -c "$*"; }
    else
        run_as_pg() { sh -c "$*"; }
    fi
    run_as_pg "'$bin/initdb' -D '$datadir' -U postgres --auth=trust >/dev/null"
    run_as_pg "'$bin/pg_ctl' -D '$datadir' -l '$datadir/log' -o \"-c listen_addresses=$PGHOST_ADDR -p $PGPORT_NUM -k /tmp\" -w start >/dev/null"
    if [ "$(id -u)" = 0 ]; then
        "$bin/psql" -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -qc "CREATE ROLE root SUPERUSER LOGIN" 2>/dev/null || true
    fi
    pg_ready || { echo "postgres: the throwaway cluster did not start" >&2; exit 1; }
}

provision_postgres

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== dependency hygiene"
# no unused dependencies (cargo-machete is installed on first use; later runs reuse it)
if ! command -v cargo-machete >/dev/null 2>&1; then
    cargo install cargo-machete --locked --quiet
fi
cargo machete
# the HTTP API never links the Parquet reader (it is the worker's alone)
api_parquet="$(cargo tree -p facebook-connector-api -e normal,build -i parquet 2>/dev/null || true)"
if [ -n "$api_parquet" ]; then
    echo "facebook-connector-api pulls in parquet:" >&2
    echo "$api_parquet" >&2
    exit 1
fi

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast --lib --bins --tests
fi

echo "== doc tests"
cargo test --workspace --doc
