#!/usr/bin/env bash
# Build the Hearth firmware for ESP32-C3 and ESP32-C6 in release mode, save a flashable merged
# image for each (bootloader + partition table + app + an example config), print a size report
# and fail if an image exceeds its budget in firmware/size-budget.txt.
# Usage: scripts/firmware.sh [OUTDIR]   (default: target/firmware, or $CARGO_TARGET_DIR/firmware)
set -euo pipefail
cd "$(dirname "$0")/.."
# The target dir: $CARGO_TARGET_DIR when set (an absolute path), else the workspace's target/.
tdir="${CARGO_TARGET_DIR:-target}"
out="${1:-$tdir/firmware}"
mkdir -p "$out"

rustup target list --installed | grep -qx riscv32imc-unknown-none-elf || rustup target add riscv32imc-unknown-none-elf
rustup target list --installed | grep -qx riscv32imac-unknown-none-elf || rustup target add riscv32imac-unknown-none-elf
rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools
python3 -m esptool version >/dev/null 2>&1 || python3 -m pip install -q --disable-pip-version-check "esptool==5.6.0"
llvm_size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"

# Source paths are cut to `crate-version/src/file.rs` (panic locations name their file): the
# full registry and checkout prefixes cost ~13 KB of flash on the C3. The flags join those of
# firmware/.cargo/config.toml.
# `cargo fetch` first, so the registry directories exist on a new machine.
(cd firmware && cargo fetch --locked)
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
remap=""
for dir in "$cargo_home"/registry/src/*/; do
  [ -d "$dir" ] && remap="$remap\"--remap-path-prefix=$dir=\", "
done
remap="$remap\"--remap-path-prefix=$(pwd)/=\""
build() { # chip triple
  local chip=$1 triple=$2 start end
  start=$(date +%s)
  (cd firmware && cargo build --release --locked --target "$triple" --no-default-features --features "$chip" \
    --config "target.'cfg(target_arch = \"riscv32\")'.rustflags=[$remap]")
  end=$(date +%s)
  echo "$chip: firmware built in $((end - start)) s"
}

build esp32c3 riscv32imc-unknown-none-elf
build esp32c6 riscv32imac-unknown-none-elf

cargo build --locked --features flash --bin hearth
hearth="$tdir/debug/hearth"

status=0
printf '\n%-8s %10s %10s %10s %8s %8s %10s %10s\n' chip image app_budget text rodata data bss static_ram
for chip in esp32c3 esp32c6; do
  case $chip in
    esp32c3) triple=riscv32imc-unknown-none-elf ;;
    esp32c6) triple=riscv32imac-unknown-none-elf ;;
  esac
  elf="$tdir/$triple/release/hearth-firmware"
  img="$out/hearth-$chip.bin"
  "$hearth" flash --chip "$chip" --config firmware/example-config.txt --elf "$elf" --save-image "$img" > "$out/hearth-$chip.segments"
  app=$(sed -n 's/.*merged .* image written (app \([0-9]*\) bytes).*/\1/p' "$out/hearth-$chip.segments")
  budget=$(awk -v c="$chip" '$1 == c { print $2 }' firmware/size-budget.txt)
  sizes=$("$llvm_size" -A "$elf")
  sec() { echo "$sizes" | awk -v s="$1" '$1 == s { t += $2 } END { print t + 0 }'; }
  text=$(( $(sec .text) + $(sec .rwtext) + $(sec .rwtext.wifi) + $(sec .trap) ))
  rodata=$(( $(sec .rodata) + $(sec .rodata.wifi) ))
  data=$(( $(sec .data) + $(sec .data.wifi) ))
  bss=$(sec .bss)
  printf '%-8s %10s %10s %10s %8s %8s %10s %10s\n' "$chip" "$app" "$budget" "$text" "$rodata" "$data" "$bss" $((data + bss))
  # An independent check of the app image by Espressif's own tool: checksum, SHA-256 and the
  # app descriptor.
  python3 - "$img" "$app" "$out/app-$chip.bin" <<'PY'
import sys
image, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(image, "rb").read()
open(out, "wb").write(data[0x10000:0x10000 + size])
PY
  info=$(python3 -m esptool --chip "$chip" image-info "$out/app-$chip.bin" 2>&1) || { echo "$info" >&2; status=1; }
  if [ "$(grep -c '(valid)' <<<"$info")" -ne 2 ] || ! grep -q 'Project name: hearth-firmware' <<<"$info"; then
    echo "$chip: esptool does not accept the app image:" >&2; echo "$info" >&2; status=1
  fi
  if [ -z "$app" ] || [ -z "$budget" ]; then
    echo "$chip: could not read the image size or its budget" >&2; status=1
  elif [ "$app" -gt "$budget" ]; then
    echo "$chip: app image $app bytes exceeds the budget of $budget bytes (firmware/size-budget.txt)" >&2; status=1
  fi
done
echo "images (flash at 0x0): $out/hearth-esp32c3.bin, $out/hearth-esp32c6.bin; esptool image-info: valid"
exit $status
