#!/usr/bin/env bash
# Preflight role tests: the role runs on localhost against simulated GPUs (tests/nvml_sim) and
# every failure case must fail with a message that names the host, the GPU and the fix.
# Uses ansible-playbook from PATH and the Python next to it (it needs pynvml, i.e. nvidia-ml-py).
# Environment: GPUOPS_COLLECTIONS_PATH, ROLETEST_KEEP (see run.sh).
set -euo pipefail

# shellcheck source=tests/roles/lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE=$ROLETEST_HERE
MIGSIM=$ROLETEST_ROOT/tests/nvml_sim/migsim

roletest_setup
[[ -x $MIGSIM ]] || { echo "preflight.sh: $MIGSIM is missing" >&2; exit 2; }
PY=$(dirname "$(command -v ansible-playbook)")/python
[[ -x $PY ]] || PY=$(command -v python3)
"$PY" -c 'import pynvml' 2>/dev/null || { echo "preflight.sh: $PY cannot import pynvml (install nvidia-ml-py)" >&2; exit 2; }
INV=$WORK/local.ini
printf '[targets]\ngpuhost ansible_connection=local ansible_python_interpreter=%s\n' "$PY" >"$INV"
FAKEBIN=$WORK/fakebin
mkdir -p "$FAKEBIN"

# pf LABEL EXPECT SIM-SPEC [ansible-playbook args]: SIM-SPEC is "MODELS DRIVER" for a fresh simulator
# state, "nolib" (no libnvidia-ml.so.1 on the library path) or "notloaded MODELS DRIVER".
pf() {
    local label=$1 expect=$2 spec=$3; shift 3
    local state=$WORK/$label.json
    (
        set -- "$@"
        case $spec in
            nolib) unset LD_LIBRARY_PATH MIGSIM_STATE ;;
            *)
                local words
                read -r -a words <<<"$spec"
                if [[ ${words[0]} == notloaded ]]; then words=("${words[@]:1}"); fi
                "$MIGSIM" init "$state" --gpus "${words[0]}" --driver "${words[1]}" >/dev/null
                [[ $spec == notloaded* ]] && "$MIGSIM" set "$state" --driver-not-loaded >/dev/null
                eval "$("$MIGSIM" env "$state")"
                ;;
        esac
        PATH=$FAKEBIN:$PATH play "$label" "$expect" -i "$INV" "$HERE/playbooks/preflight.yml" "$@"
        # play's counters live in this subshell: hand them back through a file.
        echo "$ROLETEST_PASS $ROLETEST_FAIL" >"$WORK/counts"
        printf '%s\n' "${ROLETEST_FAILED_NAMES[@]}" >"$WORK/failed"
    )
    read -r ROLETEST_PASS ROLETEST_FAIL <"$WORK/counts"
    mapfile -t ROLETEST_FAILED_NAMES < <(grep -v '^$' "$WORK/failed" || true)
    PLAY_LOG=$WORK/logs/$label.log
}

fake_tool() { # fake_tool NAME OUTPUT: a stand-in command on PATH that prints OUTPUT
    printf '#!/bin/sh\ncat <<"OUT"\n%s\nOUT\n' "$2" >"$FAKEBIN/$1"
    chmod 755 "$FAKEBIN/$1"
}
layouts() { # layouts JSON: an extra-vars file with mig_layouts
    local f=$WORK/layouts.$RANDOM.json
    printf '{"mig_layouts": %s}\n' "$1" >"$f"
    echo "@$f"
}

