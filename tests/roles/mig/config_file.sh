#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The mig role with mig_config_file, against the NVML simulator (one simulated host, 2 x H100):
#  1. on a new host (no installed copy) `--check --diff` succeeds and plans exactly what the real run
#     right after applies;
#  2. after the file is edited, `--check --diff` again plans exactly what the next real run applies
#     (and the GPUs end in that layout);
#  3. relative paths: mig_config_file beside the user's playbook; beside the inventory when the
#     collection's own playbook gpuops.mig.mig runs; hooks relative to the playbook, and the
#     collection's hooks by short name (k8s);
#  4. a hook file that is not there fails the run before anything changes, on a host that would not
#     change at all.
# About 8 ansible-playbook runs; the kubectl the k8s hook calls is a logging stub in the work dir
# (no cluster here), which proves the hook file was found and run, not what kubectl does.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
MIGSIM=$ROOT/tests/nvml_sim/migsim
# shellcheck source=tests/roles/mig/lib.sh disable=SC1091
. "$ROOT/tests/roles/mig/lib.sh"
pass=0
tier_work gpuops-mig-config-file
use_collection

eval "$("$MIGSIM" env "$WORK/probe.json")"
SIMLIB=$LD_LIBRARY_PATH
unset MIGSIM_STATE
"$MIGSIM" init "$WORK/node.json" --gpus h100-80gb:2
mkdir -p "$WORK/node"   # the lock file's directory (/run on a real host)

# kubectl stub for the collection's k8s hooks: logs its arguments.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\necho "kubectl $*" >> "%s"\n' "$WORK/kubectl.log" > "$WORK/bin/kubectl"
chmod +x "$WORK/bin/kubectl"

# The user's inventory (one directory) and project (another): nothing is looked up from the cwd.
mkdir -p "$WORK/inv/group_vars" "$WORK/inv/files" "$WORK/project/files" "$WORK/project/hooks" "$WORK/elsewhere"
cat > "$WORK/inv/hosts.yml" <<YAML
all:
  hosts:
    node: {}
YAML
cat > "$WORK/inv/group_vars/all.yml" <<YAML
ansible_connection: local
ansible_python_interpreter: "$PY"
gpuops_mig_become: false
gpuops_mig_environment:
  LD_LIBRARY_PATH: "$SIMLIB"
  MIGSIM_STATE: "$WORK/node.json"
  PATH: "$WORK/bin:$ROOT/tests/fakebin:$PATH"
  FAKE_NVIDIA_SMI_LOG: "$WORK/nvidia-smi.log"
  FAKE_NVIDIA_CTK_LOG: "$WORK/nvidia-ctk.log"
mig_run_preflight: false
mig_gpu_clients: []
mig_gpu_clients_mode_change: []
mig_reset_blocking_units: []
mig_state_dir: "$WORK/node/etc/gpuops"
mig_lock_file: "$WORK/node/gpuops-mig.lock"
mig_boot_service: false
mig_cdi_refresh: "false"
mig_config_name: mixed
YAML
mig_config() { # mig_config FILE GPU0-DEVICES GPU1-DEVICES: a mig-parted v1 file with one config, "mixed"
  cat > "$1" <<YAML
version: v1
mig-configs:
  mixed:
    - devices: [0]
      mig-enabled: true
      mig-devices: {$2}
    - devices: [1]
      mig-enabled: true
      mig-devices: {$3}
YAML
}
mig_config "$WORK/project/files/mig-config.yaml" '"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2' '"7g.80gb": 1'

# The user's playbook: the role, then the plan (check mode) and what the apply task did, saved for comparison.
cat > "$WORK/project/site.yml" <<'YAML'
- name: MIG layout from a mig-parted file beside this playbook
  hosts: all
  gather_facts: false
  environment: "{{ gpuops_mig_environment }}"
  tasks:
    - name: Converge
      ansible.builtin.include_role:
        name: gpuops.mig.mig
    - name: Save the plan and what was applied
      ansible.builtin.copy:
        content: >-
          {{ {'plan': __mig_plan.plan | map(attribute='actions') | list,
              'after': __mig_plan.diff.after | default(''),
              'applied': (__mig_apply.plan | default([])) | map(attribute='actions') | list,
              'applied_after': __mig_apply.diff.after | default('')} | to_nice_json }}
        dest: "{{ result_file }}"
        mode: "0644"
      check_mode: false
      delegate_to: localhost
YAML

