#!/usr/bin/env bash
# Role tests of gpuops.mig.mig and playbooks/mig.yml against the NVML simulator.
# Real ansible-playbook runs (local connection), one simulated host per state file. Nothing real is
# reset or rebooted: resets go through tests/fakebin/nvidia-smi (-> migsim reset), reboots through
# tests/roles/mig/sim-reboot.yml (-> migsim reboot). Every path the role writes is under a temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
MIGSIM=$ROOT/tests/nvml_sim/migsim
# shellcheck source=tests/roles/mig/lib.sh disable=SC1091
. "$ROOT/tests/roles/mig/lib.sh"
pass=0
tier_work gpuops-mig-role
use_collection
export ANSIBLE_FORKS=4 ANSIBLE_HOST_KEY_CHECKING=0 ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks

# Build the simulator once (migsim env compiles it when missing).
eval "$("$MIGSIM" env "$WORK/probe.json")"
SIMLIB=$LD_LIBRARY_PATH
unset MIGSIM_STATE

# ---------------------------------------------------------------- simulated hosts
# hopper: 2 x H100 80GB (loses MIG mode at reboot); ampere: 2 x A100 40GB, GPU 0 busy with a
# whole-GPU process so enabling MIG stays pending until a reset; vm: 1 x A100 40GB that cannot be
# reset (passthrough VM), so the role must fall back to a reboot.
mkdir -p "$WORK/inv/host_vars" "$WORK/inv/group_vars"
"$MIGSIM" init "$WORK/hopper.json" --gpus h100-80gb:2
"$MIGSIM" init "$WORK/ampere.json" --gpus a100-40gb:2
"$MIGSIM" process add "$WORK/ampere.json" --gpu 0 --pid 4242
"$MIGSIM" init "$WORK/vm.json" --gpus a100-40gb:1
"$MIGSIM" set "$WORK/vm.json" --gpu 0 --no-reset
"$MIGSIM" process add "$WORK/vm.json" --gpu 0 --pid 4343

cat > "$WORK/inv/hosts.yml" <<YAML
all:
  hosts:
    hopper: {}
    ampere: {}
    vm: {}
YAML
for h in hopper ampere vm; do sim_host_vars "$h" > "$WORK/inv/host_vars/$h.yml"; done
cat > "$WORK/inv/group_vars/all.yml" <<YAML
ansible_connection: local
ansible_python_interpreter: "$PY"
gpuops_mig_become: false
gpuops_mig_serial: 2
gpuops_mig_test_migsim: "$MIGSIM"
gpuops_mig_test_hook_log: "$WORK/hooks.log"
gpuops_mig_drain_tasks: "$ROOT/tests/roles/mig/drain-marker.yml"
gpuops_mig_undrain_tasks: "$ROOT/tests/roles/mig/drain-marker.yml"
mig_run_preflight: false
mig_gpu_clients: []
mig_gpu_clients_mode_change: []
mig_reset_blocking_units: []
mig_reboot_tasks_file: "$ROOT/tests/roles/mig/sim-reboot.yml"
mig_state_dir: "$WORK/{{ inventory_hostname }}/etc/gpuops"
mig_lock_file: "$WORK/{{ inventory_hostname }}/gpuops-mig.lock"
mig_boot_lib_dir: "$WORK/{{ inventory_hostname }}/lib/gpuops-mig"
mig_boot_libexec_dir: "$WORK/{{ inventory_hostname }}/libexec/gpuops-mig"
mig_boot_unit_dir: "$WORK/{{ inventory_hostname }}/systemd"
mig_boot_service_enable: false
mig_boot_python: "$PY"
mig_cdi_output: "$WORK/{{ inventory_hostname }}/cdi/nvidia.yaml"
mig_slurm_gres: true
mig_slurm_conf_dir: "$WORK/{{ inventory_hostname }}/slurm"
mig_slurm_gres_autodetect: true
mig_slurm_type_rule: attributes
mig_slurm_restart: false
YAML
cat > "$WORK/inv/host_vars/hopper-layout.yml" <<'YAML'
YAML
cat >> "$WORK/inv/host_vars/hopper.yml" <<'YAML'
mig_layouts:
  - devices: [0]
    mig_enabled: true
    mig_devices: {"1g.10gb": 7}
  - devices: [1]
    mig_enabled: true
    mig_devices: {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}
YAML
for h in ampere vm; do cat >> "$WORK/inv/host_vars/$h.yml" <<'YAML'
mig_layouts:
  - devices: all
    mig_enabled: true
    mig_devices: {"3g.20gb": 2}
