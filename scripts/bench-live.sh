#!/usr/bin/env bash
# Live capture and delivery benchmarks (issue 6), run by `make bench`.
#  1. Packets/s the sensor captures from a veth pair with zero kernel drops,
#     1 and 2 workers, against `tcpdump -w /dev/null` on the same link.
#  2. Time to drain a spool of 1,000,000 incidents into a real collector and
#     ClickHouse.
# Needs root (network namespaces) and tcpreplay; all traffic stays inside a
# namespace this script creates.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release
[ "$(id -u)" -eq 0 ] || { echo "bench-live: needs root (network namespaces); skipped"; exit 0; }
command -v tcpreplay >/dev/null || { echo "bench-live: tcpreplay missing (make deps); skipped"; exit 0; }
cargo build -q --release -p shaobing-sensor -p shaobing-collector --bins --example fill_spool

NS=sb-bench-$$
WORK=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link add va type veth peer name vb
for d in lo va vb; do ip -n "$NS" link set "$d" up; done
PCAPS="pcaps/syn-flood.pcap pcaps/http-leak.pcap"
LOOPS=${LOOPS:-6}

PARTS=${PARTS:-"capture drain"}
echo "== live capture on veth: target rate, achieved rate, kernel drops, CPU seconds (user+sys)"
[[ " $PARTS " == *" capture "* ]] || RATES=" "
for rate in ${RATES:-50000 100000 200000 400000}; do
  for workers in 1 2; do
    printf '[capture]\ninterface = "vb"\nworkers = %s\n[run]\nheartbeat_secs = 0\n' "$workers" > "$WORK/s.toml"
    ip netns exec "$NS" /usr/bin/time -f "%U %S" -o "$WORK/time" "$BIN/shaobing-sensor" run --config "$WORK/s.toml" >/dev/null 2>"$WORK/err" &
    timepid=$!
    sleep 1.5
    sensorpid=$(pgrep -P "$timepid")
    achieved=$(ip netns exec "$NS" tcpreplay -i va --pps="$rate" --loop="$LOOPS" $PCAPS 2>&1 | awk '/Rated:/ {print $(NF-1)}')
    sleep 1
    kill -TERM "$sensorpid"; wait "$timepid" || true
    drops=$(grep -o '[0-9]* kernel drops' "$WORK/err" | awk '{print $1}')
    cpu=$(awk '{print $1 + $2}' "$WORK/time")
    echo "sensor  workers=$workers target=$rate pps achieved=$achieved pps drops=${drops:-?} cpu=${cpu}s"
  done
  ip netns exec "$NS" tcpdump -q -i vb -B 262144 -w /dev/null 2>"$WORK/td" &
  tdpid=$!
  sleep 1.5
  achieved=$(ip netns exec "$NS" tcpreplay -i va --pps="$rate" --loop="$LOOPS" $PCAPS 2>&1 | awk '/Rated:/ {print $(NF-1)}')
  sleep 1
  kill -INT "$tdpid"; wait "$tdpid" || true
  echo "tcpdump           target=$rate pps achieved=$achieved pps drops=$(awk '/dropped by kernel/ {print $1}' "$WORK/td")"
done

echo "== spool drain: 1,000,000 incidents into a real collector + ClickHouse"
N=${SPOOL_INCIDENTS:-1000000}
"$BIN/../release/examples/fill_spool" "$WORK/spool" "$N"
CHP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/ch" && cp deploy/clickhouse/dev-config.xml "$WORK/ch/config.xml"
(cd "$WORK/ch" && exec /usr/sbin/clickhouse-server --config-file="$WORK/ch/config.xml" -- --http_port="$CHP" >/dev/null 2>&1) &
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$CHP/ping" >/dev/null && break; sleep 0.1; done
TOKEN=bench-token
cat > "$WORK/c.toml" <<TOML
listen = "127.0.0.1:$CP"
[clickhouse]
url = "http://127.0.0.1:$CHP"
database = "shaobing"
[[sensors]]
name = "bench"
token_sha256 = "$("$BIN/shaobing-collector" hash-token "$TOKEN")"
TOML
"$BIN/shaobing-collector" migrate --config "$WORK/c.toml" >/dev/null 2>&1
"$BIN/shaobing-collector" serve --config "$WORK/c.toml" >/dev/null 2>&1 &
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$CP/healthz" >/dev/null && break; sleep 0.1; done
start=$(date +%s.%N)
"$BIN/shaobing-sensor" deliver --collector "http://127.0.0.1:$CP" --token "$TOKEN" --spool "$WORK/spool" --grace-secs 3600 2>&1 | tail -1
end=$(date +%s.%N)
stored=$(curl -fs "http://127.0.0.1:$CHP/?query=SELECT%20count()%20FROM%20shaobing.incidents%20FINAL")
python3 -c "import sys; n=$N; t=$end-$start; print(f'drained {n} incidents in {t:.1f} s ({n/t:.0f} incidents/s); stored (FINAL): $stored')"
pkill -f "$WORK/c.toml" || true
pkill -f "$WORK/ch/config.xml" || true
