#!/usr/bin/env bash
# mig-role tier, part 2: Kubernetes nodes, other MIG owners, passthrough VMs (issue 12).
# Real ansible-playbook runs of playbooks/mig.yml against the NVML simulator, and the REAL kubectl
# against tests/roles/mig/fake_apiserver.py (no kube-apiserver can be installed here: a stand-in server
# plays the API, the DaemonSet controller and the device plugin; docs/kubernetes.md says what was never
# run against a real cluster). Hosts:
#   k8s1      2 x H100, mixed strategy: its device plugin/GFD/dcgm-exporter pods are restarted (and no
#             other node's), the role waits until the node advertises the new nvidia.com/mig-* counts
#   k8s2      1 x H100, single strategy, no device plugin running: fails after the timeout naming what it saw
#   owned     1 x H100 with nvidia-mig-manager.service enabled and the DRA driver's kubelet plugin socket:
#             refused with zero mutating NVML calls; accepted on the second run with mig_owner_override
#   operated  1 x H100, node labelled nvidia.com/mig.config with a mig-manager pod, HAMi in mig mode: refused
#   pt        1 x A100 passed through to a VM: no reset attempt, exactly one reboot; a re-run does not reboot
#   stuck     1 x A100 passed through, the VM reboot does not reset the GPU: one reboot, then the re-run stops
#             before any change instead of rebooting again
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
MIGSIM=$ROOT/tests/nvml_sim/migsim
if ! command -v kubectl >/dev/null 2>&1; then
  # CI must run this tier: there a missing kubectl is a failure, not a reason to skip.
  if [ -n "${CI:-}" ]; then echo "FAIL: mig-role tier owners/k8s: kubectl is not installed (CI runs this tier)"; exit 1; fi
  echo "SKIP: mig-role tier owners/k8s: kubectl is not installed (Debian: apt-get install kubernetes-client)"; exit 0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpuops-mig-k8s.XXXXXX")