YAML
done
rm -f "$WORK/inv/host_vars/hopper-layout.yml"
# The ampere host resets its GPU (the fake nvidia-smi maps it to migsim reset); the vm host cannot.
echo "mig_reset_method: auto" >> "$WORK/inv/host_vars/ampere.yml"
echo "mig_reset_method: auto" >> "$WORK/inv/host_vars/vm.yml"

play() { # play LOG PLAYBOOK [args...]
  local log=$1; shift
  if ! ansible-playbook -i "$WORK/inv/hosts.yml" "$@" > "$log" 2>&1; then
    tail -n 80 "$log" >&2; die "ansible-playbook $* (log $log)"
  fi
}
changed() { # changed LOG HOST -> the changed= count of HOST in the recap
  sed -n "s/^$2 *: ok=[0-9]* *changed=\([0-9]*\).*/\1/p" "$1" | tail -n 1
}
layout() { # layout STATE -> mode + (profile, placement) per GPU, MIG UUIDs left out
  "$MIGSIM" show "$1" | "$PY" -c '
import json, sys
for g in json.load(sys.stdin)["gpus"]:
    gis = sorted((gi["profile"], gi["placement"]["start"], gi["placement"]["size"], len(gi["compute_instances"])) for gi in g["gpu_instances"])
    print(g["index"], g["mig_mode"]["current"], g["mig_mode"]["pending"], gis)'
}

# ---------------------------------------------------------------- 0. selection logic (unit test)
# Own inventory: the test group_vars below empty the client lists; this test wants the role defaults.
ansible-playbook -i localhost, -c local -e ansible_python_interpreter="$PY" "$ROOT/tests/roles/mig/select.yml" \
  > "$WORK/select.log" 2>&1 || { tail -n 40 "$WORK/select.log" >&2; die "GPU client selection test"; }
ok "GPU client selection (service_facts fixture: running units only, patterns, order)"

# ---------------------------------------------------------------- 1. first apply
play "$WORK/run1.log" "$COLL/playbooks/mig.yml"
for h in hopper ampere vm; do
  [ "$(changed "$WORK/run1.log" $h)" -gt 0 ] || die "run 1: $h reported no change"
done
ok "first apply changed every host"

layout "$WORK/hopper.json" > "$WORK/hopper.layout1"
grep -q "^0 enabled enabled .*1g.10gb" "$WORK/hopper.layout1" || die "hopper GPU 0 layout: $(cat "$WORK/hopper.layout1")"
[ "$("$MIGSIM" show "$WORK/hopper.json" | "$PY" -c 'import json,sys; g=json.load(sys.stdin)["gpus"]; print(len(g[0]["gpu_instances"]), sorted(i["profile"] for i in g[1]["gpu_instances"]))')" \
  = "7 ['1g.10gb', '1g.10gb', '2g.20gb', '3g.40gb']" ] || die "hopper layout: $(cat "$WORK/hopper.layout1")"
ok "hopper: 7 x 1g.10gb on GPU 0, 3g+2g+1g+1g on GPU 1"

# ampere: GPU 0 needed a reset (busy), GPU 1 did not; only GPU 0 was reset.
grep -qx "nvidia-smi --gpu-reset -i 0" "$WORK/ampere.nvidia-smi.log" || die "ampere: GPU 0 was not reset"
! grep -q -- "--gpu-reset -i 1" "$WORK/ampere.nvidia-smi.log" || die "ampere: GPU 1 was reset although it did not need it"
layout "$WORK/ampere.json" | grep -c "enabled enabled \[('3g.20gb', 0, 4, 1), ('3g.20gb', 4, 4, 1)\]" | grep -qx 2 \
  || die "ampere layout after reset: $(layout "$WORK/ampere.json")"
ok "ampere: pending MIG mode on the busy GPU 0 -> reset of GPU 0 only -> 2 x 3g.20gb on both GPUs"

# vm: reset refused -> reboot override ran migsim reboot -> layout applied after it.
grep -qx "nvidia-smi --gpu-reset -i 0" "$WORK/vm.nvidia-smi.log" || die "vm: no reset attempt"
grep -q "Reboot the simulated host" "$WORK/run1.log" || die "vm: the reboot task file did not run"
layout "$WORK/vm.json" | grep "^0 enabled enabled \[('3g.20gb', 0, 4, 1), ('3g.20gb', 4, 4, 1)\]" >/dev/null \
  || die "vm layout after reboot: $(layout "$WORK/vm.json")"
