#!/usr/bin/env bash
# Read-only MIG check on a real GPU host: nvidia-smi's view and gpuops.mig's view, side by side.
# Usage: tests/hardware/run.sh OUTDIR
# Changes nothing on the GPU: only nvidia-smi queries, mig_info, and mig_layout in check mode (also timed
# against `command: /bin/true`, tests/hardware/overhead.yml, and their module processes run directly,
# tests/hardware/payload_times.py).
# Needs: python3 with nvidia-ml-py and ansible-core (on a bare GPU host, pass wheels in WHEELS_DIR).
set -euo pipefail
out=${1:?usage: run.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "${WHEELS_DIR:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$WHEELS_DIR"/*.whl
    export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$work/site/bin:$PATH"
fi

# nvidia-smi's view (read-only queries)
nvidia-smi -q > "$out/smi_q.txt"
nvidia-smi mig -lgip > "$out/lgip.txt"
nvidia-smi mig -lgipp > "$out/lgipp.txt"
nvidia-smi --query-gpu=index,uuid,mig.mode.current,mig.mode.pending --format=csv,noheader > "$work/mode_before.csv"

# The collection, at the path Ansible expects
mkdir -p "$work/ac/ansible_collections/gpuops"
cp -a "$repo" "$work/ac/ansible_collections/gpuops/mig"
rm -rf "$work/ac/ansible_collections/gpuops/mig/.git" "$work/ac/ansible_collections/gpuops/mig/.whl"

export ANSIBLE_COLLECTIONS_PATH="$work/ac" ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
ANSIBLE_PYTHON_INTERPRETER=$(command -v python3)
export OUT_DIR="$out" LOCK_FILE="$work/gpuops-mig.lock" ANSIBLE_PYTHON_INTERPRETER
playbook() {
    if command -v ansible-playbook >/dev/null 2>&1; then
        ansible-playbook -i localhost, -c local "$@"
    else
        python3 -c 'import sys; from ansible.cli.playbook import main; sys.argv[0] = "ansible-playbook"; sys.exit(main())' \
            -i localhost, -c local "$@"
    fi
}
playbook "$repo/tests/hardware/read_only.yml" | tee "$out/playbook.log"

# No-op overhead: mig_layout (check mode, nothing to change) and mig_info against command /bin/true. It needs
# a GPU with MIG disabled; where there is none it stops early, which does not fail the comparison.
overhead=ok
ANSIBLE_PIPELINING=1 ANSIBLE_CALLBACK_PLUGINS="$repo/tests/bench/callback_plugins" ANSIBLE_CALLBACKS_ENABLED=bench_timer \
    BENCH_TIMER_OUT="$out/overhead.json" playbook "$repo/tests/hardware/overhead.yml" > "$out/overhead.log" || overhead=failed

# Nothing changed: MIG mode and MIG devices are as they were before the run.
nvidia-smi --query-gpu=index,uuid,mig.mode.current,mig.mode.pending --format=csv,noheader > "$work/mode_after.csv"
{
    echo "MIG mode before: $(tr '\n' ';' < "$work/mode_before.csv")"
    echo "MIG mode after:  $(tr '\n' ';' < "$work/mode_after.csv")"
    nvidia-smi -L
} > "$out/smi_after.txt"
cmp -s "$work/mode_before.csv" "$work/mode_after.csv" || { echo "FAIL: MIG mode changed during the run" >&2; exit 1; }
if nvidia-smi -L | grep -q "MIG "; then echo "note: MIG devices exist on this GPU (they existed before; nothing here creates them)"; fi

python3 "$repo/tests/hardware/compare.py" "$out" | tee "$out/compare.txt"
if [ "$overhead" = ok ]; then
    python3 "$repo/tests/hardware/overhead_summary.py" "$out/overhead.json" | tee "$out/overhead.txt"
    # The same no-op tasks once more, their AnsiballZ payloads kept, then run directly: what the module
    # process costs apart from Ansible's handling of the task (read-only as above: check mode, mig_info).
    OVERHEAD_ROUNDS=1 ANSIBLE_KEEP_REMOTE_FILES=1 ANSIBLE_PIPELINING=0 ANSIBLE_REMOTE_TMP="$work/remote_tmp" \
        playbook "$repo/tests/hardware/overhead.yml" > "$out/payloads.log"
    python3 "$repo/tests/hardware/payload_times.py" "$work/remote_tmp" "${PAYLOAD_ROUNDS:-11}" | tee "$out/payloads.txt"
else
    echo "note: the overhead check stopped early (see $out/overhead.log); the comparison above stands" | tee "$out/overhead.txt"
fi
