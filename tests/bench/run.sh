#!/usr/bin/env bash
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# gpuops.mig benchmarks (`make bench`): disruption, feasibility, overhead, scale. Rewrites
# docs/benchmarks.md from scratch; every figure in it comes from the scripts in tests/bench/.
#
# Uses ansible-playbook and python3 from PATH (the Makefile puts the project venv first).
# Knobs (environment):
#   BENCH_RUNS=5              repetitions of the overhead measurements (>= 5 for the report)
#   BENCH_SCALE_HOSTS="16 64 256"  inventory sizes of the scale benchmark
#   BENCH_FORKS="8 16"        forks candidates (the faster apply at the trial size is used)
#   BENCH_NOOP_MAX=256        largest inventory that also gets a no-op run
#   BENCH_BUDGET_S=1140       whole-run budget: scale runs that would overrun it are skipped (and reported)
#   BENCH_MODELS=h100-80gb,a100-40gb,a30-24gb,rtx-pro-6000   models of the disruption and feasibility stages
#   BENCH_OUTPUT=docs/benchmarks.md
#   BENCH_KEEP=1              keep the work directory (logs, simulator states, raw JSON)
# Exit status: 1 if a claim fails (our plan destroys more than the minimum somewhere) or a stage fails.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUNS=${BENCH_RUNS:-5}
HOSTS=${BENCH_SCALE_HOSTS:-16 64 256}
FORKS=${BENCH_FORKS:-8 16}
BUDGET=${BENCH_BUDGET_S:-1140}
MODELS=${BENCH_MODELS:-h100-80gb,a100-40gb,a30-24gb,rtx-pro-6000}
OUTPUT=${BENCH_OUTPUT:-$ROOT/docs/benchmarks.md}
T0=$(date +%s)

log() { printf '[%(%H:%M:%S)T] bench: %s\n' -1 "$*" >&2; }

command -v ansible-playbook >/dev/null || { echo "bench: ansible-playbook is not on PATH (run it through 'make bench')" >&2; exit 2; }
PY=$(command -v python3)
"$PY" -c 'import pynvml' 2>/dev/null || { echo "bench: $PY cannot import pynvml (nvidia-ml-py)" >&2; exit 2; }
command -v gcc >/dev/null || { echo "bench: gcc is needed to build the NVML simulator" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpuops-bench.XXXXXX")
cleanup() { if [[ -z ${BENCH_KEEP:-} ]]; then rm -rf "$WORK"; else log "work directory kept: $WORK"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM
RESULTS=$WORK/results
mkdir -p "$RESULTS"

# A snapshot of the checkout as the collection (others may edit the tree while this runs).
COLL=$WORK/collections/ansible_collections/gpuops/mig
mkdir -p "$COLL"
tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./tests/output --exclude=./.cache \
    --exclude='__pycache__' -cf - . | tar -C "$COLL" -xf -
export BENCH_COLLECTIONS=$WORK/collections
export PYTHONDONTWRITEBYTECODE=1

# Build the simulated libnvidia-ml.so.1 once, before anything is timed.
"$PY" "$ROOT/tests/nvml_sim/migsim" init "$WORK/probe.json" --gpus h100-80gb:1 >/dev/null
"$PY" "$ROOT/tests/nvml_sim/migsim" env "$WORK/probe.json" >/dev/null

{
    printf 'start\t%s\n' "$T0"
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'ansible\t%s\n' "$(ansible-playbook --version | sed -n 1p)"
    printf 'ansible_playbook\t%s\n' "$(command -v ansible-playbook)"
    printf 'python\t%s\n' "$("$PY" -c 'import sys; print(sys.version.split()[0])') ($PY)"
    printf 'pynvml\t%s\n' "$("$PY" -c 'import importlib.metadata as m; print(m.version("nvidia-ml-py"))' 2>/dev/null || echo unknown)"
    printf 'commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf 'dirty\t%s\n' "$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l | tr -d ' ')"
    printf 'runs\t%s\n' "$RUNS"
} >"$RESULTS/meta.tsv"

failed=()
claim_failed=0
stage() {
    local name=$1; shift
    local s rc=0
    s=$(date +%s)
    log "$name: start (load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$@" || rc=$?
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$s" "$(date +%s)" "$rc" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/stages.tsv"
    log "$name: rc=$rc, $(( $(date +%s) - s )) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
    return $rc
}

stage disruption "$PY" "$HERE/disruption.py" --work "$WORK" --out "$RESULTS/disruption.json" --models "$MODELS" || {
    rc=$?; if [[ $rc -eq 1 && -s $RESULTS/disruption.json ]]; then claim_failed=1; else failed+=(disruption); fi; }
stage feasibility "$PY" "$HERE/feasibility.py" --work "$WORK" --out "$RESULTS/feasibility.json" --models "$MODELS" || failed+=(feasibility)
stage overhead "$PY" "$HERE/overhead.py" --work "$WORK" --out "$RESULTS/overhead.json" --runs "$RUNS" || failed+=(overhead)
stage fleet "$PY" "$HERE/fleet.py" --out "$RESULTS/fleet.json" --sizes "${BENCH_FLEET_SIZES:-100 1000 10000 100000}" || failed+=(fleet)
left=$(( BUDGET - ($(date +%s) - T0) - 20 ))
stage scale "$PY" "$HERE/scale.py" --work "$WORK" --out "$RESULTS/scale.json" --hosts "$HOSTS" --forks "$FORKS" \
    --noop-max "${BENCH_NOOP_MAX:-256}" --budget-s "$left" || failed+=(scale)

printf 'end\t%s\n' "$(date +%s)" >>"$RESULTS/meta.tsv"
"$PY" "$HERE/report.py" --results "$RESULTS" --output "$OUTPUT" --failed "${failed[*]:-}"
if mkdir -p "$ROOT/build/bench"; then cp "$RESULTS"/* "$ROOT/build/bench/" 2>/dev/null || true; fi
log "wrote $OUTPUT in $(( $(date +%s) - T0 )) s; raw results in build/bench/"

if ((${#failed[@]})); then log "failed stages: ${failed[*]}"; exit 1; fi
if ((claim_failed)); then log "CLAIM FAILED: our plan destroys more GPU instances than the minimum somewhere (see $OUTPUT)"; exit 1; fi
