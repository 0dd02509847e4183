#!/usr/bin/env bash
# Set up a virtualenv (first time, or when pyproject.toml changed) and run one of:
#   demo  - the sample campaign end to end on the embedded default (ephemeral Prefect, tiny Wan,
#           closed route on the loopback Videos API sandbox, ./out/demo)
#   test  - the test suite
# torch==2.13.0 comes first so pip takes the local CPU wheel where there is one; on a GPU box,
# install your CUDA torch into the venv before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VIDBATCH_VENV:-.venv}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_LOGGING_LEVEL="${PREFECT_LOGGING_LEVEL:-WARNING}"  # keep the progress bar readable

setup() {
  if [ -x "$VENV/bin/vidbatch" ] && [ "$VENV/.installed" -nt pyproject.toml ]; then return; fi
  echo "setting up $VENV (about a minute)..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -c 'import torch' 2>/dev/null || "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e ".[wan,test]"
  touch "$VENV/.installed"
}

# The report test opens the HTML in a real headless browser: Debian's chromium. CI installs it;
# elsewhere the test is skipped (with its reason) when there is none and no root to install it.
browser() {
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then return; fi
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="$(command -v sudo || true)"
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "installing chromium for the report test..." >&2
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  elif [ "${CI:-}" = true ]; then
    echo "CI needs chromium for the report test and cannot install it (no root, no sudo)" >&2
    exit 1
  fi
}

case "${1:-}" in
  demo)
    setup
    shift
    out="${VIDBATCH_DEMO_OUT:-out/demo}"
    "$VENV/bin/vidbatch" run catalogs/sample.parquet --policy catalogs/demo-policy.toml --out "$out" --sandbox "$@"
    "$VENV/bin/vidbatch" ledger --out "$out"
    ;;
  setup-only)
    setup
    ;;
  test)
    setup
    browser
    shift
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: infra/dev.sh demo|test|setup-only [args...]" >&2
    exit 64
    ;;
esac
