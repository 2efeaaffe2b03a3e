#!/usr/bin/env bash
# Sizing figures for docs/scale.md (called by scripts/bench.sh): the same
# realistic ingest (examples/loadgen.rs) into one ClickHouse server, then
# into cluster mode on 1 and on 2 shards (ClickHouse 18.16 + ZooKeeper on
# this machine), with bytes per incident on disk after merges.
# Environment: SCALE_TOTAL (default 300000), SCALE_CONNS (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p shaobing-collector --examples
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/examples
echo "$(date -u +%H:%M) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/scalebench" "$BIN/loadgen" "${SCALE_TOTAL:-300000}" "${SCALE_CONNS:-16}"
echo "$(date -u +%H:%M) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
