#!/bin/bash
# One sitting of the resident rush against raw PostgreSQL (docs/benchmarks.md, "Resident rush";
# issue 18, acceptance 1): raw `spread` and `avail` first, then RUNS times a `yoyaku-bench rush`
# followed by raw `spread` and `avail` again, so every rush run has a raw run right before and right
# after it. Ratios: a run's bookings/s against the `spread` lines around it (and their mean).
#
# usage: scripts/rush-sitting.sh [RUNS] [CLIENTS] [SECONDS]
#   BENCH        the bench binary (default target/release/yoyaku-bench; build it with
#                `cargo build --release -p yoyaku -p yoyaku-bench`)
#   PGBENCH_RUN  path of the raw pgbench runner (default /work/shared/perf/pgbench/run.sh; needs the
#                `booking` database from its schema.sql)
# Prints the raw CSV lines (run.sh) and the rush's summary lines in order.
# Run it only when nothing else is compiling (`pgrep rustc` empty).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
C=${2:-64}
T=${3:-15}
BENCH=${BENCH:-target/release/yoyaku-bench}
RAW=${PGBENCH_RUN:-/work/shared/perf/pgbench/run.sh}
raw() {
  "$RAW" spread book.sql 101500 "$C" "$T" on
  "$RAW" avail avail.sql 0 "$C" "$T" on 0
}
raw
for i in $(seq 1 "$RUNS"); do
  echo "# run $i at $(date -u +%H:%M:%S) UTC"
  "$BENCH" rush --clients "$C" --seconds "$T" 2>&1 |
    grep -E "^(seeded|availability|booking|batches|memory|invariants|csv)"
  raw
done
echo "# done at $(date -u +%H:%M:%S) UTC"
