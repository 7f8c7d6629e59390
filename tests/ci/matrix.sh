#!/usr/bin/env bash
# Copyright (c) gpuops.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# ansible-core version matrix: for each version, in a copy of the checkout with a venv of that
# ansible-core, run `make sanity units integration` (that version's own ansible-test) and the role
# tests' booted-container `mig` tier with that version's ansible-playbook as the controller.
#
#   tests/ci/matrix.sh [VERSION...]      default: 2.16 2.17 2.18 2.19 2.20 2.21
#
# 2.16 to 2.19 run on the machine's Python 3.11. 2.20 and 2.21 need Python 3.12 or newer, which
# Debian 12 lacks: they run with Debian 13's Python 3.13 inside a debootstrapped Debian 13 root
# (cached in $MATRIX_CACHE), with the checkout, /tmp and /var/tmp bind-mounted at the same paths so
# that the role tests on the host can call that root's ansible-playbook through a wrapper.
#
# Environment: MATRIX_CACHE (default /var/tmp/gpuops-matrix), MATRIX_STEPS (default
# "docs sanity units integration roles"), ROLETEST_MIRROR (Debian mirror; default: the one apt uses).
# Needs root for the Debian 13 root and the role tier. Prints one summary line per version.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build/matrix
CACHE=${MATRIX_CACHE:-/var/tmp/gpuops-matrix}
STEPS=${MATRIX_STEPS:-docs sanity units integration roles}
MAIN_VENV=${GPUOPS_VENV:-$ROOT/.venv}
# Reference readings beside the checkout, for Makefiles that still pass them to hardware_replay.
SHARED_DIR=""
[[ -d $ROOT/../shared ]] && SHARED_DIR=$(cd "$ROOT/../shared" && pwd -P)
VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(2.16 2.17 2.18 2.19 2.20 2.21)
# Packages besides ansible-core that the tiers import (units: pytest; modules: pynvml).
EXTRA_PACKAGES=(nvidia-ml-py==13.615.71 pytest==9.2.0 pytest-mock==3.17.0 pytest-xdist==3.8.0
    pytest-forked==1.7.5 hypothesis==6.170.17 PyYAML Jinja2)

log() { printf '[%(%H:%M:%S)T] matrix: %s\n' -1 "$*"; }
mkdir -p "$BUILD" "$CACHE"

needs_debian13() { [[ $1 == 2.20 || $1 == 2.21 ]]; }

# The collections the role tests use besides this one (community.general, community.docker) come
# from the main venv's `ansible` package; they declare support for ansible-core 2.15/2.16 and newer.
site_packages() { "$MAIN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

host_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null
}

# Debian 13 root with Python 3.13, gcc (the simulator's shim), make, ssh-keygen and shellcheck (ansible-test);
# built once, again when this list changes.
ROOT_PACKAGES=python3,python3-venv,python3-dev,gcc,libc6-dev,make,git,ca-certificates,util-linux,openssh-client,shellcheck
debian13_root() {
    local base=$CACHE/rootfs-trixie
    if [[ $(cat "$base/.gpuops-complete" 2>/dev/null) != "$ROOT_PACKAGES" ]]; then
        local mirror=${ROLETEST_MIRROR:-$(host_mirror)}
        [[ -n $mirror ]] || { echo "matrix: no Debian mirror found; set ROLETEST_MIRROR" >&2; return 2; }
        log "debootstrap trixie from $mirror into $base (once)"
        if findmnt -rn -o TARGET | grep -q "^$base"; then echo "matrix: mounts left under $base" >&2; return 2; fi
        rm -rf "$base.tmp"
        debootstrap --variant=minbase \
            --include="$ROOT_PACKAGES" \
            trixie "$base.tmp" "$mirror" >"$CACHE/debootstrap-trixie.log" 2>&1 \
            || { tail -n 20 "$CACHE/debootstrap-trixie.log" >&2; return 2; }
        echo "$ROOT_PACKAGES" >"$base.tmp/.gpuops-complete"
        rm -rf "$base" && mv "$base.tmp" "$base"
    fi
    echo "$base"
}

