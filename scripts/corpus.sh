#!/usr/bin/env bash
# Replays every capture in the given folders through the sensor, one file
# at a time, and fails if any replay panics, dies on a signal or hangs.
# A capture the sensor refuses with a clear error (not a capture, a link
# type it does not read, a pcapng file libpcap cannot read) is counted as
# refused, not as a failure. Used by .ci/run on ../shared/pcaps and
# ../shared/pcaps-suricata-verify (1,512 captures from Suricata's tests).
#
#   scripts/corpus.sh [--bin PATH] [--timeout SECS] DIR...
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/debug/shaobing-sensor"
TIMEOUT=60
dirs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) dirs+=("$1"); shift ;;
  esac
done
[ -x "$BIN" ] || { echo "corpus: no sensor binary at $BIN (cargo build first)" >&2; exit 2; }
ok=0; refused=0; failed=0; total=0; absent=0
started=$(date +%s)
for d in "${dirs[@]}"; do
  if [ ! -d "$d" ]; then
    echo "corpus: SKIPPED $d: not found" >&2
    absent=$((absent + 1))
    continue
  fi
  while IFS= read -r -d '' f; do
    total=$((total + 1))
    set +e
    err=$(timeout --signal=KILL "$TIMEOUT" "$BIN" replay "$f" 2>&1 >/dev/null)
    rc=$?
    set -e
    case $rc in
      0) ok=$((ok + 1)) ;;
      1) refused=$((refused + 1)) ;;
      137) failed=$((failed + 1)); echo "corpus: HANG (> ${TIMEOUT}s): $f" >&2 ;;
      *) failed=$((failed + 1)); echo "corpus: FAILED (exit $rc): $f" >&2
         printf '%s\n' "$err" | tail -5 >&2 ;;
    esac
  done < <(find "$d" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) -print0 | sort -z)
done
secs=$(( $(date +%s) - started ))
echo "corpus: $total captures in ${secs}s: $ok replayed, $refused refused with an error, $failed crashed or hung"
echo "corpus: $((ok + refused)) passed, $failed failed"
[ "$failed" -eq 0 ]