ok "vm: reset not supported -> reboot task file (migsim reboot) -> layout applied"

for h in hopper ampere vm; do
  grep -c "^drain $h\|^hook $h" "$WORK/hooks.log" | grep -qx 2 || die "$h: drain+undrain hooks did not run once each"
  [ -s "$WORK/$h/cdi/nvidia.yaml" ] || die "$h: no CDI spec generated"
  grep -q "cdi generate --output=.*/nvidia.yaml" "$WORK/$h.nvidia-ctk.log" || die "$h: nvidia-ctk cdi generate not called"
done
ok "drain/undrain hooks, CDI regeneration (fake nvidia-ctk) ran on every changed host"

map=$WORK/hopper/etc/gpuops/mig-devices.json
"$PY" - "$map" "$WORK/hopper.json" "$MIGSIM" <<'PY' || die "device map check"
import json, os, stat, subprocess, sys
path, state, migsim = sys.argv[1:]
m = json.load(open(path))
st = os.stat(path)
assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 0, oct(st.st_mode)
assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o755
sim = json.loads(subprocess.check_output([migsim, 'show', state]))
uuids = sorted(ci['mig_uuid'] for g in sim['gpus'] for gi in g['gpu_instances'] for ci in gi['compute_instances'])
assert sorted(d['mig_uuid'] for d in m['mig_devices']) == uuids, (m, uuids)
for d in m['mig_devices']:
    assert {'gpu', 'gpu_instance', 'compute_instance', 'profile', 'placement', 'mig_uuid'} <= set(d), d
assert len(m['gpus']) == 2
PY
ok "device map: one entry per MIG device with GPU/GI/CI/profile/placement/MIG UUID, root 0644 in a 0755 dir"

grep -q "^NodeName=hopper AutoDetect=nvml" "$WORK/hopper/slurm/gres.conf" || die "gres.conf block"
grep -q "Gres=gpu:nvidia_h100_80gb_hbm3_1g.10gb:9,gpu:nvidia_h100_80gb_hbm3_3g.40gb:1,gpu:nvidia_h100_80gb_hbm3_2g.20gb:1\|Gres=gpu:nvidia_h100_80gb_hbm3_1g.10gb:9" \
  "$WORK/hopper/slurm/gres.conf" || die "slurm Gres string: $(grep Gres= "$WORK/hopper/slurm/gres.conf")"
ok "Slurm gres.conf block beside slurm.conf (AutoDetect=nvml + slurm.conf Gres= string)"

unit=$WORK/hopper/systemd/gpuops-mig.service
for want in "Type=oneshot" "RemainAfterExit=yes" "TimeoutStartSec=600" "WantedBy=multi-user.target" \
            "After=systemd-modules-load.service nvidia-persistenced.service nvidia-fabricmanager.service" \
            "Before=kubelet.service slurmd.service nvidia-dcgm.service dcgm.service dcgm-exporter.service nvidia-cdi-refresh.service" \
            "ExecStart=$PY $WORK/hopper/libexec/gpuops-mig/gpuops-mig-apply --lib-dir $WORK/hopper/lib/gpuops-mig"; do
  grep -qF -- "$want" "$unit" || die "unit file lacks: $want"
done
if command -v systemd-analyze >/dev/null 2>&1; then
  if systemd-analyze verify "$unit" > "$WORK/verify.log" 2>&1; then ok "systemd-analyze verify gpuops-mig.service"
  else echo "NOTE: systemd-analyze verify could not verify here (no systemd as PID 1?):"; sed -n '1,5s/^/  /p' "$WORK/verify.log"; fi
fi
for f in "$WORK/hopper/lib/gpuops-mig/ansible_collections/__init__.py" \
         "$WORK/hopper/lib/gpuops-mig/ansible_collections/gpuops/mig/plugins/module_utils/_converge.py"; do
  [ -f "$f" ] || die "boot service library lacks $f"
done
[ "$(stat -c %a "$WORK/hopper/libexec/gpuops-mig/gpuops-mig-apply")" = 755 ] || die "entry script mode"
ok "boot unit renders (ordering, oneshot, timeout), module_utils copied as a package, entry script 0755"

# ---------------------------------------------------------------- 2. second run: nothing to do
: > "$WORK/hooks.log"
play "$WORK/run2.log" "$COLL/playbooks/mig.yml"
for h in hopper ampere vm; do
  [ "$(changed "$WORK/run2.log" $h)" = 0 ] || { grep -B3 "^changed:" "$WORK/run2.log" | head -40; die "run 2: $h changed"; }
