#!/bin/bash
# Day pages with a session cookie, from outside the server (docs/benchmarks.md, "Day pages with a
# session cookie"): a release `yoyaku serve` on a fresh database with the demo city, one resident
# session, `wrk` on the venue's days page and on one day's times page, and the raw PostgreSQL
# availability read (`../shared/perf/pgbench/run.sh avail avail.sql 0 64 15 on 0`) right before
# and after, in the same sitting.
#
# usage: scripts/day-pages.sh [BINARY] [SECONDS] [CONNECTIONS]
#   BINARY       the yoyaku binary to measure (default target/release/yoyaku; build it with
#                `cargo build --release -p yoyaku`)
#   PGBENCH_RUN  path of the raw pgbench runner (default /work/shared/perf/pgbench/run.sh; needs
#                the `booking` database from its schema.sql; set it empty to skip)
#   PORT         the port to serve on (default 18080)
# Prints one line per measurement: label, requests/s, p50, p99 (ms), non-2xx answers.
# Run it only when nothing else is compiling (`pgrep rustc` empty).
set -euo pipefail
BIN=${1:-target/release/yoyaku}
T=${2:-15}
C=${3:-64}
PORT=${PORT:-18080}
PGBENCH_RUN=${PGBENCH_RUN-/work/shared/perf/pgbench/run.sh}
DB=yoyaku_daypages_$$
PG="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -Atq"

$PG -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
LOG=$(mktemp)
YOYAKU_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DB" \
YOYAKU_HTTP__PORT=$PORT YOYAKU_LOG__LEVEL=warn \
  "$BIN" serve >"$LOG" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  $PG -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$LOG"; exit 1; }

# one session of a demo resident, made as `platform::residents::auth::create_session` makes it:
# the token names its city, only its SHA-256 is stored
TOKEN=$($PG -d "$DB" <<'SQL'
WITH t AS (SELECT id FROM tenants WHERE slug = 'demo'),
     r AS (SELECT id FROM residents WHERE tenant_id = (SELECT id FROM t) ORDER BY ticket_no LIMIT 1),
     k AS (SELECT replace((SELECT id FROM t)::text, '-', '') || '.' ||
                  replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '') AS token)
INSERT INTO resident_sessions (tenant_id, token_hash, resident_id, csrf_token, expires_at)
SELECT (SELECT id FROM t), sha256(convert_to(k.token, 'UTF8')), (SELECT id FROM r),
       replace(gen_random_uuid()::text, '-', ''), now() + interval '2 hours'
FROM k RETURNING (SELECT token FROM k);
SQL
)
VENUE=$($PG -d "$DB" -c "SELECT id FROM venues WHERE name = '市民ホール集団接種会場'")
DAY=$($PG -d "$DB" -c "SELECT (starts_at AT TIME ZONE 'Asia/Tokyo')::date FROM slots
                       WHERE venue_id = '$VENUE' AND starts_at > now() + interval '3 days'
                       ORDER BY starts_at LIMIT 1")
COOKIE="Cookie: yk_session=$TOKEN; yk_lang=en"
BASE="http://127.0.0.1:$PORT/t/demo/venues/$VENUE"
for url in "$BASE" "$BASE/$DAY"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$COOKIE" "$url")
  [ "$code" = 200 ] || { echo "GET $url answered $code"; cat "$LOG"; exit 1; }
done

raw() {
  if [ -n "$PGBENCH_RUN" ]; then "$PGBENCH_RUN" avail avail.sql 0 64 15 on 0; fi
}
page() {
  local label=$1 url=$2 out
  out=$(wrk -t2 -c"$C" -d"${T}s" --latency -H "$COOKIE" "$url")
  local rps p50 p99 bad
  rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  bad=$(echo "$out" | sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p')
  echo "$label,$rps,$p50,$p99,${bad:-0}"
}

echo "# $(date -u '+%F %T') UTC, $("$BIN" --version 2>/dev/null || echo "$BIN"), load $(cut -d' ' -f1-3 /proc/loadavg)"
raw
page days "$BASE"
page times "$BASE/$DAY"
raw
