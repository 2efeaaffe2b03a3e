#!/usr/bin/env bash
# Collector benchmarks (called by scripts/bench.sh; figures in
# docs/BENCHMARKS.md, section "Collector"):
#   1. sustained ingest through the HTTP API into ClickHouse (loadgen);
#   2. analysts' common queries on 10 million stored incidents (querybench).
# A private ClickHouse and collector run under a temporary directory and are
# stopped at exit. Environment: INGEST_TOTAL (default 600000), QUERY_ROWS
# (default 10000000), QUERY_RUNS (default 30); SKIP_INGEST=1 skips part 1,
# SKIP_QUERY=1 part 2; BENCH_DIR=DIR keeps ClickHouse's data in DIR
# (created if missing, never deleted) so that a later run with SKIP_INGEST=1
# reuses the generated incidents instead of generating them again (100
# million take about half an hour). TODAY_ROWS=N tops today's partition up
# to N rows once (337000 is a full day of the 10-million set: the worst
# case of a window that includes today), runs a compaction pass, and with
# TODAY_NEW_ROWS=M adds, on every run, M rows in the last 5 minutes plus
# M/10 re-delivered copies of older rows of today (see querybench).
# COMPACT_INTERVAL_S=S sets the collector's retention.compact_interval_s
# (86400 keeps today's newest parts raw for the whole run).
# Binaries come from $CARGO_TARGET_DIR (default ./target), built first
# unless SKIP_BUILD=1 (to time binaries built earlier, e.g. another commit's).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p shaobing-collector --bins --examples
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d /tmp/shaobing-bench-collector.XXXXXX)
CH_DIR=${BENCH_DIR:-$WORK}
mkdir -p "$CH_DIR"
CH_PID= ; COL_PID=
cleanup() {
  [ -n "$COL_PID" ] && kill "$COL_PID" 2>/dev/null && wait "$COL_PID" 2>/dev/null || true
  [ -n "$CH_PID" ] && kill "$CH_PID" 2>/dev/null && wait "$CH_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

CH_PORT=$(free_port)
cp deploy/clickhouse/dev-config.xml "$CH_DIR/config.xml"
(cd "$CH_DIR" && exec /usr/sbin/clickhouse-server --config-file="$CH_DIR/config.xml" -- --http_port="$CH_PORT" >"$CH_DIR/clickhouse.log" 2>&1) &
CH_PID=$!
# A kept BENCH_DIR with 100 million incidents takes tens of seconds to load.
for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$CH_PORT/ping" >/dev/null && break; sleep 0.1; done

TOKEN=bench-sensor-token
ANALYST=bench-analyst-token
COL_PORT=$(free_port)
cat >"$WORK/collector.toml" <<TOML
listen = "127.0.0.1:$COL_PORT"
[clickhouse]
url = "http://127.0.0.1:$CH_PORT"
timeout_ms = 60000
migrate_on_start = true
compression = "${CH_COMPRESSION:-lz4}"
[batch]
max_rows = ${BATCH_ROWS:-20000}
max_delay_ms = 200
queue_batches = 64
max_inflight = ${INFLIGHT:-4}
[limits]
max_body_bytes = 16777216
max_items = 10000
[dead_letter]
path = "$WORK/dead-letter.ndjson"
${COMPACT_INTERVAL_S:+[retention]
compact_interval_s = $COMPACT_INTERVAL_S}
[[sensors]]
name = "bench"
token_sha256 = "$("$BIN/shaobing-collector" hash-token "$TOKEN")"
[[analysts]]
name = "bench-analyst"
token_sha256 = "$("$BIN/shaobing-collector" hash-token "$ANALYST")"
TOML
RUST_LOG=warn "$BIN/shaobing-collector" serve --config "$WORK/collector.toml" &
COL_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$COL_PORT/healthz" >/dev/null && break; sleep 0.1; done

if [ -z "${SKIP_INGEST:-}" ]; then
CONNS=${LOAD_CONNS:-16}; BATCH=${LOAD_BATCH:-1000}
echo "-- $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- ingest: ${INGEST_TOTAL:-600000} incidents, batches of $BATCH, $CONNS connections"
"$BIN/examples/loadgen" "127.0.0.1:$COL_PORT" "$TOKEN" "${INGEST_TOTAL:-600000}" "$BATCH" "$CONNS"
echo "-- ingest, gzip bodies"
"$BIN/examples/loadgen" "127.0.0.1:$COL_PORT" "$TOKEN" "${INGEST_TOTAL:-600000}" "$BATCH" "$CONNS" gzip
echo "stored (FINAL): $(curl -s "http://127.0.0.1:$CH_PORT/" --data-binary 'SELECT count() FROM shaobing.incidents FINAL')"
# The query part generates its own incidents.
for t in incidents incident_lookup; do
  curl -s "http://127.0.0.1:$CH_PORT/" --data-binary "TRUNCATE TABLE shaobing.$t" >/dev/null
done
fi

[ -n "${SKIP_QUERY:-}" ] && exit 0
echo "-- $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- queries on ${QUERY_ROWS:-10000000} incidents"
"$BIN/examples/querybench" "127.0.0.1:$COL_PORT" "$ANALYST" "127.0.0.1:$CH_PORT" "${QUERY_ROWS:-10000000}" "${QUERY_RUNS:-30}"
echo "-- $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
