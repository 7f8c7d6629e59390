#!/usr/bin/env bash
# site tier: playbooks/site.yml on a mixed fleet of three Debian 12 chroots (community.general.chroot),
# each with simulated GPUs (tests/nvml_sim: the stand-in libnvidia-ml.so.1 on the chroot's library
# path, pynvml for its python3, a state file per host) and NVIDIA's toolkit from the signed apt
# repository of stand-in packages that tests/roles/run.sh serves on 127.0.0.1:
#   mig      1 x H100 80GB, the group's layout            -> preflight, toolkit, MIG converged
#   nonmig   1 x L40S (no MIG), the same group layout      -> preflight, toolkit, MIG step reported and skipped
#   nolayout 1 x H100 80GB, mig_layouts: []                -> preflight, toolkit, MIG step reported and skipped
# Scenarios: --check --diff on the fresh hosts (predicts, changes nothing), first run on toolkit
# 1.19.0-1, a run that raises the toolkit minimum to 1.20.0 (the toolkit is upgraded, not failed),
# a second run with changed=0, --check --diff with changed=0.
# Run by tests/roles/run.sh (tier "site"), which passes the repository in ROLETEST_APT_REPO_URL,
# ROLETEST_APT_REPO_FPR and the base rootfs in ROLETEST_BASE_ROOTFS.
set -euo pipefail
# A private mount namespace: the chroots' /proc and /dev mounts never propagate into other mount
# trees on the machine, and they vanish with the tier even when it is killed.
if [[ -z ${ROLETEST_UNSHARED:-} ]] && command -v unshare >/dev/null; then
    exec env ROLETEST_UNSHARED=1 unshare --mount --propagation private "$0" "$@"
fi

# shellcheck source=tests/roles/lib.sh disable=SC1091
source "$(dirname "$0")/lib.sh"
MIGSIM=$ROLETEST_ROOT/tests/nvml_sim/migsim
: "${ROLETEST_APT_REPO_URL:?run through tests/roles/run.sh (ROLETEST_TIERS=site)}"
: "${ROLETEST_APT_REPO_FPR:?}" "${ROLETEST_BASE_ROOTFS:?}"
[[ $(id -u) -eq 0 ]] || { echo "site.sh needs root (chroot, mounts)" >&2; exit 2; }
T=/opt/gpuops-test
unset GNUPGHOME   # run.sh's; the chroot connection would hand it to the chroots' commands
HOSTS=(mig nonmig nolayout)

# new_host NAME GPUS: a chroot with the simulated driver (as the mig tier of run.sh sets it up).
new_host() {
    local name=$1 gpus=$2 R=$WORK/$1
    cp -a "$ROLETEST_BASE_ROOTFS" "$R"
    rm -f "$R/etc/apt/sources.list" "$R"/etc/apt/sources.list.d/*
    rm -rf "$R"/var/lib/apt/lists/*
    printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
    mount -t proc proc "$R/proc" && on_exit "umount -l '$R/proc'"
    mount --bind /dev "$R/dev" && on_exit "umount -l '$R/dev'"
    mkdir -p "$R$T" "$R/var/lib/migsim" "$R/usr/local/lib/python3.11/dist-packages"
    tar -C "$ROLETEST_ROOT/tests" -cf - nvml_sim fakebin | tar -C "$R$T" -xf -
    cp "$(python3 -c 'import pynvml; print(pynvml.__file__)')" "$R/usr/local/lib/python3.11/dist-packages/pynvml.py"
    ln -sf "$T/nvml_sim/build/libnvidia-ml.so.1" "$R/usr/local/lib/libnvidia-ml.so.1"
    chroot "$R" ldconfig
    ln -sf /usr/bin/python3 "$R/usr/local/bin/python"
    printf '#!/bin/sh\nexec %s/fakebin/nvidia-smi "$@"\n' "$T" >"$R/usr/local/bin/nvidia-smi"
    chmod 755 "$R/usr/local/bin/nvidia-smi"
    "$MIGSIM" init "$R/var/lib/migsim/state.json" --gpus "$gpus" >/dev/null
    echo "$name ansible_connection=community.general.chroot ansible_host=$R ansible_python_interpreter=/usr/bin/python3" >>"$INV"
}

# site LABEL EXPECT [args]: playbooks/site.yml from the collection copy
site() {
    local label=$1 expect=$2; shift 2
    play "$label" "$expect" -i "$INV" -e "@$VARS" "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/gpuops/mig/playbooks/site.yml" "$@"
}
host_changed() { # host_changed HOST N: the recap of the last play has changed=N for HOST
    local got
    got=$(sed -n "s/^$1 *: ok=[0-9]* *changed=\([0-9]*\).*/\1/p" "$PLAY_LOG" | tail -n 1)
    [[ $got == "$2" ]] || { echo "$1 changed=$got, want $2"; return 1; }
}
host_ok() { grep -Eq "^$1 +: ok=[0-9]+ +changed=[0-9]+ +unreachable=0 +failed=0" "$PLAY_LOG" || { grep "^$1 " "$PLAY_LOG"; return 1; }; }
sim_profiles_are() { # sim_profiles_are HOST PROFILES(sorted, comma-separated) MODE
    "$MIGSIM" show "$WORK/$1/var/lib/migsim/state.json" | python3 -c '
import json, sys
g = json.load(sys.stdin)["gpus"][0]
got = ",".join(sorted(gi["profile"] for gi in g["gpu_instances"]))
print("%s %s" % (got, g["mig_mode"]["current"]))
sys.exit(0 if got == sys.argv[1] and g["mig_mode"]["current"] == sys.argv[2] else 1)' "$2" "$3"
}
toolkit_is() { # toolkit_is HOST VERSION|none
    local v
    # shellcheck disable=SC2016 # dpkg-query's own ${Version} format
    v=$(chroot "$WORK/$1" dpkg-query -W -f '${Version}' nvidia-container-toolkit-base 2>/dev/null) || v=none
    [[ $v == "$2" ]] || { echo "$1: toolkit $v, want $2"; return 1; }
}
snapshot() { # snapshot FILE: simulator states and the hosts' /etc, to prove check mode changed nothing
    local h
    for h in "${HOSTS[@]}"; do
        "$MIGSIM" show "$WORK/$h/var/lib/migsim/state.json"
        (cd "$WORK/$h" && find etc var/lib/dpkg/status -xdev -type f -newer "$WORK/stamp" 2>/dev/null | sort)
    done >"$1"
}