main() {
    local t0=$SECONDS
    log "== preflight: healthy host"
    pf ok-h100-l40s 0 "h100-80gb:2,l40s:1 580.159.04"
    log_has "summary names the driver" 'gpuhost: driver 580\.159\.04, CUDA'
    log_has "summary lists the non-MIG GPU" 'GPU 2 NVIDIA L40S \(Ada Lovelace, no MIG family\): not MIG capable'
    check "fact preflight_result has families and capability" python3 - "$PLAY_LOG" <<'PY'
import json, re, sys
line = next(l for l in open(sys.argv[1]) if 'PREFLIGHT_FACT' in l)
fact = json.loads(re.search(r'PREFLIGHT_FACT (\{.*\})', line.replace('\\"', '"')).group(1))
g = fact["gpus"]
assert fact["driver_version"] == "580.159.04", fact
assert [x["family"] for x in g] == ["H100", "H100", ""], g
assert [x["mig_capable"] for x in g] == [True, True, False], g
assert g[0]["min_driver"] == "525.85.12" and g[0]["architecture"] == "Hopper", g[0]
PY

    log "== preflight: NVML not usable"
    pf no-lib fail nolib
    log_has "no libnvidia-ml: names host and fix" 'gpuhost: cannot read the NVIDIA driver through NVML: .*libnvidia-ml\.so\.1 was not found.*Fix: install an NVIDIA datacenter driver'
    pf not-loaded fail "notloaded h100-80gb:1 580.159.04"
    log_has "driver not loaded: fix is modprobe" 'gpuhost: cannot read .*not loaded.*Fix: load the NVIDIA kernel module \(modprobe nvidia\)'
    (
        local state=$WORK/nopynvml.json
        "$MIGSIM" init "$state" --gpus h100-80gb:1 --driver 580.159.04 >/dev/null
        eval "$("$MIGSIM" env "$state")"
        # A bare venv: a Python that certainly has no pynvml.
        python3 -m venv --without-pip "$WORK/nopynvml-venv" >/dev/null
        SYSPY=$WORK/nopynvml-venv/bin/python
        if "$SYSPY" -c 'import pynvml' 2>/dev/null; then exit 3; fi
        ansible-playbook -i "$INV" -e "ansible_python_interpreter=$SYSPY" "$HERE/playbooks/preflight.yml" >"$WORK/logs/no-pynvml.log" 2>&1 && exit 1 || exit 0
    ) && rc=0 || rc=$?
    PLAY_LOG=$WORK/logs/no-pynvml.log
    case $rc in
        0) pass "no-pynvml (expect fail)"; log_has "no pynvml: fix names nvidia-ml-py" 'gpuhost: cannot read .*pynvml.*Fix: install the NVML Python bindings \(package nvidia-ml-py' ;;
        3) log "   (the bare venv imports pynvml; no-pynvml case not applicable)" ;;
        *) fail "no-pynvml (expect fail)" "log: $PLAY_LOG" ;;
    esac

    log "== preflight: driver older than the MIG minimum, per family"
    local model drv fam min
    while read -r model drv min fam; do
        pf "old-driver-$model" fail "$model:1 $drv"
        log_has "$model on $drv: too old for $fam" "gpuhost: GPU 0 \\(.*, $fam family\\): driver ${drv//./\\.} is older than ${min//./\\.}, the minimum for MIG.*Fix: install NVIDIA driver R"
    done <<'CASES'
a100-40gb 450.66 450.80.02 A100
a100-80gb 418.87.01 450.80.02 A100
a30-24gb 460.32.03 460.73.01 A30
h100-80gb 525.60.13 525.85.12 H100
h100-94gb 520.61.05 525.85.12 H100
h200-141gb 550.54.15 550.90.07 H200
b200 570.86.15 570.133.20 B200
rtx-pro-6000 575.51.02 575.51.03 RTX PRO 6000 Blackwell
CASES
    # Version order, not string order: 525.105.17 > 525.85.12; the minimum itself passes.
    pf new-enough-h100-525.105 0 "h100-80gb:1 525.105.17"
    pf boundary-a100-450.80.02 0 "a100-40gb:1 450.80.02"
    pf boundary-h200-550.90.07 0 "h200-141gb:1 550.90.07"
    pf mixed-one-too-old fail "a100-40gb:1,h200-141gb:1 535.161.07"
    log_has "mixed host: only the H200 is reported" 'GPU 1 \(NVIDIA H200.*H200 family\): driver 535\.161\.07'
    check "mixed host: the A100 is not reported" bash -c "! grep -q 'GPU 0 (NVIDIA A100' '$PLAY_LOG'"

    log "== preflight: MIG requested on a GPU without MIG"
    pf mig-on-l40s fail "h100-80gb:1,l40s:1 580.159.04" -e "$(layouts '[{"devices": [1], "mig_enabled": true, "mig_devices": {}}]')"
    log_has "names host, GPU and entry" 'gpuhost: GPU 1 \(NVIDIA L40S\) is not MIG-capable, but mig_layouts\[0\] enables MIG on it.*Fix: remove GPU 1'
    pf mig-on-l40s-by-uuid fail "h100-80gb:1,l40s:1 580.159.04" -e "$(layouts '[{"devices": ["0"], "mig_enabled": false}, {"devices": ["'"$(
        "$MIGSIM" init "$WORK/uuid.json" --gpus h100-80gb:1,l40s:1 >/dev/null && python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gpus"][1]["uuid"])' "$WORK/uuid.json")"'"], "mig_devices": {"x": 0}}]')"
    log_has "selected by UUID, second entry" 'GPU 1 \(NVIDIA L40S\) is not MIG-capable, but mig_layouts\[1\]'
    pf mig-all-skips-l40s 0 "h100-80gb:1,l40s:1 580.159.04" -e "$(layouts '[{"devices": "all", "mig_enabled": true, "mig_devices": {}}]')"
    pf mig-disabled-on-l40s 0 "h100-80gb:1,l40s:1 580.159.04" -e "$(layouts '[{"devices": [1], "mig_enabled": false}]')"

    log "== preflight: operating system"
    pf os-unsupported fail "h100-80gb:1 580.159.04" -e '{"_preflight_supported_os": {"Ubuntu": ["24.04"]}}'
    log_has "names host, OS and fix" 'gpuhost: Debian [0-9.]+ is not supported by gpuops.mig.*Fix: run on a supported release'
    pf os-check-off 0 "h100-80gb:1 580.159.04" -e '{"_preflight_supported_os": {"Ubuntu": ["24.04"]}, "preflight_check_os": false}'

    log "== preflight: NVIDIA Container Toolkit"
    pf ctk-missing-ok 0 "h100-80gb:1 580.159.04" -e '{"preflight_container_runtimes": ["docker"]}'
    pf ctk-missing-required fail "h100-80gb:1 580.159.04" -e '{"preflight_container_runtimes": ["docker"], "preflight_require_container_toolkit": true}'
    log_has "missing toolkit: fix names the role" 'gpuhost: the NVIDIA Container Toolkit is not installed.*Fix: run the gpuops.mig.container_toolkit role'
    fake_tool nvidia-ctk "NVIDIA Container Toolkit CLI version 1.17.8
