#!/usr/bin/env bash
# Fuzz hearth-netnow's frame decoders with cargo-fuzz (libFuzzer) for a short fixed time per
# target. Installs what it needs (a nightly toolchain, cargo-fuzz) only if it is missing, builds
# the targets of crates/hearth-netnow/fuzz, and runs each from a temporary copy of its seed
# corpus, so nothing is written into the repository. Exits non-zero if a target crashes; the
# crashing input is then printed in hex and kept.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]          (default 20)
# Environment: HEARTH_FUZZ_SECONDS (same as the argument), HEARTH_FUZZ_DIR (another fuzz project
# laid out like crates/hearth-netnow/fuzz, e.g. a copy with a planted bug), CARGO_TARGET_DIR.
# Reproduce a crash: cd crates/hearth-netnow && cargo +nightly fuzz run <target> <crash file>
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

CARGO_FUZZ_VERSION=0.13.2
TARGETS=(decode_v2 decode_v3)
SECONDS_PER_TARGET="${1:-${HEARTH_FUZZ_SECONDS:-20}}"
FUZZ_DIR="$(cd "${HEARTH_FUZZ_DIR:-$REPO/crates/hearth-netnow/fuzz}" && pwd)"
# The fuzz project is a workspace of its own; it shares the root's target directory. cargo fuzz
# builds for an explicit --target, so its artifacts land in target/<host triple>/release, apart
# from the workspace's own builds.
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

step() { printf '\n== %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || {
  echo "seconds per target must be a positive integer, not '$SECONDS_PER_TARGET'" >&2
  exit 2
}
started=$(date +%s)

# --- setup -----------------------------------------------------------------------------------
step "setup: nightly toolchain (cargo fuzz needs -Z sanitizer flags)"
if rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "nightly is installed: $(rustup run nightly rustc --version)"
else
  run rustup toolchain install nightly --profile minimal
fi

step "setup: cargo-fuzz $CARGO_FUZZ_VERSION"
installed="$(cargo +nightly fuzz --version 2>/dev/null || true)"
if [ "$installed" = "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "cargo-fuzz is installed: $installed"
else
  echo "cargo-fuzz is ${installed:-missing}: installing $CARGO_FUZZ_VERSION from crates.io"
  run cargo +nightly install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# --- build -----------------------------------------------------------------------------------
host="$(rustup run nightly rustc -vV | sed -n 's/^host: //p')"
step "build: ${TARGETS[*]} (release, debug assertions, AddressSanitizer) into $TARGET_DIR/$host"
# cargo fuzz finds the fuzz project as ./fuzz of the crate it is run in.
(
  cd "$FUZZ_DIR/.."
  for t in "${TARGETS[@]}"; do
    run cargo +nightly fuzz build --debug-assertions --target-dir "$TARGET_DIR" "$t"
  done
)

# --- run -------------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/hearth-fuzz.XXXXXX")"
keep_work=0
trap '[ "$keep_work" = 1 ] || rm -rf "$work"' EXIT
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  step "fuzz $t for ${SECONDS_PER_TARGET}s"
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  log="$work/$t.log"
  mkdir -p "$corpus" "$artifacts"
  run cp -R "$FUZZ_DIR/seeds/$t/." "$corpus/"
  seeds=$(find "$corpus" -type f | wc -l)
  status=0
  # Frames are at most 250 bytes; 512 leaves room to probe the length checks.
  run "$TARGET_DIR/$host/release/$t" "$corpus" \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=512 -timeout=10 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  # -print_final_stats prints this whether the run ended on time or on a crash.
  runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)$/\1/p' "$log" | tail -1)"
  grown=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    tail -n 3 "$log"
    summary+=("$t: ${runs:-?} runs in ${SECONDS_PER_TARGET}s, corpus $seeds -> $grown inputs")
  else
    keep_work=1
    failed+=("$t")
    summary+=("$t: FAILED (exit $status) after ${runs:-?} runs")
    echo "$t FAILED with exit status $status; what libFuzzer reported ($log):"
    grep -E -A 2 "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | head -n 20 || true
    grep -E "^SUMMARY|^MS:|Test unit written" "$log" || true
    for crash in "$artifacts"/*; do
      [ -f "$crash" ] || continue
      echo "crashing input $crash ($(wc -c <"$crash") bytes), hex:"
      od -An -v -tx1 "$crash" | tr -d ' \n'
      echo
    done
  fi
done

step "summary ($(($(date +%s) - started))s in all)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs and logs kept in $work)" >&2
  exit 1
fi
echo "no crashes"
