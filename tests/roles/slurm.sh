#!/usr/bin/env bash
# Slurm tier: Debian's real slurmctld and slurmd (with munge and slurm-client) in a booted Debian 12
# container (systemd-nspawn -b), a one-node cluster on simulated GPUs. The mig role changes the layout
# twice on a simulated H100 80GB host and twice on a simulated H200 host, with the Slurm drain/resume
# hooks, gres.conf and the node's slurm.conf Gres= managed by the role. After each change the node must
# be IDLE (not DRAIN, not INVAL) with gpu:<type>:<n> per profile exactly as in the layout (types from the
# naming rule of plugins/module_utils/_slurm.py, written out here by hand), `srun --gres=gpu:<type>:1`
# must run and be given a live instance of that type, and no gres.conf record may name a destroyed one.
#
# Debian's Slurm 22.05 has no NVML plugin (no gpu_nvml.so), so gres.conf holds explicit records
# (MultipleFiles= /dev/nvidia<minor> and the GPU and compute instance capability files). The driver's
# part is played by tests/nvml_sim (NVML), a bind mount over /proc/driver (mig-minors and the GPUs'
# information files, as the driver writes them) and character device files made with mknod, as
# nvidia-modprobe makes them when nvidia-smi runs.
#
# Packages come from the host's apt mirror (its sources and lists), installed into a copy of the cached
# Debian 12 rootfs; the container then runs offline. Needs root, systemd-nspawn, nsenter.
# Environment: as tests/roles/run.sh (ROLETEST_CACHE, ROLETEST_KEEP, GPUOPS_COLLECTIONS_PATH), and
# ROLETEST_SLURM_HOSTS (default "h100 h200").
set -euo pipefail
# shellcheck source=tests/roles/run.sh disable=SC1091
source "$(dirname "$0")/run.sh"

SLURM_PACKAGES=(munge slurmctld slurmd slurm-client)
T=/opt/gpuops-test
CAPS_MAJOR=511   # dynamic major of nvidia-caps (the driver's is taken from /proc/devices; any unused one here)

# slurm_install ROOTFS: the Debian Slurm packages from the host's mirror; the rootfs is offline afterwards.
slurm_install() {
    local R=$1 rc=0 f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] && cp "$f" "$R$f"
    done
    cp -a /var/lib/apt/lists/. "$R/var/lib/apt/lists/" && rm -f "$R/var/lib/apt/lists/lock"
    printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
    mount -t proc proc "$R/proc"
    if ! compgen -G "$R/var/lib/apt/lists/*_Packages*" >/dev/null; then
        chroot "$R" apt-get update -q >"$WORK/logs/slurm-apt.log" 2>&1 || rc=$?
    fi
    ((rc)) || chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${SLURM_PACKAGES[@]}" >>"$WORK/logs/slurm-apt.log" 2>&1 || rc=$?
    umount "$R/proc"
    rm -f "$R/usr/sbin/policy-rc.d" "$R/etc/apt/sources.list" "$R"/etc/apt/sources.list.d/*
    rm -rf "$R"/var/lib/apt/lists/*
    ((rc == 0)) || { tail -5 "$WORK/logs/slurm-apt.log"; return 1; }
}

# slurm_driver ROOTFS NGPUS MINOR0: simulated NVML and nvidia-smi (as the mig tier), the /proc/driver stand-in and
# a boot unit that bind-mounts it and makes /dev/nvidiactl and /dev/nvidia<minor>.
slurm_driver() {
    local R=$1 n=$2 minor0=$3 i bus
    mkdir -p "$R$T" "$R/var/lib/migsim" "$R/usr/local/lib/python3.11/dist-packages"
    tar -C "$ROLETEST_ROOT/tests" -cf - nvml_sim fakebin | tar -C "$R$T" -xf -
    cp "$(python3 -c 'import pynvml; print(pynvml.__file__)')" "$R/usr/local/lib/python3.11/dist-packages/pynvml.py"
    ln -sf "$T/nvml_sim/build/libnvidia-ml.so.1" "$R/usr/local/lib/libnvidia-ml.so.1"
    chroot "$R" ldconfig
    ln -sf /usr/bin/python3 "$R/usr/local/bin/python"
    mkdir -p "$R/etc/systemd/system.conf.d"
    printf '[Manager]\nDefaultEnvironment=MIGSIM_STATE=/var/lib/migsim/state.json\n' >"$R/etc/systemd/system.conf.d/gpuops-test.conf"
    # /proc/driver as the driver fills it: mig-minors for 32 GPUs, one information file per GPU.
    local D=$R$T/proc-driver
    mkdir -p "$D/nvidia-caps"
    python3 - >"$D/nvidia-caps/mig-minors" <<'PY'
n = 3
print("config 1\nmonitor 2")
for g in range(32):
    for gi in range(15):
        print("gpu%d/gi%d/access %d" % (g, gi, n)); n += 1
        for ci in range(8):
            print("gpu%d/gi%d/ci%d/access %d" % (g, gi, ci, n)); n += 1
PY
    for ((i = 0; i < n; i++)); do
        bus=$(printf '0000:%02x:00.0' $((0x10 + i)))
        mkdir -p "$D/nvidia/gpus/$bus"
        printf 'Model: \t\t simulated\nIRQ:   \t\t 0\nBus Location: \t %s\nDevice Minor: \t %d\n' "$bus" $((minor0 + i)) >"$D/nvidia/gpus/$bus/information"
    done
    cat >"$R/usr/local/sbin/gpuops-test-mknod" <<EOF
#!/usr/bin/python3
"""Device files as the driver and nvidia-modprobe make them: /dev/nvidiactl and /dev/nvidia<minor> (195),
and with --caps /dev/nvidia-caps/nvidia-cap<N> for every live GPU and compute instance (N from mig-minors)."""
import glob, json, os, re, stat, subprocess, sys
def node(path, major, minor):
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
minors = {}
for info in glob.glob("/proc/driver/nvidia/gpus/*/information"):
    minors[info.split("/")[-2]] = int(re.search(r"Device Minor:\s*(\d+)", open(info).read()).group(1))
