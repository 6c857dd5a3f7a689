#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/fuzzing.md), each for SECONDS, one after another,
# and prints a table: target, seconds, executions, crashes. Exits non-zero if any target
# crashed (or failed to run).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default 600 s each, every target
#
# Each target fuzzes a temporary copy of its committed seed corpus (fuzz/corpus/<target>/),
# so a run never adds files there. FUZZ_UPDATE_CORPUS=1 merges what the run found back into
# the committed corpus (libFuzzer -merge=1: only inputs that add coverage).
# Crash inputs land in fuzz/artifacts/<target>/ (git-ignored); reproduce one with
#   cd fuzz && cargo +nightly fuzz run --sanitizer none -a TARGET artifacts/TARGET/crash-...
# FUZZ_SANITIZER=address builds with AddressSanitizer instead (slower; the crate forbids
# unsafe code, so the default is none). FUZZ_LOG_DIR keeps each target's libFuzzer log.
# FUZZ_PROFILE=dev builds without optimisation (faster to build, slower to fuzz).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-600}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))

# cargo-fuzz wants nightly; where there is none, the default toolchain with RUSTC_BOOTSTRAP=1
# accepts the same unstable flags.
tc=(+nightly)
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain; using the default one with RUSTC_BOOTSTRAP=1"
  tc=()
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo "${tc[@]}" fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Debug assertions on: integer overflow panics instead of wrapping, which is a finding here.
flags=(--sanitizer "${FUZZ_SANITIZER:-none}" --debug-assertions)
# FUZZ_PROFILE=dev builds unoptimised: cheaper to compile, slower to fuzz (the CI smoke).
profile=release
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
  flags+=(--dev)
  profile=debug
fi

all=$(cargo "${tc[@]}" fuzz list)
if [ $# -gt 0 ]; then
  targets=("$@")
  for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$all" || { echo "fuzz: no target named $t (have: $(echo $all))" >&2; exit 2; }
  done
else
  mapfile -t targets <<<"$all"
fi

echo "fuzz: building ${#targets[@]} target(s) ($(date -u +%H:%M:%S) UTC)"
build_start=$(date +%s)
cargo "${tc[@]}" fuzz build "${flags[@]}"
echo "fuzz: built in $(( $(date +%s) - build_start )) s"
# The binaries are run directly, so editing the sources during a long run rebuilds nothing.
bin="target/$(rustc "${tc[@]}" -vV | sed -n 's/^host: //p')/$profile"

work=$(mktemp -d "${TMPDIR:-/tmp}/sallyport-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
logs=${FUZZ_LOG_DIR:-$work/logs}
mkdir -p "$logs"

rows=()
failed=0
bad=0
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "artifacts/$t"
  if [ -d "corpus/$t" ]; then cp -R "corpus/$t/." "$work/corpus/$t/"; fi
  before=$(find "artifacts/$t" -type f | wc -l)
  log="$logs/$t.log"
  echo "fuzz: $t for $seconds s ($(date -u +%H:%M:%S) UTC)"
  start=$(date +%s)
  rc=0
  "$bin/$t" "$work/corpus/$t" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs="?"
  crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    bad=$((bad + 1))
    [ "$crashes" -gt 0 ] || crashes="exit $rc"
    echo "fuzz: $t FAILED; the end of its log:"
    tail -n 40 "$log" | sed 's/^/  | /'
  fi
  if [ "${FUZZ_UPDATE_CORPUS:-0}" = 1 ]; then
    mkdir -p "corpus/$t"
    "$bin/$t" -merge=1 "corpus/$t" "$work/corpus/$t" >>"$log" 2>&1 || echo "fuzz: merging $t's corpus failed (see $log)"
  fi
  rows+=("$(printf '%-16s %8s %14s %8s' "$t" "$took" "$execs" "$crashes")")
  printf '%-16s %8s %14s %8s\n' "$t" "$took" "$execs" "$crashes"
done

echo
printf '%-16s %8s %14s %8s\n' target seconds executions crashes
printf '%s\n' "${rows[@]}"
echo "fuzz: $(( ${#targets[@]} - bad )) passed, $bad failed"
exit "$failed"
