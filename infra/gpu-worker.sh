#!/usr/bin/env bash
# Turn a rented GPU box (Debian/Ubuntu, NVIDIA driver, Python >= 3.11) into a vidbatch GPU worker.
#   PREFECT_API_URL=https://prefect.example.com/api bash infra/gpu-worker.sh
# It joins the vidbatch-gpu work pool and runs batches of the render-wan/gpu deployment: each
# batch is one process that loads the Wan pipeline once and renders its clips one after another.
# Weights load from the hub once (cached in HF_HOME) or from a local path named in the policy.
# One worker per GPU: on a box with several, start one per device with CUDA_VISIBLE_DEVICES=N.
# Options: CUDA_INDEX (default cu128), WORKER_NAME (default: host name and device).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect server API}"
VENV="${VIDBATCH_VENV:-.venv}"
LOCK=infra/requirements.lock
if [ ! -x "$VENV/bin/vidbatch" ] || [ "$LOCK" -nt "$VENV/.installed" ]; then
  python3 -m venv "$VENV"
  # The lock's torch version as the CUDA build (the lock itself holds the CPU wheel), then every
  # other locked version, hash-checked, without resolving anything more.
  torch_version="$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' "$LOCK")"
  "$VENV/bin/pip" install -q "torch==$torch_version" --index-url "https://download.pytorch.org/whl/${CUDA_INDEX:-cu128}"
  awk '/^[^ #]/ { skip = ($0 ~ /^torch==/) } !skip' "$LOCK" > "$VENV/requirements-gpu.lock"
  "$VENV/bin/pip" install -q --require-hashes --no-deps -r "$VENV/requirements-gpu.lock"
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .
  touch "$VENV/.installed"
fi
"$VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
export HF_HOME="${HF_HOME:-$PWD/.hf}"
export VIDBATCH_HOME="$PWD"
# Batches send a heartbeat event this often; a zombie-run automation on missing heartbeats marks
# a batch whose box vanished as Crashed, and the catalog flow resubmits its clips (README).
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-60}"
exec "$VENV/bin/prefect" worker start --pool vidbatch-gpu --limit 1 \
  --name "${WORKER_NAME:-$(hostname)-gpu${CUDA_VISIBLE_DEVICES:-0}}"
