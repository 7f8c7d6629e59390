#!/usr/bin/env bash
# `make demo`: rehearse the collection on simulated GPU hosts, no GPU needed.
# Builds the NVML simulator, creates an inventory of three simulated hosts (8 x H100 80GB,
# 4 x A100 40GB, 2 x H200) with their layouts in group_vars, runs playbooks/site.yml (preflight on,
# container toolkit off) and playbooks/report.yml, then prints the Markdown summary and the path
# of the HTML cluster map. DEMO_DIR=... keeps the inventory and report somewhere else;
# DEMO_PREFLIGHT=false skips the preflight role.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MIGSIM=$ROOT/tests/nvml_sim/migsim
DEMO=${DEMO_DIR:-$ROOT/build/demo}
PY=$(command -v python3)
rm -rf "$DEMO"
mkdir -p "$DEMO/inventory/group_vars" "$DEMO/inventory/host_vars" "$DEMO/hosts"

if [ -n "${GPUOPS_COLLECTIONS_PATH:-}" ] && [ -d "$GPUOPS_COLLECTIONS_PATH/ansible_collections/gpuops/mig" ]; then
  COLLECTIONS=$GPUOPS_COLLECTIONS_PATH
else
  COLLECTIONS=$DEMO/collections
  # A snapshot, not a symlink: edits in the working tree during the run do not leak into it.
  mkdir -p "$COLLECTIONS/ansible_collections/gpuops/mig"
  tar -C "$ROOT" --exclude=./build --exclude=./.venv --exclude=./.git --exclude=./tests/output -cf - . \
    | tar -C "$COLLECTIONS/ansible_collections/gpuops/mig" -xf -
fi
COLL=$COLLECTIONS/ansible_collections/gpuops/mig
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_FORKS=3
export ANSIBLE_LOCAL_TEMP=$DEMO/tmp ANSIBLE_REMOTE_TEMP=$DEMO/tmp ANSIBLE_DEPRECATION_WARNINGS=0

echo "demo: building the NVML simulator"
eval "$("$MIGSIM" env "$DEMO/hosts/probe.json")"
SIMLIB=$LD_LIBRARY_PATH
unset MIGSIM_STATE

for h in gpu-h100-01 gpu-a100-01 gpu-h200-01; do mkdir -p "$DEMO/hosts/$h/etc/systemd/system"; done
"$MIGSIM" init "$DEMO/hosts/gpu-h100-01.json" --gpus h100-80gb:8 --seed gpu-h100-01
"$MIGSIM" init "$DEMO/hosts/gpu-a100-01.json" --gpus a100-40gb:4 --seed gpu-a100-01
"$MIGSIM" init "$DEMO/hosts/gpu-h200-01.json" --gpus h200-141gb:2 --seed gpu-h200-01

cat > "$DEMO/inventory/hosts.yml" <<'YAML'
all:
  children:
    h100:
      hosts:
        gpu-h100-01: {}
    a100:
      hosts:
        gpu-a100-01: {}
    h200:
      hosts:
        gpu-h200-01: {}
YAML

# Simulator wiring: each host's modules see its own simulated GPUs; everything the roles write
# lands under the demo directory instead of /etc and /usr/local.
cat > "$DEMO/inventory/group_vars/all.yml" <<YAML
# --- demo plumbing (not needed on real hosts) ---
ansible_connection: local
ansible_python_interpreter: "$PY"
gpuops_mig_become: false
gpuops_mig_container_toolkit: false
gpuops_mig_preflight: ${DEMO_PREFLIGHT:-true}
gpuops_mig_environment:
  LD_LIBRARY_PATH: "$SIMLIB"
  MIGSIM_STATE: "$DEMO/hosts/{{ inventory_hostname }}.json"