main() {
    local t0=$SECONDS
    roletest_setup
    INV=$WORK/hosts.ini
    echo "[gpu_nodes]" >"$INV"
    new_host mig h100-80gb:1
    new_host nonmig l40s:1
    new_host nolayout h100-80gb:1
    mkdir -p "$WORK/host_vars"
    VARS=$WORK/site.vars.yml
    cat >"$VARS" <<YAML
gpuops_mig_environment:
  MIGSIM_STATE: /var/lib/migsim/state.json
  FAKE_NVIDIA_SMI_LOG: /var/log/fake-nvidia-smi.log
container_toolkit_apt_repo_url: '$ROLETEST_APT_REPO_URL/deb/\$(ARCH)'
container_toolkit_apt_key_url: '$ROLETEST_APT_REPO_URL/gpgkey'
container_toolkit_key_fingerprints: ['$ROLETEST_APT_REPO_FPR']
container_toolkit_runtimes: [docker]
container_toolkit_cdi_refresh_enabled: false
# The packages carry NVIDIA's real nvidia-ctk, whose \`cdi generate\` needs a driver these chroots lack
# (runtimes.sh generates CDI against the simulated driver).
container_toolkit_cdi_generate: false
mig_cdi_refresh: false
preflight_require_container_toolkit: true
mig_gpu_clients: []
mig_gpu_clients_mode_change: []
mig_reset_blocking_units: []
mig_boot_service_enable: false
YAML
    # The group layout (every host); the nolayout host sets none in its host_vars.
    mkdir -p "$WORK/group_vars" "$WORK/host_vars"
    cat >"$WORK/group_vars/gpu_nodes.yml" <<'YAML'
mig_layouts:
  - devices: all
    mig_enabled: true
    mig_devices: {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}
YAML
    echo "mig_layouts: []" >"$WORK/host_vars/nolayout.yml"
    touch "$WORK/stamp"
    sleep 1

    log "== site.yml --check --diff on three fresh hosts"
    snapshot "$WORK/before-check"
    site site-check-fresh changed --check --diff
    for h in "${HOSTS[@]}"; do check "check mode: $h ok, not failed" host_ok "$h"; done
    log_has "check mode predicts the toolkit installation" 'a real run installs nvidia-container-toolkit=1\.20\.0-1'
    log_has "check mode predicts the MIG layout on the MIG host" 'Layout changes on GPU\(s\) 0'
    log_has "non-MIG host reported" 'nonmig: MIG step skipped: no MIG-capable GPU \(NVIDIA L40S\)'
    log_has "host without a layout reported" 'nolayout: MIG step skipped: no MIG layout'
    snapshot "$WORK/after-check"
    check "check mode changed no GPU, no file under /etc, no package" cmp "$WORK/before-check" "$WORK/after-check"

    log "== first run (toolkit 1.19.0-1)"
    site site-first changed -e container_toolkit_version=1.19.0-1
    for h in "${HOSTS[@]}"; do check "first run: $h ok" host_ok "$h"; check "first run: $h has toolkit 1.19.0-1" toolkit_is "$h" 1.19.0-1; done
    check "MIG host converged" sim_profiles_are mig 1g.10gb,1g.10gb,2g.20gb,3g.40gb enabled
    check "host without a layout: GPU untouched" sim_profiles_are nolayout "" disabled
    log_has "non-MIG host reported" 'nonmig: MIG step skipped: no MIG-capable GPU'

    log "== the toolkit minimum rises to 1.20.0: the toolkit is upgraded, not failed"
    site site-upgrade changed -e preflight_container_toolkit_min_version=1.20.0
    for h in "${HOSTS[@]}"; do check "upgrade run: $h ok" host_ok "$h"; check "$h upgraded to 1.20.0-1" toolkit_is "$h" 1.20.0-1; done

    log "== second run: nothing to do"
    site site-second 0 -e preflight_container_toolkit_min_version=1.20.0
    for h in "${HOSTS[@]}"; do check "second run: $h changed=0" host_changed "$h" 0; done
    site site-check-converged 0 --check --diff -e preflight_container_toolkit_min_version=1.20.0

    log "== a misspelt layout variable is named, not skipped"
    printf 'mig_layouts: []\nmig_layout:\n  - devices: all\n' >"$WORK/host_vars/nolayout.yml"
    site site-misspelt fail --limit nolayout
    log_has "names mig_layout and suggests mig_layouts" 'mig_layout is set but is not an option of the gpuops.mig.mig role \(mig_layout: did you mean mig_layouts\?\)'

    log "site tier total $((SECONDS - t0))s"
    roletest_summary
}

main "$@"