node("/dev/nvidiactl", 195, 255)
for m in minors.values():
    node("/dev/nvidia%d" % m, 195, m)
if "--caps" in sys.argv:
    caps = dict(l.split() for l in open("/proc/driver/nvidia-caps/mig-minors") if l.strip())
    show = json.loads(subprocess.run(["/usr/bin/python3", "$T/nvml_sim/migsim", "show", os.environ["MIGSIM_STATE"]],
                                     check=True, capture_output=True, text=True).stdout)
    by_index = [minors[bus] for bus in sorted(minors)]   # bus IDs sort in NVML index order here
    for gpu in show["gpus"]:
        m = by_index[gpu["index"]]
        for gi in gpu["gpu_instances"]:
            node("/dev/nvidia-caps/nvidia-cap" + caps["gpu%d/gi%d/access" % (m, gi["id"])], $CAPS_MAJOR, int(caps["gpu%d/gi%d/access" % (m, gi["id"])]))
            for ci in gi["compute_instances"]:
                k = "gpu%d/gi%d/ci%d/access" % (m, gi["id"], ci["id"])
                node("/dev/nvidia-caps/nvidia-cap" + caps[k], $CAPS_MAJOR, int(caps[k]))
EOF
    chmod 755 "$R/usr/local/sbin/gpuops-test-mknod"
    # nvidia-smi -L makes the capability files of the live instances (nvidia-modprobe), then lists.
    # shellcheck disable=SC2016  # $1 and $@ belong to the script written
    printf '#!/bin/sh\n[ "$1" = -L ] && /usr/local/sbin/gpuops-test-mknod --caps\nexec %s/fakebin/nvidia-smi "$@"\n' "$T" >"$R/usr/local/bin/nvidia-smi"
    chmod 755 "$R/usr/local/bin/nvidia-smi"
    cat >"$R/etc/systemd/system/gpuops-test-driver.service" <<EOF
[Unit]
Description=Stand-in for the NVIDIA driver's /proc/driver entries and device files (gpuops.mig tests)
DefaultDependencies=no
After=local-fs.target
Before=slurmd.service gpuops-mig.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind $T/proc-driver /proc/driver
ExecStart=/usr/local/sbin/gpuops-test-mknod
[Install]
WantedBy=multi-user.target
EOF
    ln -sf /etc/systemd/system/gpuops-test-driver.service "$R/etc/systemd/system/multi-user.target.wants/"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# slurm_conf ROOTFS NODE: a one-node cluster on loopback (the container shares the host's network, so the
