#!/usr/bin/env bash
# `make demo` / `make stop`: a private ClickHouse and a collector under ./var,
# the project's captures replayed through the sensor into them, and what was
# stored printed with `shaobing-collector query`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=$ROOT/var
BIN=$ROOT/target/release
CH_DIR=$VAR/clickhouse
CH_PORT=${SHAOBING_DEMO_CH_PORT:-18123}
COLLECTOR_PORT=${SHAOBING_DEMO_PORT:-19440}
CLICKHOUSE_SERVER=${CLICKHOUSE_SERVER:-/usr/sbin/clickhouse-server}

stop_pid() { # name pidfile
  local f=$2
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    echo "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

port_busy() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() { # preferred port: it, or the next free one
  local p=$1
  while port_busy "$p"; do p=$((p + 1)); done
  echo "$p"
}

wait_http() { # url what pidfile
  for _ in $(seq 200); do
    if ! kill -0 "$(cat "$3")" 2>/dev/null; then
      echo "demo: $2 exited during start-up; see the logs in $VAR" >&2
      exit 1
    fi
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo: $2 did not answer at $1; see the logs in $VAR" >&2
  exit 1
}

stop() {
  stop_pid collector "$VAR/collector.pid"
  stop_pid clickhouse "$VAR/clickhouse.pid"
}

start() {
  stop >/dev/null
  # Never talk to someone else's server: take the next free ports.
  CH_PORT=$(free_port "$CH_PORT")
  COLLECTOR_PORT=$(free_port "$COLLECTOR_PORT")
  # Each demo starts from an empty store, so what it prints is what this
  # build detected (a kept store would mix in an older build's incidents).
  rm -rf "$CH_DIR"
  mkdir -p "$CH_DIR"
  cp deploy/clickhouse/dev-config.xml "$CH_DIR/config.xml"
  echo "==> starting a private ClickHouse on 127.0.0.1:$CH_PORT (data in $CH_DIR)"
  (cd "$CH_DIR" && exec setsid "$CLICKHOUSE_SERVER" --config-file="$CH_DIR/config.xml" -- --http_port="$CH_PORT" \
      >"$CH_DIR/server.log" 2>&1 < /dev/null) &
  echo $! > "$VAR/clickhouse.pid"
  wait_http "http://127.0.0.1:$CH_PORT/ping" ClickHouse "$VAR/clickhouse.pid"

  if [ ! -f "$VAR/token" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$VAR/token"
    chmod 600 "$VAR/token"
  fi
  TOKEN=$(cat "$VAR/token")
  HASH=$("$BIN/shaobing-collector" hash-token "$TOKEN")
  # The analyst's token: logs in to the web console, queries the API.
  if [ ! -f "$VAR/analyst-token" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$VAR/analyst-token"
    chmod 600 "$VAR/analyst-token"
  fi
  ANALYST_HASH=$("$BIN/shaobing-collector" hash-token "$(cat "$VAR/analyst-token")")
  cat > "$VAR/collector.toml" <<TOML
# Written by scripts/demo.sh
listen = "127.0.0.1:$COLLECTOR_PORT"

[clickhouse]
url = "http://127.0.0.1:$CH_PORT"
database = "shaobing"

[[sensors]]
name = "demo-sensor"
token_sha256 = "$HASH"

[[analysts]]
name = "demo-analyst"
token_sha256 = "$ANALYST_HASH"
TOML
  chmod 600 "$VAR/collector.toml"
  echo "==> creating the schema"
  "$BIN/shaobing-collector" migrate --config "$VAR/collector.toml"
  echo "==> starting the collector on 127.0.0.1:$COLLECTOR_PORT"
  (exec setsid "$BIN/shaobing-collector" serve --config "$VAR/collector.toml" \
      >"$VAR/collector.log" 2>&1 < /dev/null) &
  echo $! > "$VAR/collector.pid"
  wait_http "http://127.0.0.1:$COLLECTOR_PORT/healthz" collector "$VAR/collector.pid"

  echo "==> replaying pcaps/*.pcap through the sensor into the collector"
  "$BIN/shaobing-sensor" replay --collector "http://127.0.0.1:$COLLECTOR_PORT" --token "$TOKEN" pcaps/*.pcap

  echo "==> incidents stored in ClickHouse (shaobing-collector query --since all)"
  "$BIN/shaobing-collector" query --config "$VAR/collector.toml" --since all
  cat <<MSG

ClickHouse (127.0.0.1:$CH_PORT) and the collector (127.0.0.1:$COLLECTOR_PORT) are still running.
  web console:   http://127.0.0.1:$COLLECTOR_PORT/console/#/overview?since=all
                 log in with the analyst token: cat var/analyst-token
                 (this link shows all time: the captures are dated 2026-01-01)
  the same API:  curl -H "Authorization: Bearer \$(cat var/analyst-token)" \\
                   'http://127.0.0.1:$COLLECTOR_PORT/api/v1/overview?since=all'
  more queries:  $BIN/shaobing-collector query --config var/collector.toml --since all --json
  summary:       $BIN/shaobing-collector summary --config var/collector.toml --since all
  stop them:     make stop
MSG
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
