#!/usr/bin/env bash
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The reliability suite: fault injection, bad input, concurrency, crash consistency, reboots and
# security checks against the NVML simulator (tests/nvml_sim). `make reliability` runs it with
# the project venv first on PATH. Without arguments it writes the figures of the run to
# $RELIABILITY_REPORT (default build/reliability.md, so the checkout stays unmodified;
# `make reliability RELIABILITY_REPORT=docs/reliability.md` updates the published page);
# arguments replace the default pytest arguments (e.g. tests/reliability/test_concurrency.py)
# and the figures go to $RELIABILITY_REPORT only if it is set.
#
# Environment: RELIABILITY_WORKERS (parallel simulator workers, default 2), RELIABILITY_FULL=1
# (every error at every call instead of the sampled subset), RELIABILITY_KEEP=1 (keep the work dir).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "reliability: $python not found" >&2; exit 2; }
command -v ansible-playbook >/dev/null || { echo "reliability: ansible-playbook not on PATH" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gpuops-reliability.XXXXXX")
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [[ -z ${RELIABILITY_KEEP:-} ]]; then rm -rf "$work"; else echo "reliability: kept $work"; fi; }
trap cleanup EXIT

# The collection, importable as ansible_collections.gpuops.mig (module_utils, modules, roles).
mkdir -p "$work/collections/ansible_collections/gpuops"
ln -s "$root" "$work/collections/ansible_collections/gpuops/mig"

# The simulator's environment must exist before Python starts: pynvml dlopens libnvidia-ml.so.1
# through LD_LIBRARY_PATH. Each test makes its own state file and points MIGSIM_STATE at it.
"$python" "$root/tests/nvml_sim/migsim" init "$work/default-state.json" --gpus h100-80gb:1 >/dev/null
eval "$("$python" "$root/tests/nvml_sim/migsim" env "$work/default-state.json")"

export PYTHONPATH="$work/collections${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_COLLECTIONS_PATH="$work/collections"
export ANSIBLE_LOCAL_TEMP="$work/ansible-local" ANSIBLE_REMOTE_TEMP="$work/ansible-remote"
export ANSIBLE_HOME="$work/ansible-home"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_DEPRECATION_WARNINGS=0
export ANSIBLE_CONFIG="$work/ansible.cfg" PY_COLORS=0
printf '[defaults]\ninterpreter_python = %s\n' "$(command -v "$python")" >"$ANSIBLE_CONFIG"
export RELIABILITY_WORK="$work"
if [[ $# -eq 0 ]]; then
    export RELIABILITY_REPORT="${RELIABILITY_REPORT:-$root/build/reliability.md}"
    mkdir -p "$(dirname "$RELIABILITY_REPORT")"
    set -- "$here"
fi

cd "$root"
rc=0
"$python" -m pytest -p no:cacheprovider -q -ra --tb=short "$@" || rc=$?
exit "$rc"
