#!/usr/bin/env bash
# Fuzz targets (fuzz/, libFuzzer through libfuzzer-sys) on stable Rust:
# the coverage instrumentation cargo-fuzz would add is set here, so
# neither cargo-fuzz nor nightly is needed.
#
#   scripts/fuzz.sh                 each target for FUZZ_RUNS executions
#                                   (default 10,000,000; `make fuzz`)
#   scripts/fuzz.sh --smoke         each target for FUZZ_SECONDS (default 5)
#                                   seconds (.ci/run)
#
# Corpora grow under fuzz/corpus/TARGET (not checked in); a crash is
# written to fuzz/artifacts/TARGET/ and fails the run: turn it into a
# regression test next to the code it broke.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(content pdf http smtp_mime unescape signature_file encrypted)
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# With an explicit --target, RUSTFLAGS reach only the targets' code, not
# build scripts and proc macros (which cannot link the coverage hooks).
HOST="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --manifest-path fuzz/Cargo.toml --bins --target "$HOST"
if [ "${1:-}" = "--smoke" ]; then
  limit=(-max_total_time="${FUZZ_SECONDS:-5}")
else
  limit=(-runs="${FUZZ_RUNS:-10000000}")
fi
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "-- fuzz $t (${limit[*]})"
  "$CARGO_TARGET_DIR/$HOST/release/$t" "${limit[@]}" -max_len=65536 \
    -artifact_prefix="fuzz/artifacts/$t/" "fuzz/corpus/$t" 2>&1 | tail -n 3
  test "${PIPESTATUS[0]}" -eq 0
done