# ports are picked free), no cgroup plugins (the tier checks GRES bookkeeping, not device isolation).
slurm_conf() {
    local R=$1 node=$2
    cat >"$R/etc/slurm/slurm.conf" <<EOF
# One-node cluster of the gpuops.mig Slurm tier.
ClusterName=gpuops
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmdDebug=debug2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
GresTypes=gpu
ReturnToService=2
SlurmdTimeout=60
NodeName=$node NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN
PartitionName=gpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$R/etc/slurm/gres.conf"
    printf '# site line kept by the role\n' >>"$R/etc/slurm/gres.conf"
}

in_ct() { nsenter -t "$SLURM_INIT" -a env MIGSIM_STATE=/var/lib/migsim/state.json "$@"; }

slurm_up() { # the daemons run and the node answers
    local _
    for _ in $(seq 60); do
        if in_ct systemctl is-active -q munge slurmctld slurmd && in_ct sinfo -h -N -o %T 2>/dev/null | grep -qx idle; then return 0; fi
        sleep 1
    done
    in_ct systemctl status --no-pager slurmctld slurmd 2>&1 | tail -20
    in_ct sinfo -N 2>&1 | tail -3
    return 1
}

# node_is NODE GRES: State=IDLE (no DRAIN/INVAL/other flag) and Gres= equal to GRES as a set.
node_is() {
    local out state gres
    out=$(in_ct scontrol show node "$1" -o)
    state=$(tr ' ' '\n' <<<"$out" | sed -n 's/^State=//p')
    gres=$(tr ' ' '\n' <<<"$out" | sed -n 's/^Gres=//p')
    [[ $state == IDLE ]] || { echo "state $state (reason: $(tr ' ' '\n' <<<"$out" | sed -n 's/^Reason=//p'))"; return 1; }
    [[ $(tr ',' '\n' <<<"$gres" | sort | paste -sd,) == $(tr ',' '\n' <<<"$2" | sort | paste -sd,) ]] \
        || { echo "Gres=$gres, want $2"; return 1; }
}

# records_live NODE: every gres.conf record of NODE names a live instance (GPU instance and compute instance
# capability minors of an instance the simulator has) of the type the naming rule gives it, and every live
# instance has exactly one record.
records_live() {
    in_ct cat /etc/slurm/gres.conf | python3 -c '
import json, re, subprocess, sys
node, migsim, state, minor0 = sys.argv[1:4] + [int(sys.argv[4])]
recs = [l for l in sys.stdin.read().splitlines() if l.startswith("NodeName=%s " % node) and "Name=gpu" in l]
show = json.loads(subprocess.run([migsim, "show", state], check=True, capture_output=True, text=True).stdout)
live = {}
for g in show["gpus"]:
    for gi in g["gpu_instances"]:
        for ci in gi["compute_instances"]:
            minor = minor0 + g["index"]
            gim = 3 + minor * 135 + gi["id"] * 9          # the driver layout of mig-minors
            files = "/dev/nvidia%d,/dev/nvidia-caps/nvidia-cap%d,/dev/nvidia-caps/nvidia-cap%d" % (minor, gim, gim + 1 + ci["id"])
            live[files] = gi["profile"]
got = {}
for r in recs:
    f = re.search(r"MultipleFiles=(\S+)", r).group(1)
    if f not in live:
        sys.exit("record names no live instance: %s" % r)
    got[f] = re.search(r"Type=(\S+)", r).group(1)
if set(got) != set(live):
    sys.exit("live instances without a record: %s" % sorted(set(live) - set(got)))
print("%d records, all live" % len(got))
' "$1" "$MIGSIM" "$SLURM_STATE" "$SLURM_MINOR0"
}

