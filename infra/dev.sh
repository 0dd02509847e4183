#!/usr/bin/env bash
# Set up a virtualenv from the committed lock (first time, or when the lock changed) and run one of:
#   demo  - the sample campaign end to end on the embedded default (ephemeral Prefect, tiny Wan,
#           three routes: tiny Wan, hosted Wan and the closed route, the paid two on loopback
#           sandboxes, ./out/demo)
#   test  - the test suite
#   lock  - re-resolve every dependency into infra/requirements.lock (on purpose, its own commit)
# Every version installed comes from infra/requirements.lock (pip-tools, with hashes). torch is
# locked at the local CPU wheel (torch==2.13.0+cpu); a GPU box installs its CUDA torch instead
# (infra/gpu-worker.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VIDBATCH_VENV:-.venv}"
LOCK=infra/requirements.lock
PIP_TOOLS="pip-tools==7.6.2"
# The LiteLLM proxy the gateway tests put in front of the loopback Videos API: its own virtualenv and
# lock (hashes), so it never enters vidbatch's; installed like chromium and PostgreSQL.
GATEWAY="litellm[proxy]==1.108.7"
GATEWAY_VENV="${VIDBATCH_GATEWAY_VENV:-.venv-gateway}"
GATEWAY_LOCK=infra/gateway.lock
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_LOGGING_LEVEL="${PREFECT_LOGGING_LEVEL:-WARNING}"  # keep the progress bar readable

setup() {
  if [ -x "$VENV/bin/vidbatch" ] && [ "$VENV/.installed" -nt "$LOCK" ] && [ "$VENV/.installed" -nt pyproject.toml ]; then
    return
  fi
  echo "setting up $VENV from $LOCK (about a minute)..." >&2
  python3 -m venv "$VENV"
  # Exactly the locked versions, each checked against its hash; then vidbatch itself, built with
  # the locked setuptools and without resolving anything more.
  "$VENV/bin/pip" install -q --require-hashes --no-deps -r "$LOCK"
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .
  "$VENV/bin/pip" check >/dev/null || { "$VENV/bin/pip" check >&2; exit 1; }
  touch "$VENV/.installed"
}

lock() {
  # pip-tools rather than uv: pip reads this machine's pip configuration (find-links with the local
  # CPU torch wheel); uv does not, and would resolve the multi-GB CUDA torch from PyPI.
  local tools="${VENV}-lock"
  [ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q "$PIP_TOOLS"; }
  printf 'torch==2.13.0\nsetuptools>=68\n' > "$tools/extra.in"
  CUSTOM_COMPILE_COMMAND="bash infra/dev.sh lock" "$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe \
    --strip-extras --no-emit-index-url --no-emit-find-links --extra wan --extra test \
    --output-file "$LOCK" pyproject.toml "$tools/extra.in"
  sed -i "s#$tools/extra.in#infra/dev.sh (torch, setuptools)#" "$LOCK"
  echo "wrote $LOCK: review the diff and commit it on its own" >&2
  # The gateway: resolved by pip in a scratch venv (pip-compile's own resolution of litellm[proxy]
  # backtracks for tens of minutes), then every pinned version hashed.
  rm -rf "$tools/gateway" && python3 -m venv "$tools/gateway" && "$tools/gateway/bin/pip" install -q "$GATEWAY"
  "$tools/gateway/bin/pip" freeze --exclude-editable > "$tools/gateway.in"
  CUSTOM_COMPILE_COMMAND="bash infra/dev.sh lock" "$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe \
    --strip-extras --no-emit-index-url --no-emit-find-links --output-file "$GATEWAY_LOCK" "$tools/gateway.in"
  sed -i "s#$tools/gateway.in#infra/dev.sh ($GATEWAY, as resolved)#" "$GATEWAY_LOCK"
  echo "wrote $GATEWAY_LOCK" >&2
}

gateway() {  # the LiteLLM proxy for the gateway tests, from its lock, in its own virtualenv
  if [ -x "$GATEWAY_VENV/bin/litellm" ] && [ "$GATEWAY_VENV/.installed" -nt "$GATEWAY_LOCK" ]; then
    return
  fi
  echo "setting up $GATEWAY_VENV (the LiteLLM proxy, for the gateway tests) from $GATEWAY_LOCK..." >&2
  python3 -m venv "$GATEWAY_VENV"
  "$GATEWAY_VENV/bin/pip" install -q --require-hashes --no-deps -r "$GATEWAY_LOCK"
  touch "$GATEWAY_VENV/.installed"
}

# Debian packages some tests need: Debian's chromium (the report test opens the HTML in a real
# headless browser) and postgresql (the ledger tests start a throw-away cluster of their own).
# Installed when root or sudo allows; CI fails without them, elsewhere those tests are skipped.
apt_install() {  # PACKAGE WHAT-FOR
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="$(command -v sudo || true)"
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "installing $1 for $2..." >&2
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null
  elif [ "${CI:-}" = true ]; then
    echo "CI needs $1 for $2 and cannot install it (no root, no sudo)" >&2
    exit 1
  fi
}
browser() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null || apt_install chromium "the report test"; }
postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql "the ledger tests"; }

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
  lock)
    lock
    ;;
  test)
    # The gateway's virtualenv builds beside vidbatch's (pip is mostly one core; the two took 77 s
    # and 37 s one after the other on 2 cores).
    gateway & building_gateway=$!
    setup
    browser
    postgres
    wait "$building_gateway"
    shift
    # The linter and the formatter first (pyproject's [tool.ruff]: pyflakes, pycodestyle, bugbear;
    # `ruff format` owns the layout): a second, and a failing check fails the command before any test runs.
    "$VENV/bin/ruff" check --quiet . || { echo "ruff check failed: fix the lines above (or run ruff check --fix)" >&2; exit 1; }
    "$VENV/bin/ruff" format --check --quiet . || { echo "ruff format: the files above are not formatted (run .venv/bin/ruff format)" >&2; exit 1; }
    # Workers (pytest-xdist): most tests wait on servers, sandboxes and subprocesses, so three
    # share 2 cores well; VIDBATCH_TEST_WORKERS=0 runs in this process (a debugger, -x).
    exec "$VENV/bin/python" -m pytest -n "${VIDBATCH_TEST_WORKERS:-3}" --dist loadgroup "$@"
    ;;
  *)
    echo "usage: infra/dev.sh demo|test|lock|setup-only [args...]" >&2
    exit 64
    ;;
esac
