#!/usr/bin/env bash
# Leak detector benchmarks (called by scripts/bench.sh; figures go in the
# "Leak detector" section of docs/BENCHMARKS.md):
#   1. whole-sensor replay of a generated payload-heavy capture (>= 500 MB,
#      mostly HTTP and SMTP; written to /tmp, never checked in): both
#      detectors, the leak detector alone, the default pack turned to
#      direction = "any" (every byte scanned), and the floor (--no-detect),
#      three runs each;
#   2. false positives on >= 10 GB of outbound TLS, SSH, QUIC and random
#      traffic (bench_encrypted, streamed through a FIFO, nothing on disk);
#   3. the defragmenter under a never-completed fragment flood;
#   4. automaton build time and memory for the default pack and a
#      10,000-pattern pack.
# The criterion matching bench runs from scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
MB="${BENCH_LEAK_MB:-600}"
PCAP="${BENCH_LEAK_PCAP:-/tmp/shaobing-bench-leak.pcap}"

cargo build --release -p shaobing-sensor -p shaobing-pcapgen --example bench_leak
# CPU time and peak memory per run when GNU time is installed (Debian: `time`).
timed() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "cpu: user %U s, sys %S s, wall %e s, max RSS %M KiB" "$@"
  else
    time "$@"
  fi
}
if [ ! -s "$PCAP" ]; then
  echo "-- generating $PCAP ($MB MB)"
  target/release/examples/bench_leak "$PCAP" "$MB"
fi

echo "-- replay, detection on: shaobing-sensor replay $PCAP"
for i in 1 2 3; do
  timed target/release/shaobing-sensor replay "$PCAP" >/dev/null
done
LEAK_ONLY="$(mktemp)"
ANY="$(mktemp -d)"
trap 'rm -rf "$LEAK_ONLY" "$ANY"' EXIT
printf '[volumetric]\nenabled = false\n' >"$LEAK_ONLY"
echo "-- replay, leak detector only: shaobing-sensor replay --config (volumetric off) $PCAP"
for i in 1 2 3; do
  timed target/release/shaobing-sensor replay --config "$LEAK_ONLY" "$PCAP" >/dev/null
done
cp signatures/rules/*.toml "$ANY"/
sed -i 's/^direction = "outbound"/direction = "any"/' "$ANY"/*.toml
echo "-- replay, default pack with direction = \"any\": shaobing-sensor replay --signatures $ANY $PCAP"
for i in 1 2 3; do
  timed target/release/shaobing-sensor replay --signatures "$ANY" "$PCAP" >/dev/null
done
echo "-- replay, floor: shaobing-sensor replay --no-detect $PCAP"
for i in 1 2 3; do
  timed target/release/shaobing-sensor replay --no-detect "$PCAP" >/dev/null
done

echo "-- false positives on encrypted and random outbound traffic (${BENCH_FP_MB:-10240} MB streamed through a FIFO)"
cargo build --release -p shaobing-pcapgen --example bench_encrypted
FIFO="$(mktemp -u)"
mkfifo "$FIFO"
target/release/examples/bench_encrypted "$FIFO" "${BENCH_FP_MB:-10240}" &
timed target/release/shaobing-sensor replay "$FIFO" | wc -l | sed 's/^/incidents (all false positives): /'
wait
rm -f "$FIFO"

echo "-- defragmentation under a fragment flood (1,000,000 never-completed datagrams)"
cargo run --release -p shaobing-sensor --example defrag_flood 1000000

echo "-- automaton build and memory: default pack and 10,000 patterns"
cargo run --release -p shaobing-signatures --example large_pack
