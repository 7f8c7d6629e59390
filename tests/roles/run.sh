#!/usr/bin/env bash
# Role tests for gpuops.mig: container_toolkit in a Debian 12 rootfs (chroot tier and
# systemd-nspawn tier) against a signed apt repository of stand-in packages on 127.0.0.1,
# the mig role under systemd in a booted container against the simulated NVML (mig tier),
# then the preflight tests (tests/roles/preflight/run.sh).
#
# Environment:
#   GPUOPS_COLLECTIONS_PATH  collections path that holds ansible_collections/gpuops/mig
#                            (default: a fresh copy of this checkout under a temp dir)
#   ROLETEST_CACHE           cache for the debootstrap rootfs (default /var/tmp/gpuops-roletest)
#   ROLETEST_MIRROR          Debian mirror for debootstrap (default: the one apt on this host uses)
#   ROLETEST_TIERS           tiers to run (default "chroot nspawn mig preflight slurm dnf site")
#   ROLETEST_KEEP            keep the temp dir (rootfs copies, logs)
# Needs root, debootstrap, dpkg-deb, dpkg-scanpackages, gpg, python3; systemd-nspawn and
# nsenter for the nspawn tier.
set -euo pipefail

# shellcheck source=tests/roles/lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$ROLETEST_HERE
CACHE=${ROLETEST_CACHE:-/var/tmp/gpuops-roletest}
TIERS=${ROLETEST_TIERS:-chroot nspawn mig preflight slurm dnf site}
SUITE=bookworm
VERSIONS=(1.19.0-1 1.20.0-1)
PACKAGES=(nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1)
ARCH=$(dpkg --print-architecture)

[[ $(id -u) -eq 0 ]] || { echo "run.sh needs root (debootstrap, chroot, mounts)" >&2; exit 2; }

# The Debian mirror apt on this machine uses (deb822 URIs: or one-line deb).
host_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk '/^URIs:/ {u = $2} /^Suites:/ && u && $0 ~ /(^| )'"$SUITE"'( |$)/ {print u; exit}' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i + 1) == "'"$SUITE"'") { print $i; exit } } }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    return 1
}

# Debian 12 minbase rootfs, built once and cached; each tier works on its own copy.
ensure_base_rootfs() {
    BASE=$CACHE/rootfs-$SUITE
    if [[ -f $BASE/.gpuops-complete ]]; then
        log "reusing cached rootfs $BASE"
        return
    fi
    local mirror=${ROLETEST_MIRROR:-}
    [[ -n $mirror ]] || mirror=$(host_mirror) || { echo "no Debian $SUITE mirror in apt sources; set ROLETEST_MIRROR" >&2; exit 2; }
    log "debootstrap $SUITE from $mirror into $BASE (once)"
    mkdir -p "$CACHE"
    rm -rf "$BASE.tmp"
    debootstrap --variant=minbase --include=python3,python3-apt,ca-certificates,systemd,systemd-sysv,dbus \
        "$SUITE" "$BASE.tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log"; exit 2; }
    touch "$BASE.tmp/.gpuops-complete"
    rm -rf "$BASE" && mv "$BASE.tmp" "$BASE"
}