# srun_gets NODE TYPE: a job asking for one gpu:TYPE runs on NODE and is given a record of that type: the
# job's own `scontrol show job -d` names the device index (IDX) it holds, CUDA_VISIBLE_DEVICES names the
# same index, and that gres.conf record has the type and names a live instance (records_live).
srun_gets() {
    local node=$1 type=$2 out idx cuda rec
    # shellcheck disable=SC2016  # expanded by the job
    out=$(in_ct timeout 60 srun -w "$node" --gres="gpu:$type:1" -t 1 \
        sh -c 'echo "cuda=$CUDA_VISIBLE_DEVICES"; scontrol show job -d "$SLURM_JOB_ID"' 2>&1) \
        || { echo "srun failed: $out"; return 1; }
    idx=$(sed -n "s/.*GRES=gpu:$type:1(IDX:\([0-9]*\)).*/\1/p" <<<"$out" | head -1)
    cuda=$(sed -n 's/^cuda=//p' <<<"$out")
    [[ -n $idx ]] || { echo "no gpu:$type IDX in the job's scontrol show job -d: $out"; return 1; }
    rec=$(in_ct grep "^NodeName=$node .*Name=gpu" /etc/slurm/gres.conf | sed -n "$((idx + 1))p")
    [[ $rec == *"Type=$type "* ]] || { echo "job got IDX $idx = '$rec', not a $type"; return 1; }
    [[ $cuda == "$idx" ]] || { echo "CUDA_VISIBLE_DEVICES=$cuda, IDX $idx"; return 1; }
    echo "IDX $idx, CUDA_VISIBLE_DEVICES=$cuda: ${rec##*MultipleFiles=}"
}

