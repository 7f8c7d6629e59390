#!/usr/bin/env bash
# Container runtime configuration with the REAL nvidia-ctk (v1.20.0 built from NVIDIA's source), checked
# by the runtimes' own parsers from Debian's packages:
#   containerd 1.6 (Debian 12) and 1.7 (Debian 13), config version 2;  containerd 2.x (Debian unstable),
#   config version 3;  dockerd --validate (docker.io of Debian 13);  CRI-O is not packaged by Debian:
#   its drop-in is checked with Python's TOML parser.
# Host scenarios: the runtime setup of the container_toolkit role runs three times on site configs
# (registry mirrors, other runtimes, imports): changed only on the first run, every result accepted by
# the parser, site settings kept, the files byte for byte what nvidia-ctk writes. Booted scenario: Debian's
# containerd runs under systemd in a Debian 12 container (systemd-nspawn -b), restarted only on a change.
#
# Environment: NVIDIA_CTK (path of the real nvidia-ctk; default: built by ../shared/tools/build-nvidia-ctk
# when ../shared exists, otherwise the tier prints one line and is skipped), ROLETEST_CACHE, ROLETEST_KEEP,
# GPUOPS_COLLECTIONS_PATH (see run.sh), RUNTIMES_SCENARIOS (default "v2 v3 cdi booted").
set -euo pipefail

# shellcheck source=tests/roles/lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE=$ROLETEST_HERE
CACHE=${ROLETEST_CACHE:-/var/tmp/gpuops-roletest}

# ---------------------------------------------------------------- the real nvidia-ctk
rc=0
CTK=$(real_nvidia_ctk "$CACHE") || rc=$?
if ((rc == 1)); then
    echo "runtimes tier skipped: no real nvidia-ctk (set NVIDIA_CTK=path, or provide ../shared to build it)"
    exit 0
fi
((rc == 0)) || exit 1
[[ $(id -u) -eq 0 ]] || { echo "runtimes.sh needs root" >&2; exit 2; }
"$CTK" --version | grep 'NVIDIA Container Toolkit CLI version' >/dev/null || { echo "$CTK is not nvidia-ctk" >&2; exit 2; }
roletest_setup
log "nvidia-ctk: $CTK ($("$CTK" --version | head -1))"

# ---------------------------------------------------------------- the runtimes' parsers
# Debian's packages, downloaded (not installed) with a private apt configuration that uses this host's
# Debian mirror, and unpacked into the cache.
host_debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' "$f"
    done | head -1 | grep . && return
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\/.*debian\/?$/) { print $i; exit } }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 | grep .
}
APTDIR=$CACHE/runtime-apt
apt_private() { apt-get -q -o Dir="$APTDIR" -o Dir::State::status=/var/lib/dpkg/status -o Acquire::Languages=none \
    -o APT::Architectures="$(dpkg --print-architecture)" -o APT::Sandbox::User=root "$@"; }
