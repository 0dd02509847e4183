"""The Wan speed table within a time budget (the lent GPU's 15 minutes are all there is).

Runs bench/wan_speed.py size after size, smallest first, each in its own process; every JSON line
it prints is appended to `--out` and flushed at once, so a size the budget cuts off keeps what it
measured. A size that cannot start in the time left is recorded as skipped, one that runs over as
stopped, one that fails with the end of its error output. The figures are wan_speed.py's own
(profiles against stock in the same process and run).

  --plan gpu    tiny (a check that the install works); the memory axis on 1.3b (2 steps: every memory
                profile's peak GPU memory and seconds against whole); 1.3b (10 steps), 5b (5 steps),
                a14b (4 steps): stock, exact, fast, turbo; `clip_s_at_full_steps` scales the denoise
  --plan tiny   the tiny Wan 2.2 A14B model, stock and turbo, 2 steps, and the tiny model's memory axis
                (whole, group-offload-fp8; 1 step), and a14b's stored bytes in bf16 and FP8 (meta
                device): what the test command runs
  --plan tiny-all  both tiny Wan 2.2 models (TI2V-5B, A14B): the CPU rehearsal of a device run
Run: .venv/bin/python bench/device_run.py --plan tiny --budget-s 300 --out /tmp/wan_speed.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

SPEED = Path(__file__).resolve().parent / "wan_speed.py"
PROFILES = ["--profiles", "exact,fast,turbo"]
MEMORY = ["--memory", "whole,encoder-cpu,fp8,model-offload,group-offload,group-offload-fp8"]
PLANS = {
    "gpu": [("tiny", ["--steps", "4", "--profiles", "turbo"]), ("1.3b", ["--steps", "2", *MEMORY]),
            ("1.3b", ["--steps", "10", *PROFILES]),
            ("5b", ["--steps", "5", *PROFILES]), ("a14b", ["--steps", "4", "--profiles", "turbo"])],
    "tiny": [("tiny-a14b", ["--steps", "2", "--profiles", "turbo"]),
             ("tiny", ["--steps", "1", "--memory", "whole,group-offload-fp8"]), ("a14b", ["--stored"])],
    "tiny-all": [("tiny-5b", ["--steps", "2", "--profiles", "turbo"]),
                 ("tiny-a14b", ["--steps", "2", "--profiles", "turbo"])],
}
MIN_START_S = 30  # a size is not started with less left than this


def run_size(size: str, extra: list[str], left_s: float, out) -> bool:
    """One wan_speed.py process, its lines copied to `out` as they come, stopped at `left_s`;
    False when it failed (not when the budget stopped it)."""
    proc = subprocess.Popen([sys.executable, str(SPEED), "--size", size, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
    timer = threading.Timer(left_s, proc.kill)
    timer.start()
    started = time.monotonic()
    errors: list[str] = []
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    drain.start()
    for line in proc.stdout:
        emit(out, line.strip())
    proc.wait()
    timer.cancel()
    drain.join(timeout=5)
    ran_s = round(time.monotonic() - started, 1)
    if proc.returncode and time.monotonic() - started >= left_s - 1:
        emit(out, json.dumps({"size": size, "stopped": f"budget: killed after {ran_s} s"}))
    elif proc.returncode:
        emit(out, json.dumps({"size": size, "error": f"exit {proc.returncode}", "stderr": "".join(errors)[-1500:]}))
        return False
    else:
        emit(out, json.dumps({"size": size, "done_s": ran_s}))
    return True


def emit(out, line: str) -> None:
    if line:
        print(line, flush=True)
        out.write(line + "\n")
        out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="gpu")
    parser.add_argument("--budget-s", type=float, default=540.0)
    parser.add_argument("--out", type=Path, default=Path("wan_speed.jsonl"))
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget_s
    args.out.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    with open(args.out, "a") as out:
        for size, extra in PLANS[args.plan]:
            left = deadline - time.monotonic()
            if left < MIN_START_S:
                emit(out, json.dumps({"size": size, "skipped": f"budget: {left:.0f} s left"}))
                continue
            if not run_size(size, extra, left, out):
                failed.append(size)
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (their errors are in {args.out})")


if __name__ == "__main__":
    main()