# Fresh copy of the base rootfs, offline apt sources, optional chroot mounts.
new_rootfs() {
    local dest=$1 mounts=$2
    cp -a "$BASE" "$dest"
    rm -f "$dest/etc/apt/sources.list" "$dest"/etc/apt/sources.list.d/*
    rm -rf "$dest"/var/lib/apt/lists/*
    cp /etc/resolv.conf "$dest/etc/resolv.conf" 2>/dev/null || true
    if [[ $mounts == mounts ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$dest/usr/sbin/policy-rc.d"
        chmod 755 "$dest/usr/sbin/policy-rc.d"
        mount -t proc proc "$dest/proc" && on_exit "umount -l '$dest/proc'"
        mount --bind /dev "$dest/dev" && on_exit "umount -l '$dest/dev'"
        mount --bind /dev/pts "$dest/dev/pts" && on_exit "umount -l '$dest/dev/pts'"
    fi
}

# Stand-in toolkit packages at two versions in a signed flat repository:
#   $REPO/gpgkey, $REPO/deb/$ARCH/{InRelease,Release,Packages,*.deb}
build_repo() {
    REPO=$WORK/repo
    local pool=$REPO/deb/$ARCH v p d
    mkdir -p "$pool"
    for v in "${VERSIONS[@]}"; do
        for p in "${PACKAGES[@]}"; do
            d=$WORK/pkg/$p-$v
            mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$p"
            echo "Stand-in $p $v for gpuops.mig role tests." >"$d/usr/share/doc/$p/README.stand-in"
            local deps=""
            case $p in
                nvidia-container-toolkit) deps="nvidia-container-toolkit-base (= $v), libnvidia-container-tools (= $v)" ;;
                libnvidia-container-tools) deps="libnvidia-container1 (= $v)" ;;
                nvidia-container-toolkit-base)
                    # NVIDIA's real nvidia-ctk (v1.20.0, in both package versions) and nvidia-cdi-hook.
                    install -D -m 755 "$REAL_CTK" "$d/usr/bin/nvidia-ctk"
                    install -D -m 755 "$(dirname "$REAL_CTK")/nvidia-cdi-hook" "$d/usr/bin/nvidia-cdi-hook"
                    install -D -m 644 "$HERE/fixtures/nvidia-cdi-refresh.path" "$d/lib/systemd/system/nvidia-cdi-refresh.path"
                    install -D -m 644 "$HERE/fixtures/nvidia-cdi-refresh.service" "$d/lib/systemd/system/nvidia-cdi-refresh.service"
                    ;;
            esac
            {
                echo "Package: $p"
                echo "Version: $v"
                echo "Architecture: $ARCH"
                echo "Maintainer: gpuops.mig role tests <roletest@localhost>"
                [[ -n $deps ]] && echo "Depends: $deps"
                echo "Description: stand-in $p for role tests"
            } >"$d/DEBIAN/control"
            dpkg-deb --root-owner-group -Zgzip -b "$d" "$pool/${p}_${v}_$ARCH.deb" >/dev/null
        done
    done
    (cd "$pool" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages && gzip -9kf Packages)
    {
        echo "Origin: gpuops-roletest"
        echo "Label: gpuops-roletest"
        echo "Date: $(LC_ALL=C date -Ru)"
        echo "SHA256:"
        for f in Packages Packages.gz; do
            printf ' %s %s %s\n' "$(sha256sum "$pool/$f" | cut -d' ' -f1)" "$(stat -c %s "$pool/$f")" "$f"
        done
    } >"$pool/Release"
    export GNUPGHOME=$WORK/gnupg
    mkdir -m 700 "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-gen-key 'gpuops roletest <roletest@localhost>' ed25519 sign 1d 2>/dev/null
    gpg --batch --quiet --armor --export >"$REPO/gpgkey"
    REPO_FPR=$(gpg --batch --with-colons --list-keys | awk -F: '$1 == "fpr" {print $10; exit}')
    gpg --batch --quiet --yes --clearsign -o "$pool/InRelease" "$pool/Release"
    gpg --batch --quiet --yes --armor --detach-sign -o "$pool/Release.gpg" "$pool/Release"
    log "signed repo with ${#VERSIONS[@]} versions x ${#PACKAGES[@]} packages in $REPO"
}

start_repo_server() {
    serve_dir "$REPO"
    REPO_URL=$SERVED_URL
    log "repository served at $REPO_URL"
}

# Extra-vars file for the container_toolkit role.
ct_vars() {
    local file=$WORK/$1.vars.yml; shift
    {
        echo "container_toolkit_apt_repo_url: '$REPO_URL/deb/\$(ARCH)'"
        echo "container_toolkit_apt_key_url: '$REPO_URL/gpgkey'"
        # Without a driver, the real `nvidia-ctk cdi generate` fails; runtimes.sh generates CDI specs
        # against the simulated driver.
        echo "container_toolkit_cdi_generate: false"
        echo "container_toolkit_key_fingerprints: ['$REPO_FPR']"
        local kv
        for kv in "$@"; do echo "$kv"; done
    } >"$file"
    echo "$file"
}

ct_play() { # ct_play LABEL EXPECT INVENTORY VARS [extra args]
    local label=$1 expect=$2 inv=$3 vars=$4; shift 4
    play "$label" "$expect" -i "$inv" "$HERE/playbooks/container_toolkit.yml" -e "@$vars" "$@"
}

pkg_versions_are() { # pkg_versions_are ROOTFS VERSION
    local p v
    for p in "${PACKAGES[@]}"; do
        # shellcheck disable=SC2016 # dpkg-query's own ${Version} format
        v=$(chroot "$1" dpkg-query -W -f '${Version}' "$p")
        [[ $v == "$2" ]] || { echo "$p is $v, want $2"; return 1; }
    done
}
json_check() { # json_check FILE PYTHON-EXPR (d = parsed JSON)
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" \
        || { echo "$1: $2 is false:"; cat "$1"; return 1; }
}
file_mode_is() { [[ $(stat -c %a "$1") == "$2" ]] || { echo "$1 mode $(stat -c %a "$1") != $2"; return 1; }; }
same_file() { cmp "$1" "$2"; }
no_drift_on_upgrade() { # apt-get upgrade (simulated) must not touch the pinned packages
    local out
    out=$(chroot "$1" apt-get -s -o Debug::NoLocking=1 upgrade 2>&1)
    ! grep -E '^Inst (nvidia|libnvidia)' <<<"$out" || { echo "$out"; return 1; }
}
candidate_is() { # apt-cache policy candidate for every package
    local p c
    for p in "${PACKAGES[@]}"; do
        c=$(chroot "$1" apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
        [[ $c == "$2" ]] || { echo "$p candidate $c, want $2"; return 1; }
    done
}
count_lines() { [[ $(grep -Ec -- "$2" "$1" 2>/dev/null || true) -eq $3 ]] || { echo "$1: $(grep -Ec -- "$2" "$1" || true) lines match '$2', want $3"; return 1; }; }

tier_chroot() {
    log "== chroot tier (community.general.chroot)"
    local R=$WORK/chroot
    new_rootfs "$R" mounts
    local inv="$WORK/chroot.ini"
    printf '[targets]\nrootfs ansible_connection=community.general.chroot ansible_host=%s ansible_python_interpreter=/usr/bin/python3\n' "$R" >"$inv"
    # A user's daemon.json with keys of its own and restrictive mode, a containerd config
    # with content of its own: both must survive.
    mkdir -p "$R/etc/docker" "$R/etc/containerd"
    printf '{\n  "data-root": "/srv/docker",\n  "log-opts": {"max-size": "10m"}\n}\n' >"$R/etc/docker/daemon.json"
    chmod 600 "$R/etc/docker/daemon.json"
    printf 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "pause:3.9"\n' >"$R/etc/containerd/config.toml"
    local all="container_toolkit_runtimes: [docker, containerd, crio]"
    local v119 v120 vdef
    v119=$(ct_vars c119 "$all" "container_toolkit_version: 1.19.0-1")
    v120=$(ct_vars c120 "$all")
    vdef=$(ct_vars cdef "$all" "container_toolkit_set_as_default: true")

    # Fresh host: check mode predicts the installation; a key with another fingerprint installs nothing.
    ct_play chroot-check-fresh changed "$inv" "$v119" --check --diff
    log_has "check mode predicts the package installation" 'a real run installs nvidia-container-toolkit=1\.19\.0-1'
    ct_play chroot-fingerprint-differs fail "$inv" "$(ct_vars cfpr "container_toolkit_key_fingerprints: ['0123456789ABCDEF0123456789ABCDEF01234567']")"
    log_has "key refused by fingerprint" "fingerprint\\(s\\) $REPO_FPR.*not in container_toolkit_key_fingerprints"
    check "nothing installed, no key, no source after the refused key" bash -c "! chroot '$R' dpkg-query -W nvidia-container-toolkit-base >/dev/null 2>&1 && [[ ! -e '$R/etc/apt/keyrings/nvidia-container-toolkit.asc' && ! -e '$R/etc/apt/sources.list.d/nvidia-container-toolkit.sources' ]]"

    log "-- scenario: pinned 1.19.0-1, three runtimes"
    ct_play chroot-converge-1.19 changed "$inv" "$v119"
    check "packages at 1.19.0-1" pkg_versions_are "$R" 1.19.0-1
    check "keyring in /etc/apt/keyrings equals the served key" same_file "$R/etc/apt/keyrings/nvidia-container-toolkit.asc" "$REPO/gpgkey"
    check "keyring mode 0644" file_mode_is "$R/etc/apt/keyrings/nvidia-container-toolkit.asc" 644
    check "deb822 source with Signed-By" grep -qx 'Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc' "$R/etc/apt/sources.list.d/nvidia-container-toolkit.sources"
    check "deb822 source URI" grep -qF "URIs: $REPO_URL/deb/\$(ARCH)" "$R/etc/apt/sources.list.d/nvidia-container-toolkit.sources"
    check "no key in the legacy trusted keyrings" bash -c "! ls '$R'/etc/apt/trusted.gpg.d/ 2>/dev/null | grep -qi nvidia && [[ ! -e '$R/etc/apt/trusted.gpg' ]]"
    check "apt pin at 1.19.0-1, priority 1001" grep -Pzq 'Pin: version 1\.19\.0-1\nPin-Priority: 1001' "$R/etc/apt/preferences.d/nvidia-container-toolkit.pref"
    check "candidate stays 1.19.0-1 while 1.20.0-1 is available" candidate_is "$R" 1.19.0-1
    check "apt-get upgrade does not move the pinned packages" no_drift_on_upgrade "$R"
    check "daemon.json has the nvidia runtime" json_check "$R/etc/docker/daemon.json" 'd["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"'
    check "daemon.json keeps the user's keys" json_check "$R/etc/docker/daemon.json" 'd["data-root"] == "/srv/docker" and d["log-opts"] == {"max-size": "10m"}'
    check "daemon.json: no default-runtime unless asked" json_check "$R/etc/docker/daemon.json" '"default-runtime" not in d'
    check "daemon.json keeps mode 0600" file_mode_is "$R/etc/docker/daemon.json" 600
    check "containerd drop-in written" grep -q 'containerd.runtimes.nvidia' "$R/etc/containerd/conf.d/99-nvidia.toml"
    check "containerd config imports conf.d" grep -qF 'imports = ["/etc/containerd/conf.d/*.toml"]' "$R/etc/containerd/config.toml"
    check "containerd config keeps the user's content" grep -qF 'sandbox_image = "pause:3.9"' "$R/etc/containerd/config.toml"
    check "crio drop-in written" grep -q 'crio.runtime.runtimes.nvidia' "$R/etc/crio/crio.conf.d/99-nvidia.toml"
    check "nvidia-cdi-refresh.service writes /var/run/cdi/nvidia.yaml (drop-in)" grep -qx 'Environment=NVIDIA_CTK_CDI_OUTPUT_FILE_PATH=/var/run/cdi/nvidia.yaml' "$R/etc/systemd/system/nvidia-cdi-refresh.service.d/50-gpuops-mig-output.conf"
    check "nvidia-cdi-refresh.path enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/nvidia-cdi-refresh.path"
    check "nvidia-cdi-refresh.service enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/nvidia-cdi-refresh.service"
    check "the packaged nvidia-ctk is NVIDIA's real one" bash -c "chroot '$R' nvidia-ctk --version | grep -q 'commit: 5505e2f94d9aaa08561490db974ba3cd676af209'"

    ct_play chroot-idempotence-1.19 0 "$inv" "$v119"
    ct_play chroot-check-diff-1.19 0 "$inv" "$v119" --check --diff

    log "-- scenario: upgrade to the default 1.20.0-1"
    ct_play chroot-upgrade-1.20 changed "$inv" "$v120"
    check "packages at 1.20.0-1" pkg_versions_are "$R" 1.20.0-1
    check "apt pin moved to 1.20.0-1" grep -q 'Pin: version 1.20.0-1' "$R/etc/apt/preferences.d/nvidia-container-toolkit.pref"
    ct_play chroot-idempotence-1.20 0 "$inv" "$v120"
    ct_play chroot-check-diff-1.20 0 "$inv" "$v120" --check --diff

    log "-- scenario: pinned downgrade back to 1.19.0-1"
    ct_play chroot-downgrade-1.19 changed "$inv" "$v119"
    check "packages back at 1.19.0-1" pkg_versions_are "$R" 1.19.0-1
    ct_play chroot-upgrade-again-1.20 changed "$inv" "$v120"

    log "-- scenario: a user reformats daemon.json and adds a key"
    python3 - "$R/etc/docker/daemon.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["debug"] = True
open(sys.argv[1], "w").write(json.dumps(d, separators=(",", ":")))
PY
    cp -p "$R/etc/docker/daemon.json" "$WORK/daemon.user.json"
    ct_play chroot-user-edit-kept 0 "$inv" "$v120"
    check "reformatted daemon.json left byte-for-byte alone" same_file "$R/etc/docker/daemon.json" "$WORK/daemon.user.json"

    log "-- scenario: set the NVIDIA runtime as default"
    ct_play chroot-default-check changed "$inv" "$vdef" --check --diff
    check "check mode did not write daemon.json" same_file "$R/etc/docker/daemon.json" "$WORK/daemon.user.json"
    log_has "diff shows default-runtime" '^\+.*"default-runtime": "nvidia"'
    ct_play chroot-default changed "$inv" "$vdef"
    check "daemon.json default-runtime nvidia, user keys kept" json_check "$R/etc/docker/daemon.json" 'd["default-runtime"] == "nvidia" and d["debug"] is True and d["data-root"] == "/srv/docker"'
    check "containerd drop-in sets the default runtime" grep -q 'default_runtime_name = "nvidia"' "$R/etc/containerd/conf.d/99-nvidia.toml"
    ct_play chroot-default-idempotence 0 "$inv" "$vdef"

    log "-- scenario: a bad runtime name is rejected by the argument spec"
    local vbad
    vbad=$(ct_vars cbad "container_toolkit_runtimes: [dockerd]")
    ct_play chroot-bad-runtime fail "$inv" "$vbad"
    log_has "argument spec rejects the bad value" 'container_toolkit_runtimes must be one or more of.*dockerd'
}

nspawn_pid_of_init() { # the container's PID 1 as seen from the host: a child systemd of nspawn
    local p
    for p in $(pgrep -P "$1" 2>/dev/null); do
        if [[ $(cat "/proc/$p/comm" 2>/dev/null) == systemd ]]; then echo "$p"; return 0; fi
        nspawn_pid_of_init "$p" && return 0
    done
    return 1
}

tier_nspawn() {
    log "== nspawn tier (systemd-nspawn -b + community.docker.nsenter)"
    command -v systemd-nspawn >/dev/null || { fail "nspawn tier: systemd-nspawn not installed (apt-get install systemd-container)"; return; }
    local R=$WORK/nspawn
    new_rootfs "$R" nomounts
    local n
    for n in docker containerd; do
        sed "s/@NAME@/$n/g" "$HERE/fixtures/fake-runtime.service.in" >"$R/etc/systemd/system/$n.service"
        ln -sf "/etc/systemd/system/$n.service" "$R/etc/systemd/system/multi-user.target.wants/$n.service"
    done
    nspawn_boot "$R" nspawn || return
    local init=$NSPAWN_INIT inv=$NSPAWN_INV
    local v1 v2
    v1=$(ct_vars n1 "container_toolkit_runtimes: [docker, containerd]")
    check "stand-in runtimes started once at boot" bash -c "[[ \$(wc -l <'$R/var/log/fake-docker.starts') -eq 1 && \$(wc -l <'$R/var/log/fake-containerd.starts') -eq 1 ]]"

    ct_play nspawn-converge changed "$inv" "$v1"
    log_has "handler restarted docker" 'RUNNING HANDLER \[gpuops.mig.container_toolkit : Restart docker'
    check "docker restarted once by the handler" count_lines "$R/var/log/fake-docker.starts" start 2
    check "containerd restarted once by the handler" count_lines "$R/var/log/fake-containerd.starts" start 2
    check "nvidia-cdi-refresh.path enabled" bash -c "[[ \$(nsenter -t $init -a systemctl is-enabled nvidia-cdi-refresh.path) == enabled ]]"
    check "nvidia-cdi-refresh.path active" bash -c "[[ \$(nsenter -t $init -a systemctl is-active nvidia-cdi-refresh.path) == active ]]"
    check "nvidia-cdi-refresh.service enabled" bash -c "[[ \$(nsenter -t $init -a systemctl is-enabled nvidia-cdi-refresh.service) == enabled ]]"
    check "nvidia-cdi-refresh.service writes the role's CDI path" bash -c "nsenter -t $init -a systemctl show -P Environment nvidia-cdi-refresh.service | grep -q 'NVIDIA_CTK_CDI_OUTPUT_FILE_PATH=/var/run/cdi/nvidia.yaml'"

    ct_play nspawn-idempotence 0 "$inv" "$v1"
    check "no restart without a change (docker)" count_lines "$R/var/log/fake-docker.starts" start 2
    check "no restart without a change (containerd)" count_lines "$R/var/log/fake-containerd.starts" start 2
    ct_play nspawn-check-diff 0 "$inv" "$v1" --check --diff

    # Someone drops the nvidia runtime from daemon.json: only docker is reconfigured and restarted.
    python3 -c 'import json, sys; p = sys.argv[1]; d = json.load(open(p)); d["runtimes"].pop("nvidia"); open(p, "w").write(json.dumps(d))' "$R/etc/docker/daemon.json"
    ct_play nspawn-docker-drift changed "$inv" "$v1"
    check "docker restarted after its config changed" count_lines "$R/var/log/fake-docker.starts" start 3
    check "containerd not restarted (its config did not change)" count_lines "$R/var/log/fake-containerd.starts" start 2

    v2=$(ct_vars n2 "container_toolkit_runtimes: [docker, containerd]" "container_toolkit_restart_runtimes: false" "container_toolkit_runtime_enable_cdi: true")
    ct_play nspawn-no-restart changed "$inv" "$v2"
    check "restart toggle off: docker not restarted" count_lines "$R/var/log/fake-docker.starts" start 3
    check "restart toggle off: containerd not restarted" count_lines "$R/var/log/fake-containerd.starts" start 2
    check "docker CDI feature enabled" json_check "$R/etc/docker/daemon.json" 'd["features"]["cdi"] is True'
}

# nspawn_boot ROOTFS LABEL: boot systemd in the rootfs; sets NSPAWN_PID (nspawn), NSPAWN_INIT (the
# container's PID 1 as seen from the host) and NSPAWN_INV (an inventory reaching it through nsenter).
# Returns 1 (after a FAIL line) when it does not come up.
nspawn_boot() {
    local R=$1 label=$2 console=$WORK/logs/$2-console.log
    ln -sf /dev/null "$R/etc/systemd/system/systemd-networkd.service"
    echo "gpuops-$label" >"$R/etc/hostname"
    systemd-nspawn -b -q --register=no --keep-unit -D "$R" >"$console" 2>&1 </dev/null &
    NSPAWN_PID=$!
    on_exit "nspawn_stop $NSPAWN_PID"
    local init="" state=""
    for _ in $(seq 120); do
        init=$(nspawn_pid_of_init "$NSPAWN_PID" || true)
        if [[ -n $init ]]; then
            state=$(nsenter -t "$init" -a systemctl is-system-running 2>/dev/null || true)
            [[ $state == running || $state == degraded ]] && break
        fi
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.5
    done
    if [[ $state != running && $state != degraded ]]; then
        fail "$label: container booted (state '${state:-none}')" "console: $(tail -5 "$console" | tr '\n' ' ')"
        return 1
    fi
    NSPAWN_INIT=$init
    NSPAWN_INV=$WORK/$label.ini
    printf '[targets]\n%s ansible_connection=community.docker.nsenter ansible_nsenter_pid=%s ansible_python_interpreter=/usr/bin/python3\n' \
        "$label" "$init" >"$NSPAWN_INV"
    pass "$label: container booted systemd (state $state, init pid $init)"
}

nspawn_stop() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- mig tier
# The mig role in a booted Debian 12 container (systemd-nspawn -b) against the simulated NVML, so that
# systemd itself stops and starts the GPU clients, the units blocking a GPU reset, and runs the boot
# unit after a (simulated) reboot. GPU 0 is an H100 80GB, GPU 1 an A100 40GB (its MIG mode change waits
# for a reset, done by the fake nvidia-smi -> migsim reset).
MIG_CLIENTS_LOG=/var/log/gpu-clients.log

mig_vars() { # mig_vars NAME GPU0-MIG-DEVICES: extra-vars file for the mig role
    local file=$WORK/$1.vars.yml
    cat >"$file" <<YAML
mig_run_preflight: false
mig_reset_method: reset
mig_layouts:
  - devices: [0]
    mig_enabled: true
    mig_devices: $2
  - devices: [1]
    mig_enabled: true
    mig_devices: {"3g.20gb": 2}
YAML
    echo "$file"
}
mig_play() { # mig_play LABEL EXPECT INVENTORY VARS [extra args]
    local label=$1 expect=$2 inv=$3 vars=$4; shift 4
    play "$label" "$expect" -i "$inv" "$HERE/playbooks/mig.yml" -e "@$vars" "$@"
}
# clients_log_since ROOTFS N EXPECTED...: the lines after the first N of the clients' log are exactly EXPECTED.
clients_log_since() {
    local log=$1$MIG_CLIENTS_LOG n=$2; shift 2
    local got want
    got=$(tail -n +"$((n + 1))" "$log" | paste -sd, -)
    want=$(IFS=,; echo "$*")
    [[ $got == "$want" ]] || { echo "clients log after line $n: '$got', want '$want'"; return 1; }
}
clients_log_lines() { wc -l <"$1$MIG_CLIENTS_LOG"; }
units_state_is() { # units_state_is INIT STATE UNIT...
    local init=$1 want=$2 u st; shift 2
    for u in "$@"; do
        st=$(nsenter -t "$init" -a systemctl is-active "$u" 2>/dev/null || true)
        [[ $st == "$want" ]] || { echo "$u is $st, want $want"; return 1; }
    done
}
# sim_layout_is STATE GPU PROFILES (sorted, comma-separated) MODE
sim_layout_is() {
    "$MIGSIM" show "$1" | python3 -c '
import json, sys
g = json.load(sys.stdin)["gpus"][int(sys.argv[1])]
got = ",".join(sorted(gi["profile"] for gi in g["gpu_instances"]))
cis = [len(gi["compute_instances"]) for gi in g["gpu_instances"]]
ok = got == sys.argv[2] and g["mig_mode"]["current"] == sys.argv[3] and all(n == 1 for n in cis)
print("GPU %s: %s, %s, CIs %s" % (sys.argv[1], got, g["mig_mode"], cis))
sys.exit(0 if ok else 1)' "$2" "$3" "$4"
}
boot_unit_ran_before() { # boot_unit_ran_before INIT UNIT: gpuops-mig.service finished before UNIT started
    local init=$1 done_at start_at
    done_at=$(nsenter -t "$init" -a systemctl show -P ExecMainExitTimestampMonotonic gpuops-mig.service)
    start_at=$(nsenter -t "$init" -a systemctl show -P ExecMainStartTimestampMonotonic "$2")
    [[ $done_at -gt 0 && $start_at -gt $done_at ]] || { echo "gpuops-mig.service done at $done_at, $2 started at $start_at"; return 1; }
}
unit_ran_ok() { # unit_ran_ok INIT UNIT: active (a oneshot that stays active after it exits) with result success
    local res
    units_state_is "$1" active "$2" || return 1
    res=$(nsenter -t "$1" -a systemctl show -P Result "$2" 2>/dev/null || true)
    [[ $res == success ]] || { echo "$2: result $res"; return 1; }
}
nspawn_poweroff() { # nspawn_poweroff INIT NSPAWN-PID: clean shutdown of the container
    nsenter -t "$1" -a systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 120); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.25; done
    echo "container did not power off"; return 1
}

tier_mig() {
    log "== mig tier (the mig role under systemd in systemd-nspawn -b, simulated NVML)"
    command -v systemd-nspawn >/dev/null || { fail "mig tier: systemd-nspawn not installed (apt-get install systemd-container)"; return; }
    MIGSIM=$ROLETEST_ROOT/tests/nvml_sim/migsim
    local R=$WORK/mig T=/opt/gpuops-test
    new_rootfs "$R" nomounts
    # The simulated driver: the library on the normal search path, the engine beside it, pynvml for the
    # container's python3, `python` for the simulator CLI's shebang, and nvidia-smi (the fake one).
    "$MIGSIM" env "$WORK/mig-probe.json" >/dev/null
    mkdir -p "$R$T" "$R/var/lib/migsim" "$R/usr/local/lib/python3.11/dist-packages"
    tar -C "$ROLETEST_ROOT/tests" -cf - nvml_sim fakebin | tar -C "$R$T" -xf -
    cp "$(python3 -c 'import pynvml; print(pynvml.__file__)')" "$R/usr/local/lib/python3.11/dist-packages/pynvml.py"
    ln -sf "$T/nvml_sim/build/libnvidia-ml.so.1" "$R/usr/local/lib/libnvidia-ml.so.1"
    chroot "$R" ldconfig
    ln -sf /usr/bin/python3 "$R/usr/local/bin/python"
    printf '#!/bin/sh\nexec %s/fakebin/nvidia-smi "$@"\n' "$T" >"$R/usr/local/bin/nvidia-smi"
    chmod 755 "$R/usr/local/bin/nvidia-smi"
    local S=$R/var/lib/migsim/state.json sim="/usr/bin/python3 $T/nvml_sim/migsim"
    "$MIGSIM" init "$S" --gpus h100-80gb:1,a100-40gb:1 >/dev/null
    mkdir -p "$R/etc/systemd/system.conf.d"
    printf '[Manager]\nDefaultEnvironment=MIGSIM_STATE=/var/lib/migsim/state.json\n' >"$R/etc/systemd/system.conf.d/gpuops-test.conf"
    # GPU clients: nvidia-dcgm holds GPU 0 while it runs (a process on it: enabling MIG on the H100 would
    # stay pending); kubelet is stopped only for MIG mode changes; nvidia-persistenced keeps its socket
    # while it runs, and the fake nvidia-smi refuses a GPU reset then, as the real one does for a GPU in
    # use; nvsm is installed but not running; cron-standin is no GPU client.
    local u hold_start hold_stop
    for u in nvidia-dcgm dcgm-exporter kubelet nvidia-persistenced nvsm cron-standin; do
        hold_start="" hold_stop=""
        case $u in
            nvidia-dcgm)
                hold_start="ExecStartPost=$sim process add /var/lib/migsim/state.json --gpu 0 --pid \${MAINPID}"
                hold_stop="ExecStopPost=$sim process clear /var/lib/migsim/state.json --gpu 0" ;;
            nvidia-persistenced)
                hold_start="RuntimeDirectory=nvidia-persistenced\nExecStartPost=/bin/touch /run/nvidia-persistenced/socket" ;;
        esac
        sed -e "s/@NAME@/$u/g" -e "s|@HOLD_START@|$hold_start|" -e "s|@HOLD_STOP@|$hold_stop|" \
            "$HERE/fixtures/gpu-client.service.in" >"$R/etc/systemd/system/$u.service"
        [[ $u == nvsm ]] || ln -sf "/etc/systemd/system/$u.service" "$R/etc/systemd/system/multi-user.target.wants/$u.service"
    done
    nspawn_boot "$R" mig || return
    local init=$NSPAWN_INIT inv=$NSPAWN_INV
    check "GPU 0 held by nvidia-dcgm after boot" \
        bash -c "'$MIGSIM' show '$S' | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)[\"gpus\"][0][\"processes\"] else 1)'"
    check "nvidia-persistenced socket present after boot" nsenter -t "$init" -a test -e /run/nvidia-persistenced/socket

    local mixed='{"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}' small='{"1g.10gb": 7}' v1 v2 n
    v1=$(mig_vars m1 "$mixed")
    v2=$(mig_vars m2 "$small")

    log "-- scenario: enable MIG on both GPUs (clients stopped by systemd; A100 reset with nvidia-persistenced stopped)"
    # A job outside systemd on the A100: its MIG mode change stays pending until the GPU is reset.
    "$MIGSIM" process add "$S" --gpu 1 --pid 4242
    n=$(clients_log_lines "$R")
    mig_play mig-enable changed "$inv" "$v1"
    check "clients stopped in order, reset unit stopped and started, clients started in reverse" clients_log_since "$R" "$n" \
        "stop dcgm-exporter" "stop kubelet" "stop nvidia-dcgm" "stop nvidia-persistenced" "start nvidia-persistenced" \
        "start nvidia-dcgm" "start kubelet" "start dcgm-exporter"
    check "clients running again" units_state_is "$init" active nvidia-dcgm dcgm-exporter kubelet nvidia-persistenced cron-standin
    check "a client that was not running stays stopped" units_state_is "$init" inactive nvsm
    check "GPU 0 (H100) converged" sim_layout_is "$S" 0 1g.10gb,1g.10gb,2g.20gb,3g.40gb enabled
    check "GPU 1 (A100, after its reset) converged" sim_layout_is "$S" 1 3g.20gb,3g.20gb enabled
    check "GPU 1 (only) reset through nvidia-smi, once" bash -c "[[ \$(grep -c -- --gpu-reset '$R/var/log/fake-nvidia-smi.log') == 1 ]] && grep -qx 'nvidia-smi --gpu-reset -i 1' '$R/var/log/fake-nvidia-smi.log'"
    check "boot unit enabled" bash -c "[[ \$(nsenter -t $init -a systemctl is-enabled gpuops-mig.service) == enabled ]]"

    log "-- scenario: the same layout again"
    n=$(clients_log_lines "$R")
    mig_play mig-idempotence 0 "$inv" "$v1"
    check "no client stopped or started" clients_log_since "$R" "$n"

    log "-- scenario: check mode with another layout"
    n=$(clients_log_lines "$R")
    "$MIGSIM" show "$S" >"$WORK/mig-before-check.json"
    mig_play mig-check changed "$inv" "$v2" --check --diff
    check "check mode stopped no client" clients_log_since "$R" "$n"
    check "check mode changed no GPU" bash -c "'$MIGSIM' show '$S' | cmp -s - '$WORK/mig-before-check.json'"

    log "-- scenario: a new layout on GPU 0 (no MIG mode change: kubelet keeps running)"
    n=$(clients_log_lines "$R")
    mig_play mig-relayout changed "$inv" "$v2"
    check "only the GPU clients stopped and started" clients_log_since "$R" "$n" \
        "stop dcgm-exporter" "stop nvidia-dcgm" "start nvidia-dcgm" "start dcgm-exporter"
    check "GPU 0 has 7 x 1g.10gb" sim_layout_is "$S" 0 "$(printf '1g.10gb,%.0s' 1 2 3 4 5 6)1g.10gb" enabled
    check "GPU 1 untouched" sim_layout_is "$S" 1 3g.20gb,3g.20gb enabled

    log "-- scenario: reboot (instances gone, the H100 loses MIG mode); systemd runs the boot unit"
    nspawn_poweroff "$init" "$NSPAWN_PID" || { fail "mig: container powered off"; return; }
    "$MIGSIM" reboot "$S" >/dev/null
    check "after the reboot GPU 0 is bare and MIG is off (Hopper)" sim_layout_is "$S" 0 "" disabled
    check "after the reboot GPU 1 is bare and MIG stays on (Ampere)" sim_layout_is "$S" 1 "" enabled
    nspawn_boot "$R" mig-reboot || return
    init=$NSPAWN_INIT inv=$NSPAWN_INV
    check "boot unit ran and succeeded" unit_ran_ok "$init" gpuops-mig.service
    check "GPU 0 layout restored at boot (MIG mode enabled again)" sim_layout_is "$S" 0 "$(printf '1g.10gb,%.0s' 1 2 3 4 5 6)1g.10gb" enabled
    check "GPU 1 layout restored at boot" sim_layout_is "$S" 1 3g.20gb,3g.20gb enabled
    check "boot unit finished before nvidia-dcgm started" boot_unit_ran_before "$init" nvidia-dcgm.service
    check "boot unit finished before kubelet started" boot_unit_ran_before "$init" kubelet.service
    mig_play mig-after-reboot 0 "$inv" "$v2"
}

main() {
    local t0=$SECONDS
    roletest_setup
    if [[ " $TIERS " == *" chroot "* || " $TIERS " == *" nspawn "* || " $TIERS " == *" mig "* || " $TIERS " == *" site "* ]]; then
        ensure_base_rootfs
    fi
    if [[ " $TIERS " == *" chroot "* || " $TIERS " == *" nspawn "* || " $TIERS " == *" site "* ]]; then
        local rc=0
        REAL_CTK=$(real_nvidia_ctk "$CACHE") || rc=$?
        ((rc != 2)) || exit 1
        ((rc == 0)) || { log "chroot, nspawn and site tiers skipped: no real nvidia-ctk (NVIDIA_CTK=path or ../shared)"; TIERS=$(sed -e 's/\bchroot\b//' -e 's/\bnspawn\b//' -e 's/\bsite\b//' <<<"$TIERS"); }
    fi
    if [[ " $TIERS " == *" chroot "* || " $TIERS " == *" nspawn "* || " $TIERS " == *" site "* ]]; then
        build_repo
        start_repo_server
    fi
    local t
    for t in $TIERS; do
        local ts=$SECONDS
        case $t in
            chroot) tier_chroot ;;
            nspawn) tier_nspawn ;;
            mig) tier_mig ;;
            preflight)
                log "== preflight tier (tests/roles/preflight/run.sh)"
                if ROLETEST_NESTED=1 "$HERE/preflight/run.sh"; then pass "preflight/run.sh"; else fail "preflight/run.sh (see its output above)"; fi
                ;;
            slurm) if ROLETEST_NESTED=1 "$HERE/slurm.sh"; then pass "slurm.sh"; else fail "slurm.sh (see its output above)"; fi ;;
            dnf) log "== dnf tier (tests/roles/container_toolkit/dnf.sh)"; if ROLETEST_NESTED=1 "$HERE/container_toolkit/dnf.sh"; then pass "container_toolkit/dnf.sh"; else fail "container_toolkit/dnf.sh (see its output above)"; fi ;;
            site) log "== site tier (tests/roles/site.sh)"; if ROLETEST_APT_REPO_URL=$REPO_URL ROLETEST_APT_REPO_FPR=$REPO_FPR ROLETEST_BASE_ROOTFS=$BASE "$HERE/site.sh"; then pass "site.sh"; else fail "site.sh (see its output above)"; fi ;;
            *) echo "unknown tier $t" >&2; exit 2 ;;
        esac
        log "tier $t took $((SECONDS - ts))s"
    done
    log "total $((SECONDS - t0))s"
    roletest_summary
}

# Sourced by tests/roles/slurm.sh for its helpers: run only when executed.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
