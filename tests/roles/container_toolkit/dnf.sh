#!/usr/bin/env bash
# dnf tier: the container_toolkit role's RedHat path (ansible.builtin.dnf, yum_repository, rpm_key,
# the versionlock plugin) in a Debian 12 chroot that carries Debian's real dnf, python3-dnf and rpm,
# against a local RPM repository of stand-in packages built with rpmbuild, signed with rpmsign and
# gpg, indexed with createrepo_c and served on 127.0.0.1.
#
# The chroot is made to look like a RedHat-family host to Ansible's fact gathering, and only that:
# /etc/os-release is replaced by Rocky Linux's (or RHEL's, AlmaLinux's, Amazon Linux's) and
# /etc/redhat-release is written (Ansible reads these two files); everything else is Debian.
# What never ran here: a real RHEL/Rocky/Alma/Amazon userland (their dnf builds, SELinux, subscription
# manager, crypto policies), NVIDIA's real repository and its real key. See docs/rhel.md.
#
# Environment: GPUOPS_COLLECTIONS_PATH, ROLETEST_CACHE, ROLETEST_MIRROR, ROLETEST_KEEP (see run.sh).
# Needs root, rpmbuild, rpmsign, createrepo_c, gpg, python3, and a Debian mirror the first time
# (the chroot with dnf is cached beside the base rootfs).
set -euo pipefail
# A private mount namespace: the chroots' /proc and /dev mounts never propagate into other mount
# trees on the machine, and they vanish with the tier even when it is killed.
if [[ -z ${ROLETEST_UNSHARED:-} ]] && command -v unshare >/dev/null; then
    exec env ROLETEST_UNSHARED=1 unshare --mount --propagation private "$0" "$@"
fi

# shellcheck source=tests/roles/lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE=$ROLETEST_HERE
CACHE=${ROLETEST_CACHE:-/var/tmp/gpuops-roletest}
BASE=$CACHE/rootfs-bookworm
DNFBASE=$CACHE/rootfs-bookworm-dnf
PACKAGES=(nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1)
VERSIONS=(1.19.0-1 1.20.0-1)
RPM_ARCH=$(uname -m)

[[ $(id -u) -eq 0 ]] || { echo "dnf.sh needs root (chroot, mounts)" >&2; exit 2; }
for t in rpmbuild rpmsign createrepo_c gpg; do
    command -v "$t" >/dev/null || { echo "dnf.sh: $t is missing (apt-get install rpm createrepo-c gnupg)" >&2; exit 2; }
done

