#!/usr/bin/env bash
# A local Prefect server + UI + one worker for a team trying vidbatch (SQLite under ./.prefect-local).
#   bash infra/local-server.sh            # start everything; Ctrl-C stops it
# Then, in another shell:
#   export PREFECT_API_URL=http://127.0.0.1:4200/api
#   .venv/bin/vidbatch run catalogs/sample.parquet --policy catalogs/demo-policy.toml --sandbox --submit
#   .venv/bin/prefect deployment run produce-catalog/nightly      # the nightly, now
# UI: http://127.0.0.1:4200  (runs, task runs and their retries, artifacts, the concurrency limits)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VIDBATCH_VENV:-.venv}"
[ -x "$VENV/bin/vidbatch" ] || bash infra/dev.sh setup-only
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect-local}"
export PREFECT_API_URL="http://127.0.0.1:${PORT:-4200}/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export VIDBATCH_HOME="$PWD"
export VIDBATCH_TIMEZONE="${VIDBATCH_TIMEZONE:-UTC}"
export VIDBATCH_NIGHTLY_ACTIVE="${VIDBATCH_NIGHTLY_ACTIVE:-false}"   # true: really run every night at 01:00
export VIDBATCH_CATALOG="${VIDBATCH_CATALOG:-$PWD/catalogs/sample.parquet}"
export VIDBATCH_OUT="${VIDBATCH_OUT:-$PWD/out/nightly}"
export VIDBATCH_POLICY="${VIDBATCH_POLICY:-$PWD/catalogs/demo-policy.toml}"
export VIDBATCH_LEDGER_URL="${VIDBATCH_LEDGER_URL:-}"   # every deployed run's ledger; empty: SQLite beside each local --out

"$VENV/bin/prefect" server start --host 127.0.0.1 --port "${PORT:-4200}" &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
until curl -sf "$PREFECT_API_URL/health" >/dev/null; do sleep 1; done
for pool in vidbatch vidbatch-gpu vidbatch-gpu-24gb; do   # flows; Wan batches per GPU type (policy [wan] workers = "pool")
  "$VENV/bin/prefect" work-pool inspect "$pool" >/dev/null 2>&1 \
    || "$VENV/bin/prefect" work-pool create "$pool" --type process >/dev/null
done
"$VENV/bin/prefect" --no-prompt deploy --prefect-file infra/prefect.yaml --all >/dev/null
echo "Prefect UI: http://127.0.0.1:${PORT:-4200}   API: $PREFECT_API_URL   deployments: produce-catalog/nightly, produce-catalog/adhoc"
"$VENV/bin/prefect" worker start --pool vidbatch --limit "${WORKER_LIMIT:-2}" &
pids+=($!)
"$VENV/bin/prefect" worker start --pool vidbatch-gpu --limit 1 &   # stands in for a GPU box here
pids+=($!)
wait
