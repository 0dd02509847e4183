#!/usr/bin/env bash
# Turn a rented GPU box (Debian/Ubuntu, NVIDIA driver, Python >= 3.11) into a vidbatch GPU worker.
#   PREFECT_API_URL=https://prefect.example.com/api GPU_TYPE=H100 bash infra/gpu-worker.sh
#   PREFECT_API_URL=... GPU_TYPE="RTX 4090" WORK_POOL=vidbatch-gpu-24gb bash infra/gpu-worker.sh
# It joins WORK_POOL (default vidbatch-gpu: the render-wan/gpu deployment) and runs its batches:
# each batch is one process that loads the Wan pipeline once and renders its clips one after
# another. GPU_TYPE is the `gpu` of the policy's pool this box serves (`[routes.wan.pools.NAME]`):
# the box refuses to join when its card is another one (its clips were priced, and their memory
# profile chosen, for that card). One work pool (and deployment) per GPU type: README, Operating.
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
: "${GPU_TYPE:?set GPU_TYPE to the gpu of the policy pool this box serves, e.g. H100, L40S, RTX 4090}"
GPU_TYPE="$GPU_TYPE" "$VENV/bin/python" - <<'PY'
import os, sys, torch
if not torch.cuda.is_available():
    sys.exit("no CUDA device")
name, wanted = torch.cuda.get_device_name(0), os.environ["GPU_TYPE"]
gib = torch.cuda.get_device_properties(0).total_memory / 2**30
if wanted.lower().replace(" ", "") not in name.lower().replace(" ", ""):
    sys.exit(f"this box has {name} ({gib:.1f} GiB), not {wanted}: start it in the pool of its own GPU type")
print(f"{name}, {gib:.1f} GiB")
PY
export HF_HOME="${HF_HOME:-$PWD/.hf}"
export VIDBATCH_HOME="$PWD"
# Batches send a heartbeat event this often; a zombie-run automation on missing heartbeats marks
# a batch whose box vanished as Crashed, and the catalog flow resubmits its clips (README).
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-60}"
exec "$VENV/bin/prefect" worker start --pool "${WORK_POOL:-vidbatch-gpu}" --limit 1 \
  --name "${WORKER_NAME:-$(hostname)-${GPU_TYPE// /}-gpu${CUDA_VISIBLE_DEVICES:-0}}"