# The Debian rootfs plus dnf, python3-dnf, rpm and the dnf plugins (versionlock), built once.
ensure_dnf_rootfs() {
    [[ -f $DNFBASE/.gpuops-complete ]] && { log "reusing cached rootfs $DNFBASE"; return; }
    for _ in $(seq 360); do [[ -f $BASE/.gpuops-complete ]] && break; sleep 5; done
    [[ -f $BASE/.gpuops-complete ]] || { echo "dnf.sh: $BASE is not ready (run tests/roles/run.sh once)" >&2; exit 2; }
    log "building $DNFBASE (Debian's dnf, python3-dnf, rpm, dnf-plugins-core; once)"
    rm -rf "$DNFBASE.tmp"
    cp -a "$BASE" "$DNFBASE.tmp"
    local R=$DNFBASE.tmp
    rm -f "$R/etc/apt/sources.list" "$R"/etc/apt/sources.list.d/*
    if [[ -n ${ROLETEST_MIRROR:-} ]]; then
        echo "deb $ROLETEST_MIRROR bookworm main" >"$R/etc/apt/sources.list"
    else
        cp /etc/apt/sources.list.d/*.sources "$R/etc/apt/sources.list.d/" 2>/dev/null || true
        cp /etc/apt/sources.list "$R/etc/apt/" 2>/dev/null || true
    fi
    cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
    mount -t proc proc "$R/proc"
    local rc=0
    chroot "$R" sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends dnf python3-dnf rpm dnf-plugins-core' \
        >"$CACHE/dnf-rootfs.log" 2>&1 || rc=$?
    umount -l "$R/proc"
    ((rc == 0)) || { tail -20 "$CACHE/dnf-rootfs.log"; exit 2; }
    rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/archives/*.deb
    touch "$R/.gpuops-complete"
    rm -rf "$DNFBASE" && mv "$DNFBASE.tmp" "$DNFBASE"
}

# spec NAME VERSION-RELEASE: a stand-in package (AutoReqProv off: nothing in the rpmdb of a Debian
# chroot provides /usr/bin/python3; the real packages' file lists are not reproduced).
build_rpm() {
    local name=$1 vr=$2 out=$3
    local v=${vr%-*} r=${vr##*-} top=$WORK/rpmbuild spec
    mkdir -p "$top/SPECS" "$top/SOURCES"
    spec=$top/SPECS/$name-$vr.spec
    {
        echo "Name: $name"
        echo "Version: $v"
        echo "Release: $r"
        echo "Summary: stand-in $name for the gpuops.mig dnf tier"
        echo "License: Apache-2.0"
        echo "AutoReqProv: no"
        case $name in
            nvidia-container-toolkit) echo "Requires: nvidia-container-toolkit-base = $vr, libnvidia-container-tools = $vr" ;;
            libnvidia-container-tools) echo "Requires: libnvidia-container1 = $vr" ;;
        esac
        echo "%description"
        echo "Stand-in $name $vr for the gpuops.mig role tests."
        echo "%install"
        echo "mkdir -p %{buildroot}/usr/share/doc/$name"
        echo "echo stand-in > %{buildroot}/usr/share/doc/$name/README.stand-in"
        if [[ $name == nvidia-container-toolkit-base ]]; then
            echo "install -D -m 755 $WORK/nvidia-ctk-$v %{buildroot}/usr/bin/nvidia-ctk"
            echo "install -D -m 644 $HERE/fixtures/nvidia-cdi-refresh.path %{buildroot}/usr/lib/systemd/system/nvidia-cdi-refresh.path"
            echo "install -D -m 644 $HERE/fixtures/nvidia-cdi-refresh.service %{buildroot}/usr/lib/systemd/system/nvidia-cdi-refresh.service"
        fi
        echo "%files"
        echo "/usr/share/doc/$name"
        if [[ $name == nvidia-container-toolkit-base ]]; then
            echo "/usr/bin/nvidia-ctk"
            echo "/usr/lib/systemd/system/nvidia-cdi-refresh.path"
            echo "/usr/lib/systemd/system/nvidia-cdi-refresh.service"
        fi
    } >"$spec"
    # Both stand-in versions carry NVIDIA's real nvidia-ctk (v1.20.0), as the apt tier's packages do.
    install -m 755 "$REAL_CTK" "$WORK/nvidia-ctk-$v"
    rpmbuild --quiet --define "_topdir $top" --define "_rpmdir $out" --define '_build_id_links none' \
        -bb "$spec" >>"$WORK/logs/rpmbuild.log" 2>&1
}

sign_rpms() { # sign_rpms KEY-NAME RPM...
    local key=$1; shift
    rpmsign --define "_gpg_name $key" --define "_gpg_path $GNUPGHOME" --define "__gpg $(command -v gpg)" --addsign "$@" >>"$WORK/logs/rpmsign.log" 2>&1
}

index_and_sign_repo() { # index_and_sign_repo DIR KEY-NAME: createrepo_c, then repomd.xml.asc
    createrepo_c --quiet "$1" >/dev/null
    gpg --batch --quiet --yes --local-user "$2" --armor --detach-sign -o "$1/repodata/repomd.xml.asc" "$1/repodata/repomd.xml"
}

# Served tree ($SRV):
#   gpgkey, otherkey                 the repository key and a key with another fingerprint
#   good/$arch/                      both versions, packages and metadata signed with the repository key
#   badsig/$arch/                    1.20.0-1 -base signed with the other key; metadata signed with the repository key
#   swapped/$arch/                   metadata of good packages, then -base replaced by a copy signed with the other key
#   badmeta/$arch/                   good packages, repomd.xml signed with the other key
#   os/                              stand-in for the host's own repository (the versionlock plugin), unsigned
build_repos() {
    SRV=$WORK/srv
    export GNUPGHOME=$WORK/gnupg
    mkdir -m 700 "$GNUPGHOME"
    on_exit "GNUPGHOME='$GNUPGHOME' gpgconf --kill gpg-agent"
    gpg --batch --quiet --passphrase '' --quick-gen-key 'gpuops dnf tier <repo@localhost>' rsa3072 sign 1d 2>/dev/null
    gpg --batch --quiet --passphrase '' --quick-gen-key 'someone else <other@localhost>' rsa3072 sign 1d 2>/dev/null
    KEY_FPR=$(gpg --with-colons --list-keys repo@localhost | awk -F: '$1 == "fpr" {print $10; exit}')
    OTHER_FPR=$(gpg --with-colons --list-keys other@localhost | awk -F: '$1 == "fpr" {print $10; exit}')
    mkdir -p "$SRV"
    gpg --batch --armor --export repo@localhost >"$SRV/gpgkey"
    gpg --batch --armor --export other@localhost >"$SRV/otherkey"
    local built=$WORK/built v p
    for v in "${VERSIONS[@]}"; do
        for p in "${PACKAGES[@]}"; do build_rpm "$p" "$v" "$built"; done
    done
    build_rpm python3-dnf-plugin-versionlock 4.3.1-1 "$WORK/built-os"
    mkdir -p "$SRV/os" && cp "$WORK"/built-os/*/*.rpm "$SRV/os/" && createrepo_c --quiet "$SRV/os" >/dev/null
    local g=$SRV/good/$RPM_ARCH
    mkdir -p "$g" && cp "$built"/*/*.rpm "$g/"
    sign_rpms repo@localhost "$g"/*.rpm
    for d in badsig swapped badmeta; do mkdir -p "$SRV/$d/$RPM_ARCH" && cp "$g"/*.rpm "$SRV/$d/$RPM_ARCH/"; done
    index_and_sign_repo "$g" repo@localhost
    local base120=nvidia-container-toolkit-base-1.20.0-1.$RPM_ARCH.rpm
    sign_rpms other@localhost "$SRV/badsig/$RPM_ARCH/$base120"     # replaces the signature
    index_and_sign_repo "$SRV/badsig/$RPM_ARCH" repo@localhost
    index_and_sign_repo "$SRV/swapped/$RPM_ARCH" repo@localhost
    sign_rpms other@localhost "$SRV/swapped/$RPM_ARCH/$base120"    # after the metadata: checksum differs
    index_and_sign_repo "$SRV/badmeta/$RPM_ARCH" other@localhost
    # The chroot connection hands the controller's environment to the chroot's commands (rpm_key runs gpg).
    unset GNUPGHOME
    log "signed RPM repositories in $SRV (key $KEY_FPR, other key $OTHER_FPR)"
}

start_server() {
    serve_dir "$SRV"
    URL=$SERVED_URL
}

# look_like ROOTFS DISTRO: the two files Ansible's fact gathering reads to name a RedHat-family host.
look_like() {
    local R=$1 id name ver pretty release
    case $2 in
        rocky9) id=rocky name="Rocky Linux" ver=9.4 pretty="Rocky Linux 9.4 (Blue Onyx)" release="Rocky Linux release 9.4 (Blue Onyx)" ;;
        rhel10) id=rhel name="Red Hat Enterprise Linux" ver=10.0 pretty="Red Hat Enterprise Linux 10.0 (Coughlan)" release="Red Hat Enterprise Linux release 10.0 (Coughlan)" ;;
        alma8) id=almalinux name="AlmaLinux" ver=8.10 pretty="AlmaLinux 8.10 (Cerulean Leopard)" release="AlmaLinux release 8.10 (Cerulean Leopard)" ;;
        amzn2023) id=amzn name="Amazon Linux" ver=2023 pretty="Amazon Linux 2023.6.20241212" release="" ;;
        sles15) id=sles name="SLES" ver=15.6 pretty="SUSE Linux Enterprise Server 15 SP6" release="" ;;
        *) echo "look_like: $2?" >&2; return 2 ;;
    esac
    rm -f "$R/etc/os-release" "$R/etc/redhat-release" "$R/etc/system-release" "$R/etc/SuSE-release"
    printf 'NAME="%s"\nVERSION="%s"\nID="%s"\nID_LIKE="rhel centos fedora"\nVERSION_ID="%s"\nPRETTY_NAME="%s"\n' \
        "$name" "$ver" "$id" "$ver" "$pretty" >"$R/etc/os-release"
    [[ $2 == sles15 ]] && sed -i 's/^ID_LIKE=.*/ID_LIKE="suse"/' "$R/etc/os-release"
    if [[ -n $release ]]; then echo "$release" >"$R/etc/redhat-release"; fi
    if [[ $2 == amzn2023 ]]; then echo "Amazon Linux release 2023.6.20241212 (Amazon Linux)" >"$R/etc/system-release"; fi
}