KEEP=${KEEP:-0}
APIPID=
cleanup() {
  if [ -n "$APIPID" ]; then kill "$APIPID" 2>/dev/null || true; fi
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# shellcheck source=tests/roles/mig/lib.sh disable=SC1091
. "$ROOT/tests/roles/mig/lib.sh"
pass=0
fails=0
# CONTINUE=1 goes on after a failed check (to show, with a fault put back, every check that catches it).
die() { echo "FAIL: $*" >&2; fails=$((fails + 1)); [ "${CONTINUE:-0}" = 1 ] || exit 1; }
use_collection
export ANSIBLE_FORKS=6 ANSIBLE_HOST_KEY_CHECKING=0
eval "$("$MIGSIM" env "$WORK/probe.json")"
SIMLIB=$LD_LIBRARY_PATH
unset MIGSIM_STATE
MUTATING=(nvmlDeviceSetMigMode nvmlDeviceCreateGpuInstance nvmlDeviceCreateGpuInstanceWithPlacement nvmlGpuInstanceDestroy
          nvmlGpuInstanceCreateComputeInstance nvmlGpuInstanceCreateComputeInstanceWithPlacement nvmlComputeInstanceDestroy)
mutations() { # mutations STATE -> number of mutating NVML calls since the counters were cleared
  "$MIGSIM" calls "$1" | "$PY" -c 'import json,sys; c=json.load(sys.stdin); print(sum(c.get(n, 0) for n in sys.argv[1:]))' "${MUTATING[@]}"
}

# ---------------------------------------------------------------- simulated hosts
HOSTS="k8s1 k8s2 owned operated pt stuck"
"$MIGSIM" init "$WORK/k8s1.json" --gpus h100-80gb:2
for h in k8s2 owned operated; do "$MIGSIM" init "$WORK/$h.json" --gpus h100-80gb:1; done
for h in pt stuck; do
  "$MIGSIM" init "$WORK/$h.json" --gpus a100-40gb:1
  "$MIGSIM" set "$WORK/$h.json" --gpu 0 --virtualization-mode passthrough
done
# owned: mig-parted's unit enabled, the DRA driver's kubelet plugin socket (a real socket).
mkdir -p "$WORK/owned/root/etc/systemd/system/multi-user.target.wants" "$WORK/owned/root/var/lib/kubelet/plugins/gpu.nvidia.com"
ln -s /usr/lib/systemd/system/nvidia-mig-manager.service "$WORK/owned/root/etc/systemd/system/multi-user.target.wants/nvidia-mig-manager.service"
"$PY" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$WORK/owned/root/var/lib/kubelet/plugins/gpu.nvidia.com/dra.sock"

# ---------------------------------------------------------------- the API server and kubeconfig
pod() { # pod NAME NODE APP [NAMESPACE]
  printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","generateName":"%s-","namespace":"%s","labels":{"app":"%s","pod-template-generation":"1"}},"spec":{"nodeName":"%s"},"status":{"phase":"Running"}}' \
    "$1" "${1%-*}" "${4:-gpu-operator}" "$3" "$2"
}
node() { # node NAME LABELS_JSON ANNOTATIONS_JSON CAPACITY_JSON
  printf '"%s":{"apiVersion":"v1","kind":"Node","metadata":{"name":"%s","labels":%s,"annotations":%s,"resourceVersion":"1"},"status":{"capacity":%s,"allocatable":%s}}' \
    "$1" "$1" "$2" "$3" "$4" "$4"
}
HAMI='[{\"id\":\"GPU-0\",\"count\":7,\"mode\":\"mig\"}]'
cat > "$WORK/api-state.json" <<JSON
{"nodes": {$(node k8s1 '{}' '{}' '{"cpu":"64","nvidia.com/gpu":"2"}'),
           $(node k8s2 '{}' '{}' '{"nvidia.com/gpu":"1"}'),
           $(node k8s-other '{}' '{}' '{"nvidia.com/gpu":"8"}'),
           $(node operated '{"nvidia.com/mig.config":"all-disabled","nvidia.com/mig.config.state":"success"}' "{\"hami.io/node-nvidia-register\":\"$HAMI\"}" '{"nvidia.com/gpu":"1"}')},
 "pods": [$(pod nvidia-device-plugin-daemonset-k1aaa k8s1 nvidia-device-plugin-daemonset),
          $(pod gpu-feature-discovery-k1bbb k8s1 gpu-feature-discovery),
          $(pod nvidia-dcgm-exporter-k1ccc k8s1 nvidia-dcgm-exporter),
          $(pod nvidia-container-toolkit-daemonset-k1ddd k8s1 nvidia-container-toolkit-daemonset),
          $(pod site-gpu-agent-k1eee k8s1 site-gpu-agent monitoring),
          $(pod nvidia-device-plugin-daemonset-ozzzz k8s-other nvidia-device-plugin-daemonset),
          $(pod gpu-feature-discovery-oyyyy k8s-other gpu-feature-discovery),
          $(pod nvidia-mig-manager-opmmm operated nvidia-mig-manager)]}
JSON
"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/api-state.json" || die "API fixture is not JSON"
"$PY" "$ROOT/tests/roles/mig/fake_apiserver.py" --state "$WORK/api-state.json" --port-file "$WORK/api.port" \
  --log "$WORK/api.log" --respawn-delay 1 \
  --capacity-command "[\"$PY\", \"$ROOT/tests/roles/mig/capacity.py\", \"$MIGSIM\", \"$WORK/{node}.json\", \"mixed\"]" \
  > "$WORK/api.out" 2>&1 &
APIPID=$!
for _ in $(seq 50); do [ -s "$WORK/api.port" ] && break; sleep 0.1; done
[ -s "$WORK/api.port" ] || die "fake API server did not start: $(cat "$WORK/api.out")"
cat > "$WORK/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "http://127.0.0.1:$(cat "$WORK/api.port")"}}]
users: [{name: admin, user: {}}]
contexts: [{name: fake, context: {cluster: fake, user: admin}}]
current-context: fake
YAML

# ---------------------------------------------------------------- inventory
mkdir -p "$WORK/inv/host_vars" "$WORK/inv/group_vars"
{ echo "all:"; echo "  hosts:"; for h in $HOSTS; do echo "    $h: {}"; done; } > "$WORK/inv/hosts.yml"
for h in $HOSTS; do
  { sim_host_vars "$h" "KUBECACHEDIR: \"$WORK/kube-cache\""; echo "mig_owner_host_root: \"$WORK/$h/root\""; } \
    > "$WORK/inv/host_vars/$h.yml"
done
cat > "$WORK/inv/group_vars/all.yml" <<YAML
ansible_connection: local
ansible_python_interpreter: "$PY"
gpuops_mig_become: false
gpuops_mig_test_migsim: "$MIGSIM"
gpuops_mig_test_hook_log: "$WORK/hooks.log"
mig_run_preflight: false
mig_gpu_clients: []
mig_gpu_clients_mode_change: []
mig_reset_blocking_units: []
mig_reset_method: auto
mig_reboot_tasks_file: "$ROOT/tests/roles/mig/sim-reboot-count.yml"
mig_state_dir: "$WORK/{{ inventory_hostname }}/etc/gpuops"
mig_lock_file: "$WORK/{{ inventory_hostname }}/gpuops-mig.lock"
mig_boot_service: false
mig_cdi_refresh: false
mig_kubeconfig: "$WORK/kubeconfig"
mig_layouts:
  - devices: all
    mig_enabled: true
    mig_devices: {"3g.20gb": 2}
YAML
cat >> "$WORK/inv/host_vars/k8s1.yml" <<'YAML'
mig_kubernetes: true
mig_k8s_mig_strategy: mixed
mig_k8s_restart_selectors_extra: [app=site-gpu-agent]
mig_k8s_capacity_timeout: 60
mig_k8s_capacity_delay: 2
mig_layouts:
  - devices: [0]
    mig_enabled: true
    mig_devices: {"1g.10gb": 7}
  - devices: [1]
    mig_enabled: true
    mig_devices: {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}
YAML
cat >> "$WORK/inv/host_vars/k8s2.yml" <<'YAML'
mig_kubernetes: true
mig_k8s_mig_strategy: single
mig_k8s_capacity_timeout: 6
mig_k8s_capacity_delay: 2
mig_layouts:
  - devices: all
    mig_enabled: true
    mig_devices: {"1g.10gb": 7}
YAML
for h in owned operated; do cat >> "$WORK/inv/host_vars/$h.yml" <<'YAML'
mig_layouts:
  - devices: all
    mig_enabled: true
    mig_devices: {"7g.80gb": 1}
YAML
done
echo "mig_kubernetes: true" >> "$WORK/inv/host_vars/operated.yml"
echo "gpuops_mig_test_reboot_stuck: true" >> "$WORK/inv/host_vars/stuck.yml"

play() { # play LOG [args...] -> ansible-playbook's exit status, log kept
  local log=$1; shift
  # serial and max_fail_percentage are play keywords: inventory variables cannot reach them, extra vars can.
  ansible-playbook -i "$WORK/inv/hosts.yml" "$COLL/playbooks/mig.yml" -e gpuops_mig_serial=6 \
    -e gpuops_mig_max_fail_percentage=100 "$@" > "$log" 2>&1 || return $?
}
recap() { # recap LOG HOST -> "ok changed failed"
  sed -n "s/^$2 *: ok=\([0-9]*\) *changed=\([0-9]*\) .*failed=\([0-9]*\).*/\1 \2 \3/p" "$1" | tail -n 1
}
failed_msg() { # failed_msg LOG HOST -> the msg of the host's failed task
  { grep "^fatal: \[$2\]" "$1" || true; } | sed -n 's/.*"msg": "\(.*\)"}$/\1/p' | tail -n 1
}
reboots() { grep -c "^reboot $1 " "$WORK/hooks.log" 2>/dev/null || true; }
for h in $HOSTS; do "$MIGSIM" calls "$WORK/$h.json" --clear > /dev/null; done

# ---------------------------------------------------------------- run 1: every host
rc=0; play "$WORK/run1.log" || rc=$?
[ "$rc" != 0 ] || die "run 1 succeeded although k8s2, owned, operated and stuck must fail"

# k8s1: restarted exactly this node's device plugin, GFD, dcgm-exporter and the site-listed pods.
read -r -a r <<< "$(recap "$WORK/run1.log" k8s1)"; set -- "${r[@]}"
[ "${3:-1}" = 0 ] || { tail -n 60 "$WORK/run1.log"; die "k8s1 failed in run 1"; }
deleted=$(sed -n 's#^DELETE /api/v1/namespaces/\([^/]*\)/pods/\(.*\)#\1/\2#p' "$WORK/api.log" | LC_ALL=C sort | tr '\n' ' ')
[ "$deleted" = "gpu-operator/gpu-feature-discovery-k1bbb gpu-operator/nvidia-dcgm-exporter-k1ccc gpu-operator/nvidia-device-plugin-daemonset-k1aaa monitoring/site-gpu-agent-k1eee " ] \
  || die "deleted pods: '$deleted' (want k8s1's device plugin, GFD, dcgm-exporter and site agent only)"
grep -q "^GET /api/v1/pods?fieldSelector=spec.nodeName%3Dk8s1&labelSelector=app%3Dnvidia-device-plugin-daemonset" "$WORK/api.log" \
  || die "the device plugin pods were not listed by node"
ok "k8s1: deleted only its device plugin, GFD, dcgm-exporter and site-listed pods (the other node's and the toolkit's kept)"

# The first capacity read after the restart still saw the old capacity; the role waited for the new one.
after=$(awk '/^DELETE .*-k1aaa$/{d=1} d && /^GET \/api\/v1\/nodes\/k8s1$/{n++} END{print n+0}' "$WORK/api.log")
{ [ "$after" -ge 2 ] && grep -q "FAILED - RETRYING: \[k8s1 -> localhost\]: Wait until the node advertises the new capacity" "$WORK/run1.log"; } \
  || die "k8s1: the node was read $after time(s) after the restart; the wait did not wait"
cap=$(kubectl --kubeconfig "$WORK/kubeconfig" get node k8s1 -o json | "$PY" -c 'import json,sys; c=json.load(sys.stdin)["status"]["capacity"]; print(" ".join("%s=%s" % kv for kv in sorted(c.items()) if kv[0].startswith("nvidia")))')
[ "$cap" = "nvidia.com/gpu=0 nvidia.com/mig-1g.10gb=9 nvidia.com/mig-2g.20gb=1 nvidia.com/mig-3g.40gb=1" ] || die "k8s1 capacity: $cap"
grep -q 'Node k8s1 advertises {.*}; restarted: pod/nvidia-device-plugin-daemonset-k1aaa, pod/gpu-feature-discovery-k1bbb, pod/nvidia-dcgm-exporter-k1ccc, pod/site-gpu-agent-k1eee.' "$WORK/run1.log" \
  || die "k8s1: no capacity report naming the restarted pods"
ok "k8s1: waited ($after node reads after the restart) until capacity = mig-1g.10gb 9, 2g.20gb 1, 3g.40gb 1 (stale nvidia.com/gpu 0)"

msg=$(failed_msg "$WORK/run1.log" k8s2)
case "$msg" in
  *"Node k8s2 does not advertise the capacity of the new MIG layout after 6 s (single strategy)"*"nvidia.com/gpu: 1 (want 7)"*) ;;
  *) die "k8s2: want a timeout naming what it saw, got: ${msg:-no failure}" ;;
