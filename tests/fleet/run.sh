#!/usr/bin/env bash
# Copyright (c) 2026 gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Fleet planning end to end on simulated hosts of three models (H100, H200, B200): plan with
# playbooks/plan.yml, apply with playbooks/mig.yml, read again. Asserts: the fleet holds exactly the
# demand, the GPU instances destroyed equal the plan's count, a busy instance survives, and a second
# plan on the converged fleet changes nothing. Runtime here: about 1-2 minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MIGSIM=$ROOT/tests/nvml_sim/migsim
# shellcheck source=tests/roles/mig/lib.sh disable=SC1091
. "$ROOT/tests/roles/mig/lib.sh"
pass=0
tier_work gpuops-fleet
"$PY" -c 'import scipy.optimize' 2>/dev/null || die "$PY cannot import scipy (tests/ci/requirements-dev.txt)"
use_collection
export ANSIBLE_FORKS=4

eval "$("$MIGSIM" env "$WORK/probe.json")"
SIMLIB=$LD_LIBRARY_PATH
unset MIGSIM_STATE

HOSTS="hopper grace blackwell"
"$MIGSIM" init "$WORK/hopper.json" --gpus h100-80gb:2 --mig enabled >/dev/null
"$MIGSIM" init "$WORK/grace.json" --gpus h200-141gb:1 --mig enabled >/dev/null
"$MIGSIM" init "$WORK/blackwell.json" --gpus b200:1 >/dev/null
mkdir -p "$WORK/inv/host_vars"
cat > "$WORK/inv/hosts.yml" <<YAML
all:
  children:
    hopper_nodes:
      hosts:
        hopper: {}
  hosts:
    grace: {}
    blackwell: {}
YAML
for h in $HOSTS; do
  { sim_host_vars "$h"; cat <<YAML
mig_state_dir: "$WORK/$h/etc/gpuops"
mig_lock_file: "$WORK/$h/gpuops-mig.lock"
mig_boot_lib_dir: "$WORK/$h/lib/gpuops-mig"
mig_boot_libexec_dir: "$WORK/$h/libexec/gpuops-mig"
mig_boot_unit_dir: "$WORK/$h/systemd"
mig_cdi_output: "$WORK/$h/cdi/nvidia.yaml"
YAML
  } > "$WORK/inv/host_vars/$h.yml"
done
mkdir -p "$WORK/inv/group_vars"
cat > "$WORK/inv/group_vars/all.yml" <<YAML
ansible_connection: local
ansible_python_interpreter: "$PY"
gpuops_mig_become: false
gpuops_mig_serial: 3
mig_run_preflight: false
mig_gpu_clients: []
mig_gpu_clients_mode_change: []
mig_reset_blocking_units: []
mig_boot_service_enable: false
mig_boot_python: "$PY"
mig_slurm_gres: false
mig_reset_method: auto
YAML