new_dnf_rootfs() { # new_dnf_rootfs DEST: a copy of the cached chroot with proc/dev mounted and the stand-in OS repo
    local R=$1
    cp -a "$DNFBASE" "$R"
    printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
    mount -t proc proc "$R/proc" && on_exit "umount -l '$R/proc'"
    mount --bind /dev "$R/dev" && on_exit "umount -l '$R/dev'"
    mkdir -p "$R/etc/yum.repos.d"
    printf '[os-standin]\nname=stand-in for the host repositories\nbaseurl=%s/os\ngpgcheck=0\nenabled=1\n' "$URL" >"$R/etc/yum.repos.d/os-standin.repo"
    look_like "$R" rocky9
}

vars_file() { # vars_file NAME REPO [extra lines]: extra-vars for the role
    local f=$WORK/$1.vars.yml repo=$2; shift 2
    {
        echo "container_toolkit_rpm_repo_url: '$URL/$repo/\$basearch'"
        echo "container_toolkit_rpm_key_url: '$URL/gpgkey'"
        echo "container_toolkit_key_fingerprints: ['$KEY_FPR']"
        echo "container_toolkit_cdi_refresh_enabled: false"
        # Without a driver the real `nvidia-ctk cdi generate` fails; runtimes.sh covers CDI.
        echo "container_toolkit_cdi_generate: false"
        local kv
        for kv in "$@"; do echo "$kv"; done
    } >"$f"
    echo "$f"
}
dplay() { # dplay LABEL EXPECT VARS [args]
    local label=$1 expect=$2 vars=$3; shift 3
    play "$label" "$expect" -i "$INV" "$HERE/playbooks/container_toolkit.yml" -e "@$vars" "$@"
}
installed_are() { # installed_are VERSION|none: the four packages in the chroot's rpm database
    local p got
    for p in "${PACKAGES[@]}"; do
        got=$(chroot "$R" rpm -q --qf '%{VERSION}-%{RELEASE}' "$p" 2>/dev/null) || got=none
        [[ $got == "$1" ]] || { echo "$p is $got, want $1"; return 1; }
    done
}
nothing_installed() { installed_are none; }
repo_file_has() { grep -qx -- "$1" "$R/etc/yum.repos.d/nvidia-container-toolkit.repo" || { cat "$R/etc/yum.repos.d/nvidia-container-toolkit.repo"; return 1; }; }
locked_at() { # the versionlock block names VERSION for the four packages, and nothing else is in it
    local got want
    got=$(sed -n '/# BEGIN gpuops.mig.container_toolkit/,/# END gpuops.mig.container_toolkit/p' "$R/etc/dnf/plugins/versionlock.list" | grep -v '^#' | sort | paste -sd' ')
    want=$(for p in "${PACKAGES[@]}"; do echo "$p-0:$1.*"; done | sort | paste -sd' ')
    [[ $got == "$want" ]] || { echo "lock block: '$got', want '$want'"; return 1; }
}
upgrade_offers_none() { # dnf (with the versionlock plugin) offers no upgrade of the toolkit packages
    local out
    out=$(chroot "$R" dnf -q --setopt=install_weak_deps=False check-update 2>&1 || true)
    ! grep -Eq '^(nvidia|libnvidia)' <<<"$out" || { echo "$out"; return 1; }
}