esac
ok "k8s2: no device plugin -> fails after 6 s: nvidia.com/gpu: 1 (want 7)"

# owned / operated: refused before any change, zero mutating NVML calls, the owners named.
msg=$(failed_msg "$WORK/run1.log" owned)
for want in "Refusing to change MIG on owned" "[mig-parted-service] found: enabled: /etc/systemd/system/multi-user.target.wants/nvidia-mig-manager.service" \
            "systemctl disable --now nvidia-mig-manager.service" "[dra-driver] found: kubelet plugin socket /var/lib/kubelet/plugins/gpu.nvidia.com/dra.sock" \
            "Nothing was changed" "mig_owner_override"; do
  case "$msg" in *"$want"*) ;; *) die "owned: refusal lacks '$want': $msg" ;; esac
done
[ "$(mutations "$WORK/owned.json")" = 0 ] || die "owned: $(mutations "$WORK/owned.json") mutating NVML calls"
msg=$(failed_msg "$WORK/run1.log" operated)
for want in "[gpu-operator-mig-manager] found: node label nvidia.com/mig.config=all-disabled (nvidia.com/mig.config.state=success); pod gpu-operator/nvidia-mig-manager-opmmm" \
            "kubectl label node operated nvidia.com/mig.config=<config name> --overwrite" "[hami-dynamic-mig] found: node annotation hami.io/node-nvidia-register: GPU-0 in mode mig"; do
  case "$msg" in *"$want"*) ;; *) die "operated: refusal lacks '$want': $msg" ;; esac