# task_order LOG TASK...: each task ran (changed) in this order.
task_order() {
    local log=$1; shift
    awk -v want="$(IFS='|'; echo "$*")" 'BEGIN { n = split(want, w, "|"); i = 1 }
        /^TASK \[/ { t = $0; sub(/^TASK \[[^:]*: /, "", t); sub(/\] \**$/, "", t); next }
        /^changed:/ && i <= n && t == w[i] { i++ }
        END { if (i <= n) { print "missing or out of order: " w[i]; exit 1 } }' "$log"
}
export -f task_order

srun_refused() { # srun_refused NODE TYPE: a request for a type the node no longer has is refused
    local out
    if out=$(in_ct timeout 30 srun -w "$1" --gres="gpu:$2:1" -t 1 --immediate=5 true 2>&1); then
        echo "srun for gpu:$2 ran: $out"; return 1
    fi
    grep -Eq 'Requested node configuration is not available|Invalid generic resource' <<<"$out" \
        || { echo "srun failed otherwise: $out"; return 1; }
}

# slurm_layout LABEL GRES-WANT LAYOUT-JSON [again]: converge the mig role with the Slurm hooks, then check
# the node; with "again", a second run must change and restart nothing.
slurm_layout() {
    local label=$1 want=$2 layout=$3 vars=$WORK/$1.vars.yml hooks=$ANSIBLE_COLLECTIONS_PATH/ansible_collections/gpuops/mig/playbooks/hooks
    cat >"$vars" <<YAML
mig_run_preflight: false
mig_boot_service: false
mig_cdi_refresh: "false"
mig_layouts:
  - devices: all
    mig_enabled: true
    mig_devices: $layout
mig_slurm_gres: true
mig_slurm_conf_manage: true
mig_slurm_node_name: $SLURM_NODE
gpuops_mig_slurm_node: $SLURM_NODE
mig_drain_tasks_file: $hooks/slurm-drain.yml
mig_undrain_tasks_file: $hooks/slurm-resume.yml
YAML
    play "$label" changed -i "$SLURM_INV" "$HERE/playbooks/mig.yml" -e "@$vars"
    check "$label: slurmd restarted, then slurmctld (22.05), before the resume hook" task_order "$PLAY_LOG" \
        'Restart slurmd' 'Restart slurmctld' 'Resume the Slurm node'
    check "$label: node IDLE with Gres=$want" node_is "$SLURM_NODE" "$want"
    check "$label: every gres.conf record names a live instance" records_live "$SLURM_NODE"
    local t
    for t in $(tr ',' '\n' <<<"$want" | cut -d: -f2); do
        check "$label: srun --gres=gpu:$t:1 gets a $t" srun_gets "$SLURM_NODE" "$t"
    done
    [[ ${4:-} == again ]] || return 0
    play "$label-again" 0 -i "$SLURM_INV" "$HERE/playbooks/mig.yml" -e "@$vars"
    check "$label-again: slurmd not restarted" bash -c "! task_order '$PLAY_LOG' 'Restart slurmd'"
}

slurm_host() { # slurm_host LABEL MODEL MINOR GRES1 LAYOUT1 GRES2 LAYOUT2
    local label=$1 model=$2
    SLURM_MINOR0=$3; shift
    log "-- $label: simulated $model, one-node cluster"
    local R=$WORK/$label
    cp -a "$SLURM_ROOTFS" "$R"
    slurm_driver "$R" 1 "$SLURM_MINOR0"
    SLURM_NODE=gpuops-$label
    SLURM_STATE=$R/var/lib/migsim/state.json
    "$MIGSIM" init "$SLURM_STATE" --gpus "$model:1" >/dev/null
    slurm_conf "$R" "$SLURM_NODE"
    nspawn_boot "$R" "$label" || return
    SLURM_INIT=$NSPAWN_INIT SLURM_INV=$NSPAWN_INV
    check "$label: munge, slurmctld, slurmd up; node idle" slurm_up
    slurm_layout "$label-layout1" "$3" "$4" "$([[ $label == *h100 ]] && echo again)"
    slurm_layout "$label-layout2" "$5" "$6" "$([[ $label == *h200 ]] && echo again)"
    local t
    for t in $(tr ',' '\n' <<<"$3" | cut -d: -f2); do
        [[ ,$5, == *",gpu:$t:"* ]] || check "$label-layout2: a job asking for the gone gpu:$t is refused" srun_refused "$SLURM_NODE" "$t"
    done
    nspawn_stop "$NSPAWN_PID"
    rm -rf "$R"
}

tier_slurm() {
    log "== slurm tier (Debian's slurmctld/slurmd in systemd-nspawn -b, simulated NVML, the mig role's GRES)"
    command -v systemd-nspawn >/dev/null || { fail "slurm tier: systemd-nspawn not installed (apt-get install systemd-container)"; return; }
    MIGSIM=$ROLETEST_ROOT/tests/nvml_sim/migsim
    "$MIGSIM" env "$WORK/slurm-probe.json" >/dev/null   # builds the simulated library
    SLURM_ROOTFS=$WORK/slurm-base
    new_rootfs "$SLURM_ROOTFS" nomounts
    check "Debian packages ${SLURM_PACKAGES[*]} installed from the host's mirror" slurm_install "$SLURM_ROOTFS"
    check "Debian's Slurm has no NVML plugin (explicit gres.conf records)" \
        bash -c "! ls '$SLURM_ROOTFS'/usr/lib/*/slurm-wlm/gpu_nvml.so 2>/dev/null"
    local h='nvidia_h100_80gb_hbm3' g='nvidia_h200' hosts=${ROLETEST_SLURM_HOSTS:-h100 h200}
    # Types by the attributes rule of Slurm 22.05 (memorySizeMB from the models: 9984, 20096, 40448 MiB for
    # the H100 1g/2g/3g; 16384, 33280, 71424 MiB for the H200 1g.18gb, 2g.35gb/1g.35gb, 3g.71gb).
    [[ " $hosts " != *" h100 "* ]] || slurm_host slurm-h100 h100-80gb 0 \
        "gpu:${h}_3g.40gb:1,gpu:${h}_2g.20gb:1,gpu:${h}_1g.10gb:2" '{"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}' \
        "gpu:${h}_1g.20gb:2,gpu:${h}_1g.10gb:3" '{"1g.20gb": 2, "1g.10gb": 3}'
    # The H200's device minor is 3 (not its index), as on a host whose other GPUs are not visible.
    [[ " $hosts " != *" h200 "* ]] || slurm_host slurm-h200 h200-141gb 3 \
        "gpu:${g}_1g.16gb:7" '{"1g.18gb": 7}' \
        "gpu:${g}_3g.70gb:1,gpu:${g}_2g.33gb:1,gpu:${g}_1g.33gb:1" '{"3g.71gb": 1, "2g.35gb": 1, "1g.35gb": 1}'
}

main_slurm() {
    local t0=$SECONDS
    roletest_setup
    ensure_base_rootfs
    tier_slurm
    log "slurm tier took $((SECONDS - t0))s"
    roletest_summary
}

main_slurm "$@"