fetch_debs() { # fetch_debs: unpacks containerd (bookworm, trixie, sid), docker.io (trixie), runc (bookworm)
    local stamp=$CACHE/runtime-debs/.complete
    [[ -f $stamp ]] && return 0
    local mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    mirror=$(host_debian_mirror) || { echo "no Debian mirror in this host's apt sources"; return 1; }
    rm -rf "$APTDIR" "$CACHE/runtime-debs"
    mkdir -p "$APTDIR/etc/apt/apt.conf.d" "$APTDIR/etc/apt/preferences.d" "$APTDIR/etc/apt/sources.list.d" \
        "$APTDIR/var/lib/apt/lists/partial" "$APTDIR/var/cache/apt/archives/partial" "$CACHE/runtime-debs/debs"
    local s
    for s in bookworm trixie sid; do echo "deb [signed-by=$keyring] $mirror $s main"; done >"$APTDIR/etc/apt/sources.list"
    apt_private update >"$CACHE/runtime-apt.log" 2>&1 || { tail -5 "$CACHE/runtime-apt.log"; return 1; }
    local -A want=([containerd-bookworm]=containerd/bookworm [containerd-trixie]=containerd/trixie
        [containerd-sid]=containerd/sid [docker.io-trixie]=docker.io/trixie [runc-bookworm]=runc/bookworm)
    local k
    for k in "${!want[@]}"; do
        (cd "$CACHE/runtime-debs/debs" && apt_private download "${want[$k]}" >>"$CACHE/runtime-apt.log" 2>&1) \
            || { echo "cannot download ${want[$k]}"; tail -3 "$CACHE/runtime-apt.log"; return 1; }
    done
    local deb
    for deb in "$CACHE"/runtime-debs/debs/*.deb; do
        k=$(dpkg-deb -f "$deb" Package)_$(dpkg-deb -f "$deb" Version)
        dpkg-deb -x "$deb" "$CACHE/runtime-debs/$k"
    done
    touch "$stamp"
}
runtime_bin() { # runtime_bin PACKAGE VERSION-GLOB PATH
    local d
    for d in "$CACHE"/runtime-debs/"$1"_$2; do [[ -x $d/$3 ]] && { echo "$d/$3"; return 0; }; done
    return 1
}
check "Debian's containerd and docker.io downloaded and unpacked" fetch_debs
# shellcheck disable=SC2034 # CTRD16 and CTRD17 are read through ${!b}
CTRD16=$(runtime_bin containerd '1.6.*' usr/bin/containerd) || true
# shellcheck disable=SC2034
CTRD17=$(runtime_bin containerd '1.7.*' usr/bin/containerd) || true
CTRD2=$(runtime_bin containerd '2.*' usr/bin/containerd) || true
DOCKERD=$(runtime_bin docker.io '2[3-9].*' usr/sbin/dockerd) || true
DOCKER_PROXY=${DOCKERD%/dockerd}/docker-proxy
for b in CTRD16 CTRD17 CTRD2 DOCKERD; do
    if [[ -n ${!b} ]]; then log "parser $b: ${!b} ($("${!b}" --version 2>&1 | head -1))"; else fail "parser $b not available"; fi
done

# ---------------------------------------------------------------- helpers
INV=$WORK/local.ini
printf '[targets]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n' "$(command -v python3)" >"$INV"
rt_play() { # rt_play LABEL EXPECT VARS [args]
    local label=$1 expect=$2 vars=$3; shift 3
    play "$label" "$expect" -i "$INV" "$HERE/playbooks/container_runtimes.yml" -e "@$vars" -e "_container_toolkit_ctk=$CTK" "$@"
}
# ctrd_dump BINARY CONFIG OUT: containerd's own parser reads CONFIG and its imports.
ctrd_dump() { "$1" --config "$2" config dump >"$3" 2>"$3.err" || { echo "containerd config dump failed:"; cat "$3.err"; return 1; }; }
# toml_check FILE 'STATEMENT; ...; EXPR': d is the parsed TOML.
toml_check() {
    python3 -c 'import sys, tomllib
ns = {"d": tomllib.load(open(sys.argv[1], "rb"))}
*pre, last = sys.argv[2].split("; ")
exec("\n".join(pre), ns)
sys.exit(0 if eval(last, ns) else 1)' "$1" "$2" \
        || { echo "$1: $2 is false:"; head -c 3000 "$1"; return 1; }
}
json_check() {
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" \
        || { echo "$1: $2 is false:"; cat "$1"; return 1; }
}
handler_ran() { # handler_ran RUNTIME N: the restart handler was notified N times in the last play
    local n
    n=$(grep -c "RUNNING HANDLER \[gpuops.mig.container_toolkit : Restart $1 " "$PLAY_LOG" || true)
    [[ $n -eq $2 ]] || { echo "restart handler for $1 ran $n times, want $2"; return 1; }
}
dockerd_validate() { "$DOCKERD" --validate --config-file "$1" --userland-proxy-path "$DOCKER_PROXY" 2>&1; }
# reference SITE OUT ARGS...: what nvidia-ctk writes itself for a copy of SITE's configuration at the same
# relative paths (the role's result must be the same bytes, the copy's own path aside).
reference() {
    local site=$1 out=$2; shift 2
    rm -rf "$out"; cp -a "$site.orig" "$out"
    "$CTK" runtime configure "$@" >/dev/null 2>&1
}
same_bytes() { # same_bytes ROLE-FILE REFERENCE-FILE REF-DIR SITE-DIR: equal once the directory names are swapped
    diff <(sed "s|$3|$4|g" "$2") "$1" || { echo "$1 differs from what nvidia-ctk writes"; return 1; }
}

# ---------------------------------------------------------------- scenario: containerd (config v2), Docker, CRI-O
scenario_v2() {
    log "-- scenario: containerd config version 2 (containerd 1.6, 1.7), Docker, CRI-O on a site's configuration"
    local S=$WORK/site2
    mkdir -p "$S/etc/containerd/site.d" "$S/etc/docker" "$S/etc/crio/crio.conf.d"
    cat >"$S/etc/containerd/config.toml" <<EOF
version = 2
imports = ["$S/etc/containerd/site.d/*.toml"]

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
    runtime_type = "io.containerd.kata.v2"

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.site.internal"]
EOF
    # containerd 1.x merges imported files plugin by plugin (a later file replaces a plugin's whole table),
    # so the site's imported file configures another plugin than the CRI one the NVIDIA drop-in carries
    # (docs/container-runtimes.md: what happens otherwise).
    printf 'version = 2\n\n[plugins."io.containerd.internal.v1.opt"]\n  path = "/srv/containerd/opt"\n' >"$S/etc/containerd/site.d/10-site.toml"
    cat >"$S/etc/docker/daemon.json" <<'EOF'
{
  "data-root": "/srv/docker",
  "registry-mirrors": ["https://mirror.site.internal"],
  "runtimes": {"crun": {"path": "/usr/bin/crun"}},
  "log-opts": {"max-size": "10m"}
}
EOF
    chmod 600 "$S/etc/docker/daemon.json"
    printf '[crio.runtime]\ndefault_runtime = "crun"\n\n[crio.runtime.runtimes.crun]\nruntime_path = "/usr/bin/crun"\n\n[crio.image]\npause_image = "registry.k8s.io/pause:3.9"\n' \
        >"$S/etc/crio/crio.conf"
    printf '[crio.image]\nregistries = ["mirror.site.internal"]\n' >"$S/etc/crio/crio.conf.d/10-site.conf"
    cp -a "$S" "$S.orig"
    local vars=$WORK/site2.vars.yml
    cat >"$vars" <<EOF
container_toolkit_runtimes: [containerd, docker, crio]
container_toolkit_restart_runtimes: false
container_toolkit_backup: false
container_toolkit_containerd_config: $S/etc/containerd/config.toml
container_toolkit_containerd_drop_in: $S/etc/containerd/conf.d/99-nvidia.toml
container_toolkit_docker_config: $S/etc/docker/daemon.json
container_toolkit_crio_config: $S/etc/crio/crio.conf
container_toolkit_crio_drop_in: $S/etc/crio/crio.conf.d/99-nvidia.toml
EOF
    rt_play v2-check-first changed "$vars" --check --diff
    check "check mode wrote nothing" diff -r "$S.orig" "$S"
    local run
    for run in 1 2 3; do
        if ((run == 1)); then rt_play "v2-run-$run" changed "$vars"; else rt_play "v2-run-$run" 0 "$vars"; fi
        check "run $run: containerd restart notified $((run == 1)) time(s)" handler_ran containerd $((run == 1))
        check "run $run: docker restart notified $((run == 1)) time(s)" handler_ran docker $((run == 1))
        check "run $run: crio restart notified $((run == 1)) time(s)" handler_ran crio $((run == 1))
        local b
        for b in CTRD16 CTRD17; do
            [[ -n ${!b} ]] || continue
            local dump=$WORK/v2-$run-$b.toml
            check "run $run: $b parses config.toml and its imports" ctrd_dump "${!b}" "$S/etc/containerd/config.toml" "$dump"
            check "run $run: $b sees the nvidia runtime" toml_check "$dump" \
                'd["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"'
            check "run $run: $b keeps the site's runtimes, mirror, sandbox image and imported setting" toml_check "$dump" \
                'c = d["plugins"]["io.containerd.grpc.v1.cri"]; r = c["containerd"]["runtimes"]; r["runc"]["options"]["SystemdCgroup"] is True and r["kata"]["runtime_type"] == "io.containerd.kata.v2" and c["registry"]["mirrors"]["docker.io"]["endpoint"] == ["https://mirror.site.internal"] and c["sandbox_image"] == "registry.k8s.io/pause:3.9" and d["plugins"]["io.containerd.internal.v1.opt"]["path"] == "/srv/containerd/opt"'
            check "run $run: $b parses the drop-in on its own" ctrd_dump "${!b}" "$S/etc/containerd/conf.d/99-nvidia.toml" "$dump.dropin"
        done
        check "run $run: config.toml keeps the site's import and adds the drop-in directory" toml_check "$S/etc/containerd/config.toml" \
            "d['imports'] == ['$S/etc/containerd/site.d/*.toml', '$S/etc/containerd/conf.d/*.toml']"
        [[ -n $DOCKERD ]] && check "run $run: dockerd --validate accepts daemon.json" dockerd_validate "$S/etc/docker/daemon.json"
        check "run $run: daemon.json has the nvidia runtime and the site's keys" json_check "$S/etc/docker/daemon.json" \
            'd["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime" and d["runtimes"]["crun"] == {"path": "/usr/bin/crun"} and d["registry-mirrors"] == ["https://mirror.site.internal"] and d["data-root"] == "/srv/docker" and d["log-opts"] == {"max-size": "10m"}'
        check "run $run: daemon.json keeps mode 0600" bash -c "[[ \$(stat -c %a '$S/etc/docker/daemon.json') == 600 ]]"
        check "run $run: the CRI-O drop-in parses and has the nvidia runtime" toml_check "$S/etc/crio/crio.conf.d/99-nvidia.toml" \
            'd["crio"]["runtime"]["runtimes"]["nvidia"]["runtime_path"] == "/usr/bin/nvidia-container-runtime"'
        check "run $run: crio.conf and the site's CRI-O drop-in untouched" bash -c \
            "cmp '$S.orig/etc/crio/crio.conf' '$S/etc/crio/crio.conf' && cmp '$S.orig/etc/crio/crio.conf.d/10-site.conf' '$S/etc/crio/crio.conf.d/10-site.conf'"
    done
    rt_play v2-check-converged 0 "$vars" --check --diff
    # What nvidia-ctk itself writes for the same site files.
    local R=$WORK/ref2
    reference "$S" "$R" --runtime=containerd --config="$R/etc/containerd/config.toml" --drop-in-config="$R/etc/containerd/conf.d/99-nvidia.toml"
    "$CTK" runtime configure --runtime=docker --config="$R/etc/docker/daemon.json" >/dev/null 2>&1
    "$CTK" runtime configure --runtime=crio --config="$R/etc/crio/crio.conf" --drop-in-config="$R/etc/crio/crio.conf.d/99-nvidia.toml" >/dev/null 2>&1
    check "containerd drop-in: the bytes nvidia-ctk writes" same_bytes "$S/etc/containerd/conf.d/99-nvidia.toml" "$R/etc/containerd/conf.d/99-nvidia.toml" "$R" "$S"
    check "containerd config.toml: the bytes nvidia-ctk writes" same_bytes "$S/etc/containerd/config.toml" "$R/etc/containerd/config.toml" "$R" "$S"
    check "daemon.json: the bytes nvidia-ctk writes" same_bytes "$S/etc/docker/daemon.json" "$R/etc/docker/daemon.json" "$R" "$S"
    check "CRI-O drop-in: the bytes nvidia-ctk writes" same_bytes "$S/etc/crio/crio.conf.d/99-nvidia.toml" "$R/etc/crio/crio.conf.d/99-nvidia.toml" "$R" "$S"
}

# ---------------------------------------------------------------- scenario: containerd 2.x (config v3)
scenario_v3() {
    log "-- scenario: containerd config version 3 (containerd 2.x) on a site's configuration"
    local S=$WORK/site3
    mkdir -p "$S/etc/containerd/site.d"
    cat >"$S/etc/containerd/config.toml" <<EOF
version = 3
imports = ["$S/etc/containerd/site.d/*.toml"]

[plugins."io.containerd.cri.v1.images"]
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "registry.k8s.io/pause:3.10"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "/etc/containerd/certs.d"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    SystemdCgroup = true

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
EOF
    printf 'version = 3\n\n[plugins."io.containerd.cri.v1.images"]\n  max_concurrent_downloads = 5\n' >"$S/etc/containerd/site.d/10-site.toml"
    cp -a "$S" "$S.orig"
    local vars=$WORK/site3.vars.yml
    cat >"$vars" <<EOF
container_toolkit_runtimes: [containerd]
container_toolkit_restart_runtimes: false
container_toolkit_backup: false
container_toolkit_containerd_config: $S/etc/containerd/config.toml
container_toolkit_containerd_drop_in: $S/etc/containerd/conf.d/99-nvidia.toml
EOF
    local run
    for run in 1 2 3; do
        if ((run == 1)); then rt_play "v3-run-$run" changed "$vars"; else rt_play "v3-run-$run" 0 "$vars"; fi
        check "run $run: containerd restart notified $((run == 1)) time(s)" handler_ran containerd $((run == 1))
        [[ -n $CTRD2 ]] || continue
        local dump=$WORK/v3-$run.toml
        check "run $run: containerd 2.x parses config.toml and its imports" ctrd_dump "$CTRD2" "$S/etc/containerd/config.toml" "$dump"
        check "run $run: containerd 2.x sees the nvidia runtime (config version 3)" toml_check "$dump" \
            'd["version"] == 3 and d["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"'
        check "run $run: containerd 2.x keeps the site's runtimes, registry, sandbox image and imported setting" toml_check "$dump" \
            'i = d["plugins"]["io.containerd.cri.v1.images"]; r = d["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]; r["runc"]["options"]["SystemdCgroup"] is True and r["kata"]["runtime_type"] == "io.containerd.kata.v2" and i["registry"]["config_path"] == "/etc/containerd/certs.d" and i["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10" and i["max_concurrent_downloads"] == 5'
        check "run $run: containerd 2.x parses the drop-in on its own" ctrd_dump "$CTRD2" "$S/etc/containerd/conf.d/99-nvidia.toml" "$dump.dropin"
        check "run $run: containerd 2.x reports no unknown key" bash -c "! grep -i 'unknown key' '$dump.err' '$dump.dropin.err'"
    done
    local R=$WORK/ref3
    reference "$S" "$R" --runtime=containerd --config="$R/etc/containerd/config.toml" --drop-in-config="$R/etc/containerd/conf.d/99-nvidia.toml"
    check "v3 drop-in: the bytes nvidia-ctk writes" same_bytes "$S/etc/containerd/conf.d/99-nvidia.toml" "$R/etc/containerd/conf.d/99-nvidia.toml" "$R" "$S"
    check "v3 config.toml: the bytes nvidia-ctk writes" same_bytes "$S/etc/containerd/config.toml" "$R/etc/containerd/config.toml" "$R" "$S"
}

# ---------------------------------------------------------------- scenario: CDI on a simulated 8 x H100 host
# The real `nvidia-ctk cdi generate` loads the simulated libnvidia-ml.so.1 (a Go program: the library starts
# its own Python interpreter) and reads a driver tree laid out as the driver lays it out. The mig role's CDI
# refresh runs it (through the container_toolkit role's tasks) after each of two layouts.
scenario_cdi() {
    log "-- scenario: real nvidia-ctk cdi generate, simulated 8 x H100, two MIG layouts"
    local MIGSIM=$ROLETEST_ROOT/tests/nvml_sim/migsim PYSIM
    PYSIM=$(dirname "$(command -v ansible-playbook)")/python
    [[ -x $PYSIM ]] || PYSIM=$(command -v python3)
    local D=$WORK/cdi ROOT=$WORK/cdi/driver-root PROC=$WORK/cdi/proc-driver SPEC=$WORK/cdi/run/cdi/nvidia.yaml
    mkdir -p "$D"
    "$MIGSIM" init "$D/state.json" --gpus h100-80gb:8 >/dev/null
    eval "$("$MIGSIM" env "$D/state.json")"
    export NVIDIA_CTK_DRIVER_ROOT=$ROOT NVIDIA_CTK_DEV_ROOT=$ROOT CDI_SIM_PROC=$PROC CDI_SIM_CTK=$CTK
    gcc -o "$D/dlopen_nvml" "$HERE/fixtures/dlopen_nvml.c" -ldl
    check "a C program (no Python in it) loads the simulated NVML and counts 8 GPUs" "$D/dlopen_nvml" 8
    # Only container_toolkit_cdi_output is set: the mig role's mig_cdi_output follows it.
    local vars=$D/vars.yml
    cat >"$vars" <<EOF
mig_cdi_refresh: true
mig_nvidia_ctk: $HERE/fixtures/nvidia-ctk-simdriver
container_toolkit_cdi_output: $SPEC
mig_device_nodes_command: [$PYSIM, $HERE/container_toolkit/cdi_sim.py, tree, $ROOT, $PROC]
EOF
    local layout_a='3,2,1,1/7/1,1,1,1,1,1,1/4,3/2,2,2/-/3,3/1,1' layout_b='7/1,1,1,1,1,1,1/3,2,1/-/4/2,1/1,1,1/3,3'
    check "layout A applied through NVML" "$PYSIM" "$HERE/container_toolkit/cdi_sim.py" layout "$layout_a"
    play cdi-layout-a changed -i "$INV" "$HERE/playbooks/mig_cdi.yml" -e "@$vars"
    check "layout A: the spec lists exactly the live MIG devices (by index, by UUID, their device nodes)" \
        "$PYSIM" "$HERE/container_toolkit/cdi_sim.py" check "$SPEC"
    "$PYSIM" "$HERE/container_toolkit/cdi_sim.py" uuids >"$D/uuids-a"
    play cdi-layout-a-again 0 -i "$INV" "$HERE/playbooks/mig_cdi.yml" -e "@$vars"
    check "layout B applied through NVML (every instance of layout A destroyed)" "$PYSIM" "$HERE/container_toolkit/cdi_sim.py" layout "$layout_b"
    play cdi-layout-b changed -i "$INV" "$HERE/playbooks/mig_cdi.yml" -e "@$vars"
    check "layout B: the spec lists exactly the live MIG devices and none of layout A" \
        "$PYSIM" "$HERE/container_toolkit/cdi_sim.py" check "$SPEC" "$D/uuids-a"
    check "nvidia-ctk cdi list reads the spec" bash -c "'$CTK' cdi list --spec-dir '$(dirname "$SPEC")' 2>/dev/null | grep -qx 'nvidia.com/gpu=0:0'"
    check "the installed spec is what nvidia-ctk cdi generate prints" bash -c \
        "'$HERE/fixtures/nvidia-ctk-simdriver' cdi generate 2>/dev/null | cmp - '$SPEC'"
    unset NVIDIA_CTK_DRIVER_ROOT NVIDIA_CTK_DEV_ROOT CDI_SIM_PROC CDI_SIM_CTK MIGSIM_STATE
}

# ---------------------------------------------------------------- scenario: containerd started by systemd
# Debian 12's containerd (1.6, config version 2) and runc installed in a copy of the Debian 12 rootfs of
# tests/roles/run.sh, booted with systemd-nspawn -b; the role (through community.docker.nsenter) configures
# it with the real nvidia-ctk and systemd restarts it only when its configuration changed.
nspawn_init_of() { # the container's PID 1 as seen from the host: a child systemd of nspawn
    local p
    for p in $(pgrep -P "$1" 2>/dev/null); do
        if [[ $(cat "/proc/$p/comm" 2>/dev/null) == systemd ]]; then echo "$p"; return 0; fi
        nspawn_init_of "$p" && return 0
    done
    return 1
}
scenario_booted() {
    log "-- scenario: Debian 12's containerd under systemd in a booted container (systemd-nspawn -b)"
    command -v systemd-nspawn >/dev/null || { fail "booted: systemd-nspawn not installed (systemd-container)"; return; }
    local base=$CACHE/rootfs-bookworm R=$WORK/booted
    [[ -f $base/.gpuops-complete ]] || { fail "booted: no Debian 12 rootfs in $base (tests/roles/run.sh builds it)"; return; }
    cp -a "$base" "$R"
    cp "$CACHE"/runtime-debs/debs/containerd_1.6.*.deb "$CACHE"/runtime-debs/debs/runc_*.deb "$R/tmp/"
    printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
    chmod 755 "$R/usr/sbin/policy-rc.d"
    check "Debian's containerd and runc installed in the container" bash -c "chroot '$R' sh -c 'dpkg -i /tmp/*.deb' >'$WORK/logs/booted-dpkg.log' 2>&1"
    rm -f "$R/usr/sbin/policy-rc.d" "$R"/tmp/*.deb
    install -m 755 "$CTK" "$R/usr/bin/nvidia-ctk"
    # The site's config: registry mirror and runc options next to Debian's defaults.
    cat >"$R/etc/containerd/config.toml" <<'EOF'
version = 2

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.site.internal"]
EOF
    ln -sf /dev/null "$R/etc/systemd/system/systemd-networkd.service"
    echo gpuops-runtime-booted >"$R/etc/hostname"
    systemd-nspawn -b -q --register=no --keep-unit -D "$R" >"$WORK/logs/booted-console.log" 2>&1 </dev/null &
    local pid=$! init="" state="" _
    on_exit "kill -TERM $pid 2>/dev/null; sleep 2; kill -KILL $pid 2>/dev/null"
    for _ in $(seq 120); do
        init=$(nspawn_init_of "$pid" || true)
        if [[ -n $init ]]; then
            state=$(nsenter -t "$init" -a systemctl is-system-running 2>/dev/null || true)
            [[ $state == running || $state == degraded ]] && break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    [[ $state == running || $state == degraded ]] || { fail "booted: container came up (state '${state:-none}')"; return; }
    pass "booted: container up (state $state)"
    local inv=$WORK/booted.ini vars=$WORK/booted.vars.yml
    printf '[targets]\nbooted ansible_connection=community.docker.nsenter ansible_nsenter_pid=%s ansible_python_interpreter=/usr/bin/python3\n' "$init" >"$inv"
    echo "container_toolkit_runtimes: [containerd]" >"$vars"
    local ctr="nsenter -t $init -a" id0 id1
    check "containerd.service active before the role" bash -c "[[ \$($ctr systemctl is-active containerd.service) == active ]]"
    id0=$($ctr systemctl show -P InvocationID containerd.service)
    play booted-run-1 changed -i "$inv" "$HERE/playbooks/container_runtimes.yml" -e "@$vars"
    check "run 1: systemd restarted containerd once and it is active" bash -c \
        "[[ \$($ctr systemctl is-active containerd.service) == active && \$($ctr systemctl show -P InvocationID containerd.service) != '$id0' ]]"
    id1=$($ctr systemctl show -P InvocationID containerd.service)
    check "run 1: the running containerd's config dump has the nvidia runtime and the site's mirror" bash -c \
        "$ctr containerd config dump >'$WORK/booted-dump.toml' 2>/dev/null && grep -q 'runtimes.nvidia.options' '$WORK/booted-dump.toml' && grep -q 'mirror.site.internal' '$WORK/booted-dump.toml'"
    check "run 1: the CRI plugin is loaded (ctr plugins ls) and the journal has no TOML error" bash -c \
        "$ctr ctr plugins ls | grep -Eq '^io.containerd.grpc.v1[[:space:]]+cri[[:space:]].*ok' && ! $ctr journalctl -u containerd.service --no-pager -o cat | grep -Ei 'failed to load TOML|failed to load plugin io.containerd.grpc.v1.cri'"
    local run
    for run in 2 3; do
        play "booted-run-$run" 0 -i "$inv" "$HERE/playbooks/container_runtimes.yml" -e "@$vars"
        check "run $run: containerd not restarted" bash -c "[[ \$($ctr systemctl show -P InvocationID containerd.service) == '$id1' ]]"
    done
    $ctr systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
}

for scenario in ${RUNTIMES_SCENARIOS:-v2 v3 cdi booted}; do "scenario_$scenario"; done
roletest_summary