done
[ "$(mutations "$WORK/operated.json")" = 0 ] || die "operated: mutating NVML calls"
"$MIGSIM" show "$WORK/owned.json" | "$PY" -c 'import json,sys; assert not json.load(sys.stdin)["gpus"][0]["gpu_instances"]' \
  || die "owned: instances were created"
ok "owned/operated: refused naming mig-parted-service, dra-driver, gpu-operator-mig-manager, hami-dynamic-mig and the way forward; 0 mutating NVML calls"

# pt: passthrough -> no reset attempt, one reboot, layout applied.
read -r -a r <<< "$(recap "$WORK/run1.log" pt)"; set -- "${r[@]}"
[ "${3:-1}" = 0 ] || die "pt failed in run 1: $(failed_msg "$WORK/run1.log" pt)"
[ ! -s "$WORK/pt.nvidia-smi.log" ] || ! grep -q -- "--gpu-reset" "$WORK/pt.nvidia-smi.log" || die "pt: a GPU reset was attempted on a passthrough GPU"
[ "$(reboots pt)" = 1 ] || die "pt: $(reboots pt) reboots in run 1 (want 1)"
"$MIGSIM" show "$WORK/pt.json" | "$PY" -c 'import json,sys; g=json.load(sys.stdin)["gpus"][0]; assert g["mig_mode"]=={"current":"enabled","pending":"enabled"} and len(g["gpu_instances"])==2, g' \
  || die "pt: layout not applied after the reboot"
