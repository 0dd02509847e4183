#!/usr/bin/env bash
# The one command for a lent GPU machine (see infra/device-wheelhouse.sh, run here first):
#   run(command="bash bench/device_run.sh 540", carry=[".wheelhouse"], timeout_s=600)
# Installs the carried wheels (no index: that machine reaches nothing), then the Wan speed table
# within BUDGET seconds, smallest sizes first, JSON lines flushed to $OUT/wan_speed.jsonl as they come.
set -uo pipefail
BUDGET="${1:-540}"
OUT="${OUT:-$PWD/device-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
started=$(date +%s)
python3 -m pip install -q --no-index --no-deps --find-links .wheelhouse -r .wheelhouse/requirements.txt \
  2>&1 | tail -5 | tee "$OUT/install.log"
python3 - <<'PY' 2>&1 | tee -a "$OUT/install.log"
import diffusers, pydantic, torch
print("diffusers", diffusers.__version__, "pydantic", pydantic.VERSION, "torch", torch.__version__,
      "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY
left=$(( BUDGET - ($(date +%s) - started) ))
python3 bench/device_run.py --plan "${DEVICE_PLAN:-gpu}" --budget-s "$left" \
  --out "$OUT/wan_speed.jsonl"