mig_state_dir: "$DEMO/hosts/{{ inventory_hostname }}/etc/gpuops"
mig_lock_file: "$DEMO/hosts/{{ inventory_hostname }}/gpuops-mig.lock"
mig_boot_lib_dir: "$DEMO/hosts/{{ inventory_hostname }}/usr/local/lib/gpuops-mig"
mig_boot_libexec_dir: "$DEMO/hosts/{{ inventory_hostname }}/usr/local/libexec/gpuops-mig"
mig_boot_unit_dir: "$DEMO/hosts/{{ inventory_hostname }}/etc/systemd/system"
mig_boot_service_enable: false
mig_gpu_clients: []
mig_gpu_clients_mode_change: []
mig_cdi_refresh: "false"
YAML

# --- the part you would write for real hosts: one layout per group ---
cat > "$DEMO/inventory/group_vars/h100.yml" <<'YAML'
mig_layouts:
  # GPUs 0-3: seven small, fully isolated 1g.10gb devices each (inference, notebooks)
  - devices: [0, 1, 2, 3]
    mig_enabled: true
    mig_devices:
      1g.10gb: 7
  # GPUs 4-7: a mix, one 3g.40gb + one 2g.20gb + two 1g.10gb each
  - devices: [4, 5, 6, 7]
    mig_enabled: true
    mig_devices:
      3g.40gb: 1
      2g.20gb: 1
      1g.10gb: 2
YAML
cat > "$DEMO/inventory/group_vars/a100.yml" <<'YAML'
mig_layouts:
  # the first-time user guide's A100 40GB mixes
  - devices: [0]
    mig_enabled: true
    mig_devices:
      1g.5gb: 7
  - devices: [1]
    mig_enabled: true
    mig_devices:
      3g.20gb: 2
  - devices: [2]
    mig_enabled: true
    mig_devices:
      4g.20gb: 1
      2g.10gb: 1
      1g.5gb: 1
  # GPU 3 stays a whole GPU
  - devices: [3]
    mig_enabled: false
YAML
cat > "$DEMO/inventory/group_vars/h200.yml" <<'YAML'
mig_layouts:
  - devices: all
    mig_enabled: true
    instances:
      - profile: 4g.71gb
        placement: 0
      - profile: 2g.35gb
        placement: 4
      - profile: 1g.18gb
        placement: 6
YAML

start=$(date +%s)
echo "demo: ansible-playbook playbooks/site.yml (preflight, MIG)"
ansible-playbook -i "$DEMO/inventory" "$COLL/playbooks/site.yml" > "$DEMO/site.log" 2>&1 \
  || { tail -n 60 "$DEMO/site.log"; echo "demo: site.yml failed, log $DEMO/site.log" >&2; exit 1; }
sed -n '/PLAY RECAP/,$p' "$DEMO/site.log"
echo "demo: second run of site.yml (must change nothing)"
ansible-playbook -i "$DEMO/inventory" "$COLL/playbooks/site.yml" > "$DEMO/site2.log" 2>&1 \
  || { tail -n 60 "$DEMO/site2.log"; exit 1; }
sed -n '/PLAY RECAP/,$p' "$DEMO/site2.log"
if grep -E '^gpu-.* changed=[1-9]' "$DEMO/site2.log"; then echo "demo: second run changed something" >&2; exit 1; fi
echo "demo: ansible-playbook playbooks/report.yml"
ansible-playbook -i "$DEMO/inventory" "$COLL/playbooks/report.yml" -e gpuops_mig_report_dir="$DEMO/mig-report" \
  > "$DEMO/report.log" 2>&1 || { tail -n 60 "$DEMO/report.log"; exit 1; }

echo
cat "$DEMO/mig-report/summary.md"
echo
echo "demo: done in $(( $(date +%s) - start ))s"
echo "  HTML cluster map: $DEMO/mig-report/index.html"
echo "  Markdown summary: $DEMO/mig-report/summary.md"
echo "  inventory:        $DEMO/inventory (layouts in group_vars/h100.yml, a100.yml, h200.yml)"
echo "  play with it:     eval \"\$($MIGSIM env $DEMO/hosts/gpu-h100-01.json)\"; $MIGSIM show \$MIGSIM_STATE"