ok "pt: passthrough GPU detected before planning -> no reset attempt, exactly one reboot, 2 x 3g.20gb applied"

# stuck: one reboot, the mode change stays pending, the run fails saying so.
[ "$(reboots stuck)" = 1 ] || die "stuck: $(reboots stuck) reboots in run 1 (want 1)"
case "$(failed_msg "$WORK/run1.log" stuck)" in *"still have a pending MIG mode change after the reboot"*) ;;
  *) die "stuck: $(failed_msg "$WORK/run1.log" stuck)" ;; esac
ok "stuck: one reboot, the GPU stays pending (hypervisor did not reset it), the run fails saying so"

# ---------------------------------------------------------------- run 2: override, re-runs
echo "mig_owner_override: [mig-parted-service, dra-driver]" >> "$WORK/inv/host_vars/owned.yml"
for h in $HOSTS; do "$MIGSIM" calls "$WORK/$h.json" --clear > /dev/null; done
: > "$WORK/api.log"
rc=0; play "$WORK/run2.log" --limit k8s1,owned,pt,stuck || rc=$?
read -r -a r <<< "$(recap "$WORK/run2.log" owned)"; set -- "${r[@]}"
{ [ "${3:-1}" = 0 ] && [ "${2:-0}" -gt 0 ]; } || die "owned with mig_owner_override: $(failed_msg "$WORK/run2.log" owned)"
grep -q "Other MIG owner(s) accepted by mig_owner_override: mig-parted-service, dra-driver; continuing" "$WORK/run2.log" \
  || die "owned: the accepted owners are not reported"
