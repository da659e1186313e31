#!/usr/bin/env bash
# Installs Home Assistant from PyPI into a virtual environment cached between runs, for the
# test that runs a real Home Assistant (crates/hearth-cli/tests/home_assistant.rs), and prints
# the path of its `hass`. Progress goes to standard error. Usage: scripts/ha-env.sh
#
# HA_VERSION is the newest release that runs on the newest Python this machine has (3.13.0:
# Home Assistant 2025.5 and later require 3.13.2). Measured here: 1 min 57 s cold, 0 s warm.
# The cache is $HEARTH_CACHE (default ~/.cache/hearth); delete it to start over.
set -euo pipefail

HA_VERSION=2025.4.4
MIN_PYTHON=3.13
cache="${HEARTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
venv="$cache/home-assistant-$HA_VERSION"

if [ -x "$venv/bin/hass" ] && [ -f "$venv/.installed" ]; then
  echo "$venv/bin/hass"
  exit 0
fi

# The newest Python >= MIN_PYTHON: on PATH, or one pyenv installed (a pyenv shim of a version
# that is not selected fails to run and is skipped).
python_ok() {
  "$1" -c "import sys; sys.exit(0 if sys.version_info >= tuple(map(int, '$MIN_PYTHON'.split('.'))) else 1)" \
    >/dev/null 2>&1
}
candidates=()
for v in 3.16 3.15 3.14 3.13; do
  p="$(command -v "python$v" 2>/dev/null || true)"
  [ -n "$p" ] && candidates+=("$p")
done
for p in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin/python3 2>/dev/null | sort -rV); do
  candidates+=("$p")
done
python=""
for p in "${candidates[@]}"; do
  if python_ok "$p"; then python="$p"; break; fi
done
if [ -z "$python" ]; then
  echo "ha-env: Home Assistant $HA_VERSION needs Python >= $MIN_PYTHON and none was found" >&2
  echo "ha-env: looked on PATH (python3.13 ... python3.16) and in pyenv's versions" >&2
  exit 1
fi

echo "ha-env: installing Home Assistant $HA_VERSION with $("$python" --version) into $venv" >&2
rm -rf "$venv"
mkdir -p "$cache"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "homeassistant==$HA_VERSION" >&2
# The packages of the integrations the test loads, at the versions their manifests pin: Home
# Assistant would pip-install them at its first start, but the test runs it with --skip-pip
# so that no test run downloads anything (without the frontend it starts in recovery mode).
reqs="$("$venv/bin/python" - <<'PY'
import json, pathlib, homeassistant
root = pathlib.Path(homeassistant.__file__).parent / "components"
for name in ("frontend", "mqtt"):
    for req in json.loads((root / name / "manifest.json").read_text()).get("requirements", []):
        print(req)
PY
)"
# shellcheck disable=SC2086 # one requirement per word
"$venv/bin/pip" install --quiet --disable-pip-version-check $reqs >&2
touch "$venv/.installed"
echo "$venv/bin/hass"
