#!/usr/bin/env bash
# Runs one fuzz target with libFuzzer on the stable toolchain:
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags]
# Targets: frame, text_operation, session, document_sync.
#
# The coverage instrumentation is what cargo-fuzz asks rustc for, minus the
# sanitizer flags that need nightly (-Z). New inputs go to a scratch corpus
# beside the committed seeds; a crash is written to fuzz/crashes/TARGET/,
# which `cargo test -p collab-fuzz` replays from then on. Needs a C++
# compiler (libfuzzer-sys builds libFuzzer).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags]}"
seconds="${2:-600}"
shift $(( $# > 1 ? 2 : 1 ))

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/fuzz}"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks -Copt-level=3 -Cdebuginfo=1"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros,
# which must not be instrumented.
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release -p collab-fuzz --features libfuzzer --bin "$target" --target "$triple"

scratch="target/fuzz-corpus/$target"
mkdir -p "$scratch" "fuzz/crashes/$target"
exec "$CARGO_TARGET_DIR/$triple/release/$target" \
    "$scratch" "fuzz/corpus/$target" \
    -max_total_time="$seconds" \
    -artifact_prefix="fuzz/crashes/$target/" \
    -print_final_stats=1 \
    "$@"
