#!/usr/bin/env bash
# Volumetric detector benchmarks (called by scripts/bench.sh; figures go in
# docs/BENCHMARKS.md, section "Volumetric detector").
#
# Generates two header-only SYN-flood captures into /tmp (never checked
# in): 10 million 60-byte frames (64 bytes on the wire) to 10.0.0.10, from
# 10 million and from 1 million distinct sources. Then replays them in
# release mode, on one thread:
#   * with the volumetric detector only (leak detector off),
#   * with --no-detect (the floor: file reading and decoding),
#   * with the default configuration (both detectors),
# and reports packets/s (wall and per CPU second) and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SHAOBING_BENCH_DIR:-/tmp/shaobing-bench}
PACKETS=${SHAOBING_BENCH_PACKETS:-10000000}
mkdir -p "$DIR"

cargo build --release -q -p shaobing-sensor --bin shaobing-sensor
cargo build --release -q -p shaobing-pcapgen --example bench_flood
SENSOR=target/release/shaobing-sensor

for sources in 10000000 1000000; do
  f="$DIR/syn64-$PACKETS-$sources.pcap"
  [ -s "$f" ] || target/release/examples/bench_flood "$f" "$PACKETS" "$sources"
done
printf '[leak]\nenabled = false\n' > "$DIR/volumetric-only.toml"

# One run: prints wall packets/s, CPU seconds, packets per CPU second, RSS.
run() {
  local label=$1; shift
  local out
  out=$( { /usr/bin/time -f 'TIME %U %S %M' "$SENSOR" replay "$@" >/dev/null; } 2>&1 )
  local line pps cpu rss
  line=$(grep 'replayed' <<<"$out")
  pps=$(sed -E 's/.*\(([0-9]+) packets\/s.*/\1/' <<<"$line")
  cpu=$(awk '/^TIME/ {print $2 + $3}' <<<"$out")
  rss=$(awk '/^TIME/ {printf "%.1f", $4 / 1024}' <<<"$out")
  awk -v l="$label" -v p="$pps" -v c="$cpu" -v r="$rss" -v n="$PACKETS" \
    'BEGIN { printf "%-44s wall %6.2f M pps | cpu %5.2f s = %5.2f M pps per CPU-second | peak RSS %s MB\n", l, p/1e6, c, n/c/1e6, r }'
}

echo "== volumetric: $PACKETS-packet 64-byte SYN flood (release, one core)"
for i in 1 2 3; do
  run "volumetric only, 10M sources (run $i)" --config "$DIR/volumetric-only.toml" "$DIR/syn64-$PACKETS-10000000.pcap"
done
for i in 1 2 3; do
  run "--no-detect floor, 10M sources (run $i)" --no-detect "$DIR/syn64-$PACKETS-10000000.pcap"
done
run "volumetric only, 1M sources" --config "$DIR/volumetric-only.toml" "$DIR/syn64-$PACKETS-1000000.pcap"
run "default config (volumetric + leak), 10M sources" "$DIR/syn64-$PACKETS-10000000.pcap"
run "default config (volumetric + leak), 1M sources" "$DIR/syn64-$PACKETS-1000000.pcap"