done
[ ! -s "$WORK/hooks.log" ] || die "run 2 drained a host: $(cat "$WORK/hooks.log")"
grep -q "Layout matches; nothing to do" "$WORK/run2.log" || die "run 2: no 'Layout matches' message"
ok "second run: changed=0 on every host, no drain, nothing stopped"

# check mode + diff on a changed layout reports the change and changes nothing
cp "$WORK/hopper.json" "$WORK/hopper.before-check"
play "$WORK/check.log" "$COLL/playbooks/mig.yml" --limit hopper --check --diff \
  -e '{"mig_layouts": [{"devices": "all", "mig_enabled": true, "mig_devices": {"7g.80gb": 1}}]}'
[ "$(changed "$WORK/check.log" hopper)" -gt 0 ] || die "check mode did not report the change"
[ "$(layout "$WORK/hopper.json")" = "$(cat "$WORK/hopper.layout1")" ] || die "check mode changed the GPUs"
ok "--check --diff reports a different layout and changes nothing"

# ---------------------------------------------------------------- 3. reboot + boot service
"$MIGSIM" reboot "$WORK/hopper.json"
layout "$WORK/hopper.json" | grep "^0 disabled disabled \[\]" >/dev/null || die "simulated reboot kept the Hopper layout"
env LD_LIBRARY_PATH="$SIMLIB" MIGSIM_STATE="$WORK/hopper.json" \
  "$PY" "$WORK/hopper/libexec/gpuops-mig/gpuops-mig-apply" --lib-dir "$WORK/hopper/lib/gpuops-mig" \
    --layout-file "$WORK/hopper/etc/gpuops/mig-layout.json" --device-map "$WORK/hopper/etc/gpuops/mig-devices.json" \
    --lock-file "$WORK/hopper/gpuops-mig.lock" > "$WORK/boot.log" 2>&1 || { cat "$WORK/boot.log"; die "boot entry script failed"; }
[ "$(layout "$WORK/hopper.json")" = "$(cat "$WORK/hopper.layout1")" ] \
  || die "boot service restored a different layout: $(layout "$WORK/hopper.json") vs $(cat "$WORK/hopper.layout1")"
grep -q "converged" "$WORK/boot.log" || die "boot log: $(cat "$WORK/boot.log")"
ok "simulated reboot lost the Hopper layout and MIG mode; gpuops-mig-apply restored it (migsim show equal)"
# The boot script runs with no ansible on sys.path (the copied module_utils only).
"$PY" - "$WORK/hopper/libexec/gpuops-mig/gpuops-mig-apply" <<'PY' || die "entry script imports ansible"
import sys
src = open(sys.argv[1]).read()
assert 'import ansible\n' not in src and 'from ansible.' not in src
PY
# The boot script rewrote the map with the same format the role writes: a role run now changes only
# nothing (layout matches and map content identical).
play "$WORK/run3.log" "$COLL/playbooks/mig.yml" --limit hopper
[ "$(changed "$WORK/run3.log" hopper)" = 0 ] || { grep -A8 "^changed:" "$WORK/run3.log" | head -30; die "role run after boot re-apply changed something"; }
ok "role run after the boot re-apply: changed=0 (boot script writes the same device-map format)"

# boot script with nothing recorded / broken NVML -> clear exit codes
"$PY" "$WORK/hopper/libexec/gpuops-mig/gpuops-mig-apply" --layout-file "$WORK/none.json" | grep "nothing to do" >/dev/null || die "no layout file"
rc=0; "$MIGSIM" set "$WORK/hopper.json" --driver-not-loaded
env LD_LIBRARY_PATH="$SIMLIB" MIGSIM_STATE="$WORK/hopper.json" \
  "$PY" "$WORK/hopper/libexec/gpuops-mig/gpuops-mig-apply" --lib-dir "$WORK/hopper/lib/gpuops-mig" \
    --layout-file "$WORK/hopper/etc/gpuops/mig-layout.json" --device-map "$WORK/x.json" --lock-file "$WORK/hopper/gpuops-mig.lock" \
  > "$WORK/boot-fail.log" 2>&1 || rc=$?
"$MIGSIM" set "$WORK/hopper.json" --driver-loaded
{ [ "$rc" = 1 ] && grep -q "FAILED" "$WORK/boot-fail.log"; } || die "boot script with the driver not loaded: rc=$rc $(cat "$WORK/boot-fail.log")"
ok "boot script: no recorded layout -> exit 0; driver not loaded -> exit 1 with a FAILED message"

echo "mig-role tier: $pass checks passed"