MOUNTED=()
cleanup() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

bind_same_path() { # bind_same_path ROOTFS PATH: PATH appears at the same path inside ROOTFS
    local rootfs=$1 path=$2
    mkdir -p "$rootfs$path"
    mountpoint -q "$rootfs$path" && return 0
    mount --rbind "$path" "$rootfs$path"
    mount --make-rslave "$rootfs$path"
    MOUNTED+=("$rootfs$path")
}

prepare_debian13() { # prepare_debian13 ROOTFS: mounts, DNS, pip settings
    local r=$1
    mountpoint -q "$r/proc" || { mount -t proc proc "$r/proc"; MOUNTED+=("$r/proc"); }
    mountpoint -q "$r/dev" || { mount --rbind /dev "$r/dev"; mount --make-rslave "$r/dev"; MOUNTED+=("$r/dev"); }
    bind_same_path "$r" "$ROOT"
    bind_same_path "$r" /tmp
    # /var/tmp holds this root itself: a plain (non-recursive) bind keeps the mount tree flat.
    mkdir -p "$r/var/tmp"
    mountpoint -q "$r/var/tmp" || { mount --bind /var/tmp "$r/var/tmp"; MOUNTED+=("$r/var/tmp"); }
    local venv_real root_real
    venv_real=$(cd "$MAIN_VENV" && pwd -P); root_real=$(cd "$ROOT" && pwd -P)
    [[ $venv_real == "$root_real"/* ]] || bind_same_path "$r" "$venv_real"
    [[ -z $SHARED_DIR ]] || bind_same_path "$r" "$SHARED_DIR"
    cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    # pip keeps the machine's index and certificate settings inside the root.
    mkdir -p "$r/etc/xdg/pip"
    [[ -f /etc/pip.conf ]] && cp /etc/pip.conf "$r/etc/pip.conf"
    # The machine's certificate bundle (it may hold a local authority the package index needs).
    local bundle
    for bundle in /etc/ssl/certs/ca-certificates.crt ${PIP_CERT:-}; do
        [[ -f $bundle ]] && mkdir -p "$r$(dirname "$bundle")" && cp "$bundle" "$r$bundle"
    done
    return 0
}

# in_root ROOTFS CMD...: run CMD inside ROOTFS in the current directory, keeping the environment.
in_root() { local r=$1; shift; chroot "$r" /usr/bin/env -C "$PWD" "$@"; }

run_version() {
    local v=$1
    local src=$BUILD/src-$v venv=$BUILD/venv-$v py=python3.11 testpy=3.11 rootfs="" runner=()
    log "== ansible-core $v"
    rm -rf "$src" && mkdir -p "$src" || return 2
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done \
        | tar --null --no-recursion -T - -cf - | tar -C "$src" -xf -)
    # A repository of its own: sync-collection.sh lists files through git, and build/ is ignored here.
    git -C "$src" init -q && git -C "$src" add -A
    if needs_debian13 "$v"; then
        rootfs=$(debian13_root) || return 2
        prepare_debian13 "$rootfs" || return 2
        runner=(in_root "$rootfs")
        py=python3; testpy=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    fi
    if [[ ! -f $venv/.gpuops-matrix-$v ]]; then
        rm -rf "$venv"
        # (run_version is called in an `||` list, where set -e does not apply: check each step)
        (cd "$src" && "${runner[@]}" "$py" -m venv "$venv") || { log "cannot create $venv"; return 2; }
        (cd "$src" && "${runner[@]}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "ansible-core==$v.*" "${EXTRA_PACKAGES[@]}") >"$BUILD/$v-pip.log" 2>&1 \
            || { grep -v '^WARNING: Location' "$BUILD/$v-pip.log" | tail -n 20; log "pip install failed for $v"; return 2; }
        touch "$venv/.gpuops-matrix-$v"
    fi
    # make's venv target is satisfied: the stamp is newer than the requirement files.
    touch "$venv/.gpuops-mig-venv"
    local core
    core=$(cd "$src" && "${runner[@]}" "$venv/bin/ansible" --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p')
    log "ansible-core $core on Python $testpy${rootfs:+ (Debian 13 root)}"
    local step results=() rc_all=0
    for step in $STEPS; do
        local rc=0 start=$SECONDS
        case $step in
            sanity | units | integration)
                (cd "$src" && "${runner[@]}" make VENV="$venv" PYTHON="$py" TEST_PYTHON="$testpy" COMPAT_PYTHONS= \
                    SIM_STATE="$src/build/sim/state.json" ${SHARED_DIR:+SHARED="$SHARED_DIR"} "$step") >"$BUILD/$v-$step.log" 2>&1 || rc=$?
                ;;
            roles)
                local bin=$BUILD/bin-$v
                mkdir -p "$bin"
                if [[ -n $rootfs ]]; then
                    for tool in ansible-playbook ansible ansible-galaxy; do
                        # shellcheck disable=SC2016 # $PWD and $@ expand when the wrapper runs
                        printf '#!/bin/sh\nexec chroot %q /usr/bin/env -C "$PWD" %q "$@"\n' "$rootfs" "$venv/bin/$tool" >"$bin/$tool"
                        chmod 755 "$bin/$tool"
                    done
                else
                    ln -sf "$venv/bin/ansible-playbook" "$venv/bin/ansible" "$venv/bin/ansible-galaxy" "$bin/"
                fi
                (cd "$src" && tests/ci/sync-collection.sh "$src/build/ansible_collections/gpuops/mig" >/dev/null &&
                    PATH=$bin:$PATH GPUOPS_COLLECTIONS_PATH="$src/build:$(site_packages)" ROLETEST_TIERS=mig \
                    tests/roles/run.sh) >"$BUILD/$v-roles.log" 2>&1 || rc=$?
                ;;
            docs)
                # Role documentation loads without deprecation warnings on this version.
                (cd "$src" && tests/ci/sync-collection.sh "$src/build/ansible_collections/gpuops/mig" >/dev/null &&
                    for role in preflight container_toolkit mig; do
                        # shellcheck disable=SC2069 # keep stderr (the warnings) in the log, drop the doc text
                        ANSIBLE_COLLECTIONS_PATH=$src/build ANSIBLE_DEPRECATION_WARNINGS=1 \
                            "${runner[@]}" "$venv/bin/ansible-doc" -t role "gpuops.mig.$role" 2>&1 >/dev/null
                    done) >"$BUILD/$v-docs.log" 2>&1 || rc=$?
                if grep -qi 'deprecat' "$BUILD/$v-docs.log"; then rc=1; fi
                ;;
            *) echo "matrix: unknown step $step" >&2; return 2 ;;
        esac
        results+=("$step=$([[ $rc -eq 0 ]] && echo pass || echo FAIL)($((SECONDS - start))s)")
        if [[ $rc -ne 0 ]]; then
            rc_all=1
            log "ansible-core $core: $step failed, last lines of $BUILD/$v-$step.log:"
            tail -n 40 "$BUILD/$v-$step.log"
        fi
    done
    echo "matrix: ansible-core $core, Python $testpy: ${results[*]}" | tee -a "$BUILD/summary.txt"
    return $rc_all
}

: >"$BUILD/summary.txt"
failed=0
for v in "${VERSIONS[@]}"; do
    run_version "$v" || failed=$((failed + 1))
done
echo "==== matrix summary"
cat "$BUILD/summary.txt"
echo "matrix: $(( ${#VERSIONS[@]} - failed )) passed, $failed failed"
[[ $failed -eq 0 ]]