commit: 0000000"
    pf ctk-too-old fail "h100-80gb:1 580.159.04" -e '{"preflight_container_runtimes": ["docker"]}'
    log_has "old toolkit: version and minimum" 'gpuhost: NVIDIA Container Toolkit 1\.17\.8 is older than 1\.19\.0.*Fix: upgrade it'
    # After the container_toolkit role in the same play: check mode counts the version about to be
    # installed; a real run reads the host again.
    pf ctk-planned-check-mode 0 "h100-80gb:1 580.159.04" --check -e '{"preflight_container_runtimes": ["docker"], "container_toolkit_planned_version": "1.20.0-1"}'
    pf ctk-planned-real-run fail "h100-80gb:1 580.159.04" -e '{"preflight_container_runtimes": ["docker"], "container_toolkit_planned_version": "1.20.0-1"}'
    log_has "real run: the host's own version counts" 'NVIDIA Container Toolkit 1\.17\.8 is older than 1\.19\.0'
    pf ctk-no-runtimes 0 "h100-80gb:1 580.159.04"
    fake_tool nvidia-ctk "NVIDIA Container Toolkit CLI version 1.20.0
commit: 0000000"
    pf ctk-new-enough 0 "h100-80gb:1 580.159.04" -e '{"preflight_container_runtimes": ["docker", "containerd"]}'
    log_has "toolkit version recorded" 'PREFLIGHT_FACT .*container_toolkit_version.{0,6}1\.20\.0'

    log "== preflight: Kubernetes device plugin and GFD"
    pf k8s-vars-old fail "h100-80gb:1 580.159.04" -e '{"preflight_kubernetes": true, "preflight_k8s_device_plugin_version": "v0.6.0", "preflight_k8s_gfd_version": "0.1.0"}'
    log_has "old device plugin named" 'k8s-device-plugin 0\.6\.0 does not support MIG; 0\.7\.0 or newer'
    log_has "old GFD named" 'gpu-feature-discovery 0\.1\.0 does not support MIG; 0\.2\.0 or newer'
    pf k8s-vars-ok 0 "h100-80gb:1 580.159.04" -e '{"preflight_kubernetes": true, "preflight_k8s_device_plugin_version": "0.17.0", "preflight_k8s_gfd_version": "0.17.0"}'
    fake_tool kubectl "nvidia/k8s-device-plugin:v0.6.2
nvidia/gpu-feature-discovery:v0.2.2
registry.local/kube-proxy:v1.30.0"
    pf k8s-kubectl-old fail "h100-80gb:1 580.159.04" -e '{"preflight_kubernetes": true}'
    log_has "device plugin detected with kubectl" 'k8s-device-plugin 0\.6\.2 does not support MIG'
    check "GFD 0.2.2 from kubectl accepted" bash -c "! grep -q 'gpu-feature-discovery 0.2.2 does not' '$PLAY_LOG'"
    printf '#!/bin/sh\necho "error: no configuration has been provided" >&2\nexit 1\n' >"$FAKEBIN/kubectl"
    chmod 755 "$FAKEBIN/kubectl"
    pf k8s-undetectable fail "h100-80gb:1 580.159.04" -e '{"preflight_kubernetes": true}'
    log_has "unknown version is a failure with the reason" 'preflight_kubernetes is true but the k8s-device-plugin version is unknown: kubectl on localhost failed \(rc 1\): error: no configuration has been provided'
    fake_tool kubectl "registry.local/kube-proxy:v1.30.0"
    pf k8s-no-plugin-image fail "h100-80gb:1 580.159.04" -e '{"preflight_kubernetes": true, "preflight_k8s_gfd_version": "0.17.0"}'
    log_has "no device plugin image: named" 'k8s-device-plugin version is unknown: no DaemonSet runs an image named k8s-device-plugin'
    rm -f "$FAKEBIN/kubectl"
    pf k8s-versions-given-no-kubectl 0 "h100-80gb:1 580.159.04" -e '{"preflight_kubernetes": true, "preflight_k8s_device_plugin_version": "0.17.0", "preflight_k8s_gfd_version": "0.17.0"}'

    log "preflight total $((SECONDS - t0))s"
    roletest_summary
}

main "$@"
