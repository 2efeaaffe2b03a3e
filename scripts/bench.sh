#!/usr/bin/env bash
# `make bench`: long benchmarks, not part of `make test`. Each section prints
# the command it ran and its figures; docs/BENCHMARKS.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release

echo "== replay of the project's captures (release build, one core)"
for i in 1 2 3; do
  "$BIN/shaobing-sensor" replay pcaps/syn-flood.pcap pcaps/http-leak.pcap >/dev/null
done

echo "== signature matching (criterion)"
cargo bench -p shaobing-signatures --bench scan -- --warm-up-time 1 --measurement-time 3

# Further sections are appended below by each component.
for extra in scripts/bench-*.sh; do
  [ -e "$extra" ] || continue
  echo "== $extra"
  bash "$extra"
done
