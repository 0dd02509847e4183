#!/usr/bin/env bash
# Prepare, here, what a lent GPU machine needs to run bench/wan_speed.py: wheels for ITS Python
# (3.12, x86-64) of what its image lacks, at the versions of our lock, plus vidbatch itself, in
# .wheelhouse/ (git-ignored). The device call carries that folder and runs bench/device_run.sh.
#
# The image has torch, transformers, tokenizers, safetensors, huggingface-hub, numpy, pillow, peft
# and accelerate (.library/device/KINDS.md); it lacks diffusers and pydantic. The bench imports no
# polars or PyAV (54 + 36 MB of wheels: over the 64 MiB a call may carry).
#   bash infra/device-wheelhouse.sh            then, on the device:  bash bench/device_run.sh 540
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=infra/requirements.lock
WHEELS=.wheelhouse
PYTHON_VERSION="${DEVICE_PYTHON_VERSION:-3.12}"
NEEDED="diffusers pydantic pydantic-core annotated-types typing-inspection importlib-metadata zipp"
pip_() { if [ -x .venv/bin/pip ]; then .venv/bin/pip "$@"; else python3 -m pip "$@"; fi; }

pins=()
for name in $NEEDED; do
  pin=$(grep -iE "^${name}==" "$LOCK" | awk '{print $1}')
  [ -n "$pin" ] || { echo "$name is not in $LOCK" >&2; exit 1; }
  pins+=("$pin")
done
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
pip_ download -q --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$WHEELS" "${pins[@]}"
pip_ wheel -q --no-deps --no-build-isolation -w "$WHEELS" .   # vidbatch, pure Python
printf '%s\n' "${pins[@]}" vidbatch > "$WHEELS/requirements.txt"
du -sh "$WHEELS" | awk '{print "wheelhouse: " $1 " in '"$WHEELS"'/"}' >&2