[ "$(mutations "$WORK/owned.json")" -gt 0 ] || die "owned: nothing changed with the override"
ok "owned: mig_owner_override=[mig-parted-service, dra-driver] -> applied, the accepted owners reported"

read -r -a r <<< "$(recap "$WORK/run2.log" pt)"; set -- "${r[@]}"
{ [ "${2:-1}" = 0 ] && [ "${3:-1}" = 0 ]; } || die "pt re-run: $(recap "$WORK/run2.log" pt)"
[ "$(reboots pt)" = 1 ] || die "pt: the re-run rebooted again ($(reboots pt) reboots)"
ok "pt: re-run changed=0, no second reboot"

[ "$(reboots stuck)" = 1 ] || die "stuck: the re-run rebooted again ($(reboots stuck) reboots)"
case "$(failed_msg "$WORK/run2.log" stuck)" in
  *"already rebooted stuck for it"*"Rebooting again would not help and is not done"*"the hypervisor must reset it"*) ;;
  *) die "stuck re-run: $(failed_msg "$WORK/run2.log" stuck)" ;; esac
[ "$(mutations "$WORK/stuck.json")" = 0 ] || die "stuck: the re-run made $(mutations "$WORK/stuck.json") mutating NVML calls"
ok "stuck: re-run stops before any change (0 mutating NVML calls), no second reboot, names the hypervisor reset"

read -r -a r <<< "$(recap "$WORK/run2.log" k8s1)"; set -- "${r[@]}"
{ [ "${2:-1}" = 0 ] && [ "${3:-1}" = 0 ]; } || die "k8s1 re-run: $(recap "$WORK/run2.log" k8s1)"
! grep -q "^DELETE " "$WORK/api.log" || die "k8s1 re-run restarted pods although the layout matched"
ok "k8s1: re-run changed=0, no pod restarted"

# check mode on a Kubernetes node: reads the node (kubectl runs in check mode too), plans, restarts nothing.
: > "$WORK/api.log"; "$MIGSIM" calls "$WORK/k8s1.json" --clear > /dev/null
play "$WORK/check.log" --limit k8s1 --check \
  -e '{"mig_layouts": [{"devices": "all", "mig_enabled": true, "mig_devices": {"7g.80gb": 1}}]}' \
  || { tail -n 30 "$WORK/check.log"; die "k8s1 --check failed"; }
read -r -a r <<< "$(recap "$WORK/check.log" k8s1)"; set -- "${r[@]}"
{ [ "${2:-0}" -gt 0 ] && grep -q "^GET /api/v1/nodes/k8s1$" "$WORK/api.log" && ! grep -q "^DELETE " "$WORK/api.log" \
  && [ "$(mutations "$WORK/k8s1.json")" = 0 ]; } || die "k8s1 --check: $(recap "$WORK/check.log" k8s1), API: $(tr '\n' ' ' < "$WORK/api.log")"
ok "k8s1 --check with another layout: node read, change reported, no pod restarted, 0 mutating NVML calls"

echo "mig-role tier owners/k8s: $pass checks passed"
[ "$fails" = 0 ] || { echo "mig-role tier owners/k8s: $fails checks failed"; exit 1; }