play() { # play LOG PLAYBOOK [args...]
  local log=$1; shift
  ansible-playbook -i "$WORK/inv/hosts.yml" "$@" > "$log" 2>&1 || { tail -n 60 "$log" >&2; die "ansible-playbook $* (log $log)"; }
}
field() { "$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]], sort_keys=True))' "$1" "$2"; }
profiles() { "$MIGSIM" show "$WORK/node.json" | "$PY" -c '
import json, sys
print([sorted(gi["profile"] for gi in g["gpu_instances"]) for g in json.load(sys.stdin)["gpus"]])'; }

# ---------------------------------------------------------------- 1. new host
cd "$WORK/elsewhere"
play "$WORK/check1.log" "$WORK/project/site.yml" --check --diff -e mig_config_file=files/mig-config.yaml -e result_file="$WORK/check1.json"
[ ! -e "$WORK/node/etc/gpuops/mig-parted-config.yaml" ] || die "check mode installed the config file"
grep -q "Layout changes on GPU(s) 0 1" "$WORK/check1.log" || die "check on a new host did not plan GPUs 0 and 1"
play "$WORK/run1.log" "$WORK/project/site.yml" --diff -e mig_config_file=files/mig-config.yaml -e result_file="$WORK/run1.json"
[ "$(field "$WORK/check1.json" plan)" = "$(field "$WORK/run1.json" applied)" ] || die "new host: the check planned $(field "$WORK/check1.json" plan), the run applied $(field "$WORK/run1.json" applied)"
[ "$(field "$WORK/check1.json" after)" = "$(field "$WORK/run1.json" applied_after)" ] || die "new host: check and run diagrams differ"
[ "$(profiles)" = "[['1g.10gb', '1g.10gb', '2g.20gb', '3g.40gb'], ['7g.80gb']]" ] || die "new host layout: $(profiles)"
cmp -s "$WORK/project/files/mig-config.yaml" "$WORK/node/etc/gpuops/mig-parted-config.yaml" || die "the run did not install the file"
ok "new host: --check --diff with a relative mig_config_file (beside the playbook) planned exactly what the run applied"

# ---------------------------------------------------------------- 2. edited file
mig_config "$WORK/project/files/mig-config.yaml" '"1g.10gb": 7' '"7g.80gb": 1'
play "$WORK/check2.log" "$WORK/project/site.yml" --check --diff -e mig_config_file=files/mig-config.yaml -e result_file="$WORK/check2.json"
grep -q 'Layout changes on GPU(s) 0"' "$WORK/check2.log" || die "check after the edit did not plan GPU 0 only: $(grep -A2 'Show the plan' "$WORK/check2.log")"
[ "$(profiles)" = "[['1g.10gb', '1g.10gb', '2g.20gb', '3g.40gb'], ['7g.80gb']]" ] || die "check mode changed the GPUs: $(profiles)"
play "$WORK/run2.log" "$WORK/project/site.yml" --diff -e mig_config_file=files/mig-config.yaml -e result_file="$WORK/run2.json"
[ "$(field "$WORK/check2.json" plan)" = "$(field "$WORK/run2.json" applied)" ] || die "edited file: the check planned $(field "$WORK/check2.json" plan), the run applied $(field "$WORK/run2.json" applied)"
[ "$(field "$WORK/check2.json" after)" = "$(field "$WORK/run2.json" applied_after)" ] || die "edited file: check and run diagrams differ"
[ "$(profiles)" = "[['1g.10gb', '1g.10gb', '1g.10gb', '1g.10gb', '1g.10gb', '1g.10gb', '1g.10gb'], ['7g.80gb']]" ] || die "edited layout: $(profiles)"
ok "edited file: --check --diff planned exactly what the next run applied (GPU 0 only)"

# ---------------------------------------------------------------- 3. the collection's playbook: file beside the inventory, hooks by short name
mig_config "$WORK/inv/files/mig-config.yaml" '"3g.40gb": 2' '"7g.80gb": 1'
play "$WORK/run3.log" gpuops.mig.mig -e mig_config_file=files/mig-config.yaml \
  -e gpuops_mig_drain_tasks=k8s -e gpuops_mig_undrain_tasks=k8s
[ "$(profiles)" = "[['3g.40gb', '3g.40gb'], ['7g.80gb']]" ] || die "inventory-dir file layout: $(profiles)"
{ grep -q "^kubectl drain node " "$WORK/kubectl.log" && grep -q "^kubectl uncordon node" "$WORK/kubectl.log"; } \
  || die "the k8s hooks did not run: $(cat "$WORK/kubectl.log" 2>/dev/null)"
ok "gpuops.mig.mig: mig_config_file found beside the inventory; drain/undrain hooks 'k8s' found in the collection and run"

# Hooks relative to the user's playbook.
for event in drain undrain; do
  printf -- '- name: Mark\n  ansible.builtin.lineinfile: {path: "%s", line: "%s", create: true, mode: "0644"}\n  delegate_to: localhost\n' \
    "$WORK/hooks.log" "$event" > "$WORK/project/hooks/$event.yml"
done
mig_config "$WORK/project/files/mig-config.yaml" '"7g.80gb": 1' '"7g.80gb": 1'
play "$WORK/run4.log" "$WORK/project/site.yml" -e mig_config_file=files/mig-config.yaml -e result_file="$WORK/run4.json" \
  -e mig_drain_tasks_file=hooks/drain.yml -e mig_undrain_tasks_file=hooks/undrain.yml
[ "$(cat "$WORK/hooks.log")" = "$(printf 'drain\nundrain')" ] || die "hooks beside the playbook: $(cat "$WORK/hooks.log" 2>/dev/null)"
ok "drain/undrain task files relative to the playbook that names them"

# ---------------------------------------------------------------- 4. a missing hook fails before anything, even with no change due
"$MIGSIM" calls "$WORK/node.json" > "$WORK/calls-before.json"
if ansible-playbook -i "$WORK/inv/hosts.yml" "$WORK/project/site.yml" -e mig_config_file=files/mig-config.yaml \
    -e result_file="$WORK/run5.json" -e mig_drain_tasks_file=hooks/missing.yml > "$WORK/run5.log" 2>&1; then
  die "a missing drain hook did not fail the run"
fi
grep -q "mig_drain_tasks_file: hooks/missing.yml not found on the controller" "$WORK/run5.log" || { tail -n 30 "$WORK/run5.log" >&2; die "no clear message for the missing hook"; }
"$MIGSIM" calls "$WORK/node.json" | "$PY" -c '
import json, sys
before, after = json.load(open(sys.argv[1])), json.load(sys.stdin)
assert before == after, (before, after)' "$WORK/calls-before.json" || die "NVML was called although the hook was missing"
ok "a missing hook fails the run on a host with nothing to change, before any NVML call, naming the field"

echo "config_file: $pass checks passed"
