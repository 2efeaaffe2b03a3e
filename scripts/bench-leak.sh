#!/usr/bin/env bash
# Leak detector benchmarks (called by scripts/bench.sh; figures go in the
# "Leak detector" section of docs/BENCHMARKS.md):
#   1. whole-sensor replay of a generated payload-heavy capture (>= 500 MB,
#      mostly HTTP and SMTP; written to /tmp, never checked in), detection
#      on and off (--no-detect, the floor), three runs each;
#   2. automaton build time and memory for the default pack and a
#      10,000-pattern pack.
# The criterion matching bench runs from scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
MB="${BENCH_LEAK_MB:-600}"
PCAP="${BENCH_LEAK_PCAP:-/tmp/shaobing-bench-leak.pcap}"

cargo build --release -p shaobing-sensor -p shaobing-pcapgen --example bench_leak
if [ ! -s "$PCAP" ]; then
  echo "-- generating $PCAP ($MB MB)"
  target/release/examples/bench_leak "$PCAP" "$MB"
fi

echo "-- replay, detection on: shaobing-sensor replay $PCAP"
for i in 1 2 3; do
  /usr/bin/time -f "cpu: user %U s, sys %S s, wall %e s, max RSS %M KiB" \
    target/release/shaobing-sensor replay "$PCAP" >/dev/null
done
echo "-- replay, floor: shaobing-sensor replay --no-detect $PCAP"
for i in 1 2 3; do
  /usr/bin/time -f "cpu: user %U s, sys %S s, wall %e s, max RSS %M KiB" \
    target/release/shaobing-sensor replay --no-detect "$PCAP" >/dev/null
done

echo "-- automaton build and memory: default pack and 10,000 patterns"
cargo run --release -p shaobing-signatures --example large_pack
