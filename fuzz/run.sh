#!/usr/bin/env bash
# Fuzzes each target for a bounded time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 60 seconds each, every target
#
# Builds the targets with libFuzzer's coverage instrumentation (the flags
# `cargo fuzz` passes) straight through cargo, so cargo-fuzz need not be
# installed. With a nightly toolchain AddressSanitizer is on as well; on
# stable the same instrumentation works without it. Inputs that find new
# coverage go to fuzz/target/corpus-new/<target>/ (not committed: copy the
# interesting ones into fuzz/corpus/<target>/); a failing input is saved in
# fuzz/artifacts/<target>/ and the script exits non-zero.
#
# FUZZ_OPTIONAL=1 turns "this machine cannot build fuzz targets" into a
# message and exit 0 (what CI does); otherwise it is an error.
# FUZZ_TARGET_DIR puts the build elsewhere than fuzz/target (CI keeps it
# between runs: the first build compiles every dependency of gatehouse).
# FUZZ_NIGHTLY=0 builds with the default toolchain even if nightly is there.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(token_verify token_request)
if [ "$seconds" = 0 ]; then
    echo "fuzz: SKIPPED, asked for 0 seconds"
    exit 0
fi
build_dir=${FUZZ_TARGET_DIR:-target}

unsupported() {
    if [ "${FUZZ_OPTIONAL:-0}" = 1 ]; then
        echo "fuzz: SKIPPED, $1"
        exit 0
    fi
    echo "fuzz: cannot fuzz on this machine: $1" >&2
    exit 1
}

command -v c++ >/dev/null || unsupported "no C++ compiler to build libFuzzer"

flags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg fuzzing
    -Cdebug-assertions
    -Coverflow-checks
)
cargo=(cargo)
rustc=(rustc)
sanitizer="none (stable toolchain: coverage-guided, without AddressSanitizer)"
if [ "${FUZZ_NIGHTLY:-1}" = 1 ] && command -v rustup >/dev/null &&
    rustup run nightly rustc --version >/dev/null 2>&1; then
    cargo=(rustup run nightly cargo)
    rustc=(rustup run nightly rustc)
    flags+=(-Zsanitizer=address)
    sanitizer="address ($("${rustc[@]}" --version))"
fi
host=$("${rustc[@]}" -vV | sed -n 's/^host: //p')

# Coverage instrumentation is a stable codegen option; check that this
# compiler takes the flags before spending minutes on a build.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
# (An object file only: linking needs libFuzzer, which the build brings.)
echo 'pub fn probe() {}' >"$probe/probe.rs"
if ! "${rustc[@]}" "${flags[@]}" --crate-type=lib --emit=obj "$probe/probe.rs" \
    -o "$probe/probe.o" >/dev/null 2>&1; then
    unsupported "the compiler does not take libFuzzer's coverage flags"
fi

echo "fuzz: sanitizer: $sanitizer"
echo "fuzz: building the fuzz targets"
# The main lock file, so gatehouse is fuzzed with the versions it ships;
# cargo adds what only the fuzz crate needs.
cp ../Cargo.lock Cargo.lock
RUSTFLAGS="${flags[*]}" CARGO_TARGET_DIR="$build_dir" "${cargo[@]}" build --release --quiet \
    --target "$host" --bins

for target in "${targets[@]}"; do
    mkdir -p "target/corpus-new/$target" "artifacts/$target"
    log="target/$target.log"
    echo "fuzz: $target for ${seconds}s"
    status=0
    "$build_dir/$host/release/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
        "target/corpus-new/$target" "corpus/$target" >"$log" 2>&1 || status=$?
    grep -E '^(INFO: seed|#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz: $target FAILED (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
done
