#!/usr/bin/env bash
# Measures the operator CLI on a generated log: import, export, verify and copy throughput, and
# the peak memory (RSS) of each command, with /usr/bin/time.
#
#   cargo build --release -p es-cli --features postgres
#   es-cli/bench/measure.sh [EVENTS] [STREAMS]          # default 1000000 events, 10000 streams
#   ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test es-cli/bench/measure.sh   # adds PostgreSQL
#
# The log interleaves its streams at random (the worst case for batching appends per stream);
# each event is a bank deposit of about 200 bytes as exported. Runs in a fresh temporary
# directory (kept with KEEP=1) and a fresh PostgreSQL schema (dropped at the end).
set -euo pipefail

EVENTS=${1:-1000000}
STREAMS=${2:-10000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ES=${ES:-$ROOT/target/release/es}
[ -x "$ES" ] || { echo "build first: cargo build --release -p es-cli --features postgres" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/es-measure.XXXXXX")
cleanup() {
  if [ -n "${ES_PG_URL:-}" ] && [ -n "${SCHEMA:-}" ] && command -v psql >/dev/null; then
    psql -q "$ES_PG_URL" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  fi
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

echo "events=$EVENTS streams=$STREAMS dir=$WORK load average: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v n="$EVENTS" -v s="$STREAMS" 'BEGIN {
  srand(42);
  for (p = 1; p <= n; p++) {
    a = int(rand() * s); seq[a]++;
    printf "{\"stream\":{\"type\":\"bank_account\",\"id\":\"acc-%d\"},\"sequence\":%d,\"position\":%d,\"type\":\"Deposited\",\"version\":1,\"timestamp\":\"2025-01-02T03:04:05.123456Z\",\"metadata\":{\"user\":\"u%d\"},\"payload\":{\"amount\":%d}}\n", a, seq[a], p, p % 7, p % 1000
  }
}' > "$WORK/log.jsonl"

# measure NAME COMMAND...: runs it once; prints seconds, events/s, the CPU seconds the process
# used (user + system: on a shared machine wall times mostly say how busy it is), peak RSS (as
# /usr/bin/time counts it: with the pages of LMDB's memory map that the process touched) and peak
# anonymous memory (heap and stacks, sampled from /proc every 20 ms: what the process itself
# holds).
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  local timer=$! anon=0 child a
  while kill -0 "$timer" 2>/dev/null; do
    child=$(pgrep -P "$timer" | head -n1 || true)
    if [ -n "$child" ]; then
      a=$(awk '/^RssAnon:/ {print $2}' "/proc/$child/status" 2>/dev/null || true)
      if [ -n "$a" ] && [ "$a" -gt "$anon" ]; then anon=$a; fi
    fi
    sleep 0.02
  done
  wait "$timer" || { echo "$name failed:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
  read -r secs kib user sys < "$WORK/time"
  awk -v name="$name" -v s="$secs" -v k="$kib" -v a="$anon" -v n="$EVENTS" -v c="$user" -v y="$sys" \
    'BEGIN { printf "%-22s %7.2f s %9.0f events/s  %6.2f CPU-s  peak RSS %6.1f MiB  anonymous %6.1f MiB\n", name, s, n / s, c + y, k / 1024, a / 1024 }'
  grep -h "copied in" "$WORK/$name.out" | sed 's/^/                       /' || true
}

measure "import -> lmdb" "$ES" -q --store "lmdb:$WORK/lmdb" import "$WORK/log.jsonl"
measure "export (lmdb)" "$ES" -q --store "lmdb:$WORK/lmdb" export --out "$WORK/export.jsonl"
measure "verify (lmdb)" "$ES" -q --store "lmdb:$WORK/lmdb" verify
measure "copy lmdb -> file" "$ES" -q --store "lmdb:$WORK/lmdb" copy --to "file:$WORK/file"
measure "copy lmdb -> lmdb" "$ES" -q --store "lmdb:$WORK/lmdb" copy --to "lmdb:$WORK/lmdb2"
measure "verify (file)" "$ES" -q --store "file:$WORK/file" verify
if [ -n "${ES_PG_URL:-}" ]; then
  SCHEMA="es_measure_$$"
  sep='?'; case "$ES_PG_URL" in *\?*) sep='&';; esac
  PG="$ES_PG_URL${sep}schema=$SCHEMA"
  measure "copy lmdb -> postgres" "$ES" -q --store "lmdb:$WORK/lmdb" copy --to "$PG"
  if command -v psql >/dev/null; then
    # An append statement is one transaction, and a position is (transaction id << 16) + n.
    psql -tA "$ES_PG_URL" -c "SELECT count(DISTINCT position >> 16) FROM $SCHEMA.events" |
      awk -v n="$EVENTS" '{ printf "                       %d append statements, %.0f events each\n", $1, n / $1 }'
  fi
  measure "copy postgres -> lmdb" "$ES" -q --store "$PG" copy --to "lmdb:$WORK/lmdb3"
  measure "verify (postgres)" "$ES" -q --store "$PG" verify
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
