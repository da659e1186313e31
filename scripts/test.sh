#!/usr/bin/env bash
# Set up everything the tests need, then run all of them: formatting, lints, unit tests,
# scenario tests against a real mosquitto, and the no_std cross-build. Exits non-zero on any
# failure. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# --- setup -----------------------------------------------------------------------------------
NO_STD_TARGET=riscv32imc-unknown-none-elf
NO_STD_CRATES=(hearth-core hearth-config hearth-storage hearth-drivers hearth-platform hearth-profile hearth-appliances hearth-runtime hearth-device hearth-netnow hearth-ota)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

find_mosquitto() {
  command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true
}

step "setup: mosquitto (broker) and mosquitto-clients (the tests' observer)"
if [ -z "$(find_mosquitto)" ] || ! command -v mosquitto_sub >/dev/null || ! command -v mosquitto_pub >/dev/null; then
  echo "mosquitto or its clients are missing: installing them with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
fi
HEARTH_MOSQUITTO="$(find_mosquitto)"
[ -n "$HEARTH_MOSQUITTO" ] || { echo "mosquitto could not be installed" >&2; exit 1; }
export HEARTH_MOSQUITTO
"$HEARTH_MOSQUITTO" -h 2>/dev/null | head -1 || true

step "setup: Home Assistant (PyPI, cached virtual environment) for the real-Home-Assistant test"
# About 2 minutes the first time, nothing after: scripts/ha-env.sh keeps it in ~/.cache/hearth.
HEARTH_HA="$(scripts/ha-env.sh)"
export HEARTH_HA
"$HEARTH_HA" --version

step "setup: libudev (serial-port support of \`hearth flash\`)"
if ! pkg-config --exists libudev 2>/dev/null; then
  echo "libudev-dev is missing: installing it with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libudev-dev pkg-config >/dev/null
fi

step "setup: tmux (the terminal the demo's live view is read from)"
if ! command -v tmux >/dev/null; then
  echo "tmux is missing: installing it with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
fi

step "setup: rust components and the $NO_STD_TARGET target"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
if ! rustup target list --installed | grep -qx "$NO_STD_TARGET"; then
  rustup target add "$NO_STD_TARGET"
fi

# --- checks ----------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
(cd firmware && cargo fmt -- --check)

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
(cd firmware && cargo clippy --release --locked -- -D warnings)
(cd firmware && cargo clippy --release --locked --features cpu-160mhz -- -D warnings)
(cd firmware && cargo clippy --release --locked --features lean -- -D warnings)

step "no_std cross-build for $NO_STD_TARGET"
args=()
for c in "${NO_STD_CRATES[@]}"; do args+=(-p "$c"); done
cargo build --locked --target "$NO_STD_TARGET" "${args[@]}"
# The example appliance without its simulator binary: what an appliance of one's own is.
cargo build --locked --target "$NO_STD_TARGET" -p hearth-example-counter --no-default-features

step "firmware for ESP32-C3 and ESP32-C6: release build, flashable images, size budget"
scripts/firmware.sh

step "fuzz the ESP-NOW frame decoders (v2 and v3, 20 s each)"
scripts/fuzz.sh 20

step "setup: cargo-nextest (runs the tests of every binary in one pool)"
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is missing: installing it from crates.io"
  cargo install --locked cargo-nextest
fi

# cargo-nextest, not `cargo test`: `cargo test` runs the test binaries one after the other, so
# the scenario suites (mostly waiting on simulated devices) queued behind each other; nextest
# runs every test as its own process in one pool of HEARTH_TEST_THREADS (measured 2026-12-07:
# the tests' run 9 minutes -> 4). Doc tests are not nextest's: they run after.
step "unit, image and scenario tests"
cargo nextest run --workspace --all-features --locked --no-fail-fast --test-threads "${HEARTH_TEST_THREADS:-6}"

step "doc tests"
cargo test --workspace --all-features --locked --doc

echo
echo "all checks passed"