play() { local log=$1; shift
  ansible-playbook "$@" > "$log" 2>&1 || { tail -n 60 "$log" >&2; die "ansible-playbook $* (log $log)"; }
}
holds() { # holds -> sorted "host gpu profile" lines of the simulated fleet
  for h in $HOSTS; do "$MIGSIM" show "$WORK/$h.json" | "$PY" -c '
import json, sys
for g in json.load(sys.stdin)["gpus"]:
    if g["mig_mode"]["current"] != "enabled":
        print(sys.argv[1], g["index"], "whole")
    for gi in g["gpu_instances"]:
        print(sys.argv[1], g["index"], gi["profile"])' "$h"; done | sort
}
destroys() { # GPU instances destroyed in the fleet since the last `calls --clear`
  local n=0 c
  for h in $HOSTS; do
    c=$("$MIGSIM" calls "$WORK/$h.json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("nvmlGpuInstanceDestroy", 0))')
    n=$((n + c))
  done
  echo $n
}

# ---- 1. a fleet in use: both H100s hold one idle 7g.80gb, the H200 a busy 7g.141gb, the B200 has MIG off
# (the B200 demand names 1g.23gb: a 1g.45gb planned while MIG is off gets the go-nvlib CI profile ID the
# simulator rejects, a per-GPU planner matter outside fleet planning)
cat > "$WORK/initial.yml" <<'YAML'
all:
  hosts:
    hopper: {mig_layouts: [{devices: all, mig_enabled: true, mig_devices: {7g.80gb: 1}}]}
    grace: {mig_layouts: [{devices: all, mig_enabled: true, mig_devices: {7g.141gb: 1}}]}
    blackwell: {mig_layouts: [{devices: all, mig_enabled: false}]}
YAML
play "$WORK/initial.log" -i "$WORK/inv/hosts.yml" -i "$WORK/initial.yml" "$COLL/playbooks/mig.yml"
gi=$("$MIGSIM" show "$WORK/grace.json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["gpus"][0]["gpu_instances"][0]["id"])')
"$MIGSIM" process add "$WORK/grace.json" --gpu 0 --gi "$gi" --pid 4242 >/dev/null
ok "initial fleet: $(holds | tr '\n' ';')"

# ---- 2. plan
cat > "$WORK/demand.yml" <<'YAML'
gpuops_fleet_demand:
  - {profile: 1g.10gb, count: 5, group: hopper_nodes}
  - {slices: 1, min_memory_gb: 16, count: 1, group: hopper_nodes}
  - {profile: 3g.40gb, count: 2}
  - {profile: 1g.23gb, count: 4}
  - {profile: 7g.141gb, count: 1}
YAML
play "$WORK/plan1.log" -i "$WORK/inv/hosts.yml" "$COLL/playbooks/plan.yml" -e "@$WORK/demand.yml" -e "gpuops_fleet_plan_dir=$WORK/plan1"
read -r feasible planned_destroys changed_hosts < <("$PY" -c '
import json, sys
p = json.load(open(sys.argv[1]))
print(p["feasible"], p["objective"]["destroyed_instances"], ",".join(p["summary"]["changed_hosts"]))' "$WORK/plan1/plan.json")
[ "$feasible" = True ] || die "plan 1 is not feasible"
[ "$planned_destroys" = 2 ] || die "plan 1 destroys $planned_destroys GPU instances; the minimum is 2 (the two idle 7g.80gb)"
[ "$changed_hosts" = "blackwell,hopper" ] || die "plan 1 changes hosts $changed_hosts; expected blackwell,hopper (grace is busy and already holds its demand)"
{ [ -s "$WORK/plan1/host_vars/hopper/mig.yml" ] && [ -s "$WORK/plan1/facts.json" ]; } || die "plan 1 files missing"
ok "plan: feasible, $planned_destroys destroys, hosts $changed_hosts"

play "$WORK/report.log" -i "$WORK/inv/hosts.yml" "$COLL/playbooks/report.yml" -e "gpuops_mig_report_dir=$WORK/report" \
  -e "gpuops_mig_report_plan=$WORK/plan1/plan.json"
[ "$(grep -c 'data-view="planned"' "$WORK/report/index.html")" -ge 3 ] || die "the HTML report shows no planned view"
grep -q "changes: 1 destroyed, 2 created" "$WORK/report/index.html" || die "the HTML report does not show the planned changes"
ok "HTML report shows the planned layout beside the current one"

# ---- 3. apply with the unchanged mig playbook, then read the fleet
for h in $HOSTS; do "$MIGSIM" calls "$WORK/$h.json" --clear >/dev/null; done
play "$WORK/apply.log" -i "$WORK/inv/hosts.yml" -i "$WORK/plan1/inventory.yml" "$COLL/playbooks/mig.yml"
got=$(destroys)
[ "$got" = "$planned_destroys" ] || die "apply destroyed $got GPU instances, the plan said $planned_destroys"
ok "apply destroyed exactly the planned $got GPU instances"
holds > "$WORK/holds.txt"
"$PY" - "$WORK/holds.txt" <<'PY' || die "the fleet does not hold exactly the demand: $(tr '\n' ';' < "$WORK/holds.txt")"
import collections, sys
rows = [line.split() for line in open(sys.argv[1])]
c = collections.Counter((h, p) for h, g, p in rows)
assert c[('hopper', '1g.10gb')] == 5, c
assert c[('hopper', '1g.20gb')] == 1, c     # the 1-slice >= 16 GB item on the H100s
assert c[('hopper', '3g.40gb')] == 2, c
assert c[('blackwell', '1g.23gb')] == 4, c
assert c[('grace', '7g.141gb')] == 1, c
assert sum(c.values()) == 13, c
PY
grep -q "grace 0 7g.141gb" "$WORK/holds.txt" || die "the busy instance on grace is gone"
ok "the fleet holds exactly the demand: $(tr '\n' ';' < "$WORK/holds.txt")"

# ---- 4. plan again on the converged fleet: nothing to do; the saved facts give the same first plan offline
play "$WORK/plan2.log" -i "$WORK/inv/hosts.yml" "$COLL/playbooks/plan.yml" -e "@$WORK/demand.yml" -e "gpuops_fleet_plan_dir=$WORK/plan2"
"$PY" -c '
import json, sys
p = json.load(open(sys.argv[1]))
o = p["objective"]
assert p["feasible"] and p["summary"]["changed_hosts"] == [] and o["gpus_changed"] == 0 and o["destroyed_instances"] == 0, o
' "$WORK/plan2/plan.json" || die "a second plan on the converged fleet is not empty"
ok "second plan on the converged fleet is empty"
# offline: the same inventory (for its groups), one host as the play target, nothing read from the hosts
play "$WORK/plan3.log" -i "$WORK/inv/hosts.yml" "$COLL/playbooks/plan.yml" -e "@$WORK/demand.yml" -e gpuops_mig_hosts=grace \
  -e "gpuops_fleet_facts_file=$WORK/plan1/facts.json" -e "gpuops_fleet_plan_dir=$WORK/plan3"
grep -A1 "Read the MIG state of the host" "$WORK/plan3.log" | grep "skipping: \[grace\]" >/dev/null || die "the offline plan read the hosts"
cmp -s <("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["objective"])' "$WORK/plan1/plan.json") \
       <("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["objective"])' "$WORK/plan3/plan.json") \
  || die "planning from the saved facts gave another plan"
ok "planning from the saved facts file gives the same plan"

# ---- 5. infeasible demand fails with the reason and writes nothing
if ansible-playbook -i "$WORK/inv/hosts.yml" "$COLL/playbooks/plan.yml" -e "gpuops_fleet_plan_dir=$WORK/plan4" \
     -e '{"gpuops_fleet_demand": [{"profile": "1g.10gb", "count": 50}]}' > "$WORK/plan4.log" 2>&1; then
  die "an infeasible demand passed"
fi
grep -q "cannot be met" "$WORK/plan4.log" || { tail -n 30 "$WORK/plan4.log"; die "no reason for the infeasible demand"; }
[ ! -e "$WORK/plan4/inventory.yml" ] || die "an infeasible plan was written"
ok "infeasible demand: failed with the capacity per model, nothing written"
echo "fleet: $pass checks passed"