main() {
    local t0=$SECONDS rc=0
    REAL_CTK=$(real_nvidia_ctk "$CACHE") || rc=$?
    ((rc != 2)) || exit 1
    if ((rc != 0)); then
        log "dnf tier skipped: no real nvidia-ctk (NVIDIA_CTK=path or ../shared)"
        exit 0
    fi
    roletest_setup
    ensure_dnf_rootfs
    build_repos
    start_server
    R=$WORK/rocky
    new_dnf_rootfs "$R"
    INV=$WORK/dnf.ini
    printf '[targets]\nrocky ansible_connection=community.general.chroot ansible_host=%s ansible_python_interpreter=/usr/bin/python3\n' "$R" >"$INV"
    local good v119 strict fp_other key_other badsig swapped badmeta
    good=$(vars_file good good)
    v119=$(vars_file v119 good "container_toolkit_version: 1.19.0-1")
    strict=$(vars_file strict good "container_toolkit_rpm_gpgcheck: true")
    fp_other=$(vars_file fp-other good "container_toolkit_key_fingerprints: ['$OTHER_FPR']")
    key_other=$(vars_file key-other good "container_toolkit_rpm_key_url: '$URL/otherkey'")
    badsig=$(vars_file badsig badsig "container_toolkit_rpm_gpgcheck: true")
    swapped=$(vars_file swapped swapped)
    badmeta=$(vars_file badmeta badmeta)

    log "== facts: the chroot reads as a RedHat-family host"
    ansible -i "$INV" all -m ansible.builtin.setup -a 'gather_subset=!all,min' >"$WORK/logs/facts.log" 2>&1 || true
    check "facts: Rocky 9, RedHat family" grep -Eq '"ansible_distribution": "Rocky"' "$WORK/logs/facts.log"
    check "facts: os_family RedHat, major version 9" bash -c "grep -q '\"ansible_os_family\": \"RedHat\"' '$WORK/logs/facts.log' && grep -q '\"ansible_distribution_major_version\": \"9\"' '$WORK/logs/facts.log'"

    log "== fresh host: check mode predicts the changes and changes nothing"
    dplay dnf-check-fresh changed "$good" --check --diff
    log_has "check mode predicts the installation" 'a real run installs nvidia-container-toolkit-1\.20\.0-1'
    check "check mode installed nothing" nothing_installed
    check "check mode wrote no repository file" test ! -e "$R/etc/yum.repos.d/nvidia-container-toolkit.repo"

    log "== the key is checked before it is trusted"
    dplay dnf-fingerprint-differs fail "$fp_other"
    log_has "names both fingerprints" "fingerprint\\(s\\) $KEY_FPR.*not in container_toolkit_key_fingerprints \\($OTHER_FPR\\)"
    check "nothing installed" nothing_installed
    check "key not written" test ! -e "$R/etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit"
    dplay dnf-served-key-differs fail "$key_other"
    log_has "served key refused" "fingerprint\\(s\\) $OTHER_FPR"
    check "nothing installed, no repository file" bash -c "test ! -e '$R/etc/yum.repos.d/nvidia-container-toolkit.repo' && test ! -e '$R/etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit'"
    check "nothing installed" nothing_installed

    log "== signatures: metadata signed with another key, packages signed with another key"
    dplay dnf-metadata-other-key fail "$badmeta"
    log_has "repo_gpgcheck refuses the metadata" 'repomd\.xml GPG signature verification error'
    check "nothing installed" nothing_installed
    dplay dnf-package-swapped fail "$swapped"
    log_has "NVIDIA's semantics (gpgcheck=0): the swapped package fails its checksum" 'nvidia-container-toolkit-base-1\.20\.0-1\.[a-z0-9_]+: Cannot download, all mirrors were already tried'
    check "nothing installed" nothing_installed
    dplay dnf-package-other-key fail "$badsig"
    log_has "gpgcheck=1 refuses the package signed with another key" 'nvidia-container-toolkit-base.*(GPG|signature|public key)|Failed to validate GPG signature'
    check "nothing installed" nothing_installed

    log "== install, pin, upgrade, downgrade"
    dplay dnf-converge-1.19 changed "$v119"
    check "packages at 1.19.0-1" installed_are 1.19.0-1
    check "repo: repo_gpgcheck=1" repo_file_has 'repo_gpgcheck = 1'
    check "repo: gpgcheck=0 (as NVIDIA ships it)" repo_file_has 'gpgcheck = 0'
    check "repo: skip_if_unavailable=0 (a bad signature is an error, not a skipped repository)" repo_file_has 'skip_if_unavailable = 0'
    check "repo: gpgkey is the checked local key" repo_file_has 'gpgkey = file:///etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit'
    check "checked key installed equals the served key" cmp "$R/etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit" "$SRV/gpgkey"
    check "versionlock list names 1.19.0-1" locked_at 1.19.0-1
    check "versionlock: dnf offers no upgrade to 1.20.0-1" upgrade_offers_none
    check "the packaged nvidia-ctk is NVIDIA's real one" bash -c "chroot '$R' nvidia-ctk --version | grep -q 'commit: 5505e2f94d9aaa08561490db974ba3cd676af209'"
    dplay dnf-idempotence-1.19 0 "$v119"
    dplay dnf-check-diff-1.19 0 "$v119" --check --diff
    dplay dnf-upgrade-1.20 changed "$good"
    check "packages at 1.20.0-1" installed_are 1.20.0-1
    check "versionlock list moved to 1.20.0-1" locked_at 1.20.0-1
    dplay dnf-idempotence-1.20 0 "$good"
    dplay dnf-downgrade-1.19 changed "$v119"
    check "packages back at 1.19.0-1" installed_are 1.19.0-1

    log "== stricter than NVIDIA: package signatures checked too (gpgcheck=1)"
    dplay dnf-strict-upgrade changed "$strict"
    check "packages at 1.20.0-1, signatures checked" installed_are 1.20.0-1
    check "repo: gpgcheck=1" repo_file_has 'gpgcheck = 1'
    check "key imported into the rpm database" bash -c "chroot '$R' rpm -q gpg-pubkey --qf '%{VERSION}\n' | grep -qi '${KEY_FPR: -8}'"
    dplay dnf-strict-idempotence 0 "$strict"

    log "== other RedHat-family releases and SLES"
    look_like "$R" rhel10
    dplay dnf-rhel10-idempotence 0 "$strict"
    look_like "$R" alma8
    dplay dnf-alma8-idempotence 0 "$strict"
    look_like "$R" amzn2023
    dplay dnf-amazon2023-idempotence 0 "$strict"
    look_like "$R" sles15
    dplay dnf-sles-refused fail "$strict"
    log_has "SLES: clear message" 'SLES and openSUSE are not supported: the container_toolkit role installs with apt or dnf only'

    log "dnf tier total $((SECONDS - t0))s"
    roletest_summary
}

main "$@"
